"""Failed model calls, classified and described one way for both paths: litellm's exceptions
(litellm_client) and the HTTP answers of an OpenAI-compatible server (openai_http)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

MAX_RETRY_AFTER = 30.0
"""Seconds: a longer retry-after hint is capped, so one turn never stalls for minutes."""
_MAX_DETAIL = 300

CONTEXT_EXCEEDED = "context window exceeded"

# How each failure is handled: (litellm exception, the HTTP status it stands for, retryable,
# reason), checked in order (subclasses before their bases). Statuses the table does not name
# go by status_kind's rules (e.g. litellm's APIError with a 5xx).
KINDS: tuple[tuple[str, int | None, bool, str], ...] = (
    ("Timeout", None, True, "timed out"),
    ("RateLimitError", 429, True, "rate limited"),
    ("ContextWindowExceededError", None, False, CONTEXT_EXCEEDED),
    ("ContentPolicyViolationError", None, False, "content policy violation"),
    ("AuthenticationError", 401, False, "authentication failed"),
    ("PermissionDeniedError", 403, False, "permission denied"),
    ("NotFoundError", 404, False, "model or endpoint not found"),
    ("APIConnectionError", None, True, "connection failed"),
    ("BadRequestError", 400, False, "bad request"),
    ("UnprocessableEntityError", 422, False, "bad request"),
    ("ServiceUnavailableError", 503, True, "service unavailable"),
    ("BadGatewayError", 502, True, "bad gateway"),
    ("InternalServerError", 500, True, "server error"),
)


@dataclass(frozen=True)
class Failure:
    """One failed attempt, classified."""

    reason: str
    detail: str
    retryable: bool
    retry_after: float | None = None
    error: BaseException | None = None


def status_kind(status: int) -> tuple[bool, str]:
    """Whether an HTTP error status is worth retrying, and its reason, e.g. 'rate limited (429)'."""
    for _name, code, retryable, label in KINDS:
        if code == status:
            return retryable, f"{label} ({status})"
    if status >= 500 or status == 408:
        return True, f"server error ({status})"
    return False, f"HTTP error ({status})"


def timed_out(seconds: float) -> str:
    return f"timed out after {seconds:g}s"


_PREFIXES = re.compile(r"^(?:litellm\.\w+:\s*)?(?:\w+Error:\s*)?(?:\w+Exception\s*-\s*)?")


def clean_detail(message: str, secret: str | None) -> str:
    """One short line, without litellm's 'litellm.XError: XError: OpenAIException - ' prefixes
    and without the API key."""
    line = " ".join(redact(message, secret).split())  # before cutting: no half key is left
    line = _PREFIXES.sub("", line, count=1)
    if len(line) > _MAX_DETAIL:
        line = line[: _MAX_DETAIL - 1] + "…"
    return line


def redact(text: str, secret: str | None) -> str:
    if secret and len(secret) >= 4:
        text = text.replace(secret, "***")
    return text


def describe(failure: Failure, attempts: int) -> str:
    tries = f" after {attempts} attempts" if attempts > 1 else ""
    detail = f": {failure.detail}" if failure.detail else ""
    return f"{failure.reason}{tries}{detail}"


def retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds the provider asked us to wait, from retry-after-ms or retry-after (seconds)."""
    if not headers or not hasattr(headers, "get"):
        return None
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(0.0, float(value) * scale)
        except ValueError:
            continue  # an HTTP date: not worth parsing for a capped wait
    return None
