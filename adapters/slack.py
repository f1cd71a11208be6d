"""Slack adapter: slack-bolt's AsyncApp in Socket Mode or HTTP events mode.

Events are stored (handed to the core) before Slack gets its acknowledgement, in a global
middleware: a crash loses nothing, and Slack retries what was not acknowledged. The slash
command is acknowledged at once (Slack's 3-second rule) and answered through its
``response_url``, visible only to the person who typed it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, Generic, TypeVar

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from adapters.slack_translate import (
    BotIdentity,
    command_to_inbound,
    event_to_inbound,
    slack_user,
)
from botmem.adapter import Capabilities, InboundHandler
from botmem.chunking import split_text
from botmem.errors import BotmemError, ConfigError
from botmem.events import InboundMessage, OutboundMessage
from botmem.platform_config import SlackSettings
from botmem.routing import addressed

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
RATE_LIMIT_RETRIES = 3
CONNECT_TIMEOUT = 30.0
PROFILE_TTL = 600.0
"""Seconds a person's name and admin flag are trusted before users.info is asked again."""
RESPONSE_URL_TTL = 29 * 60.0
"""A slash command's response_url takes answers for 30 minutes."""
DM_NOTE = "I sent you my answer in a direct message."
FILE_NOTE = "I sent you the file in our direct messages."

K = TypeVar("K")
V = TypeVar("V")


class Recent(Generic[K, V]):
    """A mapping that forgets its oldest entries beyond `size`: ids that matter for a while."""

    def __init__(self, size: int):
        self._size = size
        self._items: OrderedDict[K, V] = OrderedDict()

    def put(self, key: K, value: V) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self._size:
            self._items.popitem(last=False)

    def get(self, key: K) -> V | None:
        return self._items.get(key)

    def __contains__(self, key: object) -> bool:
        return key in self._items


@dataclass(frozen=True)
class Profile:
    name: str
    admin: bool
    """A workspace admin or owner."""
    fetched_at: float


class SlackDeliveryError(BotmemError):
    """Slack refused an answer (e.g. an expired response_url); the core sends it again later."""


class SlackAdapter:
    """One Slack workspace, through a bot token (plus an app token in Socket Mode).

    Slack gives bots no typing indicator (only the retired RTM API had one), so
    ``capabilities.typing`` is False and nothing is shown while the agent thinks.
    """

    name = "slack"
    capabilities = Capabilities(max_message_chars=3900, threads=True, typing=False)

    def __init__(
        self,
        settings: SlackSettings,
        token: str,
        *,
        app_token: str = "",
        signing_secret: str = "",
    ):
        if settings.mode == "socket" and not app_token:
            raise ConfigError("Socket Mode needs an app token (xapp-...)", key="app_token_env")
        if settings.mode == "http" and not signing_secret:
            raise ConfigError("HTTP mode needs the signing secret", key="signing_secret_env")
        self._settings = settings
        self._app_token = app_token
        self._client = AsyncWebClient(token=token, base_url=settings.base_url)
        self._client.retry_handlers.append(
            AsyncRateLimitErrorRetryHandler(max_retry_count=RATE_LIMIT_RETRIES)
        )
        self._app = AsyncApp(
            client=self._client,
            name="botmem",
            signing_secret=signing_secret,  # "" (not None: no env lookup) in Socket Mode
            request_verification_enabled=settings.mode == "http",
            process_before_response=False,
        )
        self._app.middleware(self._intake)
        self._app.command(settings.command)(self._on_command)
        self._handle: InboundHandler | None = None
        self._bot = BotIdentity(user_id="")
        self._socket: AsyncSocketModeHandler | None = None
        self._runner: web.AppRunner | None = None
        self._closed = asyncio.Event()
        self._seen_events: Recent[str, bool] = Recent(10_000)
        self._bot_threads: Recent[tuple[str, str], bool] = Recent(10_000)
        self._response_urls: Recent[str, tuple[str, float]] = Recent(1_000)
        self._profiles: Recent[str, Profile] = Recent(5_000)

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self, handle: InboundHandler) -> None:
        self._handle = handle
        auth = await self._client.auth_test()
        self._bot = BotIdentity(
            user_id=auth["user_id"], bot_id=auth.get("bot_id") or "", team_id=auth["team_id"]
        )
        if self._settings.mode == "socket":
            await self._connect_socket()
        else:
            await self._serve_http()
        self._closed.clear()
        log.info(
            "slack: running as %s in %s (%s mode)",
            self._bot.user_id,
            self._bot.team_id,
            self._settings.mode,
        )

    async def _connect_socket(self) -> None:
        handler = AsyncSocketModeHandler(self._app, self._app_token)
        try:
            # Asked here, not inside connect(): that one retries a bad app token forever.
            opened = await self._client.apps_connections_open(app_token=self._app_token)
            handler.client.wss_uri = opened["url"]
            await asyncio.wait_for(handler.connect_async(), CONNECT_TIMEOUT)
        except BaseException:
            await handler.close_async()
            raise
        self._socket = handler

    async def _serve_http(self) -> None:
        server = web.Application()
        server.router.add_post(EVENTS_PATH, self._on_http)
        runner = web.AppRunner(server)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self._settings.http_listen, self._settings.http_port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner

    async def _on_http(self, request: web.Request) -> web.Response:
        """Bolt verifies the signature and timestamp (401 otherwise) before anything else."""
        response = await self._app.async_dispatch(await to_bolt_request(request))
        return await to_aiohttp_response(response)

    async def stop(self) -> None:
        if self._socket is not None:
            await self._socket.close_async()
            self._socket = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self._closed.set()

    async def wait_closed(self) -> None:
        await self._closed.wait()

    # -- inbound ------------------------------------------------------------------------------

    async def _intake(
        self, body: dict[str, Any], next: Callable[[], Awaitable[None]]
    ) -> BoltResponse | None:
        """Bolt middleware: hand each event to the core, then answer Slack's request.

        A Slack retry of an event already taken is answered at once. An exception here makes
        Bolt answer 500, so Slack delivers the event again.
        """
        if body.get("type") != "event_callback":
            await next()
            return None
        event_id = str(body.get("event_id") or "")
        if event_id and event_id in self._seen_events:
            log.debug("slack: retry of event %s answered", event_id)
        else:
            await self._take_event(body)
            if event_id:
                self._seen_events.put(event_id, True)
        return BoltResponse(status=200, body="")

    async def _take_event(self, body: dict[str, Any]) -> None:
        inbound = event_to_inbound(body, self._bot, self._settings.scope, self._bot_threads)
        if inbound is None:
            return
        if not addressed(inbound):
            log.debug("slack: %s not addressed to the bot", inbound.message_id)
            return
        await self._deliver(await self._with_profile(inbound))

    async def _on_command(self, ack: AsyncAck, command: dict[str, Any]) -> None:
        """The slash command: acknowledged before any work, answered via its response_url."""
        await ack()
        inbound = command_to_inbound(command, self._settings.scope)
        if command.get("response_url"):
            self._response_urls.put(inbound.message_id, (command["response_url"], _now()))
        await self._deliver(await self._with_profile(inbound))

    async def _deliver(self, inbound: InboundMessage) -> None:
        if self._handle is None:
            raise RuntimeError("slack: an event arrived before start()")
        await self._handle(inbound)  # the turn runs on its own: no typing indicator on Slack

    async def _with_profile(self, inbound: InboundMessage) -> InboundMessage:
        """The speaker's display name, and whether they administer the workspace."""
        profile = await self._profile(slack_user(inbound.user_id))
        if profile is None:
            return inbound
        extra = dict(inbound.extra)
        if self._settings.platform_admins:
            extra["platform_admin"] = profile.admin
        return replace(inbound, user_name=profile.name, extra=extra)

    async def _profile(self, user: str) -> Profile | None:
        cached = self._profiles.get(user)
        if cached is not None and _now() - cached.fetched_at < PROFILE_TTL:
            return cached
        try:
            response = await self._client.users_info(user=user)
        except SlackApiError as exc:  # e.g. the users:read scope is missing: answer anyway
            log.warning("slack: users.info for %s failed: %s", user, exc)
            return None
        info = response.get("user") or {}
        names = info.get("profile") or {}
        profile = Profile(
            name=names.get("display_name")
            or names.get("real_name")
            or info.get("real_name")
            or info.get("name")
            or user,
            admin=bool(info.get("is_admin") or info.get("is_owner")),
            fetched_at=_now(),
        )
        self._profiles.put(user, profile)
        return profile

    # -- outbound -----------------------------------------------------------------------------

    async def send(self, message: OutboundMessage) -> None:
        if message.attachment is not None:
            await self._send_file(message)
            return
        response_url = self._response_url(message.reply_to)
        if response_url is not None:
            await self._respond(response_url, message.text)
        elif message.private:
            await self._send_privately(message)
        else:
            channel = message.channel_id or await self._open_dm(message.user_id)
            await self._post(channel, message.thread_id, message.text)

    async def _post(self, channel: str, thread_ts: str, text: str) -> None:
        """Post in order, in the thread when there is one; the bot is then part of it."""
        first_ts = ""
        for piece in split_text(text, self.capabilities.max_message_chars):
            response = await self._client.chat_postMessage(
                channel=channel, text=piece, thread_ts=thread_ts or None
            )
            first_ts = first_ts or str(response.get("ts") or "")
        if thread_ts or first_ts:
            self._bot_threads.put((channel, thread_ts or first_ts), True)

    def _response_url(self, message_id: str) -> str | None:
        found = self._response_urls.get(message_id) if message_id else None
        if found is None or _now() - found[1] > RESPONSE_URL_TTL:
            return None
        return found[0]

    async def _respond(self, response_url: str, text: str) -> None:
        """An ephemeral answer to a slash command: only the person who typed it sees it."""
        webhook = AsyncWebhookClient(
            response_url,
            retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=RATE_LIMIT_RETRIES)],
        )
        for piece in split_text(text, self.capabilities.max_message_chars):
            response = await webhook.send(
                text=piece, response_type="ephemeral", replace_original=False
            )
            if response.status_code != 200:
                raise SlackDeliveryError(
                    f"response_url answered {response.status_code}: {response.body}"
                )

    async def _send_privately(self, message: OutboundMessage) -> None:
        """A private answer with no response_url left (e.g. after a restart): a DM."""
        dm = await self._open_dm(message.user_id)
        await self._post(dm, "", message.text)
        await self._note(message, dm, DM_NOTE)

    async def _send_file(self, message: OutboundMessage) -> None:
        """An export: the file goes to the person's DM, with the text as its comment."""
        attachment = message.attachment
        assert attachment is not None
        dm = await self._open_dm(message.user_id)
        await self._client.files_upload_v2(
            channel=dm,
            content=attachment.data,
            filename=attachment.filename,
            title=attachment.filename,
            initial_comment=message.text,
        )
        response_url = self._response_url(message.reply_to)
        if response_url is not None:
            await self._respond(response_url, FILE_NOTE)
        else:
            await self._note(message, dm, FILE_NOTE)

    async def _note(self, message: OutboundMessage, dm: str, text: str) -> None:
        """Tell the person in the channel where the answer went; best effort."""
        if not message.channel_id or message.channel_id == dm:
            return
        try:
            await self._client.chat_postEphemeral(
                channel=message.channel_id, user=slack_user(message.user_id), text=text
            )
        except SlackApiError as exc:  # e.g. the bot is not in that channel: the DM is enough
            log.debug("slack: note in %s failed: %s", message.channel_id, exc)

    async def _open_dm(self, user_id: str) -> str:
        response = await self._client.conversations_open(users=slack_user(user_id))
        return str(response["channel"]["id"])


def _now() -> float:
    return time.monotonic()
