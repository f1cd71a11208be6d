"""/v1/agents/{agent_id}/archival-memory: list, insert, search and delete passages.

These are the agent's own archival memory, the same passages its archival_memory_insert and
archival_memory_search tools use: inserted passages are embedded at once, and searches blend
meaning and words as the tool does. Every call is scoped to the agent in the path, so one
agent's passages never reach another (a passage id of another agent is a 404).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, tzinfo
from typing import Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from botmem.agent.retrieval import PASSAGES
from botmem.agent.timezones import agent_timezone
from botmem.app import App, utc_now
from botmem.errors import BotmemError, NotFoundError
from botmem.server.agents import existing_agent
from botmem.server.api import botmem_app
from botmem.server.ids import agent_id, number_of, numbered_id
from botmem.server.paging import MAX_LIMIT, Page
from botmem.server.scrubbing import ScrubbedRoute
from botmem.stores.base import Passage
from botmem.types import AgentKey

log = logging.getLogger(__name__)
router = APIRouter(tags=["archival"], route_class=ScrubbedRoute)
PASSAGE = "passage"
MESSAGE = "message"
ALL = 1_000_000_000
MAX_TEXT_CHARS = 100_000
MAX_TAGS = 50
DEFAULT_TOP_K = 10


class PassageCreate(BaseModel):
    model_config = ConfigDict(extra="ignore")
    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    created_at: datetime | None = Field(default=None, description="Defaults to now.")
    tags: list[str] | None = Field(default=None, max_length=MAX_TAGS)


class PassageOut(BaseModel):
    id: str
    text: str
    created_at: datetime
    tags: list[str]
    agent_id: str
    """botmem's own: passages belong to one agent (Letta files them under an archive)."""
    metadata: dict[str, Any] = Field(default_factory=dict)
    """``source_message_ids``: the messages the passage was drawn from, if any."""

    @classmethod
    def of(cls, passage: Passage) -> PassageOut:
        sources = [numbered_id(MESSAGE, n) for n in passage.source_message_ids]
        return cls(
            id=numbered_id(PASSAGE, passage.id or 0),
            text=passage.text,
            created_at=passage.created_at,
            tags=list(passage.tags),
            agent_id=agent_id(passage.agent_key),
            metadata={"source_message_ids": sources} if sources else {},
        )


class SearchResult(BaseModel):
    id: str
    content: str
    timestamp: str
    """ISO 8601 in the agent's timezone, as the agent's own search shows it."""
    tags: list[str]


class SearchOut(BaseModel):
    count: int
    results: list[SearchResult]


@router.get(
    "/agents/{agent_id}/archival-memory",
    response_model=list[PassageOut],
    summary="List an agent's archival passages",
)
async def list_passages(
    agent_id: str,
    after: str | None = Query(None, description="Passages after this id (in the order)."),
    before: str | None = Query(None, description="Passages before this id (in the order)."),
    limit: int = Query(100, ge=1, le=MAX_LIMIT),
    ascending: bool = Query(True, description="Oldest first (default) or newest first."),
    search: str | None = Query(None, max_length=10_000, description="Only passages with it."),
    app: App = Depends(botmem_app),
) -> list[PassageOut]:
    key = await existing_agent(app, agent_id)
    passages = list(reversed(await app.stores.archival.select(key, limit=ALL)))
    if search:
        needle = search.casefold()
        passages = [p for p in passages if needle in p.text.casefold()]
    page = Page(limit=limit, before=before, after=after, order="asc" if ascending else "desc")
    return [
        PassageOut.of(p) for p in page.apply(passages, lambda p: numbered_id(PASSAGE, p.id or 0))
    ]


@router.post(
    "/agents/{agent_id}/archival-memory",
    response_model=list[PassageOut],
    summary="Insert a passage into an agent's archival memory",
)
async def create_passage(
    agent_id: str, body: PassageCreate, app: App = Depends(botmem_app)
) -> list[PassageOut]:
    key = await existing_agent(app, agent_id)
    text = body.text.strip()
    if not text:
        raise BotmemError("text is blank; send the text to keep")
    created_at = _aware(body.created_at, UTC) if body.created_at else utc_now()
    passage = Passage(key, text, created_at, clean_tags(body.tags))
    stored = await app.retriever.insert_passage(passage)
    log.info("api: agent %s: archival passage %s inserted", key, stored.id)
    return [PassageOut.of(stored)]


@router.get(
    "/agents/{agent_id}/archival-memory/search",
    response_model=SearchOut,
    summary="Search an agent's archival memory by meaning and words",
)
async def search_passages(
    agent_id: str,
    query: str = Query(..., max_length=10_000),
    top_k: int | None = Query(None, ge=1, le=MAX_LIMIT, description="Default 10."),
    tags: list[str] | None = Query(None, max_length=MAX_TAGS),
    tag_match_mode: Literal["any", "all"] = Query("any"),
    start_datetime: datetime | None = Query(None, description="Created at or after this."),
    end_datetime: datetime | None = Query(None, description="Created before this."),
    app: App = Depends(botmem_app),
) -> SearchOut:
    key = await existing_agent(app, agent_id)
    timezone = await _timezone(app, key)
    start = _aware(start_datetime, timezone) if start_datetime else None
    end = _aware(end_datetime, timezone) if end_datetime else None
    found = await _search(
        app, key, query, top_k or DEFAULT_TOP_K, clean_tags(tags), tag_match_mode, start, end
    )
    results = [
        SearchResult(
            id=numbered_id(PASSAGE, p.id or 0),
            content=p.text,
            timestamp=p.created_at.astimezone(timezone).isoformat(timespec="seconds"),
            tags=list(p.tags),
        )
        for p in found
    ]
    return SearchOut(count=len(results), results=results)


@router.delete(
    "/agents/{agent_id}/archival-memory/{memory_id}",
    summary="Delete a passage from an agent's archival memory",
)
async def delete_passage(
    agent_id: str, memory_id: str, app: App = Depends(botmem_app)
) -> dict[str, str]:
    key = await existing_agent(app, agent_id)
    number = number_of(PASSAGE, memory_id)
    if not await app.stores.archival.delete(key, number):
        raise NotFoundError(f"agent {agent_id} has no passage {memory_id!r}")
    await app.stores.vectors.delete(PASSAGES, key, [str(number)])
    log.info("api: agent %s: archival passage %s deleted", key, number)
    return {"id": memory_id, "status": "deleted"}


async def _search(
    app: App,
    key: AgentKey,
    query: str,
    top_k: int,
    tags: tuple[str, ...],
    mode: Literal["any", "all"],
    start: datetime | None,
    end: datetime | None,
) -> list[Passage]:
    if mode == "all" or len(tags) <= 1:
        return await app.retriever.search_passages(
            key, query, limit=top_k, tags=tags or None, start=start, end=end
        )
    # Any of several tags: rank every passage in the date range, keep those with one of them
    # (archival memories are few; the retriever filters by all tags only).
    everything = await app.stores.archival.count(key)
    ranked = await app.retriever.search_passages(
        key, query, limit=max(everything, top_k), start=start, end=end
    )
    wanted = set(tags)
    return [p for p in ranked if wanted & set(p.tags)][:top_k]


def clean_tags(tags: list[str] | None) -> tuple[str, ...]:
    """Tags as the agent's archival tools store and match them: trimmed, lower case, once."""
    return tuple(dict.fromkeys(t.strip().lower() for t in tags or () if t.strip()))


async def _timezone(app: App, key: AgentKey) -> ZoneInfo:
    state = await app.stores.agents.get(key)
    default = ZoneInfo(app.settings.agent.timezone)
    return agent_timezone(state, default) if state is not None else default


def _aware(moment: datetime, timezone: tzinfo) -> datetime:
    """A time without an offset is read in `timezone` (the agent's, as its tools do)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone)
