"""A fake Discord for adapter tests: REST under /api/v10 and a gateway websocket, on 127.0.0.1.

Point discord.py at it by patching `discord.http.Route.BASE` and
`discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY` (see `rest_base` and `gateway_url`). The
gateway says HELLO, answers heartbeats, and answers IDENTIFY with READY and GUILD_CREATE (the
recorded payloads); tests then inject MESSAGE_CREATE / INTERACTION_CREATE with `dispatch`.
Every REST call is recorded in `requests`; `wait_for` waits for a condition on them.

Sharding as Discord does it: each IDENTIFY (recorded in `identifies`) opens the session of its
`shard` [id, count]; a server's GUILD_CREATE and events go to the shard (guild_id >> 22) % count
only, DMs to shard 0. GET /gateway/bot recommends `shard_count` shards.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import BodyPartReader, WSMsgType, web

PAYLOADS = Path(__file__).parent / "payloads" / "discord"
BOT_ID = 1200000000000000001
GUILD_ID = 1300000000000000001
OTHER_GUILD_ID = GUILD_ID + (1 << 22)
"""A second server, on shard 1 of 2 (GUILD_ID is on shard 0); see `guild_create`."""
CHANNEL_ID = 1300000000000000010
THREAD_ID = 1300000000000000020
ALICE_ID = 1400000000000000001
BOB_ID = 1400000000000000002
DM_CHANNEL_ID = 1500000000000000001
DISCORD_EPOCH_MS = 1420070400000
EPHEMERAL = 64
JSON_HEADERS = {"Content-Type": "application/json"}  # discord.py wants exactly this
T = TypeVar("T")


def payload(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((PAYLOADS / f"{name}.json").read_text())
    return data


_counter = itertools.count(1)


def snowflake() -> str:
    """A fresh id of now (discord.py derives created_at, and interaction expiry, from it)."""
    return str(((int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22) + next(_counter) % 4096)


@dataclass
class Request:
    method: str
    path: str
    """After /api/v10, e.g. /channels/1/messages."""
    query: dict[str, str]
    json: Any
    files: list[tuple[str, bytes]] = field(default_factory=list)
    status: int = 200


def shard_of(guild_id: int | str, shard_count: int) -> int:
    """The shard a server's events arrive on."""
    return (int(guild_id) >> 22) % shard_count


class FakeDiscord:
    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.identify: dict[str, Any] | None = None
        """The last IDENTIFY's data."""
        self.identifies: list[dict[str, Any]] = []
        """Every IDENTIFY's data, in order."""
        self.guilds: list[dict[str, Any]] = [payload("guild_create")]
        """The bot's servers (GUILD_CREATE data), each sent on its shard after READY."""
        self.shard_count = 1
        """The number of shards GET /gateway/bot recommends."""
        self.token_valid = True
        self.close_on_identify: int | None = None
        """Close the gateway with this code instead of answering IDENTIFY (e.g. 4014)."""
        self.rate_limit_messages = 0
        """Answer this many of the next message posts with a 429."""
        self.rate_limited = 0
        self._changed = asyncio.Condition()
        self._identified: dict[int, asyncio.Event] = {}
        self._sessions: dict[int, web.WebSocketResponse] = {}
        """The open gateway session of each shard (0 when unsharded)."""
        self._sockets: set[web.WebSocketResponse] = set()
        self._seqs: dict[int, int] = {}
        self._count = 1
        """The shard count the client identified with."""
        self._watched: list[asyncio.Future[Any]] = []
        self._runner: web.AppRunner | None = None
        self.url = ""

    @property
    def rest_base(self) -> str:
        return f"{self.url}/api/v10"

    @property
    def gateway_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/gateway"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/gateway", self._gateway)
        api = "/api/v10"
        app.router.add_get(f"{api}/gateway/bot", self._gateway_bot)
        app.router.add_get(f"{api}/users/@me", self._me)
        app.router.add_get(f"{api}/oauth2/applications/@me", self._fixed("application"))
        app.router.add_get(f"{api}/channels/{{channel}}", self._get_channel)
        app.router.add_post(f"{api}/channels/{{channel}}/messages", self._post_message)
        app.router.add_post(f"{api}/channels/{{channel}}/typing", self._typing)
        app.router.add_post(f"{api}/users/@me/channels", self._open_dm)
        app.router.add_put(f"{api}/applications/{{app}}/commands", self._put_commands)
        app.router.add_put(
            f"{api}/applications/{{app}}/guilds/{{guild}}/commands", self._put_commands
        )
        app.router.add_post(f"{api}/interactions/{{id}}/{{token}}/callback", self._callback)
        app.router.add_post(f"{api}/webhooks/{{app}}/{{token}}", self._followup)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"

    async def close(self) -> None:
        for ws in list(self._sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # -- waiting --------------------------------------------------------------------------

    def watch(self, future: asyncio.Future[Any]) -> None:
        """Fail `wait_for` at once when this ends (the client's gateway connection)."""
        self._watched.append(future)

    async def wait_for(self, predicate: Callable[[], T], timeout: float = 5.0) -> T:
        """The first truthy value of `predicate`, re-checked after each recorded request."""

        async def satisfied() -> T:
            async with self._changed:
                return await self._changed.wait_for(predicate)

        waiter = asyncio.ensure_future(satisfied())
        done, _ = await asyncio.wait(
            {waiter, *self._watched}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        if waiter in done:
            return waiter.result()
        waiter.cancel()
        for ended in done:
            ended.result()  # raises what ended the connection
            raise AssertionError("the client's gateway connection ended")
        raise AssertionError(f"timed out; requests so far: {[r.path for r in self.requests]}")

    async def settle(self) -> None:
        """Let queued events and the requests they cause run (for asserting nothing happened)."""
        for _ in range(20):
            await asyncio.sleep(0.01)

    def posted(self, channel_id: int) -> list[Request]:
        """Messages delivered (not rate limited) to a channel, in order."""
        path = f"/channels/{channel_id}/messages"
        return [r for r in self.requests if r.path == path and r.status == 200]

    def followups(self, token: str) -> list[Request]:
        return [r for r in self.requests if r.path.endswith(f"/{token}") and r.method == "POST"]

    def find(self, method: str, path_part: str) -> list[Request]:
        return [r for r in self.requests if r.method == method and path_part in r.path]

    # -- gateway --------------------------------------------------------------------------

    @property
    def identified_shards(self) -> list[list[int] | None]:
        """The `shard` field of each IDENTIFY (None when unsharded), in order."""
        return [identify.get("shard") for identify in self.identifies]

    async def dispatch(self, event: str, data: dict[str, Any], shard: int | None = None) -> None:
        """Send an event on the shard Discord would use: its server's, or 0 for DMs."""
        if shard is None:
            guild_id = data.get("guild_id")
            shard = shard_of(guild_id, self._count) if guild_id else 0
        identified = self._identified.setdefault(shard, asyncio.Event())
        try:
            await asyncio.wait_for(identified.wait(), 5)
        except TimeoutError:
            raise AssertionError(
                f"no session on shard {shard} for {event}; identified: {self.identified_shards}"
            ) from None
        await self._send(shard, event, data)

    async def _send(self, shard: int, event: str, data: dict[str, Any]) -> None:
        self._seqs[shard] = seq = self._seqs.get(shard, 0) + 1
        await self._sessions[shard].send_json({"op": 0, "t": event, "s": seq, "d": data})

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._sockets.add(ws)
        await ws.send_json({"op": 10, "d": {"heartbeat_interval": 41250}, "s": None, "t": None})
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            frame = json.loads(msg.data)
            if frame["op"] == 1:
                await ws.send_json({"op": 11, "d": None, "s": None, "t": None})
            elif frame["op"] == 2 and self.close_on_identify is not None:
                await ws.close(code=self.close_on_identify, message=b"refused by the fake")
            elif frame["op"] == 2:
                await self._identify(ws, frame["d"])
        self._sockets.discard(ws)
        return ws

    async def _identify(self, ws: web.WebSocketResponse, identify: dict[str, Any]) -> None:
        """Open the shard's session: READY, then GUILD_CREATE for each of its servers."""
        self.identify = identify
        self.identifies.append(identify)
        shard, self._count = identify.get("shard") or (0, 1)
        guilds = [g for g in self.guilds if shard_of(g["id"], self._count) == shard]
        ready = payload("ready")
        ready["resume_gateway_url"] = self.gateway_url
        ready["guilds"] = [{"id": g["id"], "unavailable": True} for g in guilds]
        if "shard" in identify:
            ready["shard"] = identify["shard"]
        self._sessions[shard] = ws
        self._seqs[shard] = 0
        await self._send(shard, "READY", ready)
        for guild in guilds:
            await self._send(shard, "GUILD_CREATE", guild)
        self._identified.setdefault(shard, asyncio.Event()).set()

    # -- REST -----------------------------------------------------------------------------

    async def _record(self, request: web.Request, status: int = 200) -> Request:
        body: Any = None
        files: list[tuple[str, bytes]] = []
        if request.content_type.startswith("multipart/"):
            reader = await request.multipart()
            async for part in reader:
                assert isinstance(part, BodyPartReader)
                if part.name == "payload_json":
                    body = json.loads(await part.text())
                else:
                    files.append((part.filename or "", await part.read()))
        elif request.can_read_body:
            body = await request.json()
        path = request.path.removeprefix("/api/v10")
        recorded = Request(request.method, path, dict(request.query), body, files, status)
        async with self._changed:
            self.requests.append(recorded)
            self._changed.notify_all()
        return recorded

    def _fixed(self, name: str) -> Callable[[web.Request], Any]:
        async def handler(request: web.Request) -> web.Response:
            await self._record(request)
            return _json(payload(name))

        return handler

    async def _gateway_bot(self, request: web.Request) -> web.Response:
        await self._record(request)
        limit = {"total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1}
        return _json(
            {"url": self.gateway_url, "shards": self.shard_count, "session_start_limit": limit}
        )

    async def _me(self, request: web.Request) -> web.Response:
        await self._record(request)
        if not self.token_valid:
            return _json({"message": "401: Unauthorized", "code": 0}, 401)
        return _json(payload("user_me"))

    async def _get_channel(self, request: web.Request) -> web.Response:
        await self._record(request)
        channel_id = request.match_info["channel"]
        for channel in payload("guild_create")["channels"]:
            if channel["id"] == channel_id:
                return _json({**channel, "guild_id": str(GUILD_ID)})
        return _json({"message": "Unknown Channel", "code": 10003}, 404)

    async def _post_message(self, request: web.Request) -> web.Response:
        if self.rate_limit_messages > 0:
            self.rate_limit_messages -= 1
            self.rate_limited += 1
            await self._record(request, status=429)
            return _rate_limited()
        recorded = await self._record(request)
        return _json(_message(request.match_info["channel"], recorded))

    async def _typing(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.Response(status=204)

    async def _open_dm(self, request: web.Request) -> web.Response:
        recorded = await self._record(request)
        user_id = str(recorded.json["recipient_id"])
        channel_id = str(DM_CHANNEL_ID) if user_id == str(ALICE_ID) else str(int(user_id) + 1)
        dm = {"id": channel_id, "type": 1, "last_message_id": None, "flags": 0}
        return _json({**dm, "recipients": [_user(user_id)]})

    async def _put_commands(self, request: web.Request) -> web.Response:
        recorded = await self._record(request)
        guild = request.match_info.get("guild")
        registered = [
            {**command, "id": snowflake(), "application_id": str(BOT_ID), "version": snowflake()}
            | ({"guild_id": guild} if guild else {})
            for command in recorded.json
        ]
        return _json(registered)

    async def _callback(self, request: web.Request) -> web.Response:
        recorded = await self._record(request)
        flags = (recorded.json.get("data") or {}).get("flags", 0)
        interaction = {
            "id": request.match_info["id"],
            "type": 2,
            "response_message_id": snowflake(),
            "response_message_loading": recorded.json["type"] == 5,
            "response_message_ephemeral": bool(flags & EPHEMERAL),
        }
        return _json({"interaction": interaction, "resource": {"type": recorded.json["type"]}})

    async def _followup(self, request: web.Request) -> web.Response:
        recorded = await self._record(request)
        return _json(_message(str(CHANNEL_ID), recorded))


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=json.dumps(data).encode(), status=status, headers=JSON_HEADERS)


def _rate_limited() -> web.Response:
    """A per-route 429 the way Discord (behind Google's proxy, hence Via) sends it."""
    headers = {
        **JSON_HEADERS,
        "Via": "1.1 google",
        "Retry-After": "1",
        "X-RateLimit-Limit": "5",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset-After": "0.05",
        "X-RateLimit-Bucket": "fake-messages-bucket",
        "X-RateLimit-Scope": "user",
    }
    body = {"message": "You are being rate limited.", "retry_after": 0.05, "global": False}
    return web.Response(body=json.dumps(body).encode(), status=429, headers=headers)


def _user(user_id: str) -> dict[str, Any]:
    members = payload("guild_create")["members"]
    for member in members:
        if member["user"]["id"] == user_id:
            user: dict[str, Any] = member["user"]
            return user
    return {"id": user_id, "username": f"user{user_id}", "discriminator": "0", "avatar": None}


def _message(channel_id: str, recorded: Request) -> dict[str, Any]:
    """The created message as Discord returns it."""
    body = recorded.json or {}
    message = copy.deepcopy(payload("message_bot_own"))
    message.pop("member")
    message.update(
        id=snowflake(),
        channel_id=channel_id,
        content=body.get("content") or "",
        flags=body.get("flags", 0),
        type=19 if body.get("message_reference") else 0,
        attachments=[
            {
                "id": snowflake(),
                "filename": name,
                "size": len(data),
                "url": f"https://cdn.discordapp.com/attachments/{channel_id}/{name}",
                "proxy_url": f"https://media.discordapp.net/attachments/{channel_id}/{name}",
                "content_type": "application/json; charset=utf-8",
            }
            for name, data in recorded.files
        ],
    )
    if body.get("message_reference"):
        message["message_reference"] = {"type": 0, **body["message_reference"]}
    return message


# -- gateway payloads for tests -------------------------------------------------------------


def guild_create(guild_id: int) -> dict[str, Any]:
    """The recorded server under another id (the same channels, threads and members)."""
    data = payload("guild_create")
    for item in (data, *data["roles"], *data["threads"]):  # @everyone's id is the server's
        for key in ("id", "guild_id"):
            if item.get(key) == str(GUILD_ID):
                item[key] = str(guild_id)
    return data


def message_create(name: str, **changes: Any) -> dict[str, Any]:
    """A recorded MESSAGE_CREATE with some keys changed (e.g. a fresh id or other content)."""
    return {**payload(name), **changes}


def interaction_create(
    subcommand: str, options: list[dict[str, Any]] | None = None, *, user_id: int = ALICE_ID
) -> dict[str, Any]:
    """A /memory INTERACTION_CREATE in the server's #general by a member, with a fresh id."""
    data = payload("interaction_memory_show")
    interaction_id = snowflake()
    member = next(m for m in payload("guild_create")["members"] if m["user"]["id"] == str(user_id))
    member["permissions"] = "311385246816" if member["roles"] else "311385246784"
    data.update(id=interaction_id, token=f"token-{interaction_id}", member=member)
    data["data"]["options"] = [{"name": subcommand, "type": 1, "options": options or []}]
    return data


def dm_interaction_create(
    subcommand: str, options: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """A /memory INTERACTION_CREATE by Alice in her DM with the bot, with a fresh id."""
    data = payload("interaction_memory_help_dm")
    interaction_id = snowflake()
    data.update(id=interaction_id, token=f"token-{interaction_id}")
    data["data"]["options"] = [{"name": subcommand, "type": 1, "options": options or []}]
    return data
