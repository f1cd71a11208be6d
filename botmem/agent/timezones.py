"""The person's timezone: set per agent (`/memory timezone`), else the configured default."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from botmem.types import AgentState

TIMEZONE_KEY = "timezone"
"""Agent metadata: the IANA name of the person's timezone."""


def agent_timezone(state: AgentState, default: ZoneInfo) -> ZoneInfo:
    name = state.metadata.get(TIMEZONE_KEY)
    if not isinstance(name, str) or not name:
        return default
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):  # stored by an older tzdata, say: keep going
        return default
