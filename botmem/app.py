"""Composition root: the only place that picks concrete classes (stores, LLM client, tools)."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from zoneinfo import ZoneInfo

from botmem.adapter import Adapter, TurnTask
from botmem.agent.archival_tools import ARCHIVAL_TOOLS
from botmem.agent.checkin_tools import CHECKIN_TOOLS
from botmem.agent.consolidation import Consolidator
from botmem.agent.memory_tools import BUILTIN_TOOLS
from botmem.agent.retrieval import Indexer, Retriever
from botmem.agent.runner import AgentRunner
from botmem.agent.tools import Tool, Toolset
from botmem.commands import Commands
from botmem.config import Settings, require_llm
from botmem.embeddings.base import Embedder
from botmem.errors import ConfigError
from botmem.events import InboundMessage, OutboundMessage
from botmem.llm.base import LLMClient
from botmem.locks import LeasedLocks
from botmem.maintenance import Maintenance
from botmem.router import Router
from botmem.scheduler import Scheduler
from botmem.stores.base import Stores, VectorIndex
from botmem.workers import ClaimLoop, Leadership, new_holder

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]
NO_KEY = "no-key"
RETRY_FIRST_DELAY = 2.0
RETRY_MAX_DELAY = 300.0
"""Backoff of an adapter that cannot connect: 2 s, doubling up to 5 minutes."""


def utc_now() -> datetime:
    return datetime.now(UTC)


class App:
    """A running botmem: stores, LLM, agents, router and the adapters it serves."""

    def __init__(
        self,
        settings: Settings,
        stores: Stores,
        llm: LLMClient,
        embedder: Embedder,
        tools: Toolset,
        clock: Clock,
    ):
        self.settings = settings
        self.tools = tools
        self.embedder = embedder
        self.stores = stores
        self.llm = llm
        self.retriever = Retriever(stores, embedder, settings.retrieval)
        self.indexer = Indexer(stores, embedder, busy=lambda: self.router.running())
        self.consolidator = Consolidator(
            stores,
            llm,
            settings.consolidation,
            clock,
            self.retriever,
            ZoneInfo(settings.agent.timezone),
        )
        # The scheduler, runner and maintenance call each other: lambdas resolve the cycle.
        self.scheduler = Scheduler(
            stores,
            lambda inbound: self.router.submit(inbound),
            lambda agent_key, reason: self.maintenance.consolidate(agent_key, reason),
            settings,
            clock,
        )
        self.runner = AgentRunner(
            stores,
            llm,
            tools,
            settings,
            clock,
            self.retriever,
            self.indexer.notify,
            lambda agent_key, reason: self.maintenance.memory_pressure(agent_key, reason),
            self.scheduler,
        )
        self.router = Router(
            stores,
            self.runner,
            lambda inbound: self.commands.run(inbound),
            self.deliver,
            settings.runtime.max_concurrent_turns,
            # a worker's replies to platforms it does not serve stay stored for a gateway
            delivers=lambda source: source in self._adapters,
        )
        self.maintenance = Maintenance(
            stores, self.runner, self.router, self.consolidator, self.scheduler, settings, clock
        )
        self.commands = Commands(
            stores,
            settings.platforms(),
            self.runner.teams,
            self.router.wipe,
            clock,
            self.scheduler,
            self.consolidator,
            settings.agent.timezone,
        )
        self._adapters: dict[str, Adapter] = {}
        self._retrying: set[asyncio.Task[None]] = set()
        self._warming: asyncio.Task[None] | None = None
        self._shared: tuple[LeasedLocks, ClaimLoop, Leadership | None] | None = None
        """Set when this process is one of several on the database (start_shared)."""

    @classmethod
    async def open(
        cls,
        settings: Settings,
        *,
        llm: LLMClient | None = None,
        stores: Stores | None = None,
        embedder: Embedder | None = None,
        tools: Iterable[Tool] = (),
        clock: Clock = utc_now,
    ) -> App:
        """Open the stores (migrating them), the LLM client and the embedder of the settings."""
        llm = llm or build_llm(settings)
        embedder = embedder or build_embedder(settings)
        stores = stores or await open_stores(settings, clock, embedder.name)
        toolset = Toolset([*BUILTIN_TOOLS, *ARCHIVAL_TOOLS, *CHECKIN_TOOLS, *tools])
        return cls(settings, stores, llm, embedder, toolset, clock)

    async def handle(self, inbound: InboundMessage) -> TurnTask | None:
        """The InboundHandler given to adapters."""
        return await self.router.submit(inbound)

    async def deliver(self, message: OutboundMessage) -> None:
        adapter = self._adapters.get(message.source)
        if adapter is None:
            raise LookupError(f"no running adapter for {message.source!r} messages")
        await adapter.send(message)

    async def start(self, adapters: Sequence[Adapter]) -> None:
        """Replay what a previous run left unfinished, then start the adapters.

        An adapter that fails to connect is retried in the background with backoff; the
        others run meanwhile.
        """
        self._warming = asyncio.create_task(self.llm.warm())  # off the first user's turn
        self.indexer.start()
        for adapter in adapters:
            self._adapters[adapter.name] = adapter
        await self.router.replay(set(self._adapters))  # before new events, to keep their order
        await self._start_adapters(adapters)
        await self.scheduler.start(self.maintenance.summarize_idle)  # may send check-ins now

    async def start_shared(self, adapters: Sequence[Adapter], *, turns: bool) -> None:
        """Start as one of several processes on one database (see workers.py).

        The adapters store what they receive. Agents with work this process can do are
        claimed from the shared inbox: pending turns when `turns` is set, and replies and
        commands for the adapters' platforms. A process running turns also stands for
        leader: the scheduler and the indexer run in the leader only.
        """
        workers = self.settings.workers
        holder = new_holder()
        locks = LeasedLocks(
            self.stores.leases, holder, workers.lease_seconds, workers.poll_interval
        )
        claims = ClaimLoop(
            self.router,
            self.stores.inbox,
            turns=turns,
            sources=lambda: set(self._adapters),
            capacity=self.settings.runtime.max_concurrent_turns,
            poll=workers.poll_interval,
            wake=self.router.distribute(locks),
        )
        leadership = None
        if turns:
            self._warming = asyncio.create_task(self.llm.warm())
            leadership = Leadership(
                self.stores.leases,
                holder,
                workers.lease_seconds,
                elected=self._lead,
                deposed=self._step_down,
                tick=self._lead_tick,
            )
        self._shared = (locks, claims, leadership)
        for adapter in adapters:
            self._adapters[adapter.name] = adapter
        locks.start()
        claims.start()
        if leadership is not None:
            leadership.start()
        await self._start_adapters(adapters)
        log.info("sharing the database as %s (%s)", holder, "turns" if turns else "gateway")

    async def _lead(self) -> None:
        self.indexer.start()
        await self.scheduler.start(self.maintenance.summarize_idle)

    async def _step_down(self) -> None:
        await self.scheduler.stop()
        await self.indexer.stop()

    async def _lead_tick(self) -> None:
        """Jobs other processes added, and messages they stored, are found here."""
        await self.scheduler.run_due()
        self.indexer.notify()

    async def _start_adapters(self, adapters: Sequence[Adapter]) -> None:
        for adapter in adapters:
            if not await self._start_adapter(adapter):
                self._retrying.add(asyncio.create_task(self._keep_starting(adapter)))

    async def _start_adapter(self, adapter: Adapter) -> bool:
        """Try once; False when it is worth trying again later."""
        try:
            await adapter.start(self.handle)
        except ConfigError as exc:  # a refused token or intent: retrying will not help
            log.error("%s: not started: %s", adapter.name, exc)
            return True
        except Exception as exc:  # boundary: one platform down must not stop the others
            log.error("%s: could not start: %s: %s", adapter.name, type(exc).__name__, exc)
            return False
        log.info("%s: started", adapter.name)
        return True

    async def _keep_starting(self, adapter: Adapter) -> None:
        delay = RETRY_FIRST_DELAY
        while True:
            log.info("%s: retrying in %.0f s", adapter.name, delay)
            await asyncio.sleep(delay)
            if await self._start_adapter(adapter):
                return
            delay = min(delay * 2, RETRY_MAX_DELAY)

    async def serve(self, adapters: Sequence[Adapter]) -> None:
        """Start the adapters and run until every one of them is done."""
        await self.start(adapters)
        try:
            await asyncio.gather(*(a.wait_closed() for a in adapters))
            await self.router.drain()
        finally:
            await self.stop()

    async def shutdown(self, grace: float) -> None:
        """Let running turns finish for `grace` seconds, then stop; unfinished turns replay."""
        if self._shared is not None:
            left = await self._shared[1].stop(grace)
            if left:
                log.warning("stopping with %d agent(s) unfinished: they are taken over", left)
        if not await self.router.drain(timeout=grace):
            left = self.router.cancel()
            log.warning("stopping with %d turn(s) unfinished: they run again at next start", left)
        await self.stop()

    async def stop(self) -> None:
        await self._stop_shared()
        await self.scheduler.stop()
        for task in self._retrying:
            task.cancel()
        for adapter in self._adapters.values():
            try:
                await adapter.stop()
            except Exception:  # boundary: stopping one platform must not skip the others
                log.exception("%s: stopping failed", adapter.name)
        self._adapters.clear()
        await self.indexer.stop()

    async def _stop_shared(self) -> None:
        if self._shared is None:
            return
        locks, claims, leadership = self._shared
        await claims.stop()
        if leadership is not None:
            await leadership.stop()
        await locks.stop()
        self._shared = None

    async def aclose(self) -> None:
        await self._stop_shared()
        await self.scheduler.stop()
        if self._warming is not None:
            (failed,) = await asyncio.gather(self._warming, return_exceptions=True)
            if failed is not None:
                log.warning("warming up the LLM client failed: %r", failed)
        await self.router.drain()
        await self.indexer.stop()
        await self.llm.aclose()
        await self.stores.aclose()

    async def __aenter__(self) -> App:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


async def open_stores(
    settings: Settings, clock: Clock = utc_now, model: str | None = None
) -> Stores:
    """The SQL stores of the settings, with Chroma (embedded or a server) for vectors.

    `model` names the embedder: an index built with another model is refused, not mixed.
    """
    from botmem.stores.chroma import ChromaVectorIndex
    from botmem.stores.sql import open_sql_stores
    from botmem.stores.vector_cache import CachedVectorIndex

    storage = settings.storage
    if not storage.database_url:
        Path(storage.data_dir).expanduser().mkdir(parents=True, exist_ok=True)
    vectors: VectorIndex
    if storage.chroma_url:
        vectors = ChromaVectorIndex.http(
            storage.chroma_url, shards=storage.chroma_shards, model=model
        )
    else:
        vectors = ChromaVectorIndex.persistent(
            storage.chroma_path(), shards=storage.chroma_shards, model=model
        )
    if storage.vector_cache:
        vectors = CachedVectorIndex(vectors, storage.vector_cache)
    return await open_sql_stores(
        storage.resolved_database_url(), clock, vectors=vectors, pool_size=storage.pool_size
    )


def build_embedder(settings: Settings) -> Embedder:
    """The configured embedder: the offline local model, or any model through litellm."""
    config = settings.embeddings
    if config.provider == "local":
        from botmem.embeddings.local import MiniLMEmbedder

        return MiniLMEmbedder()
    from botmem.llm.litellm_client import LiteLLMEmbedder

    api_key = None
    if config.api_key_env:
        api_key = os.environ.get(config.api_key_env) or None
        if api_key is None:
            raise ConfigError(
                f"set the environment variable {config.api_key_env}",
                key="embeddings.api_key_env",
                source=settings.source,
            )
    return LiteLLMEmbedder(
        config.model,
        api_base=config.api_base or None,
        api_key=api_key,
        dimensions=config.dimensions,
    )


def build_llm(settings: Settings) -> LLMClient:
    """The configured model through litellm (imported only now, not at start)."""
    api_key = require_llm(settings)
    from botmem.llm.litellm_client import LiteLLMClient

    llm = settings.llm
    if api_key is None and llm.api_base:
        # OpenAI-compatible servers usually ignore the key, but litellm's client insists on one.
        api_key = NO_KEY
    return LiteLLMClient(
        llm.model,
        api_base=llm.api_base or None,
        api_key=api_key,
        context_window=llm.context_window or None,
        fallbacks=llm.fallbacks,
        timeout=llm.timeout,
        max_retries=llm.max_retries,
        retry_backoff=llm.retry_backoff,
        breaker_cooldown=llm.breaker_cooldown,
        temperature=llm.temperature,
        direct_http=llm.direct_http,
    )
