"""LiteLLMClient and LiteLLMEmbedder: the LLMClient and Embedder for every provider litellm knows.

This is the only module in botmem that imports litellm, and it does so at first use:
`import litellm` costs 4-7 s and ~190 MB, and `botmem --help` must stay instant.

Models of an OpenAI-compatible server (an api_base and openai/ or hosted_vllm/) skip litellm
for botmem.llm.openai_http: ~8 ms less CPU per call, and litellm is never imported then.

Retries are ours, not litellm's (it gets num_retries=0, max_retries=0): that keeps the count
of attempts exact, the backoff in one place, and the fallback order predictable.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from botmem.errors import LLMError
from botmem.llm import tokens
from botmem.llm.base import AGENT_MODEL, Completion, Usage
from botmem.llm.breaker import FAILURES, Breaker
from botmem.llm.failures import (
    KINDS,
    MAX_RETRY_AFTER,
    Failure,
    clean_detail,
    describe,
    redact,
    retry_after,
    status_kind,
    timed_out,
)
from botmem.llm.openai_http import PREFIXES, OpenAIHTTPClient, text_content, tool_call

if TYPE_CHECKING:
    from botmem.embeddings.base import Vectors

log = logging.getLogger(__name__)

DEFAULT_CONTEXT_WINDOW = 8192
MODEL_MAP_FILE = "model_prices_and_context_window_backup.json"
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


_NO_STATUS_IN_REASON = {"Timeout", "APIConnectionError"}  # their status codes are made up


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

    async def _retrying(
        self, attempt: Callable[[], Awaitable[T | Failure]], model: str | None = None
    ) -> T | Failure:
        """The first success of `attempt()`, or its last retryable failure (errors name
        `model`, by default the configured one)."""
        for number in range(self.max_retries + 1):
            outcome = await attempt()
            if not isinstance(outcome, Failure):
                return outcome
            if not outcome.retryable:
                self._raise([describe(outcome, number + 1)], outcome, model)
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

    def _classify(self, litellm: Any, exc: BaseException) -> Failure:
        status = getattr(exc, "status_code", None)
        status = status if isinstance(status, int) else None
        retryable, reason = _kind(litellm, exc, status)
        if reason == "timed out":
            reason = timed_out(self.timeout)
        return Failure(
            reason=reason,
            detail=clean_detail(str(exc), self._api_key),
            retryable=retryable,
            retry_after=_retry_after(exc),
            error=exc,
        )

    def _raise(self, failures: Sequence[str], last: Failure, model: str | None = None) -> NoReturn:
        """LLMError, one line: 'LLM call to M failed: why after N attempts; fallback F: why'."""
        message = f"{self._call_kind} to {model or self.model} failed: " + "; ".join(failures)
        raise LLMError(redact(message, self._api_key), retryable=last.retryable) from last.error


def _provider(model: str) -> str:
    return model.split("/", 1)[0] if "/" in model else ""


def wire_model(model: str, request: dict[str, Any]) -> str:
    """The model string handed to litellm. ``openai/NAME`` on a custom api_base (a local or
    self-hosted OpenAI-compatible server) goes through litellm's own httpx handler (provider
    ``hosted_vllm``): the openai SDK's request validation costs ~15 ms of CPU per call there
    (measured with bench/run.py), which is most of the framework's time per step."""
    if request.get("api_base") and model.startswith("openai/"):
        return "hosted_vllm/" + model.removeprefix("openai/")
    return model


class LiteLLMClient(_RetryingCaller):
    """An LLMClient backed by `litellm.acompletion`, with our own retries and fallbacks.

    With `direct_http` (the default), models of an OpenAI-compatible server at `api_base`
    (openai/NAME, hosted_vllm/NAME) go over botmem's own HTTP client instead.
    """

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
        direct_http: bool = True,
        breaker_cooldown: float = 60.0,
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
        self._breaker = Breaker(breaker_cooldown)
        self._http = (
            OpenAIHTTPClient(api_base, api_key=api_key, timeout=timeout)
            if direct_http and api_base
            else None
        )

    def __repr__(self) -> str:  # never shows the key
        return f"LiteLLMClient(model={self.model!r}, api_base={self.api_base!r})"

    @property
    def context_window(self) -> int:
        """Max input tokens: as configured, else from litellm's model map, else 8192 (on the
        direct path the map is read as a file: importing litellm takes seconds)."""
        if self._context_window is None:
            if self._direct_client(self.model) is None:
                self._context_window = _lookup_context_window(self.model)
            else:
                self._context_window = _offline_context_window(self.model)
        return self._context_window

    @context_window.setter
    def context_window(self, value: int) -> None:
        self._context_window = value

    async def warm(self) -> None:
        """Load the tokenizer, and litellm unless the model goes direct, off the event loop
        (the first count costs ~0.3-1 s)."""
        await asyncio.to_thread(self._warm_sync)

    def _warm_sync(self) -> None:
        if self._direct_client(self.model) is None:
            _load_litellm()
        _ = self.context_window
        self.count_tokens([{"role": "user", "content": "warm up"}])

    async def aclose(self) -> None:
        """Close the direct path's connections (litellm owns and caches its own process-wide)."""
        if self._http is not None:
            await self._http.aclose()

    def _direct_client(self, model: str) -> OpenAIHTTPClient | None:
        """The HTTP client that sends `model` without litellm, if it goes direct."""
        return self._http if model.startswith(PREFIXES) else None

    # -- completion ---------------------------------------------------------------------------

    async def complete(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
        *,
        max_tokens: int | None = None,
    ) -> Completion:
        """One model call: retries on the primary model, then each fallback once. While the
        primary keeps failing (see breaker.py), calls with fallbacks go to them at once."""
        request = self._request(messages, tools, max_tokens)
        chosen = AGENT_MODEL.get()
        if chosen and chosen != self.model:
            return await self._complete_as(chosen, request)
        skipped = self._breaker.open_for() if self.fallbacks else 0.0
        if skipped:
            last = Failure("skipped", f"down, retried in {skipped:.0f}s", retryable=True)
            failures = [f"skipped: failing, tried again in {skipped:.0f}s"]
        else:
            result = await self._with_retries(request)
            if isinstance(result, Completion):
                self._breaker.succeeded()
                return result
            last, failures = result, [describe(result, self.max_retries + 1)]
            if self.fallbacks and self._breaker.failed():
                log.warning(
                    "LLM %s failed %d calls in a row: fallbacks answer for the next %.0fs",
                    self.model,
                    FAILURES,
                    self._breaker.open_for(),
                )
        for fallback in self.fallbacks:
            outcome = await self._attempt(fallback, request)
            if isinstance(outcome, Completion):
                log.warning("LLM %s failed; fallback %s answered", self.model, fallback)
                return outcome
            failures.append(f"fallback {fallback}: {describe(outcome, 1)}")
            if not outcome.retryable:
                self._raise(failures, outcome)
        self._raise(failures, last)

    async def _complete_as(self, model: str, request: dict[str, Any]) -> Completion:
        """A call for an agent that chose its own model: the configured api_base and key
        apply only when it names the configured model's provider (litellm finds the key of
        any other provider in its usual environment variable)."""
        attempt = self._attempt
        if _provider(model) != _provider(self.model):
            request = {**request, "api_base": None, "api_key": None}
            attempt = self._litellm_attempt  # never to the configured server
        result = await self._retrying(lambda: attempt(model, request), model)
        if isinstance(result, Failure):
            self._raise([describe(result, self.max_retries + 1)], result, model)
        return result

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

    async def _with_retries(self, request: dict[str, Any]) -> Completion | Failure:
        """Completion from the primary model, or its last retryable failure."""
        return await self._retrying(lambda: self._attempt(self.model, request))

    async def _attempt(self, model: str, request: dict[str, Any]) -> Completion | Failure:
        http = self._direct_client(model)
        if http is not None:
            return await http.complete(model, request)
        return await self._litellm_attempt(model, request)

    async def _litellm_attempt(self, model: str, request: dict[str, Any]) -> Completion | Failure:
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
        The direct path counts as litellm does, with cl100k, without importing litellm.
        """
        if self._direct_client(self.model) is not None:
            return tokens.count_tokens(messages, tools)
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
            return tokens.estimate_tokens(messages, tools)
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
        if isinstance(result, Failure):
            self._raise([describe(result, self.max_retries + 1)], result)
        return result

    async def _attempt(self, texts: list[str]) -> Vectors | Failure:
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


def _parse_embeddings(response: Any, count: int, dimensions: int) -> Vectors | Failure:
    """L2-normalised float32 rows in input order (providers may answer out of order)."""
    import numpy as np

    items = list(getattr(response, "data", None) or [])
    if len(items) != count:
        return Failure(
            "malformed response", f"{len(items)} vectors for {count} texts", retryable=True
        )
    rows = [_field(item, "embedding") for item in sorted(items, key=lambda i: _field(i, "index"))]
    sizes = sorted({len(row) for row in rows})
    if sizes != [dimensions]:
        detail = f"got {'/'.join(map(str, sizes))}-dimensional vectors, configured {dimensions}"
        return Failure("wrong vector size", detail, retryable=False)
    vectors = np.asarray(rows, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.clip(norms, 1e-12, None)


def _field(item: Any, name: str) -> Any:
    """litellm gives embedding items as dicts or as objects, depending on the provider."""
    return item[name] if isinstance(item, dict) else getattr(item, name)


def _kind(litellm: Any, exc: BaseException, status: int | None) -> tuple[bool, str]:
    for name, _status, retryable, label in KINDS:
        cls = getattr(litellm, name, None)
        if cls is not None and isinstance(exc, cls):
            with_status = status is not None and name not in _NO_STATUS_IN_REASON
            return retryable, f"{label} ({status})" if with_status else label
    if status is not None:
        return status_kind(status)
    return False, type(exc).__name__


def _retry_after(exc: BaseException) -> float | None:
    """The retry-after hint of litellm's exception (its own copy of the headers, or the raw
    response's)."""
    headers = getattr(exc, "litellm_response_headers", None)
    if not headers:
        headers = getattr(getattr(exc, "response", None), "headers", None)
    return retry_after(headers)


def _lookup_context_window(model: str) -> int:
    litellm = _load_litellm()
    try:
        info = litellm.get_model_info(model)
    except litellm.ModelNotMappedError:
        return _default_context_window(model)
    window = info.get("max_input_tokens") or info.get("max_tokens")
    return int(window) if window else DEFAULT_CONTEXT_WINDOW


def _offline_context_window(model: str) -> int:
    """The window from the model map litellm ships, read as a file: as litellm would say it
    for openai/gpt-4o-mini, without importing litellm."""
    path = tokens.litellm_data_file(MODEL_MAP_FILE)
    table = json.loads(path.read_text(encoding="utf-8")) if path else {}
    name = model.split("/", 1)[1] if model.startswith(PREFIXES) else model
    info = table.get(model) or table.get(name) or {}
    window = info.get("max_input_tokens") or info.get("max_tokens")
    return int(window) if window else _default_context_window(model)


def _default_context_window(model: str) -> int:
    log.info(
        "context window of %s unknown; assuming %d (set [llm] context_window)",
        model,
        DEFAULT_CONTEXT_WINDOW,
    )
    return DEFAULT_CONTEXT_WINDOW


def _parse_response(response: Any, model: str) -> Completion | Failure:
    """A Completion from litellm's ModelResponse; a retryable failure if it has no choices."""
    choices = getattr(response, "choices", None)
    if not choices:
        return Failure("malformed response", "no choices", retryable=True)
    message = choices[0].message
    calls = tuple(
        tool_call(call.id, call.function.name, call.function.arguments, index)
        for index, call in enumerate(message.tool_calls or ())
    )
    return Completion(
        text=text_content(message.content),
        tool_calls=calls,
        usage=_parse_usage(getattr(response, "usage", None)),
        model=model,
    )


def _parse_usage(usage: Any) -> Usage:
    if usage is None:
        return Usage()
    return Usage(
        prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
        completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
    )
