"""Requests with only text the stores can hold (see botmem.unicode): a NUL or a lone
surrogate in a JSON body, a query parameter or a path becomes U+FFFD before any route sees
it, so such input is stored or searched for, never a database error (a 500)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, MutableMapping
from typing import Any
from urllib.parse import parse_qsl, urlencode

from fastapi import Request, Response
from fastapi.routing import APIRoute

from botmem.unicode import scrub, scrub_json


class ScrubbedRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_scrubbed_json"):
            self._scrubbed_json = scrub_json(await super().json())
        return self._scrubbed_json


class ScrubbedRoute(APIRoute):
    """A route whose handler gets a ScrubbedRequest (use as APIRouter's route_class)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def scrubbed(request: Request) -> Response:
            return await handler(ScrubbedRequest(_scrubbed_scope(request.scope), request.receive))

        return scrubbed


def _scrubbed_scope(scope: MutableMapping[str, Any]) -> dict[str, Any]:
    query = scope.get("query_string", b"").decode("latin-1")
    pairs = parse_qsl(query, keep_blank_values=True, errors="replace")
    return {
        **scope,
        "path_params": {k: scrub(v) for k, v in scope.get("path_params", {}).items()},
        "query_string": urlencode([(k, scrub(v)) for k, v in pairs]).encode(),
    }
