"""Everything the page of one agent shows, read from the stores."""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo

from markupsafe import Markup

from botmem.agent.checkin_tools import checkin_line
from botmem.agent.consolidation import ConsolidationRun
from botmem.agent.timezones import agent_timezone
from botmem.app import App, utc_now
from botmem.server.admin.charts import context_chart
from botmem.server.admin.history import Entry, HistoryQuery, history_entries
from botmem.server.admin.overview import agent_name, is_full, tokens_today
from botmem.server.admin.overview import usage_percent as percent
from botmem.server.ids import agent_id
from botmem.stores.base import Passage
from botmem.types import AgentKey, AgentState, Block, BlockEdit

PASSAGES_SHOWN = 100
EDITS_SHOWN = 10
RUNS_SHOWN = 20


@dataclass(frozen=True)
class SharedWith:
    key: AgentKey
    id: str
    name: str


@dataclass(frozen=True)
class BlockView:
    block: Block
    percent: int
    full: bool
    shared_with: tuple[SharedWith, ...]
    """Every agent using the block, when it is shared (this one too)."""
    edits: tuple[BlockEdit, ...]
    """The latest edits, newest first: the previous versions."""


@dataclass(frozen=True)
class Checkin:
    id: int
    line: str


@dataclass(frozen=True)
class AgentView:
    key: AgentKey
    id: str
    name: str
    state: AgentState
    zone: ZoneInfo
    blocks: list[BlockView]
    history: list[Entry]
    history_matched: int
    messages: int
    passages: list[Passage]
    passage_count: int
    checkins: list[Checkin]
    runs: list[ConsolidationRun]
    chart: Markup
    steps: int
    tokens_today: int


async def agent_view(
    app: App, state: AgentState, query: HistoryQuery, passage_query: str
) -> AgentView:
    key = state.agent_key
    zone = agent_timezone(state, ZoneInfo(app.settings.agent.timezone))
    history, matched = await history_entries(app, key, query, zone)
    steps = await app.stores.steps.for_agent(key, limit=500)
    window = app.llm.context_window
    return AgentView(
        key=key,
        id=agent_id(key),
        name=agent_name(state),
        state=state,
        zone=zone,
        blocks=[await _block_view(app, key, b) for b in await app.stores.blocks.for_agent(key)],
        history=history,
        history_matched=matched,
        messages=await app.stores.history.count(key),
        passages=await _passages(app, key, passage_query),
        passage_count=await app.stores.archival.count(key),
        checkins=[Checkin(j.id or 0, checkin_line(j)) for j in await app.scheduler.checkins(key)],
        runs=await app.consolidator.runs(key, RUNS_SHOWN),
        chart=context_chart(steps, window, app.settings.context.trigger),
        steps=len(steps),
        tokens_today=await tokens_today(app, state, utc_now()),
    )


async def _block_view(app: App, key: AgentKey, block: Block) -> BlockView:
    shared: list[SharedWith] = []
    if block.shared_name:
        for other in await app.stores.blocks.agents_of(block.id):
            state = await app.stores.agents.get(other)
            name = agent_name(state) if state is not None else other
            shared.append(SharedWith(other, agent_id(other), name))
    shared.sort(key=lambda other: (other.name, other.key))  # a stable order to read
    edits = await app.stores.blocks.edits(key, block.label, limit=EDITS_SHOWN)
    return BlockView(block, percent(block), is_full(block), tuple(shared), tuple(edits))


async def _passages(app: App, key: AgentKey, query: str) -> list[Passage]:
    """The newest passages, or those matching `query` (meaning and words, as the agent's
    archival_memory_search ranks them), best first."""
    if query.strip():
        return await app.retriever.search_passages(key, query, limit=PASSAGES_SHOWN)
    return await app.stores.archival.select(key, limit=PASSAGES_SHOWN)
