"""Build the configured chat platform adapters: check SDKs and tokens before connecting.

Every problem is reported at once, naming what to install or which variable to set, so that
`botmem run` fails in the first second rather than after connecting half the platforms.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Mapping

from botmem.adapter import Adapter
from botmem.config import Settings
from botmem.errors import ConfigError
from botmem.platform_config import (
    DiscordSettings,
    PlatformSettings,
    SlackSettings,
    TelegramSettings,
)

SDK_MODULES = {"telegram": "telegram", "slack": "slack_bolt", "discord": "discord"}


def build_adapters(settings: Settings, environ: Mapping[str, str] | None = None) -> list[Adapter]:
    environ = os.environ if environ is None else environ
    platforms = settings.platforms()
    if not platforms:
        raise ConfigError(
            "no chat platform configured: add a [telegram], [slack] or [discord] table "
            "(see config.example.toml), or talk to the bot with `botmem chat`",
            source=settings.source,
        )
    problems: list[str] = []
    adapters: list[Adapter] = []
    for name, platform in platforms.items():
        if importlib.util.find_spec(SDK_MODULES[name]) is None:
            problems.append(f'[{name}] needs its SDK: pip install "botmem[{name}]"')
            continue
        secret = _secrets(platform, environ, problems)
        if secret is not None:
            adapters.append(_BUILDERS[name](platform, secret))
    if problems:
        raise ConfigError("; ".join(problems), source=settings.source)
    return adapters


def _secrets(
    platform: PlatformSettings, environ: Mapping[str, str], problems: list[str]
) -> Callable[[str], str] | None:
    """A getter of the platform's secrets by setting name, or None (with problems noted)."""
    needed = ["token_env"]
    if isinstance(platform, SlackSettings):
        needed.append("app_token_env" if platform.mode == "socket" else "signing_secret_env")
    if isinstance(platform, TelegramSettings) and platform.mode == "webhook":
        needed.append("webhook_secret_env")
    missing = False
    for setting in needed:
        variable = getattr(platform, setting)
        if not environ.get(variable):
            problems.append(
                f"[{platform.name}] set the environment variable {variable} "
                f"(or name another one with {setting})"
            )
            missing = True
    return None if missing else (lambda setting: environ[getattr(platform, setting)])


def _telegram(platform: PlatformSettings, secret: Callable[[str], str]) -> Adapter:
    from adapters.telegram import TelegramAdapter

    assert isinstance(platform, TelegramSettings)
    webhook = secret("webhook_secret_env") if platform.mode == "webhook" else ""
    return TelegramAdapter(platform, secret("token_env"), webhook_secret=webhook)


def _slack(platform: PlatformSettings, secret: Callable[[str], str]) -> Adapter:
    from adapters.slack import SlackAdapter

    assert isinstance(platform, SlackSettings)
    if platform.mode == "socket":
        return SlackAdapter(platform, secret("token_env"), app_token=secret("app_token_env"))
    return SlackAdapter(platform, secret("token_env"), signing_secret=secret("signing_secret_env"))


def _discord(platform: PlatformSettings, secret: Callable[[str], str]) -> Adapter:
    from adapters.discord import DiscordAdapter

    assert isinstance(platform, DiscordSettings)
    return DiscordAdapter(platform, secret("token_env"))


_BUILDERS: dict[str, Callable[[PlatformSettings, Callable[[str], str]], Adapter]] = {
    "telegram": _telegram,
    "slack": _slack,
    "discord": _discord,
}
