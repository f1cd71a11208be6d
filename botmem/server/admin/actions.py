"""What /admin changes: block values, passages, check-ins, consolidations, wipe and export.

Each action is a form POST carrying the session's token (auth.actor), is logged with who
did it (auth.audit), and answers 303 back to the page it came from; an action that writes
nothing shows the agent's page again with why (409 for a conflict, 422 for bad input).

A block value goes through the store's versioned edit, the path the agent's own memory
tools take, recorded as made by "admin". The form carries the version the admin saw: when
the block moved on meanwhile (the agent, or another admin, saved it), nothing is written and
both values are shown, so no one's edit is silently lost.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from botmem.agent.retrieval import PASSAGES
from botmem.app import App
from botmem.server import agentfiles
from botmem.server.admin.auth import Admin, actor, audit, viewer
from botmem.server.admin.pages import AdminNotFound, existing, show_agent
from botmem.server.admin.render import render
from botmem.server.api import botmem_app
from botmem.server.scrubbing import ScrubbedRoute
from botmem.types import Block
from botmem.unicode import scrub

router = APIRouter(include_in_schema=False, route_class=ScrubbedRoute)
ADMIN_EDITOR = "admin"
"""Who a block edit made here is recorded as (not an agent key: those have a colon)."""
MAX_VALUE = 1_000_000


class _Moved(Exception):
    """The block's version moved on since the form was loaded (nothing is written)."""

    def __init__(self, current: Block):
        self.current = current


@dataclass(frozen=True)
class Conflict:
    label: str
    current: str
    submitted: str


def _page(agent_id: str, section: str = "") -> RedirectResponse:
    return RedirectResponse(f"/admin/agents/{agent_id}{section}", status_code=303)


@router.post("/admin/agents/{agent_id}/blocks/{label}", response_class=HTMLResponse)
async def save_block(
    request: Request,
    agent_id: str,
    label: str,
    value: str = Form("", max_length=MAX_VALUE),
    version: str = Form(""),
    admin: Admin = Depends(actor),
    app: App = Depends(botmem_app),
) -> Response:
    state = await existing(app, agent_id)
    block = await app.stores.blocks.get(state.agent_key, label)
    if block is None:
        raise AdminNotFound(f"agent {agent_id} has no block labelled {label!r}")
    new = scrub(value.replace("\r\n", "\n"))  # browsers send a textarea's lines with CR LF
    error = _refusal(block, new, version)
    if error:
        return await show_agent(request, app, admin, state, status_code=422, error=error)
    seen = int(version)

    def change(current: Block) -> str:  # checked against the block as the edit finds it
        if current.version != seen:
            raise _Moved(current)
        return new

    try:
        edit = await app.stores.blocks.edit_by_id(block.id, change, editor=ADMIN_EDITOR)
    except _Moved as moved:
        audit(admin, f"edit of {state.agent_key} block {label!r} refused: it changed meanwhile")
        conflict = Conflict(label, moved.current.value, new)
        return await show_agent(request, app, admin, state, status_code=409, conflict=conflict)
    sizes = f"{len(edit.old_value):,} -> {len(edit.new_value):,} characters"
    # the values themselves are in the block's edit history, not in the log
    audit(admin, f"edited {state.agent_key} block {label!r} (version {edit.version}, {sizes})")
    return _page(agent_id)


def _refusal(block: Block, value: str, version: str) -> str | None:
    if not version.isdigit():
        return f"block {block.label!r}: the form has no version; reload the page"
    if len(value) > block.limit:
        return (
            f"block {block.label!r}: {len(value):,} characters is over its limit of "
            f"{block.limit:,}; nothing was saved"
        )
    return None


@router.post("/admin/agents/{agent_id}/passages/{passage}/delete")
async def delete_passage(
    agent_id: str, passage: int, admin: Admin = Depends(actor), app: App = Depends(botmem_app)
) -> Response:
    key = (await existing(app, agent_id)).agent_key
    if not await app.stores.archival.delete(key, passage):
        raise AdminNotFound(f"agent {agent_id} has no passage {passage}")
    await app.stores.vectors.delete(PASSAGES, key, [str(passage)])
    audit(admin, f"deleted {key} archival passage {passage}")
    return _page(agent_id, "#archival")


@router.post("/admin/agents/{agent_id}/checkins/{job_id}/cancel")
async def cancel_checkin(
    agent_id: str, job_id: int, admin: Admin = Depends(actor), app: App = Depends(botmem_app)
) -> Response:
    key = (await existing(app, agent_id)).agent_key
    if not await app.scheduler.cancel_checkin(key, job_id):
        raise AdminNotFound(f"agent {agent_id} has no planned check-in {job_id}")
    audit(admin, f"cancelled {key} check-in {job_id}")
    return _page(agent_id, "#checkins")


@router.post("/admin/agents/{agent_id}/consolidations/{run_id}/undo", response_class=HTMLResponse)
async def undo_consolidation(
    request: Request,
    agent_id: str,
    run_id: str,
    admin: Admin = Depends(actor),
    app: App = Depends(botmem_app),
) -> Response:
    state = await existing(app, agent_id)
    labels = await app.consolidator.undo(state.agent_key, run_id)
    if not labels:
        error = f"consolidation {run_id} changed nothing that can be undone (or is undone)"
        return await show_agent(request, app, admin, state, status_code=409, error=error)
    audit(admin, f"undid {state.agent_key} consolidation {run_id}: restored {', '.join(labels)}")
    return _page(agent_id, "#consolidations")


@router.post("/admin/agents/{agent_id}/wipe", response_class=HTMLResponse)
async def ask_wipe(
    request: Request,
    agent_id: str,
    admin: Admin = Depends(actor),
    app: App = Depends(botmem_app),
) -> Response:
    """The confirmation step: nothing is wiped until its form is posted."""
    state = await existing(app, agent_id)
    context = {"admin": admin, "agent_id": agent_id, "key": state.agent_key}
    return render(request, "wipe.html", context)


@router.post("/admin/agents/{agent_id}/wipe/confirm")
async def wipe(
    agent_id: str, admin: Admin = Depends(actor), app: App = Depends(botmem_app)
) -> Response:
    key = (await existing(app, agent_id)).agent_key
    await app.router.wipe(key)  # waits for a running turn
    app.runner.teams.forget(key)
    audit(admin, f"wiped {key}")
    return RedirectResponse(f"/admin?wiped={quote(key)}", status_code=303)


@router.get("/admin/agents/{agent_id}/export")
async def export(
    agent_id: str, admin: Admin = Depends(viewer), app: App = Depends(botmem_app)
) -> Response:
    """The agent as a Letta agent file (.af), as /v1/agents/{id}/export gives it."""
    key = (await existing(app, agent_id)).agent_key
    response = await agentfiles.export_agent_file(
        agent_id,
        scrub_messages=False,
        use_legacy_format=False,
        conversation_id=None,
        max_steps=None,
        app=app,
    )
    filename = re.sub(r"[^A-Za-z0-9._-]", "_", key) + ".af"
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    audit(admin, f"exported {key}")
    return response
