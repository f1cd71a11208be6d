"""Stored before processed, one turn at a time per agent, duplicates dropped, crashes replayed."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botmem.app import App
from botmem.llm.base import Completion
from botmem.stores.memory import memory_stores
from botmem.testing import FakeAdapter, ScriptedLLM, call, reply
from botmem.testing.embeddings import HashEmbedder
from tests.helpers import make_settings


@dataclass
class SlowLLM(ScriptedLLM):
    """Replies after a pause and records how many turns of each agent overlap."""

    running: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    peak: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    overall_peak: int = 0

    async def complete(
        self, messages: list[dict[str, Any]], tools: Any = None, *, max_tokens: int | None = None
    ) -> Completion:
        user = str(messages[-1]["content"]).split(":")[0]
        self.running[user] += 1
        self.peak[user] = max(self.peak[user], self.running[user])
        self.overall_peak = max(self.overall_peak, sum(self.running.values()))
        await asyncio.sleep(0.01)
        self.running[user] -= 1
        return reply(f"reply to {messages[-1]['content']}")


async def test_turns_of_one_agent_never_interleave_but_agents_run_concurrently() -> None:
    llm = SlowLLM()
    async with await App.open(
        make_settings(), llm=llm, stores=memory_stores(), embedder=HashEmbedder()
    ) as app:
        chat = FakeAdapter()
        await app.start([chat])
        tasks = [
            await app.handle(chat.inbound(user, f"{user}:{i}"))
            for i in range(8)
            for user in ("u1", "u2", "u3")
        ]
        await asyncio.gather(*[t for t in tasks if t])
    assert dict(llm.peak) == {"u1": 1, "u2": 1, "u3": 1}
    assert llm.overall_peak > 1
    for user in ("u1", "u2", "u3"):  # in order of arrival
        texts = [m.text for m in chat.sent if m.agent_key == f"fake:{user}"]
        assert texts == [f"reply to {user}:{i}" for i in range(8)]


async def test_a_duplicate_delivery_never_gives_a_second_reply() -> None:
    llm = ScriptedLLM(responder=lambda _m: reply("only once"))
    async with await App.open(
        make_settings(), llm=llm, stores=memory_stores(), embedder=HashEmbedder()
    ) as app:
        chat = FakeAdapter()
        await app.start([chat])
        inbound = chat.inbound("ann", "hello", message_id="evt-1")
        tasks = await asyncio.gather(*(app.handle(inbound) for _ in range(200)))
        await asyncio.gather(*[t for t in tasks if t])
        assert sum(1 for t in tasks if t is not None) == 1
        assert [m.text for m in chat.sent] == ["only once"]
        assert await chat.say("ann", "hello", message_id="evt-1") is None  # later, too
        history = await app.stores.history.since("fake:ann", 0)
        assert [m.role for m in history] == ["user", "assistant"]


class Crash(BaseException):
    """Stands in for the process dying: not caught by any boundary."""


def _sqlite_settings(tmp_path: Path) -> Any:
    return make_settings(storage={"data_dir": str(tmp_path / "data")})


async def _start(settings: Any, llm: ScriptedLLM) -> tuple[App, FakeAdapter]:
    app = await App.open(settings, llm=llm, embedder=HashEmbedder())
    chat = FakeAdapter()
    await app.start([chat])
    return app, chat


async def test_a_turn_interrupted_by_a_crash_resumes_without_applying_edits_twice(
    tmp_path: Path,
) -> None:
    settings = _sqlite_settings(tmp_path)
    llm = ScriptedLLM([call("core_memory_append", label="human", content="Name: Zoe"), Crash()])
    app, chat = await _start(settings, llm)
    task = await app.handle(chat.inbound("zoe", "I'm Zoe", message_id="m1"))
    assert task is not None
    with contextlib.suppress(Crash):
        await task
    assert chat.sent == []
    await app.stores.aclose()

    llm2 = ScriptedLLM([reply("Hi Zoe")])
    app2, chat2 = await _start(settings, llm2)
    await app2.router.drain()
    assert [m.text for m in chat2.sent] == ["Hi Zoe"]
    human = await app2.stores.blocks.get("fake:zoe", "human")
    assert human is not None and human.value.count("Name: Zoe") == 1
    assert "Name: Zoe" in llm2.tool_requests[0].system
    assert await app2.stores.inbox.unfinished() == []
    await app2.aclose()


async def test_a_crash_between_an_edit_and_its_result_does_not_repeat_the_edit(
    tmp_path: Path,
) -> None:
    settings = _sqlite_settings(tmp_path)
    llm = ScriptedLLM([call("core_memory_append", label="human", content="likes jazz")])
    app, chat = await _start(settings, llm)
    real_append = app.stores.history.append

    async def crash_on_tool_result(messages: Any) -> Any:
        if messages[0].role == "tool":
            raise Crash()
        return await real_append(messages)

    app.stores.history.append = crash_on_tool_result  # type: ignore[method-assign]
    task = await app.handle(chat.inbound("ray", "I like jazz", message_id="m1"))
    assert task is not None
    with contextlib.suppress(Crash):
        await task
    human = await app.stores.blocks.get("fake:ray", "human")
    assert human is not None and human.value.count("likes jazz") == 1  # applied, result lost
    await app.stores.aclose()

    llm2 = ScriptedLLM([reply("Jazz, nice")])
    app2, chat2 = await _start(settings, llm2)
    await app2.router.drain()
    assert [m.text for m in chat2.sent] == ["Jazz, nice"]
    human = await app2.stores.blocks.get("fake:ray", "human")
    assert human is not None and human.value.count("likes jazz") == 1
    await app2.aclose()


async def test_a_reply_not_yet_delivered_is_sent_after_restart(tmp_path: Path) -> None:
    settings = _sqlite_settings(tmp_path)
    app, chat = await _start(settings, ScriptedLLM([reply("answer")]))

    async def broken_send(message: Any) -> None:
        raise ConnectionError("platform down")

    chat.send = broken_send  # type: ignore[method-assign]
    task = await app.handle(chat.inbound("sam", "question", message_id="m1"))
    assert task is not None
    await task
    await app.aclose()

    llm2 = ScriptedLLM()  # no LLM call may happen: the reply is already stored
    app2, chat2 = await _start(settings, llm2)
    await app2.router.drain()
    assert [m.text for m in chat2.sent] == ["answer"]
    assert llm2.requests == []
    await app2.aclose()


async def test_a_poison_message_is_given_up_after_repeated_crashes(tmp_path: Path) -> None:
    settings = _sqlite_settings(tmp_path)
    app, chat = await _start(settings, ScriptedLLM([Crash()]))
    task = await app.handle(chat.inbound("pat", "boom", message_id="m1"))
    assert task is not None
    with contextlib.suppress(Crash):
        await task
    await app.stores.aclose()
    for _ in range(3):
        app, chat = await _start(settings, ScriptedLLM([Crash()]))
        await asyncio.gather(*list(app.router._tasks), return_exceptions=True)
        await app.stores.aclose()
    app, chat = await _start(settings, ScriptedLLM())
    await app.router.drain()
    assert chat.sent == [] and await app.stores.inbox.unfinished() == []
    await app.aclose()


async def test_shared_block_edits_from_many_agents_all_survive(tmp_path: Path) -> None:
    settings = make_settings(
        storage={"data_dir": str(tmp_path / "data")},
        agent={"blocks": [{"label": "team", "shared": "org", "limit": 100_000}]},
    )

    def responder(messages: list[dict[str, Any]]) -> Any:
        if messages[-1]["role"] == "tool":
            return reply("noted")
        user = messages[-1]["content"]
        return call("core_memory_append", label="team", content=f"fact from {user}")

    app, chat = await _start(settings, ScriptedLLM(responder=responder))
    tasks = [await app.handle(chat.inbound(f"u{i}", f"u{i}")) for i in range(30)]
    await asyncio.gather(*[t for t in tasks if t])
    team = await app.stores.blocks.get("fake:u0", "team")
    assert team is not None
    assert sorted(team.value.split("\n")) == sorted(f"fact from u{i}" for i in range(30))
    other = await app.stores.blocks.get("fake:u29", "team")
    assert other is not None and other.id == team.id
    await app.aclose()
