"""Sending botmem replies through the Telegram Bot API: split, threaded, retried on flood waits."""

from __future__ import annotations

import asyncio
import logging
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import timedelta
from functools import partial
from typing import TypeVar

from telegram import Bot, InputFile, ReplyParameters
from telegram.constants import ChatAction
from telegram.error import BadRequest, Forbidden, RetryAfter
from telegram.warnings import PTBDeprecationWarning

from botmem.chunking import split_text
from botmem.events import Attachment, OutboundMessage

log = logging.getLogger(__name__)

T = TypeVar("T")
MAX_ATTEMPTS = 3
"""Tries per API call when Telegram answers 429 (flood control) with a time to wait."""
CAPTION_LIMIT = 1024
SENT_PRIVATELY = "I sent you the answer in a private chat."


class TelegramSender:
    def __init__(self, bot: Bot, max_chars: int):
        self._bot = bot
        self._max_chars = max_chars
        self.bot_username = ""
        """Known once the bot is initialized (getMe); named in the "start a chat" hint."""

    async def send(self, message: OutboundMessage) -> None:
        chat_id = message.channel_id or message.user_id
        if not chat_id:
            raise ValueError(f"a Telegram message for {message.agent_key} names no chat")
        if message.private and message.user_id and chat_id != message.user_id:
            await self._send_privately(message)
            return
        await self._deliver(chat_id, message)

    async def typing(self, chat_id: str, thread_id: str = "") -> None:
        await self._bot.send_chat_action(
            int(chat_id), ChatAction.TYPING, message_thread_id=_thread(thread_id)
        )

    async def _send_privately(self, message: OutboundMessage) -> None:
        """Deliver to the person's DM and say so where they asked."""
        direct = OutboundMessage(
            message.source,
            message.agent_key,
            message.text,
            user_id=message.user_id,
            attachment=message.attachment,
        )
        try:
            await self._deliver(message.user_id, direct)
            note = SENT_PRIVATELY
        except (Forbidden, BadRequest) as exc:
            if isinstance(exc, BadRequest) and "chat not found" not in exc.message.lower():
                raise
            log.info("cannot message Telegram user %s privately: %s", message.user_id, exc)
            note = (
                f"I can't message you privately yet: open a private chat with "
                f"@{self.bot_username}, press Start, then send the command again."
            )
        await self._deliver(message.channel_id, replace(message, text=note, attachment=None))

    async def _deliver(self, chat_id: str, message: OutboundMessage) -> None:
        text = message.text.strip()
        reply = _reply_parameters(chat_id, message.reply_to)
        thread = _thread(message.thread_id)
        caption = ""
        if message.attachment is not None and len(text) <= CAPTION_LIMIT:
            caption, text = text, ""
        for piece in split_text(text, self._max_chars) if text else []:
            send = partial(self._bot.send_message, message_thread_id=thread, reply_parameters=reply)
            await _retrying(partial(send, int(chat_id), piece))
            reply = None  # the first piece answers; the rest follow it
        if message.attachment is not None:
            await self._send_file(chat_id, message.attachment, caption, thread, reply)

    async def _send_file(
        self,
        chat_id: str,
        attachment: Attachment,
        caption: str,
        thread: int | None,
        reply: ReplyParameters | None,
    ) -> None:
        document = InputFile(attachment.data, filename=attachment.filename)
        send = partial(
            self._bot.send_document,
            int(chat_id),
            document,
            caption=caption or None,
            message_thread_id=thread,
            reply_parameters=reply,
        )
        await _retrying(send)


def _reply_parameters(chat_id: str, reply_to: str) -> ReplyParameters | None:
    """Answer the message `reply_to` ("chat:message") when it is in this chat and still there."""
    chat, _, message_id = reply_to.rpartition(":")
    if chat != chat_id or not message_id.isdigit():
        return None
    return ReplyParameters(int(message_id), allow_sending_without_reply=True)


def _thread(thread_id: str) -> int | None:
    return int(thread_id) if thread_id else None


async def _retrying(call: Callable[[], Awaitable[T]]) -> T:
    """Make the call, waiting out Telegram's flood control (a 429 with retry_after)."""
    attempt = 1
    while True:
        try:
            return await call()
        except RetryAfter as exc:
            if attempt >= MAX_ATTEMPTS:
                raise
            delay = retry_seconds(exc)
            log.warning("Telegram flood control: waiting %.1f s (attempt %d)", delay, attempt)
            await asyncio.sleep(delay)
            attempt += 1


def retry_seconds(exc: RetryAfter) -> float:
    with warnings.catch_warnings():  # int or timedelta, by PTB_TIMEDELTA; either is fine here
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)
