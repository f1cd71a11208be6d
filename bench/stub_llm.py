"""An OpenAI-compatible stub LLM for the benchmarks, in its own process so that it never shares
the measured bot's event loop or core time slices with it more than a real server would.

It answers at once: on the first step of a turn it calls a memory tool (alternately
`core_memory_append` and `conversation_search`), on the next it replies with text; requests
without tools (the summarizer's) get a short summary. Usage:

    python bench/stub_llm.py          # prints its base URL (http://127.0.0.1:PORT/v1), then serves
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from botmem.testing.openai_server import FakeOpenAIServer, Reply, text, tool_call

_turns = itertools.count()


def respond(body: dict[str, Any]) -> Reply:
    if not body.get("tools"):
        return text("The person chatted about their day; nothing else of note.")
    last = body["messages"][-1]
    if last.get("role") == "tool":
        return text("Noted, thanks for telling me.")
    n = next(_turns)
    if n % 2:
        return tool_call("conversation_search", {"query": f"topic {n % 7}"})
    return tool_call("core_memory_append", {"label": "human", "content": f"fact {n}"})


async def serve() -> None:
    server = FakeOpenAIServer(respond, models=("stub",))
    async with server:
        print(server.base_url, flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(serve())
