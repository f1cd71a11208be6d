"""/admin: every agent's memory in a browser, to read and to steer.

Server-rendered HTML (Jinja2, autoescaped) that reads fully without JavaScript; a small
script only adds conveniences. Modules: auth.py (login, session cookie, form tokens),
render.py (templates), overview.py (the agents list), agent_view.py and history.py (one
agent's page), charts.py (inline SVG), pages.py (the GET routes), actions.py (the POSTs).
Protected by the API key through a login form, not the bearer header (see api.py).
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from botmem.server.admin import actions, auth, pages
from botmem.server.admin.render import render

PREFIX = "/admin"


def mount_admin(api: FastAPI, api_key: str | None) -> None:
    """Serve the admin pages from `api`; with `api_key`, only to who logs in with it."""
    api.state.admin_auth = auth.AdminAuth(api_key)
    for module in (auth, pages, actions):
        api.include_router(module.router)
    static = StaticFiles(packages=[("botmem.server.admin", "static")])
    api.mount(f"{PREFIX}/static", static, name="admin-static")
    _add_handlers(api)


def is_admin_path(path: str) -> bool:
    return path == PREFIX or path.startswith(f"{PREFIX}/")


def _add_handlers(api: FastAPI) -> None:
    @api.exception_handler(auth.LoginRequired)
    async def log_in_first(request: Request, exc: auth.LoginRequired) -> Response:
        return RedirectResponse(auth.LOGIN_PATH, status_code=303)

    @api.exception_handler(auth.BadToken)
    async def bad_token(request: Request, exc: auth.BadToken) -> Response:
        message = "This form is out of date (or came from another site): reload the page."
        return render(request, "error.html", {"message": message}, status_code=403)

    @api.exception_handler(pages.AdminNotFound)
    async def not_found(request: Request, exc: pages.AdminNotFound) -> Response:
        return render(request, "error.html", {"message": str(exc)}, status_code=404)
