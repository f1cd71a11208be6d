"""The ASGI app of `botmem serve`: routers, the API key check and JSON errors.

The /admin pages (botmem.server.admin) are served by the same app: the bearer check skips
them, as a browser logs in there with the same key and then sends a session cookie.

Every error is JSON with a status that says what went wrong: 401 without the key, 404 for
an unknown agent, block or passage, 422 for a bad body (FastAPI names the field), 409 for a
conflict. A bug is a 500 with a short message; the traceback goes to the log only.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from botmem import __version__
from botmem.app import App
from botmem.errors import BotmemError, NotFoundError
from botmem.server.api_adapter import ApiAdapter

log = logging.getLogger(__name__)


class ConflictError(BotmemError):
    """The request conflicts with the current state (e.g. the agent exists, or is busy)."""


def create_api(app: App, adapter: ApiAdapter, *, api_key: str | None = None) -> FastAPI:
    """The HTTP API over a started botmem `app` (with `adapter` among its adapters)."""
    from botmem.server import agentfiles, agents, archival, blocks, messages
    from botmem.server.admin import is_admin_path, mount_admin

    api = FastAPI(
        title="botmem",
        version=__version__,
        description="Persistent agents over a Letta-compatible subset of Letta's /v1 API.",
    )
    api.state.botmem = app
    api.state.adapter = adapter
    for module in (agents, agentfiles, messages, blocks, archival):
        api.include_router(module.router, prefix="/v1")
    mount_admin(api, api_key)
    _add_error_handlers(api)
    if api_key:
        api.middleware("http")(_require_key(api_key, skip=is_admin_path))
    return api


def botmem_app(request: Request) -> App:
    """The botmem App behind the API (a FastAPI dependency)."""
    app: App = request.app.state.botmem
    return app


def api_adapter(request: Request) -> ApiAdapter:
    adapter: ApiAdapter = request.app.state.adapter
    return adapter


def _add_error_handlers(api: FastAPI) -> None:
    @api.exception_handler(NotFoundError)
    async def not_found(request: Request, exc: NotFoundError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @api.exception_handler(ConflictError)
    async def conflict(request: Request, exc: ConflictError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @api.exception_handler(BotmemError)
    async def refused(request: Request, exc: BotmemError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @api.exception_handler(Exception)
    async def bug(request: Request, exc: Exception) -> JSONResponse:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return JSONResponse(
            {"detail": f"internal error ({type(exc).__name__}); see the server log"},
            status_code=500,
        )


Call = Callable[[Request], Awaitable[Response]]


def _require_key(
    api_key: str, skip: Callable[[str], bool]
) -> Callable[[Request, Call], Awaitable[Response]]:
    expected = f"Bearer {api_key}".encode()

    async def check(request: Request, call_next: Call) -> Response:
        if skip(request.url.path):
            return await call_next(request)  # checked there, by its session cookie
        sent = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(sent, expected):
            return JSONResponse(
                {"detail": "missing or wrong API key (send Authorization: Bearer <key>)"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        return await call_next(request)

    return check
