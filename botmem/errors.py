"""One exception tree for botmem."""

from __future__ import annotations


class BotmemError(Exception):
    """Base of every error botmem raises on purpose."""


class ConfigError(BotmemError):
    """A setting is missing or invalid; the message names the key and the file."""

    def __init__(self, message: str, *, key: str | None = None, source: str | None = None):
        where = " ".join(part for part in (f"[{source}]" if source else "", key or "") if part)
        super().__init__(f"{where}: {message}" if where else message)
        self.key = key
        self.source = source


class ToolError(BotmemError):
    """A message for the model: the tool call was wrong and the model can correct itself."""


class LLMError(BotmemError):
    """The LLM call failed. `retryable` says whether trying again may help."""

    def __init__(self, message: str, *, retryable: bool = False):
        super().__init__(message)
        self.retryable = retryable


class StoreError(BotmemError):
    """The store could not complete an operation (e.g. a version conflict that kept recurring)."""


class NotFoundError(StoreError):
    """The agent, block or message asked for does not exist."""
