"""AgentRunner: turns one stored inbound event into the agent's reply."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from importlib import resources
from zoneinfo import ZoneInfo

from botmem.agent.context import ContextBuilder
from botmem.agent.loop import LoopSettings, StepLoop, Turn
from botmem.agent.retrieval import Retriever
from botmem.agent.summarizer import Summarizer
from botmem.agent.teams import TeamBlocks
from botmem.agent.timezones import agent_timezone
from botmem.agent.tools import CheckinPlanner, Toolset
from botmem.config import Settings
from botmem.events import InboundMessage
from botmem.limits import Limits, MeteredLLM
from botmem.llm.base import AGENT_MODEL, LLMClient
from botmem.stores.base import Stores
from botmem.types import AgentKey, AgentState, BlockSpec, Message

log = logging.getLogger(__name__)
DefaultBlocks = Sequence[tuple[BlockSpec, str | None]]


def base_instructions(extra: str = "") -> str:
    text = resources.files("botmem.agent").joinpath("prompts/system.txt").read_text("utf-8")
    return f"{text.strip()}\n\n{extra.strip()}" if extra.strip() else text


class AgentRunner:
    def __init__(
        self,
        stores: Stores,
        llm: LLMClient,
        tools: Toolset,
        settings: Settings,
        clock: Callable[[], datetime],
        retriever: Retriever,
        on_stored: Callable[[], None],
        memory_pressure: Callable[[AgentKey, str], None] | None = None,
        planner: CheckinPlanner | None = None,
    ):
        self._stores = stores
        self._clock = clock
        self.limits = Limits(settings.limits, stores.agents, clock)
        llm = MeteredLLM(llm)  # the turn's steps and summaries count toward its token budget
        self._default_blocks: DefaultBlocks = settings.agent.block_specs()
        self._ready: set[AgentKey] = set()
        self.teams = TeamBlocks(stores.blocks, settings.platforms())
        self._memory_pressure = memory_pressure
        self._every_turns = settings.consolidation.every_turns
        self._turns: dict[AgentKey, int] = {}  # since the last consolidation request
        self._timezone = ZoneInfo(settings.agent.timezone)
        self._context = context = ContextBuilder(
            stores,
            llm,
            Summarizer(llm, settings.context.summary_max_tokens),
            settings.context,
            base_instructions(settings.agent.system),
            tools.schemas(),
            self._timezone,
        )
        loop_settings = LoopSettings(
            max_steps=settings.llm.max_steps,
            max_repeated_calls=settings.agent.max_repeated_calls,
            max_reply_tokens=settings.llm.max_reply_tokens,
            timezone=self._timezone,
            search_page_size=settings.agent.search_page_size,
        )
        self._loop = StepLoop(
            stores,
            llm,
            tools,
            context,
            loop_settings,
            clock,
            retriever,
            on_stored,
            memory_pressure,
            planner,
        )

    async def ensure_agent(self, agent_key: AgentKey) -> AgentState:
        """The agent, created with the configured blocks the first time it is seen."""
        state, created = await self._stores.agents.ensure(agent_key)
        if created:  # new, or wiped since we last saw it
            self._ready.discard(agent_key)
            self.teams.forget(agent_key)
        if agent_key not in self._ready:
            # attach is idempotent: blocks added to the config later reach existing agents too
            for spec, shared_name in self._default_blocks:
                await self._stores.blocks.attach(agent_key, spec, shared_name=shared_name)
            self._ready.add(agent_key)
        if created:
            log.info("agent %s: created", agent_key)
        return state

    async def run_turn(self, inbox_id: int, inbound: InboundMessage) -> str:
        """Run the turn for a stored inbound event (or resume it after a crash)."""
        state = await self.ensure_agent(inbound.agent_key)
        await self.teams.attach(inbound.agent_key, inbound.source, inbound.team_id)
        timezone = agent_timezone(state, self._timezone)
        turn = Turn(inbound.agent_key, inbox_id, inbound=inbound, timezone=timezone)
        turn.messages = await self._stores.history.for_turn(inbound.agent_key, inbox_id)
        if not turn.messages:
            await self._loop.record(turn, _inbound_message(inbound, inbox_id, self._clock()))
        else:
            log.info(
                "agent %s: resuming turn %d at message %d",
                inbound.agent_key,
                inbox_id,
                len(turn.messages),
            )
        model = AGENT_MODEL.set(state.metadata.get("model") or None)
        with self.limits.metering() as usage:
            try:
                reply = await self._loop.run(turn)
            finally:  # a turn that fails (and is retried) still spent its tokens
                AGENT_MODEL.reset(model)
                await self.limits.record(inbound.agent_key, usage)
        await self._stores.agents.touch(inbound.agent_key)
        self._count_turn(inbound.agent_key)
        return reply

    async def compact(self, agent_key: AgentKey, above: float) -> int:
        """Proactive summarization of an idle agent (see ContextBuilder.compact)."""
        with self.limits.metering() as usage:
            try:
                return await self._context.compact(agent_key, above, self._clock())
            finally:
                await self.limits.record(agent_key, usage)

    def _count_turn(self, agent_key: AgentKey) -> None:
        """Every `every_turns` turns (counted in this process), ask for a consolidation."""
        if not self._every_turns or self._memory_pressure is None:
            return
        count = self._turns.get(agent_key, 0) + 1
        self._turns[agent_key] = count % self._every_turns
        if count >= self._every_turns:
            self._memory_pressure(agent_key, f"{count} turns since the last pass")


def _inbound_message(inbound: InboundMessage, inbox_id: int, now: datetime) -> Message:
    text = inbound.text
    if inbound.kind == "scheduled":
        text = f"[Scheduled wake-up, not a message from the person] {text}"
    elif not inbound.is_direct and inbound.user_name:
        text = f"[{inbound.user_name}] {text}"  # who speaks, in a group
    return Message(inbound.agent_key, "user", text, inbound.received_at or now, turn_id=inbox_id)
