"""Telegram long polling that confirms an update only after botmem stored it.

Telegram forgets every update below the `offset` of the next getUpdates call. PTB's Updater
moves the offset as soon as a batch is queued, before any handler ran, so a crash right then
loses the batch. Here the offset moves past an update only once `accept` returned for it and
for every update before it; an update that could not be stored is asked for again (the
updates after it as well: the inbox drops those it already has). While the database is down
that goes on for as long as it takes; an update that fails for any other reason (a bug met by
odd input) is skipped after `POISON_ATTEMPTS` tries, logged, so it cannot stall every
update behind it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Sequence
from contextlib import suppress
from typing import Any, TypeVar

from telegram import Bot, Update
from telegram.error import InvalidToken, RetryAfter, TelegramError, TimedOut

from adapters.telegram_send import retry_seconds
from botmem.stores.base import is_transient

log = logging.getLogger(__name__)

Accept = Callable[[Update], Coroutine[Any, Any, None]]
"""Returns once the update is stored (or needs no storing); raises when storing failed."""
MAX_BACKOFF = 30.0
POISON_ATTEMPTS = 5
"""Tries before an update that fails other than by a store outage is skipped."""
T = TypeVar("T")


class Poller:
    def __init__(
        self, bot: Bot, accept: Accept, *, timeout: int, allowed_updates: Sequence[str]
    ) -> None:
        self._bot = bot
        self._accept = accept
        self._timeout = timeout
        self._allowed_updates = allowed_updates
        self._offset: int | None = None
        """The next getUpdates offset: one past the last update stored."""
        self._confirmed: int | None = None
        """The offset Telegram was last sent."""
        self._failures: dict[int, int] = {}
        """Failed tries per update id, for failures other than a store outage."""
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """No webhook may be set while polling; pending updates are kept."""
        await self._bot.delete_webhook(drop_pending_updates=False)
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name="telegram-polling")

    async def stop(self) -> None:
        """Stop polling once the batch in hand is stored, then confirm it to Telegram."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping.set()
        try:
            await task
        finally:
            await self._confirm()

    async def _run(self) -> None:
        backoff = 0.0
        while not self._stopping.is_set():
            try:
                updates = await self._unless_stopped(self._poll(self._timeout))
            except TimedOut:
                continue  # a long poll the network gave up on: ask again at once
            except RetryAfter as exc:
                delay = retry_seconds(exc) + 0.5
                log.warning("Telegram flood control on polling: waiting %.1f s", delay)
                await self._pause(delay)
                continue
            except InvalidToken:
                log.error("Telegram refused the bot token: polling stopped")
                return
            except TelegramError as exc:
                backoff = _longer(backoff)
                log.warning("Telegram polling failed, retrying in %.1f s: %s", backoff, exc)
                await self._pause(backoff)
                continue
            except Exception:  # boundary: what Telegram sent could not be read; ask again
                backoff = _longer(backoff)
                log.exception("Telegram updates could not be read, retrying in %.1f s", backoff)
                await self._pause(backoff)
                continue
            if updates is None:
                return  # stopped while waiting
            if await self._store(updates):
                backoff = 0.0
            else:
                backoff = _longer(backoff)
                await self._pause(backoff)

    async def _poll(self, timeout: int) -> tuple[Update, ...]:
        updates = await self._bot.get_updates(
            offset=self._offset, timeout=timeout, allowed_updates=self._allowed_updates
        )
        self._confirmed = self._offset
        return updates

    async def _store(self, updates: Sequence[Update]) -> bool:
        """Hand the updates on, chats concurrently and each chat's in order (so two quick
        messages of one person are stored, and answered, in the order sent); advance the
        offset over those stored in order."""
        results: list[BaseException | None] = [None] * len(updates)
        by_chat: dict[int | None, list[int]] = {}
        for index, update in enumerate(updates):
            chat = update.effective_chat
            by_chat.setdefault(chat.id if chat else None, []).append(index)

        async def one_chat(indexes: list[int]) -> None:
            for index in indexes:
                try:
                    await self._accept(updates[index])
                except Exception as exc:  # judged below, update by update
                    results[index] = exc

        await asyncio.gather(*(one_chat(indexes) for indexes in by_chat.values()))
        for update, result in zip(updates, results, strict=True):
            if isinstance(result, BaseException) and not self._give_up(update, result):
                log.error(
                    "Telegram update %s not stored (%r): asking for it again",
                    update.update_id,
                    result,
                )
                return False
            self._failures.pop(update.update_id, None)
            self._offset = update.update_id + 1
        return True

    def _give_up(self, update: Update, error: BaseException) -> bool:
        """Whether a failed update is poison: failing, not for an outage, POISON_ATTEMPTS times."""
        if is_transient(error):
            return False
        tries = self._failures[update.update_id] = self._failures.get(update.update_id, 0) + 1
        if tries < POISON_ATTEMPTS:
            return False
        log.error(
            "Telegram update %s failed %d times (%r): skipped, it is not answered",
            update.update_id,
            tries,
            error,
        )
        return True

    async def _confirm(self) -> None:
        """Tell Telegram about the updates stored since the last poll (as the Updater does)."""
        if self._offset is None or self._offset == self._confirmed:
            return
        try:
            await self._bot.get_updates(
                offset=self._offset, timeout=0, limit=1, allowed_updates=self._allowed_updates
            )
        except TelegramError as exc:  # they come again at the next start; the inbox drops them
            log.warning("could not confirm the last Telegram updates: %s", exc)
        else:
            self._confirmed = self._offset

    async def _unless_stopped(self, work: Coroutine[Any, Any, T]) -> T | None:
        """The result of `work`, or None (work cancelled) when a stop comes first."""
        task = asyncio.ensure_future(work)
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            if not task.done():
                task.cancel()
        if task.cancelled():
            return None
        return task.result()

    async def _pause(self, seconds: float) -> None:
        """Sleep, but wake up for a stop."""
        with suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)


def _longer(backoff: float) -> float:
    """The next wait after a failure: 1 s, then half as long again each time, up to 30 s."""
    return min(MAX_BACKOFF, backoff * 1.5 or 1.0)
