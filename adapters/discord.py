"""Discord adapter (discord.py 2): a gateway bot with the /memory slash command group.

Messages arrive over the gateway (DMs always; in servers only when the bot is mentioned,
replied to, or in a thread it is part of). Message content is a privileged intent, but DMs and
mentions carry content without it, so it is asked for only when `message_content` is set.
Slash commands are deferred at once (Discord allows 3 s), then answered with follow-ups, which
are ephemeral in a server. discord.py itself waits out 429 rate limits and retries.

Sharded (`shard_count`, `shard_ids`), a process connects only its shards: each server's events
arrive on one shard, DMs on shard 0. The process holding shard 0 registers the slash command.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections import OrderedDict
from collections.abc import Coroutine
from typing import Any

import aiohttp
import discord
from discord import app_commands

from adapters.discord_commands import memory_group
from adapters.discord_translate import interaction_to_inbound, message_to_inbound
from botmem.adapter import Capabilities, InboundHandler, keep_typing
from botmem.chunking import split_text
from botmem.errors import BotmemError, ConfigError
from botmem.events import Attachment, OutboundMessage
from botmem.platform_config import DiscordSettings
from botmem.routing import addressed

log = logging.getLogger(__name__)
MAX_MESSAGE_CHARS = 2000
KEPT_INTERACTIONS = 1024
"""Deferred interactions kept for their follow-up (a token lives 15 minutes)."""
IDENTIFY_SPACING = 5.0
"""discord.py waits this long between two shards' IDENTIFYs (Discord's identify rate limit)."""
SHARDING_CLOSE_CODES = {
    4010: "refused the shard it was sent",
    4011: "requires sharding (too many servers for one connection)",
}
"""Gateway close codes that a better shard_count fixes."""


class DiscordStartError(BotmemError):
    """The gateway connection failed or did not become ready."""


class DiscordAdapter:
    name = "discord"
    capabilities = Capabilities(max_message_chars=MAX_MESSAGE_CHARS, threads=True, typing=True)

    def __init__(
        self,
        settings: DiscordSettings,
        token: str,
        *,
        ready_timeout: float = 60.0,
        guild_ready_timeout: float = 2.0,
    ):
        """`guild_ready_timeout`: how long discord.py waits for more servers before 'ready'."""
        self.settings = settings
        self._token = token
        self._ready_timeout = ready_timeout
        self._guild_timeout = guild_ready_timeout
        self.client = _client(self, guild_ready_timeout)
        self._handle: InboundHandler | None = None
        self._ready = asyncio.Event()
        self._synced = False
        self._connection: asyncio.Task[None] | None = None
        self._interactions: OrderedDict[str, discord.Interaction] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, handle: InboundHandler) -> None:
        """Log in, connect to the gateway and return once discord.py says it is ready.

        Can be called again after a failed start or a stop (a closed client is replaced).
        """
        self._handle = handle
        if self.client.is_closed():
            self.client = _client(self, self._guild_timeout)
            self._ready = asyncio.Event()
        logged_in = False
        try:
            await self.client.login(self._token)
            logged_in = True
        except discord.LoginFailure as exc:
            raise ConfigError(
                f"Discord rejected the bot token ({exc}); put the bot's token in the "
                f"environment variable {self.settings.token_env}",
                key="discord.token_env",
            ) from exc
        finally:
            if not logged_in:
                await self.client.close()
        log.info("discord: connecting %s", describe_shards(self.settings))
        self._connection = asyncio.create_task(self.client.connect(), name="discord-gateway")
        await self._wait_ready(self._connection)

    async def _wait_ready(self, connection: asyncio.Task[None]) -> None:
        ready = asyncio.create_task(self._ready.wait())
        timeout = self._ready_timeout + IDENTIFY_SPACING * (len(own_shards(self.settings)) - 1)
        await asyncio.wait(
            {ready, connection}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        if ready.done():
            return
        ready.cancel()
        died = connection.done()
        await self.client.close()
        await asyncio.wait({connection}, timeout=5)
        failure = connection.exception() if connection.done() else None
        if isinstance(failure, discord.PrivilegedIntentsRequired):
            raise ConfigError(
                "the Message Content intent is not enabled for this bot: enable it in the "
                "Discord developer portal (Bot > Privileged Gateway Intents) or set "
                "message_content = false",
                key="discord.message_content",
            ) from failure
        if isinstance(failure, discord.ConnectionClosed) and failure.code in SHARDING_CLOSE_CODES:
            raise ConfigError(
                f"Discord {SHARDING_CLOSE_CODES[failure.code]} (gateway close code "
                f"{failure.code}, connecting {describe_shards(self.settings)}): set shard_count "
                "to the bot's total number of shards, at least the number Discord recommends",
                key="discord.shard_count",
            ) from failure
        if died:
            raise DiscordStartError(
                f"the Discord gateway connection ended before it was ready: {failure!r}"
            ) from failure
        raise DiscordStartError(f"Discord was not ready within {timeout:g} s")

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.client.close()
        if self._connection is not None:
            await asyncio.wait({self._connection})  # its outcome is for wait_closed

    async def wait_closed(self) -> None:
        """Return once stopped; raise what ended the gateway connection if it failed."""
        if self._connection is not None:
            await self._connection

    # -- events (called by the client) --------------------------------------------------

    async def on_ready(self) -> None:
        """Also called after a reconnect with a new session: commands are synced only once,
        and only by the process holding shard 0 (with several, the others leave it to it)."""
        if not self._ready.is_set():
            log.info("discord: ready on %s", describe_shards(self.settings))
        self._ready.set()
        if not self._synced and 0 in own_shards(self.settings):
            self._synced = True
            self._spawn(self._sync_commands())

    async def on_message(self, message: discord.Message) -> None:
        me = self.client.user
        if self._handle is None or me is None:
            return
        inbound = message_to_inbound(message, me.id, self.settings)
        if inbound is None:
            return
        if not addressed(inbound):
            log.debug("discord message %s does not address the bot", message.id)
            return
        task = await self._handle(inbound)
        if task is not None:
            channel = message.channel
            self._spawn(keep_typing(task, lambda: _typing(channel)))

    async def on_command(self, interaction: discord.Interaction, text: str) -> None:
        """Defer first (3 s deadline), then hand the command on; send() follows up."""
        await interaction.response.defer(thinking=True, ephemeral=interaction.guild_id is not None)
        if self._handle is None:
            return
        inbound = interaction_to_inbound(interaction, text, self.settings)
        self._interactions[inbound.message_id] = interaction
        while len(self._interactions) > KEPT_INTERACTIONS:
            self._interactions.popitem(last=False)
        await self._handle(inbound)

    async def _sync_commands(self) -> None:
        """Register /memory: in the configured servers (instant) or globally."""
        tree = self.client.tree
        try:
            for guild_id in self.settings.command_guilds:
                guild = discord.Object(id=guild_id)
                tree.copy_global_to(guild=guild)
                await tree.sync(guild=guild)
            if not self.settings.command_guilds:
                await tree.sync()
        except (discord.DiscordException, aiohttp.ClientError, OSError):
            log.error("registering the /memory slash command failed", exc_info=True)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- sending ------------------------------------------------------------------------

    async def send(self, message: OutboundMessage) -> None:
        pieces = [p for p in split_text(message.text, MAX_MESSAGE_CHARS) if p]
        if not pieces and message.attachment is None:
            log.warning("empty reply to %s not sent", message.agent_key)
            return
        interaction = self._live_interaction(message.reply_to)
        if interaction is not None:
            await self._follow_up(interaction, pieces, message.attachment)
        elif message.private:
            await self._send_private(message, pieces)
        else:
            target = await self._target(message)
            await _send_pieces(target, pieces, message.attachment, _reference(message))

    def _live_interaction(self, reply_to: str) -> discord.Interaction | None:
        """The deferred interaction a reply answers, while its token is still valid."""
        interaction = self._interactions.get(reply_to)
        if interaction is not None and interaction.is_expired():
            log.info("interaction %s expired; answering without it", interaction.id)
            del self._interactions[reply_to]
            return None
        return interaction

    async def _follow_up(
        self, interaction: discord.Interaction, pieces: list[str], attachment: Attachment | None
    ) -> None:
        ephemeral = interaction.guild_id is not None
        for index, piece in enumerate(pieces or [""]):
            extra: dict[str, Any] = {"content": piece} if piece else {}
            if index == 0 and attachment is not None:
                extra["file"] = _file(attachment)
            await interaction.followup.send(ephemeral=ephemeral, **extra)

    async def _send_private(self, message: OutboundMessage, pieces: list[str]) -> None:
        """A DM to the person, and a note where they asked (no interaction to answer)."""
        dm = await self.client.create_dm(discord.Object(id=int(message.user_id)))
        await _send_pieces(dm, pieces, message.attachment, None)
        where = message.thread_id or message.channel_id
        if where and where != str(dm.id):
            note = f"<@{message.user_id}> I sent you my answer in a direct message."
            await self.client.get_partial_messageable(int(where)).send(note)

    async def _target(self, message: OutboundMessage) -> discord.abc.Messageable:
        """The channel or thread the reply goes to; the person's DM if there is none."""
        where = message.thread_id or message.channel_id
        if where:
            channel = self.client.get_channel(int(where))
            if isinstance(channel, discord.abc.Messageable):
                return channel
            return self.client.get_partial_messageable(int(where))
        if message.user_id:
            return await self.client.create_dm(discord.Object(id=int(message.user_id)))
        raise ValueError(f"nowhere to send the message for {message.agent_key}: no channel or user")


def _client(adapter: DiscordAdapter, guild_ready_timeout: float) -> _BotClient:
    """One gateway connection, or (sharded) one per shard of this process."""
    settings = adapter.settings
    intents = gateway_intents(settings)
    if not settings.shard_count:
        return _BotClient(adapter, intents, guild_ready_timeout)
    return _ShardedBotClient(
        adapter,
        intents,
        guild_ready_timeout,
        shard_count=settings.shard_count,
        shard_ids=list(settings.shard_ids) or None,
    )


class _BotClient(discord.Client):
    def __init__(
        self,
        adapter: DiscordAdapter,
        intents: discord.Intents,
        guild_ready_timeout: float,
        **sharding: Any,
    ):
        discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False  # a text-only bot
        super().__init__(
            intents=intents,
            allowed_mentions=discord.AllowedMentions(everyone=False, roles=False),
            chunk_guilds_at_startup=False,
            guild_ready_timeout=guild_ready_timeout,
            **sharding,
        )
        self.adapter = adapter
        self.tree: app_commands.CommandTree[_BotClient] = app_commands.CommandTree(self)
        self.tree.add_command(memory_group(adapter.on_command))

    async def on_ready(self) -> None:
        await self.adapter.on_ready()

    async def on_message(self, message: discord.Message) -> None:
        await self.adapter.on_message(message)


class _ShardedBotClient(_BotClient, discord.AutoShardedClient):
    """The same bot on the shards `shard_ids` of `shard_count` (all of them by default)."""

    async def on_shard_ready(self, shard_id: int) -> None:
        log.info("discord: shard %d of %s ready", shard_id, self.shard_count)


def own_shards(settings: DiscordSettings) -> list[int]:
    """The shards this process connects; [0] when unsharded (DMs reach it)."""
    if not settings.shard_count:
        return [0]
    return list(settings.shard_ids) or list(range(settings.shard_count))


def describe_shards(settings: DiscordSettings) -> str:
    if not settings.shard_count:
        return "one unsharded gateway connection"
    shards = own_shards(settings)
    every = " (all)" if len(shards) == settings.shard_count else ""
    return f"shards {shards} of {settings.shard_count}{every}"


def gateway_intents(settings: DiscordSettings) -> discord.Intents:
    """No privileged intents unless message content is asked for; no typing events."""
    intents = discord.Intents.default()
    intents.members = False
    intents.presences = False
    intents.typing = False
    intents.message_content = settings.message_content
    return intents


async def _send_pieces(
    target: discord.abc.Messageable,
    pieces: list[str],
    attachment: Attachment | None,
    reference: discord.MessageReference | None,
) -> None:
    """In order; the first piece carries the reply reference and the file."""
    for index, piece in enumerate(pieces or [""]):
        extra: dict[str, Any] = {"content": piece} if piece else {}
        if index == 0 and reference is not None:
            extra["reference"] = reference
        if index == 0 and attachment is not None:
            extra["file"] = _file(attachment)
        await target.send(**extra)


def _reference(message: OutboundMessage) -> discord.MessageReference | None:
    """Reply to the inbound message (if it still exists) when there is one."""
    channel = message.thread_id or message.channel_id
    if not (message.reply_to.isdigit() and channel.isdigit()):
        return None
    return discord.MessageReference(
        message_id=int(message.reply_to), channel_id=int(channel), fail_if_not_exists=False
    )


def _file(attachment: Attachment) -> discord.File:
    return discord.File(io.BytesIO(attachment.data), filename=attachment.filename)


async def _typing(channel: discord.abc.Messageable) -> None:
    await channel.typing()
