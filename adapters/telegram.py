"""Telegram adapter (python-telegram-bot v22): long polling, or a webhook with a secret token.

PTB's Application is driven by hand (initialize, updater, start; the reverse to stop) rather
than by `run_polling`, which would own the event loop and the signals. Updates are processed
concurrently: botmem serializes the turns of one agent itself.
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
from telegram.ext import Application, ApplicationBuilder, ContextTypes, TypeHandler

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
        self._app = build_application(settings, token)
        self._app.add_handler(TypeHandler(Update, self._on_update))
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
            await self._start_updater()
            await self._app.start()
        except BaseException:
            await self.stop()
            raise
        log.info("Telegram bot @%s started (%s)", self._me.username, self._settings.mode)

    async def stop(self) -> None:
        updater = self._app.updater
        try:
            if updater is not None and updater.running:
                await updater.stop()
            if self._app.running:
                await self._app.stop()
            await self._app.shutdown()
        finally:
            for task in list(self._background):
                task.cancel()
            self._closed.set()

    async def wait_closed(self) -> None:
        await self._closed.wait()

    async def send(self, message: OutboundMessage) -> None:
        await self._sender.send(message)

    async def _start_updater(self) -> None:
        updater = self._app.updater
        assert updater is not None  # built with one
        settings = self._settings
        if settings.mode == "webhook":
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
        await updater.start_polling(
            timeout=settings.poll_timeout,
            allowed_updates=ALLOWED_UPDATES,
            drop_pending_updates=False,
            error_callback=_log_polling_error,
        )

    async def _register_commands(self) -> None:
        """The command menu in Telegram's clients; cosmetic, so a failure only costs that."""
        try:
            await self._app.bot.set_my_commands(COMMANDS)
        except TelegramError as exc:
            log.warning("could not register the Telegram command list: %s", exc)

    async def _on_update(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        try:
            inbound = to_inbound(update, self._me, self._settings.scope)
            if inbound is None or not addressed(inbound):
                return
            inbound = await self._with_platform_admin(inbound)
            assert self._handle is not None  # set before the updater starts
            task = await self._handle(inbound)
            if task is not None and inbound.kind == "user":  # commands answer at once
                chat_id, thread_id = inbound.channel_id, inbound.thread_id
                self._spawn(keep_typing(task, lambda: self._sender.typing(chat_id, thread_id)))
        except Exception:  # boundary: an SDK callback; one bad update must not stop the bot
            log.exception("Telegram update %s could not be handled", update.update_id)

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


def build_application(settings: TelegramSettings, token: str) -> TelegramApp:
    builder = ApplicationBuilder().token(token).base_url(settings.base_url)
    file_url = file_url_for(settings.base_url)
    if file_url:
        builder = builder.base_file_url(file_url)
    return builder.concurrent_updates(True).build()


def file_url_for(base_url: str) -> str:
    """The file download URL of a Bot API server: ``.../bot`` -> ``.../file/bot``."""
    head, sep, tail = base_url.rpartition("/bot")
    return f"{head}/file/bot{tail}" if sep else ""


def webhook_path(webhook_url: str) -> str:
    """The path Telegram posts to, served as is (a proxy forwards the public URL here)."""
    return urlparse(webhook_url).path.lstrip("/")


def _log_polling_error(exc: TelegramError) -> None:
    """PTB retries the poll with backoff; a network hiccup is worth a line, not a traceback."""
    log.warning("Telegram polling failed, retrying: %s", exc)
