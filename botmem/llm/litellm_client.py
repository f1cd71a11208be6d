"""LiteLLMClient and LiteLLMEmbedder: the LLMClient and Embedder for every provider litellm knows.

This is the only module in botmem that imports litellm, and it does so at first use:
`import litellm` costs 4-7 s and ~190 MB, and `botmem --help` must stay instant.

Retries are ours, not litellm's (it gets num_retries=0, max_retries=0): that keeps the count
of attempts exact, the backoff in one place, and the fallback order predictable.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import re
import threading
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from botmem.errors import LLMError
from botmem.llm.base import Completion, Usage
from botmem.types import ToolCall

if TYPE_CHECKING:
    from botmem.embeddings.base import Vectors

log = logging.getLogger(__name__)

DEFAULT_CONTEXT_WINDOW = 8192
MAX_RETRY_AFTER = 30.0
"""Seconds: a longer retry-after hint is capped, so one turn never stalls for minutes."""
_MAX_DETAIL = 300
EMBEDDING_BATCH = 256
"""Texts per embedding request: far below providers' limits (OpenAI: 2048 inputs)."""

T = TypeVar("T")

_litellm: Any = None
_import_lock = threading.Lock()


def _load_litellm() -> Any:
    """Import and configure litellm once (thread-safe: warm() may import it off the loop)."""
    global _litellm
    if _litellm is not None:  # the hot path: every call comes through here
        return _litellm
    with _import_lock:
        if _litellm is None:
            # Without this, the import fetches a cost map over the network (12 s when stalled).
            os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
            # litellm's log handler writes records below WARNING to stdout, which is reserved
            # for chat replies (the console adapter).
            os.environ.setdefault("LITELLM_LOG", "WARNING")
            import litellm

            _configure(litellm)
            _litellm = litellm
    return _litellm


def _configure(litellm: Any) -> None:
    litellm.telemetry = False
    litellm.suppress_debug_info = True  # no "Give Feedback / Get Help" prints on errors
    litellm.set_verbose = False
    # token_counter would otherwise download Hugging Face tokenizers for llama/claude models;
    # tiktoken's bundled cl100k is close enough for a context budget and works offline.
    litellm.disable_hf_tokenizer_download = True
    # Embedding calls read `max_retries or DEFAULT_MAX_RETRIES`, so our max_retries=0 became
    # the openai SDK's 2 hidden retries per attempt; 0 here makes 0 mean 0 (litellm 1.106.2).
    litellm.DEFAULT_MAX_RETRIES = 0


# How each litellm exception is handled, checked in order (subclasses before their bases).
# Status-based rules below catch what the table does not name (e.g. APIError with a 5xx).
_ERROR_KINDS: tuple[tuple[str, bool, str], ...] = (
    ("Timeout", True, "timed out"),
    ("RateLimitError", True, "rate limited"),
    ("ContextWindowExceededError", False, "context window exceeded"),
    ("ContentPolicyViolationError", False, "content policy violation"),
    ("AuthenticationError", False, "authentication failed"),
    ("PermissionDeniedError", False, "permission denied"),
    ("NotFoundError", False, "model or endpoint not found"),
    ("APIConnectionError", True, "connection failed"),
    ("BadRequestError", False, "bad request"),
    ("UnprocessableEntityError", False, "bad request"),
    ("ServiceUnavailableError", True, "service unavailable"),
    ("BadGatewayError", True, "bad gateway"),
    ("InternalServerError", True, "server error"),
)
_NO_STATUS_IN_REASON = {"Timeout", "APIConnectionError"}  # their status codes are made up


@dataclass(frozen=True)
class _Failure:
    """One failed attempt, classified."""

    reason: str
    detail: str
    retryable: bool
    retry_after: float | None = None
    error: BaseException | None = None


class _RetryingCaller:
    """What LiteLLMClient and LiteLLMEmbedder share: classify litellm errors, retry the
    retryable ones with backoff, and raise one redacted LLMError line for the rest."""

    model: str
    timeout: float
    max_retries: int
    retry_backoff: float
    _api_key: str | None
    _call_kind = "LLM call"
    """How messages name one call: 'LLM call to M failed: ...'."""

    async def _retrying(self, attempt: Callable[[], Awaitable[T | _Failure]]) -> T | _Failure:
        """The first success of `attempt()`, or its last retryable failure."""
        for number in range(self.max_retries + 1):
            outcome = await attempt()
            if not isinstance(outcome, _Failure):
                return outcome
            if not outcome.retryable:
                self._raise([_describe(outcome, number + 1)], outcome)
            if number < self.max_retries:
                delay = self._delay(number, outcome.retry_after)
                log.info(
                    "%s %s: %s; retrying in %.2fs",
                    self._call_kind,
                    self.model,
                    outcome.reason,
                    delay,
                )
                await asyncio.sleep(delay)
        return outcome

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        """Exponential backoff with jitter (so many agents don't retry in lockstep)."""
        backoff = self.retry_backoff * (2**attempt) * random.uniform(1.0, 1.5)
        if retry_after is not None:
            return max(backoff, min(retry_after, MAX_RETRY_AFTER))
        return backoff

    def _classify(self, litellm: Any, exc: BaseException) -> _Failure:
        status = getattr(exc, "status_code", None)
        status = status if isinstance(status, int) else None
        retryable, reason = _kind(litellm, exc, status)
        if reason == "timed out":
            reason = f"timed out after {self.timeout:g}s"
        return _Failure(
            reason=reason,
            detail=self._redact(_clean_detail(str(exc))),
            retryable=retryable,
            retry_after=_retry_after(exc),
            error=exc,
        )

    def _raise(self, failures: Sequence[str], last: _Failure) -> NoReturn:
        """LLMError, one line: 'LLM call to M failed: why after N attempts; fallback F: why'."""
        message = f"{self._call_kind} to {self.model} failed: " + "; ".join(failures)
        raise LLMError(self._redact(message), retryable=last.retryable) from last.error

    def _redact(self, text: str) -> str:
        if self._api_key and len(self._api_key) >= 4:
            text = text.replace(self._api_key, "***")
        return text


def wire_model(model: str, request: dict[str, Any]) -> str:
    """The model string handed to litellm. ``openai/NAME`` on a custom api_base (a local or
    self-hosted OpenAI-compatible server) goes through litellm's own httpx handler (provider
    ``hosted_vllm``): the openai SDK's request validation costs ~15 ms of CPU per call there
    (measured with bench/run.py), which is most of the framework's time per step."""
    if request.get("api_base") and model.startswith("openai/"):
        return "hosted_vllm/" + model.removeprefix("openai/")
    return model


class LiteLLMClient(_RetryingCaller):
    """An LLMClient backed by `litellm.acompletion`, with our own retries and fallbacks."""

    def __init__(
        self,
        model: str,
        *,
        api_base: str | None = None,
        api_key: str | None = None,
        context_window: int | None = None,
        fallbacks: Sequence[str] = (),
        timeout: float = 60.0,
        max_retries: int = 2,
        temperature: float | None = None,
        retry_backoff: float = 0.5,
    ) -> None:
        self.model = model
        self.api_base = api_base
        self._api_key = api_key
        self._context_window = context_window
        self.fallbacks = tuple(fallbacks)
        self.timeout = timeout
        self.max_retries = max(0, max_retries)
        self.temperature = temperature
        self.retry_backoff = retry_backoff

    def __repr__(self) -> str:  # never shows the key
        return f"LiteLLMClient(model={self.model!r}, api_base={self.api_base!r})"

    @property
    def context_window(self) -> int:
        """Max input tokens: as configured, else from litellm's model map, else 8192."""
        if self._context_window is None:
            self._context_window = _lookup_context_window(self.model)
        return self._context_window

    @context_window.setter
    def context_window(self, value: int) -> None:
        self._context_window = value

    async def warm(self) -> None:
        """Import litellm and load the tokenizer off the event loop (the first count costs ~1 s)."""
        await asyncio.to_thread(self._warm_sync)

    def _warm_sync(self) -> None:
        _load_litellm()
        _ = self.context_window
        self.count_tokens([{"role": "user", "content": "warm up"}])

    async def aclose(self) -> None:
        """Nothing to close: litellm owns and caches its HTTP clients process-wide."""

    # -- completion ---------------------------------------------------------------------------

    async def complete(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
        *,
        max_tokens: int | None = None,
    ) -> Completion:
        """One model call: retries on the primary model, then each fallback once."""
        request = self._request(messages, tools, max_tokens)
        result = await self._with_retries(request)
        if isinstance(result, Completion):
            return result
        failures = [_describe(result, self.max_retries + 1)]
        for fallback in self.fallbacks:
            outcome = await self._attempt(fallback, request)
            if isinstance(outcome, Completion):
                log.warning("LLM %s failed; fallback %s answered", self.model, fallback)
                return outcome
            failures.append(f"fallback {fallback}: {_describe(outcome, 1)}")
            if not outcome.retryable:
                self._raise(failures, outcome)
        self._raise(failures, result)

    def _request(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
        max_tokens: int | None,
    ) -> dict[str, Any]:
        request: dict[str, Any] = {
            "messages": messages,
            "tools": tools or None,
            "api_base": self.api_base,
            "api_key": self._api_key,
            "timeout": self.timeout,
            "num_retries": 0,  # litellm's own retry loop
            "max_retries": 0,  # the openai SDK's retry loop underneath it
            "drop_params": True,  # e.g. temperature on a model that rejects it
        }
        if max_tokens is not None:
            request["max_tokens"] = max_tokens
        if self.temperature is not None:
            request["temperature"] = self.temperature
        return request

    async def _with_retries(self, request: dict[str, Any]) -> Completion | _Failure:
        """Completion from the primary model, or its last retryable failure."""
        return await self._retrying(lambda: self._attempt(self.model, request))

    async def _attempt(self, model: str, request: dict[str, Any]) -> Completion | _Failure:
        litellm = _load_litellm()
        try:
            response = await litellm.acompletion(model=wire_model(model, request), **request)
        except tuple(litellm.LITELLM_EXCEPTION_TYPES) as exc:
            return self._classify(litellm, exc)
        return _parse_response(response, model)

    # -- tokens -------------------------------------------------------------------------------

    def count_tokens(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None
    ) -> int:
        """Tokens these messages (and tool schemas) take in the prompt, for the context budget.

        litellm picks the model's tokenizer and falls back to tiktoken's cl100k for models it
        does not know; if it still cannot count (odd message shapes), estimate ~4 chars/token.
        """
        litellm = _load_litellm()
        try:
            count = litellm.token_counter(
                model=self.model,
                messages=messages,
                tools=tools or None,
                use_default_image_token_count=True,  # never fetch image URLs to measure them
            )
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            log.debug("token_counter failed for %s (%s); estimating", self.model, exc)
            return _estimate_tokens(messages, tools)
        return int(count)


class LiteLLMEmbedder(_RetryingCaller):
    """An Embedder backed by `litellm.aembedding` (OpenAI, Ollama, vLLM, any OpenAI-compatible
    server), with the chat client's retries and one-line LLMErrors.

    `dimensions` is required, not discovered: the vector index is created before the first
    call, and a model that answers with another size fails loudly instead of corrupting it.
    """

    _call_kind = "embedding call"

    def __init__(
        self,
        model: str,
        *,
        api_base: str | None = None,
        api_key: str | None = None,
        dimensions: int,
        name: str | None = None,
        timeout: float = 30.0,
        max_retries: int = 2,
        retry_backoff: float = 0.5,
    ) -> None:
        self.model = model
        self.name = name or model
        self.dimensions = dimensions
        self.api_base = api_base
        self._api_key = api_key
        self.timeout = timeout
        self.max_retries = max(0, max_retries)
        self.retry_backoff = retry_backoff

    def __repr__(self) -> str:  # never shows the key
        return f"LiteLLMEmbedder(model={self.model!r}, api_base={self.api_base!r})"

    async def embed(self, texts: Sequence[str]) -> Vectors:
        """Vectors in the order of `texts`, in requests of at most EMBEDDING_BATCH texts."""
        import numpy as np

        # OpenAI rejects an empty string as input; a space embeds as "nothing" just as well.
        inputs = [text if text else " " for text in texts]
        parts = [np.zeros((0, self.dimensions), dtype=np.float32)]
        for start in range(0, len(inputs), EMBEDDING_BATCH):
            parts.append(await self._embed_batch(inputs[start : start + EMBEDDING_BATCH]))
        return np.concatenate(parts)

    async def _embed_batch(self, texts: list[str]) -> Vectors:
        result = await self._retrying(lambda: self._attempt(texts))
        if isinstance(result, _Failure):
            self._raise([_describe(result, self.max_retries + 1)], result)
        return result

    async def _attempt(self, texts: list[str]) -> Vectors | _Failure:
        litellm = _load_litellm()
        try:
            response = await litellm.aembedding(
                model=self.model,
                input=texts,
                api_base=self.api_base,
                api_key=self._api_key,
                timeout=self.timeout,
                num_retries=0,
                max_retries=0,
            )
        except tuple(litellm.LITELLM_EXCEPTION_TYPES) as exc:
            return self._classify(litellm, exc)
        return _parse_embeddings(response, len(texts), self.dimensions)


def _parse_embeddings(response: Any, count: int, dimensions: int) -> Vectors | _Failure:
    """L2-normalised float32 rows in input order (providers may answer out of order)."""
    import numpy as np

    items = list(getattr(response, "data", None) or [])
    if len(items) != count:
        return _Failure(
            "malformed response", f"{len(items)} vectors for {count} texts", retryable=True
        )
    rows = [_field(item, "embedding") for item in sorted(items, key=lambda i: _field(i, "index"))]
    sizes = sorted({len(row) for row in rows})
    if sizes != [dimensions]:
        detail = f"got {'/'.join(map(str, sizes))}-dimensional vectors, configured {dimensions}"
        return _Failure("wrong vector size", detail, retryable=False)
    vectors = np.asarray(rows, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.clip(norms, 1e-12, None)


def _field(item: Any, name: str) -> Any:
    """litellm gives embedding items as dicts or as objects, depending on the provider."""
    return item[name] if isinstance(item, dict) else getattr(item, name)


def _kind(litellm: Any, exc: BaseException, status: int | None) -> tuple[bool, str]:
    for name, retryable, label in _ERROR_KINDS:
        cls = getattr(litellm, name, None)
        if cls is not None and isinstance(exc, cls):
            with_status = status is not None and name not in _NO_STATUS_IN_REASON
            return retryable, f"{label} ({status})" if with_status else label
    if status is not None and (status >= 500 or status == 408):
        return True, f"server error ({status})"
    if status is not None:
        return False, f"HTTP error ({status})"
    return False, type(exc).__name__


_PREFIXES = re.compile(r"^(?:litellm\.\w+:\s*)?(?:\w+Error:\s*)?(?:\w+Exception\s*-\s*)?")


def _clean_detail(message: str) -> str:
    """litellm's message without its 'litellm.XError: XError: OpenAIException - ' prefixes."""
    line = " ".join(message.split())
    line = _PREFIXES.sub("", line, count=1)
    if len(line) > _MAX_DETAIL:
        line = line[: _MAX_DETAIL - 1] + "…"
    return line


def _describe(failure: _Failure, attempts: int) -> str:
    tries = f" after {attempts} attempts" if attempts > 1 else ""
    detail = f": {failure.detail}" if failure.detail else ""
    return f"{failure.reason}{tries}{detail}"


def _retry_after(exc: BaseException) -> float | None:
    """Seconds the provider asked us to wait, from retry-after-ms or retry-after (seconds)."""
    headers = getattr(exc, "litellm_response_headers", None)
    if not headers:
        response = getattr(exc, "response", None)
        headers = getattr(response, "headers", None)
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


def _lookup_context_window(model: str) -> int:
    litellm = _load_litellm()
    try:
        info = litellm.get_model_info(model)
    except litellm.ModelNotMappedError:
        log.info(
            "context window of %s unknown; assuming %d (set [llm] context_window)",
            model,
            DEFAULT_CONTEXT_WINDOW,
        )
        return DEFAULT_CONTEXT_WINDOW
    window = info.get("max_input_tokens") or info.get("max_tokens")
    return int(window) if window else DEFAULT_CONTEXT_WINDOW


def _parse_response(response: Any, model: str) -> Completion | _Failure:
    """A Completion from litellm's ModelResponse; a retryable failure if it has no choices."""
    choices = getattr(response, "choices", None)
    if not choices:
        return _Failure("malformed response", "no choices", retryable=True)
    message = choices[0].message
    calls = tuple(
        _parse_tool_call(call, index) for index, call in enumerate(message.tool_calls or ())
    )
    content = message.content
    if content is not None and not isinstance(content, str):
        content = json.dumps(content)
    return Completion(
        text=content or None,
        tool_calls=calls,
        usage=_parse_usage(getattr(response, "usage", None)),
        model=model,
    )


def _parse_tool_call(call: Any, index: int) -> ToolCall:
    """Keep the arguments raw, even if not JSON: the agent loop tells the model what was wrong."""
    function = call.function
    arguments = function.arguments
    if arguments is None:
        arguments = ""
    elif not isinstance(arguments, str):
        arguments = json.dumps(arguments)
    call_id = call.id or f"call_{index}_{uuid.uuid4().hex[:12]}"
    return ToolCall(id=call_id, name=function.name or "", arguments=arguments)


def _parse_usage(usage: Any) -> Usage:
    if usage is None:
        return Usage()
    return Usage(
        prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
        completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
    )


def _estimate_tokens(
    messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None
) -> int:
    """~4 characters per token plus a few per message for the role framing (cl100k-ish)."""
    chars = len(json.dumps(messages, default=str)) + len(json.dumps(tools or [], default=str))
    return chars // 4 + 3 * len(messages) + 1
