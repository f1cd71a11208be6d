"""Text that every store can hold: lone UTF-16 surrogates (from a broken emoji in a platform
payload, or ``"\\ud800"`` in the model's JSON) and NUL characters (PostgreSQL text cannot
hold them) become U+FFFD instead of failing a write."""

from __future__ import annotations

from typing import Any


def scrub(text: str) -> str:
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    if text.isascii():
        return text  # the common case, and it cannot hold a surrogate
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def scrub_json(value: Any) -> Any:
    """`scrub` applied to every string of a decoded JSON value."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, list):
        return [scrub_json(item) for item in value]
    if isinstance(value, dict):
        return {scrub(str(key)): scrub_json(item) for key, item in value.items()}
    return value
