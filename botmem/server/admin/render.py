"""The admin pages' templates (Jinja2, every value escaped) and the filters they use."""

from __future__ import annotations

import json
from datetime import datetime, tzinfo
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, StrictUndefined

_ENV = Environment(
    loader=PackageLoader("botmem.server.admin", "templates"),
    autoescape=True,  # every template: a block value is shown, never run
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def render(
    request: Request, template: str, context: dict[str, Any], *, status_code: int = 200
) -> HTMLResponse:
    auth = request.app.state.admin_auth
    page = _ENV.get_template(template).render(
        {"login_required": auth.required, "admin": None, **context}
    )
    headers = {
        "Cache-Control": "no-store",  # memory is private: not kept by the browser or a proxy
        "Content-Security-Policy": (
            "default-src 'self'; img-src 'self' data:; style-src 'self'; "
            "frame-ancestors 'none'; form-action 'self'"
        ),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
    }
    return HTMLResponse(page, status_code=status_code, headers=headers)


def when(moment: datetime | None, zone: tzinfo | None = None) -> str:
    """ "2026-03-14 13:05", in `zone` (else as stored, UTC); "never" for None."""
    if moment is None:
        return "never"
    return (moment.astimezone(zone) if zone else moment).strftime("%Y-%m-%d %H:%M")


def pretty_json(text: str) -> str:
    """Tool arguments indented when they are JSON; as the model wrote them otherwise."""
    try:
        return json.dumps(json.loads(text), ensure_ascii=False, indent=2)
    except ValueError:
        return text


def number(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


_ENV.filters["when"] = when
_ENV.filters["pretty_json"] = pretty_json
_ENV.filters["number"] = number
