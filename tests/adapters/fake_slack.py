"""A fake Slack on 127.0.0.1 for adapter tests: the far side only, one aiohttp app.

Serves the Web API methods the adapter calls (``POST /api/<method>``, parameters from the query
string, a form or a JSON body), the file upload URL, slash-command response URLs and a Socket
Mode WebSocket (hello, pushed envelopes, the client's acks). Records every call.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import WSMsgType, web

TEAM = "T1"
BOT_USER = "UBOT"
BOT_ID = "BBOT"
Handler = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class Call:
    method: str
    params: dict[str, Any]
    token: str


class FakeSlack:
    def __init__(self) -> None:
        self.users: dict[str, dict[str, Any]] = {}
        self.calls: list[Call] = []
        self.responses: list[dict[str, Any]] = []
        """JSON bodies posted to response URLs."""
        self.messages: list[dict[str, Any]] = []
        """Messages chat.postMessage created, with their ts."""
        self.uploads: dict[str, bytes] = {}
        self.acks: list[dict[str, Any]] = []
        self.refused_posts = 0
        """chat.postMessage calls answered 429."""
        self._rate_limit_posts = 0
        self._sockets: list[web.WebSocketResponse] = []
        self._changed = asyncio.Condition()
        self._ts = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.port = 0
        self._methods: dict[str, Handler] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._post_message,
            "chat.postEphemeral": self._post_ephemeral,
            "conversations.open": self._open_dm,
            "users.info": self._users_info,
            "files.getUploadURLExternal": self._upload_url,
            "files.completeUploadExternal": self._complete_upload,
            "apps.connections.open": self._connections_open,
        }

    # -- control ------------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._api)  # users.info comes as a GET
        app.router.add_post("/upload/{file_id}", self._upload)
        app.router.add_post("/response/{name}", self._response)
        app.router.add_get("/socket", self._socket)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def close(self) -> None:
        for ws in self._sockets:
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    def response_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/response/{name}"

    def add_user(self, user: str, name: str, *, admin: bool = False) -> None:
        self.users[user] = {
            "id": user,
            "team_id": TEAM,
            "name": name.lower().replace(" ", "."),
            "real_name": name,
            "is_admin": admin,
            "is_owner": False,
            "is_bot": False,
            "profile": {"display_name": name, "real_name": name},
        }

    def rate_limit_next_posts(self, count: int = 1) -> None:
        """Answer the next `count` chat.postMessage calls with 429 and Retry-After: 1."""
        self._rate_limit_posts = count

    def called(self, method: str) -> list[dict[str, Any]]:
        return [call.params for call in self.calls if call.method == method]

    @property
    def posts(self) -> list[dict[str, Any]]:
        return self.called("chat.postMessage")

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(predicate), timeout)

    async def push(self, kind: str, payload: dict[str, Any], envelope_id: str) -> None:
        """Send a Socket Mode envelope (``events_api`` or ``slash_commands``)."""
        await self.wait_for(lambda: bool(self._sockets))
        envelope = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": payload,
            "accepts_response_payload": kind == "slash_commands",
            "retry_attempt": 0,
            "retry_reason": "",
        }
        await self._sockets[-1].send_str(json.dumps(envelope))

    async def _changed_now(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # -- Web API ------------------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params = await _params(request)
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if method == "chat.postMessage" and self._rate_limit_posts > 0:
            self._rate_limit_posts -= 1
            self.refused_posts += 1
            await self._changed_now()
            return web.json_response(
                {"ok": False, "error": "ratelimited"}, status=429, headers={"Retry-After": "1"}
            )
        handler = self._methods.get(method)
        answer = handler(params) if handler else {"ok": False, "error": "unknown_method"}
        self.calls.append(Call(method, params, token))
        await self._changed_now()
        return web.json_response(answer)

    def _auth_test(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://test.slack.com/",
            "team": "Test Team",
            "user": "botmem",
            "team_id": TEAM,
            "user_id": BOT_USER,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _post_message(self, params: dict[str, Any]) -> dict[str, Any]:
        ts = f"1700001000.{next(self._ts):06d}"
        message: dict[str, Any] = {"type": "message", "user": BOT_USER, "bot_id": BOT_ID, "ts": ts}
        message.update(text=params.get("text"), thread_ts=params.get("thread_ts"))
        self.messages.append({"channel": params.get("channel"), **message})
        return {"ok": True, "channel": params.get("channel"), "ts": ts, "message": message}

    def _post_ephemeral(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "message_ts": f"1700002000.{next(self._ts):06d}"}

    def _open_dm(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "channel": {"id": f"D{params.get('users')}"}}

    def _users_info(self, params: dict[str, Any]) -> dict[str, Any]:
        user = self.users.get(str(params.get("user")))
        if user is None:
            return {"ok": False, "error": "user_not_found"}
        return {"ok": True, "user": user}

    def _upload_url(self, params: dict[str, Any]) -> dict[str, Any]:
        file_id = f"F{next(self._ts)}"
        upload_url = f"http://127.0.0.1:{self.port}/upload/{file_id}"
        return {"ok": True, "upload_url": upload_url, "file_id": file_id}

    def _complete_upload(self, params: dict[str, Any]) -> dict[str, Any]:
        files = json.loads(params.get("files") or "[]")
        return {"ok": True, "files": [{"id": f["id"], "title": f.get("title")} for f in files]}

    def _connections_open(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "url": f"ws://127.0.0.1:{self.port}/socket"}

    # -- upload, response_url, Socket Mode ----------------------------------------------------

    async def _upload(self, request: web.Request) -> web.Response:
        self.uploads[request.match_info["file_id"]] = await request.read()
        await self._changed_now()
        return web.Response(text="OK")

    async def _response(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.responses.append({"name": request.match_info["name"], **body})
        await self._changed_now()
        return web.Response(text="ok")

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_json({"type": "hello", "num_connections": 1, "connection_info": {}})
        self._sockets.append(ws)
        await self._changed_now()
        async for frame in ws:
            if frame.type == WSMsgType.TEXT:
                data = json.loads(frame.data)
                if "envelope_id" in data:
                    self.acks.append(data)
                    await self._changed_now()
        self._sockets.remove(ws)
        return ws


async def _params(request: web.Request) -> dict[str, Any]:
    """Parameters as the SDK sends them: query string, then a form or a JSON body."""
    params: dict[str, Any] = dict(request.query)
    if request.content_type == "application/json":
        params.update(await request.json())
    elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        params.update(await request.post())
    return {key: value for key, value in params.items() if value is not None}
