"""FakeOpenAIServer over plain HTTP/1.1 (no litellm): routes, scripting, keep-alive."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from botmem.testing.openai_server import FakeOpenAIServer, Reply, error, text, tool_call


async def http(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
) -> tuple[int, dict[str, str], dict[str, Any]]:
    """One request on an open connection; returns status, headers, JSON body."""
    data = json.dumps(body).encode() if body is not None else b""
    head = f"{method} {path} HTTP/1.1\r\nhost: x\r\ncontent-length: {len(data)}\r\n\r\n"
    writer.write(head.encode() + data)
    await writer.drain()
    raw_head = await reader.readuntil(b"\r\n\r\n")
    status_line, *lines = raw_head.decode().strip().split("\r\n")
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
    payload = json.loads(await reader.readexactly(int(headers["content-length"])))
    return int(status_line.split()[1]), headers, payload


async def test_models_and_chat_share_one_kept_alive_connection() -> None:
    async with FakeOpenAIServer() as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        status, _, models = await http(reader, writer, "GET", "/v1/models")
        assert status == 200
        assert models["data"][0]["id"] == "test-model"
        for _ in range(3):
            status, headers, reply = await http(
                reader,
                writer,
                "POST",
                "/v1/chat/completions",
                {"model": "m", "messages": [{"role": "user", "content": "hi"}]},
            )
            assert status == 200
            assert headers["connection"] == "keep-alive"
            assert reply["object"] == "chat.completion"
            assert reply["choices"][0]["message"]["content"] == "ok"
            assert reply["usage"]["prompt_tokens"] > 0
        writer.close()
    assert len(server.requests) == 3


async def test_queue_comes_before_the_responder() -> None:
    def responder(body: dict[str, Any]) -> Reply:
        return text(f"echo {body['messages'][-1]['content']}")

    async with FakeOpenAIServer(responder) as server:
        server.queue(tool_call("f", {"x": 1}), error(503, "busy"))
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        request = {"model": "m", "messages": [{"role": "user", "content": "yo"}]}
        _, _, first = await http(reader, writer, "POST", "/v1/chat/completions", request)
        status, _, second = await http(reader, writer, "POST", "/v1/chat/completions", request)
        _, _, third = await http(reader, writer, "POST", "/v1/chat/completions", request)
        writer.close()
    call = first["choices"][0]["message"]["tool_calls"][0]
    assert call["function"] == {"name": "f", "arguments": '{"x": 1}'}
    assert first["choices"][0]["finish_reason"] == "tool_calls"
    assert status == 503 and second["error"]["message"] == "busy"
    assert third["choices"][0]["message"]["content"] == "echo yo"


async def test_a_failing_responder_becomes_a_500() -> None:
    def responder(body: dict[str, Any]) -> Reply:
        raise RuntimeError("bug in the test")

    async with FakeOpenAIServer(responder) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        status, _, body = await http(reader, writer, "POST", "/v1/chat/completions", {})
        writer.close()
    assert status == 500
    assert "bug in the test" in body["error"]["message"]


async def test_unknown_route_is_404() -> None:
    async with FakeOpenAIServer() as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        status, _, _ = await http(reader, writer, "GET", "/nope")
        writer.close()
    assert status == 404
