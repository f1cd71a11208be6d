"""The pages of /admin that only read: the agents list and one agent's page."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse

from botmem.app import App, utc_now
from botmem.errors import NotFoundError
from botmem.server.admin.agent_view import agent_view
from botmem.server.admin.auth import Admin, viewer
from botmem.server.admin.charts import messages_chart
from botmem.server.admin.history import HistoryQuery
from botmem.server.admin.overview import MAX_ROWS, agent_rows, messages_per_day
from botmem.server.admin.render import render
from botmem.server.api import botmem_app
from botmem.server.ids import agent_key
from botmem.server.scrubbing import ScrubbedRoute
from botmem.types import AgentState
from botmem.unicode import scrub

router = APIRouter(include_in_schema=False, route_class=ScrubbedRoute)
MAX_QUERY = 1000


class AdminNotFound(Exception):
    """An agent, block or passage the page names does not exist."""


@router.get("/admin", response_class=HTMLResponse)
async def agents_page(
    request: Request,
    q: str = Query("", max_length=MAX_QUERY),
    wiped: str = Query("", max_length=MAX_QUERY),
    admin: Admin = Depends(viewer),
    app: App = Depends(botmem_app),
) -> HTMLResponse:
    now = utc_now()
    query = scrub(q)
    rows, matched = await agent_rows(app, query, now)
    context = {
        "admin": admin,
        "q": query,
        "rows": rows,
        "matched": matched,
        "max_rows": MAX_ROWS,
        "chart": messages_chart(await messages_per_day(app, now)),
        "wiped": scrub(wiped),
    }
    return render(request, "agents.html", context)


@router.get("/admin/agents/{agent_id}", response_class=HTMLResponse)
async def agent_page(
    request: Request,
    agent_id: str,
    text: str = Query("", max_length=MAX_QUERY),
    from_: str = Query("", alias="from", max_length=20),
    to: str = Query("", max_length=20),
    archival: str = Query("", max_length=MAX_QUERY),
    admin: Admin = Depends(viewer),
    app: App = Depends(botmem_app),
) -> HTMLResponse:
    state = await existing(app, agent_id)
    query = HistoryQuery.parse(scrub(text), from_, to)
    return await show_agent(request, app, admin, state, query=query, archival=scrub(archival))


async def show_agent(
    request: Request,
    app: App,
    admin: Admin,
    state: AgentState,
    *,
    query: HistoryQuery | None = None,
    archival: str = "",
    status_code: int = 200,
    **notes: Any,
) -> HTMLResponse:
    """The agent's page; `notes` (conflict, error) say why an action wrote nothing."""
    query = query or HistoryQuery()
    view = await agent_view(app, state, query, archival)
    context = {
        "admin": admin,
        "agent": view,
        "query": query,
        "archival": archival,
        "conflict": None,
        "error": None,
        **notes,
    }
    return render(request, "agent.html", context, status_code=status_code)


async def existing(app: App, id_: str) -> AgentState:
    """The state of the agent with this id; AdminNotFound (a 404 page) otherwise."""
    try:
        key = agent_key(id_)
    except NotFoundError as exc:
        raise AdminNotFound(str(exc)) from exc
    state = await app.stores.agents.get(key)
    if state is None:
        raise AdminNotFound(f"no agent {id_!r}")
    return state
