"""Telegram adapter (python-telegram-bot v22): long polling, or a webhook with a secret token.

An update is confirmed to Telegram only once botmem stored it: long polling is botmem's own
(adapters/telegram_poll.py; PTB's Updater confirms updates before they are handled), and the
webhook answers 200 only after the inbox write (PTB's webhook server puts each update into a
queue whose `put` stores it; a failure answers 500 and Telegram sends the update again).
PTB's Application only provides the bot and the webhook server: it is initialized and shut
down by hand, never started. Updates are handled concurrently: botmem serializes the turns of
one agent itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from dataclasses import replace
from typing import Any
from urllib.parse import urlparse

from telegram import BotCommand, Update
from telegram.error import TelegramError
from telegram.ext import Application, ApplicationBuilder

from adapters.telegram_poll import Accept, Poller
from adapters.telegram_send import TelegramSender
from adapters.telegram_translate import BotIdentity, to_inbound
from botmem.adapter import Capabilities, InboundHandler, keep_typing
from botmem.events import InboundMessage, OutboundMessage
from botmem.platform_config import TelegramSettings
from botmem.routing import addressed

log = logging.getLogger(__name__)

COMMANDS = (
    BotCommand("memory", "What I remember about you: show, export, wipe, help"),
    BotCommand("help", "How to use the memory commands"),
)
ALLOWED_UPDATES = ("message",)
"""All botmem reads: Telegram then leaves out edits, reactions, member changes and the like."""
ADMIN_STATUSES = ("creator", "administrator")
ADMIN_CACHE_SECONDS = 300.0
TelegramApp = Application[Any, Any, Any, Any, Any, Any]


class TelegramAdapter:
    name = "telegram"
    capabilities = Capabilities(max_message_chars=4096, threads=False, typing=True)

    def __init__(self, settings: TelegramSettings, token: str, *, webhook_secret: str = ""):
        self._settings = settings
        self._webhook_secret = webhook_secret
        self._queue = StoringQueue()
        self._app = build_application(settings, token, self._queue)
        self._queue.accept = self._accept
        self._poller = Poller(
            self._app.bot,
            self._accept,
            timeout=settings.poll_timeout,
            allowed_updates=ALLOWED_UPDATES,
        )
        self._sender = TelegramSender(self._app.bot, self.capabilities.max_message_chars)
        self._handle: InboundHandler | None = None
        self._me = BotIdentity(0, "")
        self._admins: dict[tuple[str, str], tuple[asyncio.Future[bool], float]] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._closed = asyncio.Event()

    async def start(self, handle: InboundHandler) -> None:
        self._handle = handle
        self._closed.clear()
        await self._app.initialize()  # getMe: who we are
        try:
            self._me = BotIdentity(self._app.bot.id, self._app.bot.username)
            self._sender.bot_username = self._me.username
            await self._register_commands()
            await self._start_receiving()
        except BaseException:
            await self.stop()
            raise
        log.info("Telegram bot @%s started (%s)", self._me.username, self._settings.mode)

    async def stop(self) -> None:
        updater = self._app.updater
        try:
            await self._poller.stop()
            if updater is not None and updater.running:
                await updater.stop()
            await self._app.shutdown()
        finally:
            for task in list(self._background):
                task.cancel()
            self._closed.set()

    async def wait_closed(self) -> None:
        await self._closed.wait()

    async def send(self, message: OutboundMessage) -> None:
        await self._sender.send(message)

    async def _start_receiving(self) -> None:
        settings = self._settings
        if settings.mode == "webhook":
            updater = self._app.updater
            assert updater is not None  # built with one
            if not self._webhook_secret:
                log.warning("Telegram webhook without a secret token: anyone may post updates")
            await updater.start_webhook(
                listen=settings.webhook_listen,
                port=settings.webhook_port,
                url_path=webhook_path(settings.webhook_url),
                webhook_url=settings.webhook_url,
                secret_token=self._webhook_secret or None,
                allowed_updates=ALLOWED_UPDATES,
                drop_pending_updates=False,
            )
            return
        await self._poller.start()

    async def _register_commands(self) -> None:
        """The command menu in Telegram's clients; cosmetic, so a failure only costs that."""
        try:
            await self._app.bot.set_my_commands(COMMANDS)
        except TelegramError as exc:
            log.warning("could not register the Telegram command list: %s", exc)

    async def _accept(self, update: Update) -> None:
        """Hand one update to botmem; returns once it is stored (or needs no storing).

        Raises when storing failed, so that the update is not confirmed to Telegram and
        comes again. An update botmem cannot read is logged and skipped: asking for it
        again would not help.
        """
        try:
            inbound = to_inbound(update, self._me, self._settings.scope)
            if inbound is None or not addressed(inbound):
                return
            inbound = await self._with_platform_admin(inbound)
        except Exception:  # boundary: an SDK callback; one bad update must not stop the bot
            log.exception("Telegram update %s could not be read", update.update_id)
            return
        assert self._handle is not None  # set before updates are received
        try:
            task = await self._handle(inbound)
        except Exception:  # boundary: logged here, raised for the caller not to confirm
            log.exception("Telegram update %s could not be stored", update.update_id)
            raise
        if task is not None and inbound.kind == "user":  # commands answer at once
            chat_id, thread_id = inbound.channel_id, inbound.thread_id
            self._spawn(keep_typing(task, lambda: self._sender.typing(chat_id, thread_id)))

    async def _with_platform_admin(self, inbound: InboundMessage) -> InboundMessage:
        """Mark a group command from a chat administrator (when configured to trust them)."""
        if not self._settings.platform_admins or inbound.is_direct or inbound.kind != "command":
            return inbound
        admin = await self._is_chat_admin(inbound.channel_id, inbound.user_id)
        return replace(inbound, extra={**inbound.extra, "platform_admin": admin})

    async def _is_chat_admin(self, chat_id: str, user_id: str) -> bool:
        """Asked once per person and chat every few minutes (a burst of commands shares it)."""
        key = (chat_id, user_id)
        now = time.monotonic()
        cached = self._admins.get(key)
        if cached is None or now - cached[1] >= ADMIN_CACHE_SECONDS:
            self._admins = {
                k: v for k, v in self._admins.items() if now - v[1] < ADMIN_CACHE_SECONDS
            }
            cached = (asyncio.ensure_future(self._ask_chat_admin(key)), now)
            self._admins[key] = cached
        return await asyncio.shield(cached[0])

    async def _ask_chat_admin(self, key: tuple[str, str]) -> bool:
        chat_id, user_id = key
        try:
            member = await self._app.bot.get_chat_member(int(chat_id), int(user_id))
        except TelegramError as exc:
            log.warning("getChatMember %s/%s failed: %s", chat_id, user_id, exc)
            self._admins.pop(key, None)  # ask again next time
            return False
        return member.status in ADMIN_STATUSES

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


class StoringQueue(asyncio.Queue[object]):
    """The update queue of PTB's webhook server: `put` returns once the update is stored.

    So the webhook answers 200 only after the inbox write; when `accept` raises, the server
    answers 500 and Telegram retries. Anything else (PTB's stop signal) is queued as usual.
    """

    def __init__(self) -> None:
        super().__init__()
        self.accept: Accept | None = None

    async def put(self, item: object) -> None:
        if isinstance(item, Update) and self.accept is not None:
            await self.accept(item)
            return
        await super().put(item)


def build_application(
    settings: TelegramSettings, token: str, update_queue: asyncio.Queue[object]
) -> TelegramApp:
    builder = ApplicationBuilder().token(token).base_url(settings.base_url)
    file_url = file_url_for(settings.base_url)
    if file_url:
        builder = builder.base_file_url(file_url)
    return builder.update_queue(update_queue).build()


def file_url_for(base_url: str) -> str:
    """The file download URL of a Bot API server: ``.../bot`` -> ``.../file/bot``."""
    head, sep, tail = base_url.rpartition("/bot")
    return f"{head}/file/bot{tail}" if sep else ""


def webhook_path(webhook_url: str) -> str:
    """The path Telegram posts to, served as is (a proxy forwards the public URL here)."""
    return urlparse(webhook_url).path.lstrip("/")
