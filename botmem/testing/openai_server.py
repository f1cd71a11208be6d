"""A fake OpenAI-compatible chat server on 127.0.0.1, for tests and benchmarks.

It runs on asyncio streams in the caller's own event loop (no thread, no new dependency) and
speaks just enough HTTP/1.1 for httpx: Content-Length bodies and keep-alive, because litellm
reuses its connections and a benchmark sends thousands of requests.

    async with FakeOpenAIServer() as server:
        server.queue(tool_call("core_memory_append", {"label": "human", "content": "Bob"}))
        server.queue(text("Nice to meet you, Bob"))
        ...  # point the client at server.base_url
        assert server.requests[0]["model"] == "test-model"

Queued replies are served first, in order; when the queue is empty, `responder(body)` decides
(by default every request gets the text "ok").

`/v1/embeddings` answers each input with `embedder(text)` (by default HashEmbedder's vectors,
see botmem.testing.embeddings); `server.queue_embeddings(error(429))` makes it fail first.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import struct
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from http import HTTPStatus
from types import TracebackType
from typing import Any

from botmem.testing.embeddings import hash_vector

Responder = Callable[[dict[str, Any]], "Reply"]
EmbedFunction = Callable[[str], list[float]]


@dataclass(frozen=True)
class FakeToolCall:
    """One tool call in a scripted reply. `arguments` is sent verbatim (it may be bad JSON)."""

    name: str
    arguments: str
    id: str | None = None
    """None: the server makes one up; "": the server sends an empty id."""


@dataclass(frozen=True)
class Reply:
    """What the server answers to one chat completion request."""

    content: str | None = None
    tool_calls: tuple[FakeToolCall, ...] = ()
    status: int = 200
    error_message: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    """Seconds to wait before answering, to provoke client timeouts."""


def text(content: str, *, delay: float = 0.0) -> Reply:
    """A plain assistant message."""
    return Reply(content=content, delay=delay)


def tool_call(
    name: str,
    arguments: Mapping[str, Any] | str,
    *,
    id: str | None = None,
    content: str | None = None,
) -> Reply:
    """An assistant message with one tool call; a str `arguments` is sent as is (even if bad)."""
    raw = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return Reply(content=content, tool_calls=(FakeToolCall(name, raw, id),))


def tool_calls(*replies: Reply, content: str | None = None) -> Reply:
    """Several tool calls in one assistant message: `tool_calls(tool_call(...), tool_call(...))`."""
    calls = tuple(call for reply in replies for call in reply.tool_calls)
    return Reply(content=content, tool_calls=calls)


def error(
    status: int = 500,
    message: str = "internal error",
    *,
    headers: Mapping[str, str] | None = None,
) -> Reply:
    """An OpenAI-style error body with this HTTP status (e.g. 429 with a retry-after header)."""
    return Reply(status=status, error_message=message, headers=dict(headers or {}))


def delayed(reply: Reply, seconds: float) -> Reply:
    """The same reply, sent after `seconds`."""
    return replace(reply, delay=seconds)


def _default_responder(body: dict[str, Any]) -> Reply:
    return text("ok")


class FakeOpenAIServer:
    """An OpenAI-compatible `/v1/chat/completions`, `/v1/embeddings` and `/v1/models` server
    on 127.0.0.1:0."""

    def __init__(
        self,
        responder: Responder = _default_responder,
        *,
        models: tuple[str, ...] = ("test-model",),
        embedder: EmbedFunction = hash_vector,
    ) -> None:
        self.responder = responder
        self.models = models
        self.embedder = embedder
        self.embedding_requests: list[dict[str, Any]] = []
        """Parsed JSON bodies received at /v1/embeddings, in arrival order."""
        self._embedding_queue: deque[Reply] = deque()
        self.requests: list[dict[str, Any]] = []
        """Parsed JSON bodies received at /v1/chat/completions, in arrival order."""
        self.headers: list[dict[str, str]] = []
        """Request headers (lower-cased names) parallel to `requests`."""
        self._queue: deque[Reply] = deque()
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._ids = itertools.count(1)
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def queue(self, *replies: Reply) -> None:
        """Serve these replies, in order, before falling back to the responder."""
        self._queue.extend(replies)

    def queue_embeddings(self, *replies: Reply) -> None:
        """Answer the next /v1/embeddings requests with these (only status, error_message,
        headers and delay count: use `error(...)`, or `text("")` for one normal answer)."""
        self._embedding_queue.extend(replies)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve_connection, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        # Python 3.11's wait_closed() does not end kept-alive connections: end them here.
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    async def __aenter__(self) -> FakeOpenAIServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            while await self._serve_one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # the client went away mid-request; nothing to answer
        except asyncio.CancelledError:
            # Only stop() cancels these tasks; ending quietly keeps asyncio's streams callback
            # from logging the cancellation as an "unhandled exception in client_connected_cb".
            pass
        finally:
            self._connections.discard(task)
            writer.close()
            # a cancelled task's wait_closed() is cancelled too: the connection is over anyway
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()

    async def _serve_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Answer one request; False when the connection should close."""
        head = await reader.readuntil(b"\r\n\r\n")
        method, path, headers = _parse_head(head)
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        try:
            status, payload, extra, delay = self._route(method, path, headers, body)
        except Exception as exc:  # the server's boundary: a broken responder becomes a 500
            payload = _error_payload(f"responder failed: {exc!r}", 500)
            status, extra, delay = 500, {}, 0.0
        if delay:
            await asyncio.sleep(delay)
        keep_alive = headers.get("connection", "").lower() != "close"
        writer.write(_encode_response(status, payload, extra, keep_alive))
        await writer.drain()
        return keep_alive

    def _route(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, Any], Mapping[str, str], float]:
        path = path.split("?", 1)[0].rstrip("/")
        if method == "GET" and path.endswith("/models"):
            return 200, self._models_payload(), {}, 0.0
        if method == "POST" and path.endswith("/chat/completions"):
            return self._chat(headers, body)
        if method == "POST" and path.endswith("/embeddings"):
            return self._embeddings(body)
        return 404, _error_payload(f"no route for {method} {path}", 404), {}, 0.0

    def _chat(
        self, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, Any], Mapping[str, str], float]:
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            return 400, _error_payload("request body is not JSON", 400), {}, 0.0
        self.requests.append(request)
        self.headers.append(headers)
        if request.get("stream"):
            return 400, _error_payload("this fake server does not stream", 400), {}, 0.0
        reply = self._queue.popleft() if self._queue else self.responder(request)
        if reply.status != 200:
            payload = _error_payload(reply.error_message, reply.status)
            return reply.status, payload, reply.headers, reply.delay
        return 200, self._completion_payload(request, reply), reply.headers, reply.delay

    def _embeddings(self, body: bytes) -> tuple[int, dict[str, Any], Mapping[str, str], float]:
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            return 400, _error_payload("request body is not JSON", 400), {}, 0.0
        self.embedding_requests.append(request)
        reply = self._embedding_queue.popleft() if self._embedding_queue else Reply()
        if reply.status != 200:
            payload = _error_payload(reply.error_message, reply.status)
            return reply.status, payload, reply.headers, reply.delay
        return 200, self._embeddings_payload(request), reply.headers, reply.delay

    def _embeddings_payload(self, request: dict[str, Any]) -> dict[str, Any]:
        texts = request.get("input", [])
        texts = [texts] if isinstance(texts, str) else texts
        as_base64 = request.get("encoding_format") == "base64"
        data = [
            {"object": "embedding", "index": i, "embedding": _vector(self.embedder(t), as_base64)}
            for i, t in enumerate(texts)
        ]
        tokens = sum(max(1, len(str(t)) // 4) for t in texts)
        return {
            "object": "list",
            "data": data,
            "model": request.get("model", ""),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    def _models_payload(self) -> dict[str, Any]:
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in self.models]
        return {"object": "list", "data": data}

    def _completion_payload(self, request: dict[str, Any], reply: Reply) -> dict[str, Any]:
        n = next(self._ids)
        message: dict[str, Any] = {"role": "assistant", "content": reply.content}
        if reply.tool_calls:
            message["tool_calls"] = [
                _tool_call_payload(call, f"call_fake_{n}_{i}")
                for i, call in enumerate(reply.tool_calls)
            ]
        prompt_tokens = max(1, len(json.dumps(request.get("messages", []))) // 4)
        completion_tokens = max(1, len(json.dumps(message)) // 4)
        return {
            "id": f"chatcmpl-fake-{n}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": request.get("model", ""),
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": "tool_calls" if reply.tool_calls else "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }


def _tool_call_payload(call: FakeToolCall, default_id: str) -> dict[str, Any]:
    return {
        "id": default_id if call.id is None else call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments},
    }


def _vector(values: list[float], as_base64: bool) -> list[float] | str:
    """A JSON list, or little-endian float32 in base64 (what the openai SDK asks for)."""
    if not as_base64:
        return values
    return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()


_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
}


def _error_payload(message: str, status: int) -> dict[str, Any]:
    # Not OpenAI's "invalid_request_error" for every 4xx: litellm maps that string to
    # BadRequestError whatever the status, and tests want 401 to arrive as an auth error.
    kind = "server_error" if status >= 500 else _ERROR_TYPES.get(status, "api_error")
    return {"error": {"message": message, "type": kind, "param": None, "code": str(status)}}


def _parse_head(head: bytes) -> tuple[str, str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    method, path, _version = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    return method, path, headers


def _encode_response(
    status: int, payload: dict[str, Any], extra: Mapping[str, str], keep_alive: bool
) -> bytes:
    body = json.dumps(payload).encode()
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Status"
    lines = [
        f"HTTP/1.1 {status} {reason}",
        "content-type: application/json",
        f"content-length: {len(body)}",
        f"connection: {'keep-alive' if keep_alive else 'close'}",
        *(f"{name}: {value}" for name, value in extra.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
