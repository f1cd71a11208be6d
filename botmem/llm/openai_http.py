"""Chat completions from an OpenAI-compatible server (vLLM, llama.cpp, LM Studio, ...) over
plain httpx: litellm costs ~8-10 ms of CPU per call there (this: ~2 ms) and 4-7 s to import.

One attempt per call: LiteLLMClient retries, falls back and raises, as for litellm's answers,
and failures get the same reasons (botmem.llm.failures).
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import httpx

from botmem.llm.base import Completion, Usage
from botmem.llm.failures import (
    CONTEXT_EXCEEDED,
    Failure,
    clean_detail,
    retry_after,
    status_kind,
    timed_out,
)
from botmem.types import ToolCall

PREFIXES = ("openai/", "hosted_vllm/")
"""Model strings that name a model of an OpenAI-compatible server."""
_BODY_FIELDS = ("messages", "tools", "max_tokens", "temperature")
# What servers say on a 400 for a prompt over the window (OpenAI, vLLM, llama.cpp, ...).
_CONTEXT_MESSAGE = re.compile(r"context[ _](?:length|window|size|limit)", re.IGNORECASE)


def served_name(model: str) -> str:
    """The name the server knows: 'openai/NAME' or 'hosted_vllm/NAME' → 'NAME'."""
    for prefix in PREFIXES:
        if model.startswith(prefix):
            return model.removeprefix(prefix)
    return model


class OpenAIHTTPClient:
    """POSTs {api_base}/chat/completions on one shared httpx.AsyncClient (made at first use)."""

    def __init__(self, api_base: str, *, api_key: str | None, timeout: float) -> None:
        self.url = api_base.rstrip("/") + "/chat/completions"
        self._api_key = api_key
        self.timeout = timeout
        self._client: httpx.AsyncClient | None = None

    async def complete(self, model: str, request: dict[str, Any]) -> Completion | Failure:
        """One attempt: `request` holds the messages, tools and options (None: left out)."""
        body = {"model": served_name(model)}
        body.update((k, request[k]) for k in _BODY_FIELDS if request.get(k) is not None)
        try:
            response = await self._http().post(self.url, json=body)
        except httpx.TimeoutException as exc:
            return self._transport_failure(timed_out(self.timeout), exc)
        except httpx.RequestError as exc:  # refused, reset, bad TLS, an undecodable body...
            return self._transport_failure("connection failed", exc)
        if response.status_code >= 300:
            return self._status_failure(response)
        return _parse_completion(response.content, model)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
            self._client = httpx.AsyncClient(timeout=self.timeout, headers=headers)
        return self._client

    def _transport_failure(self, reason: str, exc: httpx.RequestError) -> Failure:
        detail = clean_detail(str(exc) or type(exc).__name__, self._api_key)
        return Failure(reason, detail, retryable=True, error=exc)

    def _status_failure(self, response: httpx.Response) -> Failure:
        status, body = response.status_code, response.text
        retryable, reason = status_kind(status)
        if status == 400 and _CONTEXT_MESSAGE.search(body):
            retryable, reason = False, f"{CONTEXT_EXCEEDED} ({status})"
        detail = clean_detail(body, self._api_key)
        return Failure(reason, detail, retryable, retry_after(response.headers))


def _parse_completion(content: bytes, model: str) -> Completion | Failure:
    """A Completion from the response body; a retryable failure if it is not one."""
    try:
        payload = json.loads(content)
    except ValueError:
        return _malformed(f"not JSON: {content[:80]!r}")
    choices = payload.get("choices") if isinstance(payload, dict) else None
    message = choices[0].get("message") if choices and isinstance(choices[0], dict) else None
    if not isinstance(message, dict):
        return _malformed("no choices")
    calls = message.get("tool_calls") or ()
    return Completion(
        text=text_content(message.get("content")),
        tool_calls=tuple(_parse_tool_call(call, index) for index, call in enumerate(calls)),
        usage=_parse_usage(payload.get("usage")),
        model=model,
    )


def _malformed(detail: str) -> Failure:
    return Failure("malformed response", detail, retryable=True)


def _parse_tool_call(call: Any, index: int) -> ToolCall:
    call = call if isinstance(call, dict) else {}
    function = call.get("function") if isinstance(call.get("function"), dict) else {}
    return tool_call(call.get("id"), function.get("name"), function.get("arguments"), index)


def _parse_usage(usage: Any) -> Usage:
    if not isinstance(usage, dict):
        return Usage()
    return Usage(
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
    )


def text_content(content: Any) -> str | None:
    """The message text; None for no text (an empty string, or a tool-calls-only answer)."""
    if content is not None and not isinstance(content, str):
        content = json.dumps(content)
    return content or None


def tool_call(call_id: Any, name: Any, arguments: Any, index: int) -> ToolCall:
    """Keep the arguments raw, even if not JSON: the agent loop tells the model what was wrong.
    A missing id is made up (unique: the tool result must name its call)."""
    if arguments is None:
        arguments = ""
    elif not isinstance(arguments, str):
        arguments = json.dumps(arguments)
    call_id = call_id or f"call_{index}_{uuid.uuid4().hex[:12]}"
    return ToolCall(id=call_id, name=name or "", arguments=arguments)
