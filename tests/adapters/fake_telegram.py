"""A fake Telegram Bot API server on 127.0.0.1 for the real python-telegram-bot client.

Every call is `POST /bot<token>/<method>` with form fields (JSON-encoded except plain strings)
or multipart (files). The fake records each call, long-polls `getUpdates` honouring `offset`,
and can be told to answer 429 (flood control) or 403 (a user who never started the bot).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

BOT_ID = 999
BOT_USERNAME = "botmem_bot"
BOT_USER = {"id": BOT_ID, "is_bot": True, "first_name": "Botmem", "username": BOT_USERNAME}
GROUP_ID = -100500
TEXT_FIELDS = {"text", "caption", "action", "url", "secret_token", "parse_mode", "description"}
"""Fields PTB sends as raw strings (everything else is JSON-encoded)."""


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    """Multipart file fields: name -> (filename, bytes)."""

    @property
    def chat_id(self) -> int:
        return int(self.params["chat_id"])


class FakeTelegram:
    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.failures: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        self.blocked_users: set[int] = set()
        """Users who never started the bot: messages to their DM get 403."""
        self.chat_admins: set[tuple[int, int]] = set()
        self.url = ""
        self._updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(5000)
        self._changed = asyncio.Condition()
        self._closing = False

    # --- test controls --------------------------------------------------------------------

    async def push_update(self, update: dict[str, Any]) -> int:
        """Queue an update for getUpdates (an update_id is given when missing)."""
        update = {"update_id": next(self._update_ids), **update}
        async with self._changed:
            self._updates.append(update)
            self._changed.notify_all()
        return int(update["update_id"])

    def fail_next(self, method: str, status: int = 429, retry_after: int = 1) -> None:
        """The next call of `method` gets an error (429: flood control with retry_after)."""
        body: dict[str, Any] = {"ok": False, "error_code": status}
        if status == 429:
            body["description"] = f"Too Many Requests: retry after {retry_after}"
            body["parameters"] = {"retry_after": retry_after}
        else:
            body["description"] = "Internal Server Error"
        self.failures.setdefault(method, []).append((status, body))

    def of(self, method: str, chat_id: int | None = None) -> list[Call]:
        return [
            c
            for c in self.calls
            if c.method == method and (chat_id is None or c.chat_id == chat_id)
        ]

    def texts(self, chat_id: int | None = None) -> list[str]:
        return [str(c.params["text"]) for c in self.of("sendMessage", chat_id)]

    async def wait_for(
        self, method: str, count: int = 1, chat_id: int | None = None, timeout: float = 5
    ) -> list[Call]:
        """The calls of `method` (to `chat_id`) once there are at least `count` of them."""
        await self.wait_until(lambda: len(self.of(method, chat_id)) >= count, timeout)
        return self.of(method, chat_id)

    async def wait_until(self, done: Callable[[], bool], timeout: float = 5) -> None:
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(done), timeout)

    # --- the server -----------------------------------------------------------------------

    @asynccontextmanager
    async def running(self) -> AsyncIterator[FakeTelegram]:
        app = web.Application()
        app.router.add_post("/bot{token}/{method}", self._dispatch)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        try:
            yield self
        finally:
            async with self._changed:
                self._closing = True  # long polls return now, not at their timeout
                self._changed.notify_all()
            await runner.cleanup()

    @property
    def base_url(self) -> str:
        return f"{self.url}/bot"

    async def _dispatch(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        call = await _read_call(method, request)
        async with self._changed:
            self.calls.append(call)
            self._changed.notify_all()
        failures = self.failures.get(method)
        if failures:
            status, body = failures.pop(0)
            return web.json_response(body, status=status)
        if method == "getUpdates":
            return _ok(await self._get_updates(call.params))
        if method in ("sendMessage", "sendDocument") and call.chat_id in self.blocked_users:
            description = "Forbidden: bot can't initiate conversation with a user"
            return web.json_response(
                {"ok": False, "error_code": 403, "description": description}, status=403
            )
        handler = getattr(self, f"_{method}", None)
        if handler is None:
            return web.json_response(
                {"ok": False, "error_code": 404, "description": "Not Found"}, status=404
            )
        return _ok(handler(call))

    async def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        offset = int(params.get("offset") or 0)
        timeout = float(params.get("timeout") or 0)
        async with self._changed:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
            if timeout and not self._updates and not self._closing:
                with suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._changed.wait_for(lambda: bool(self._updates) or self._closing),
                        timeout,
                    )
            return list(self._updates)

    def _getMe(self, call: Call) -> dict[str, Any]:
        return {**BOT_USER, "can_join_groups": True, "can_read_all_group_messages": False}

    def _deleteWebhook(self, call: Call) -> bool:
        return True

    def _setWebhook(self, call: Call) -> bool:
        return True

    def _setMyCommands(self, call: Call) -> bool:
        return True

    def _sendChatAction(self, call: Call) -> bool:
        return True

    def _sendMessage(self, call: Call) -> dict[str, Any]:
        return self._message(call.chat_id, text=call.params["text"])

    def _sendDocument(self, call: Call) -> dict[str, Any]:
        filename = next(iter(call.files.values()))[0] if call.files else "file"
        document = {"file_id": "F1", "file_unique_id": "U1", "file_name": filename}
        content: dict[str, Any] = {"document": document}
        if "caption" in call.params:
            content["caption"] = call.params["caption"]
        return self._message(call.chat_id, **content)

    def _getChatMember(self, call: Call) -> dict[str, Any]:
        chat_id, user_id = call.chat_id, int(call.params["user_id"])
        user = {"id": user_id, "is_bot": False, "first_name": f"User {user_id}"}
        if (chat_id, user_id) not in self.chat_admins:
            return {"status": "member", "user": user}
        rights = (
            "can_be_edited is_anonymous can_manage_chat can_delete_messages "
            "can_manage_video_chats can_restrict_members can_promote_members can_change_info "
            "can_invite_users can_post_stories can_edit_stories can_delete_stories"
        )
        return {"status": "administrator", "user": user, **dict.fromkeys(rights.split(), False)}

    def _message(self, chat_id: int, **content: Any) -> dict[str, Any]:
        return {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": chat(chat_id),
            "from": BOT_USER,
            **content,
        }


async def _read_call(method: str, request: web.Request) -> Call:
    form = await request.post()
    params: dict[str, Any] = {}
    files: dict[str, tuple[str, bytes]] = {}
    for name, value in form.items():
        if isinstance(value, web.FileField):
            files[name] = (value.filename, value.file.read())
        elif name in TEXT_FIELDS:
            params[name] = value
        else:
            params[name] = _decode(str(value))
    return Call(method, params, files)


def _decode(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value


def _ok(result: Any) -> web.Response:
    return web.json_response({"ok": True, "result": result})


# --- update builders (what Telegram sends) -------------------------------------------------


def chat(chat_id: int) -> dict[str, Any]:
    if chat_id > 0:
        return {"id": chat_id, "type": "private", "first_name": f"User {chat_id}"}
    return {"id": chat_id, "type": "supergroup", "title": "Team chat"}


def user(user_id: int, first_name: str = "", last_name: str = "") -> dict[str, Any]:
    data: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": first_name or "User"}
    if last_name:
        data["last_name"] = last_name
    return data


_sent_ids = itertools.count(1)


def message_update(
    chat_id: int,
    sender: dict[str, Any],
    text: str,
    *,
    message_id: int | None = None,
    reply_to: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An update with a text message; @mentions and a leading /command get their entities."""
    message: dict[str, Any] = {
        "message_id": message_id or next(_sent_ids),
        "from": sender,
        "chat": chat(chat_id),
        "date": int(time.time()),
        "text": text,
    }
    entities = _entities(text)
    if entities:
        message["entities"] = entities
    if reply_to is not None:
        message["reply_to_message"] = reply_to
    return {"message": message}


def _entities(text: str) -> list[dict[str, Any]]:
    """Entities as Telegram marks them (offsets in UTF-16 units; tests use BMP text)."""
    found: list[dict[str, Any]] = []
    for index, word in _words(text):
        if word.startswith("@") and len(word) > 1:
            found.append({"type": "mention", "offset": index, "length": len(word)})
        elif word.startswith("/") and index == 0:
            found.append({"type": "bot_command", "offset": 0, "length": len(word)})
    return found


def _words(text: str) -> list[tuple[int, str]]:
    words: list[tuple[int, str]] = []
    position = 0
    for word in text.split(" "):
        stripped = word.rstrip(",.!?:;")
        if stripped:
            words.append((position, stripped))
        position += len(word) + 1
    return words
