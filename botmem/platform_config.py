"""Settings of the chat platforms: one `[telegram]`, `[slack]` or `[discord]` table each.

Tokens never live in the file: each setting ending in `_env` names the environment variable
that holds the secret.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from botmem.routing import Scope

DEFAULT_TEAM_DESCRIPTION = (
    "What you know about this team or group as a whole: shared with everyone in it, so "
    "write only what every member may know. Private facts about a person go in 'human'."
)


class PlatformSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)
    name: ClassVar[str] = ""
    """The source name and the prefix of this platform's ids."""

    enabled: bool = True
    token_env: str = ""
    scope: Scope = "user"
    admins: list[str] = Field(default_factory=list)
    platform_admins: bool = False
    """Also treat the platform's own admins (Discord Manage Server, Telegram group admins,
    Slack workspace admins) as botmem admins."""
    team_block: bool = True
    team_block_limit: int = Field(default=5000, ge=100, le=200_000)
    team_block_description: str = DEFAULT_TEAM_DESCRIPTION

    @model_validator(mode="after")
    def _prefixed_admins(self) -> PlatformSettings:
        prefix = f"{self.name}:"
        for admin in self.admins:
            if not admin.startswith(prefix) or admin == prefix:
                raise ValueError(
                    f"admin {admin!r} must be a platform-prefixed user id like {prefix}12345"
                )
        return self


class TelegramSettings(PlatformSettings):
    name: ClassVar[str] = "telegram"
    token_env: str = "TELEGRAM_BOT_TOKEN"
    base_url: str = "https://api.telegram.org/bot"
    mode: Literal["polling", "webhook"] = "polling"
    poll_timeout: int = Field(default=30, ge=0, le=50)
    webhook_url: str = ""
    """The public HTTPS URL Telegram posts updates to (webhook mode)."""
    webhook_listen: str = "127.0.0.1"
    webhook_port: int = Field(default=8443, ge=1, le=65535)
    webhook_secret_env: str = "TELEGRAM_WEBHOOK_SECRET"

    @model_validator(mode="after")
    def _webhook_needs_url(self) -> TelegramSettings:
        if self.mode == "webhook" and not self.webhook_url:
            raise ValueError('mode "webhook" needs webhook_url (the public HTTPS address)')
        return self


class SlackSettings(PlatformSettings):
    name: ClassVar[str] = "slack"
    token_env: str = "SLACK_BOT_TOKEN"
    app_token_env: str = "SLACK_APP_TOKEN"
    """Socket Mode's app-level token (xapp-...)."""
    signing_secret_env: str = "SLACK_SIGNING_SECRET"
    """HTTP mode: the app's signing secret, to verify every request comes from Slack."""
    base_url: str = "https://slack.com/api/"
    mode: Literal["socket", "http"] = "socket"
    http_listen: str = "127.0.0.1"
    http_port: int = Field(default=3000, ge=1, le=65535)
    command: str = Field(default="/memory", pattern=r"^/[a-z0-9_-]{1,31}$")


class DiscordSettings(PlatformSettings):
    name: ClassVar[str] = "discord"
    token_env: str = "DISCORD_BOT_TOKEN"
    message_content: bool = False
    """Ask for the privileged message-content intent. Not needed to answer DMs and mentions;
    needed to follow threads the bot is part of without being mentioned."""
    command_guilds: list[int] = Field(default_factory=list)
    """Register the /memory slash command in these guilds only (instant); empty: globally."""
    shard_count: int = Field(default=0, ge=0)
    """The bot's total number of gateway shards, across every process; 0: one unsharded
    connection (enough below 2,500 servers)."""
    shard_ids: list[int] = Field(default_factory=list)
    """The shards this process connects (with several processes, each its own); empty: all."""

    @field_validator("shard_ids")
    @classmethod
    def _shards_in_range(cls, shard_ids: list[int], info: ValidationInfo) -> list[int]:
        if not shard_ids:
            return shard_ids
        count = info.data.get("shard_count")
        if count is None:  # shard_count itself is invalid and reported
            return shard_ids
        if count == 0:
            raise ValueError(
                "shard_ids needs shard_count: the bot's total number of shards, the same in "
                "every process (e.g. shard_count = 4 with shard_ids = [2, 3])"
            )
        outside = [shard for shard in shard_ids if not 0 <= shard < count]
        if outside:
            raise ValueError(
                f"shard_ids {outside} not in range(shard_count): with shard_count = {count} "
                f"a shard id is 0 to {count - 1}"
            )
        if len(set(shard_ids)) != len(shard_ids):
            raise ValueError(f"shard_ids {shard_ids} names a shard twice")
        return shard_ids
