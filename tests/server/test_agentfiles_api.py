"""Agent files over the HTTP API, through Letta's client: export an agent as a Letta .af,
import it into another server, import a file Letta wrote, refuse malformed files."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from letta_client import UnprocessableEntityError

from botmem.testing.openai_server import FakeOpenAIServer
from botmem.types import Message, ToolCall
from tests.server.conftest import Served, serve_at

T0 = datetime(2026, 3, 1, 9, tzinfo=UTC)


async def _agent_with_memory(served: Served) -> str:
    """The id of an agent with blocks, a summarized conversation and passages."""
    agent = await served.client.agents.create(
        name="ann's helper",
        system="You are terse.",
        tags=["demo"],
        memory_blocks=[
            {"label": "human", "value": "Name: Ann", "description": "about her", "limit": 300},
            {"label": "persona", "value": "I am Sam.", "read_only": True},
        ],
    )
    key = agent.metadata["agent_key"]
    stored = await served.app.stores.history.append(
        [
            Message(key, "user", "hello, I am Ann", T0, tokens=7),
            Message(key, "assistant", "hi Ann", T0 + timedelta(seconds=1)),
            Message(key, "user", "my cat is Tom", T0 + timedelta(minutes=5)),
            Message(
                key,
                "assistant",
                None,
                T0 + timedelta(minutes=5, seconds=1),
                tool_calls=(ToolCall("c1", "send_message", '{"message": "noted"}'),),
            ),
            Message(
                key,
                "tool",
                "Message sent.",
                T0 + timedelta(minutes=5, seconds=2),
                tool_call_id="c1",
                name="send_message",
            ),
        ]
    )
    await served.app.stores.agents.save_summary(key, "Ann said hello.", stored[2].id or 0)
    await served.client.agents.passages.create(agent.id, text="Ann's cat is Tom", tags=["pets"])
    return agent.id


async def _import(served: Served, document: Any, filename: str = "agent.af", **options: Any) -> Any:
    raw = document if isinstance(document, bytes) else json.dumps(document).encode()
    return await served.client.agents.import_file(
        file=(filename, raw, "application/json"), **options
    )


async def test_export_is_a_letta_agent_file(served: Served) -> None:
    agent_id = await _agent_with_memory(served)
    document = json.loads(await served.client.agents.export_file(agent_id))
    for field in ("agents", "blocks", "tools", "groups", "files", "sources", "mcp_servers"):
        assert isinstance(document[field], list), field
    assert isinstance(document["metadata"], dict) and document["created_at"]
    (agent,) = document["agents"]
    assert agent["name"] == "ann's helper" and agent["system"] == "You are terse."
    assert agent["llm_config"]["model"] == "test-model" and agent["tags"] == ["demo"]
    blocks = {b["id"]: b for b in document["blocks"]}
    labels = {blocks[i]["label"]: blocks[i] for i in agent["block_ids"]}
    assert labels["human"]["value"] == "Name: Ann" and labels["human"]["limit"] == 300
    assert labels["persona"]["read_only"] is True
    tools = {t["id"]: t["name"] for t in document["tools"]}
    assert {tools[i] for i in agent["tool_ids"]} >= {"send_message", "archival_memory_search"}
    messages = {m["id"]: m for m in agent["messages"]}
    roles = [m["role"] for m in agent["messages"]]
    assert roles == ["system", "user", "assistant", "user", "user", "assistant", "tool"]
    in_context = [messages[i] for i in agent["in_context_message_ids"]]
    assert in_context[0]["role"] == "system"
    assert "Ann said hello." in json.loads(in_context[1]["content"][0]["text"])["message"]
    assert [m["content"][0]["text"] for m in in_context[2:3]] == ["my cat is Tom"]
    call, result = in_context[3], in_context[4]
    assert call["tool_calls"][0]["function"]["name"] == "send_message"
    assert result["tool_call_id"] == call["tool_calls"][0]["id"] == "c1"
    assert result["tool_returns"][0]["func_response"] == "Message sent."
    assert document["botmem"]["archival"][0]["text"] == "Ann's cat is Tom"

    scrubbed = json.loads(await served.client.agents.export_file(agent_id, scrub_messages=True))
    assert [m["role"] for m in scrubbed["agents"][0]["messages"]] == ["system"]
    with pytest.raises(UnprocessableEntityError):
        await served.client.agents.export_file(agent_id, use_legacy_format=True)


async def test_export_then_import_into_a_fresh_server_keeps_everything(
    served: Served, tmp_path: Path, fake_llm: FakeOpenAIServer
) -> None:
    agent_id = await _agent_with_memory(served)
    exported = await served.client.agents.export_file(agent_id)
    async with serve_at(tmp_path / "other", fake_llm) as other:
        imported = await _import(other, exported.encode())
        (new_id,) = imported.agent_ids
        assert new_id != agent_id and (imported.model_extra or {})["skipped"] == []
        again = await other.client.agents.retrieve(new_id)
        assert (again.name, again.system, again.tags) == (
            "ann's helper",
            "You are terse.",
            ["demo"],
        )
        values = {b.label: (b.value, b.limit, b.read_only) for b in again.memory.blocks}
        assert values["human"] == ("Name: Ann", 300, False)
        assert values["persona"][0::2] == ("I am Sam.", True)
        new_key = again.metadata["agent_key"]
        history = await other.app.stores.history.since(new_key, 0)
        assert [(m.role, m.content) for m in history] == [
            ("user", "hello, I am Ann"),
            ("assistant", "hi Ann"),
            ("user", "my cat is Tom"),
            ("assistant", None),
            ("tool", "Message sent."),
        ]
        assert history[3].tool_calls == (ToolCall("c1", "send_message", '{"message": "noted"}'),)
        assert history[0].tokens == 7 and history[0].created_at == T0
        state = await other.app.stores.agents.get(new_key)
        assert state is not None and state.summary == "Ann said hello."
        assert state.context_start_id == history[2].id
        found = await other.client.agents.passages.search(new_id, query="cat")
        assert [(r.content, r.tags) for r in found.results] == [("Ann's cat is Tom", ["pets"])]
        copy = await _import(other, exported.encode(), append_copy_suffix=True, strip_messages=True)
        (copy_id,) = copy.agent_ids
        copied = await other.client.agents.retrieve(copy_id)
        assert copied.name == "ann's helper_copy"
        assert await other.app.stores.history.count(copied.metadata["agent_key"]) == 0


def letta_file() -> dict[str, Any]:
    """A small .af as Letta writes it (shape of letta-ai/agent-file's exports): a main agent
    and its sleep-time agent sharing a block, a custom Python tool, a group, an MCP server."""
    common = {
        "memory_blocks": [],
        "tools": [],
        "source_ids": ["source-0"],
        "folder_ids": None,
        "agent_type": "memgpt_agent",
        "initial_message_sequence": None,
        "include_base_tools": False,
        "embedding_config": {
            "embedding_endpoint_type": "openai",
            "embedding_model": "text-embedding-3-small",
            "embedding_dim": 1536,
        },
        "model": None,
        "embedding": None,
        "tool_exec_environment_variables": {"WEATHER_KEY": ""},
        "secrets": None,
        "timezone": "UTC",
        "files_agents": [],
        "group_ids": [],
    }
    system_text = [{"type": "text", "text": "<base_instructions>...</base_instructions>"}]
    main = {
        **common,
        "id": "agent-0",
        "name": "Weatherbot",
        "description": "Tells the weather.",
        "system": "You are Weatherbot.",
        "tags": ["weather"],
        "metadata": {"team": "ops"},
        "block_ids": ["block-0", "block-1"],
        "tool_ids": ["tool-0", "tool-1", "tool-2"],
        "tool_rules": [{"tool_name": "send_message", "type": "exit_loop", "prompt_template": None}],
        "llm_config": {
            "model": "gpt-4.1",
            "model_endpoint_type": "openai",
            "context_window": 128000,
            "handle": "openai/gpt-4.1",
        },
        "in_context_message_ids": ["message-0", "message-2", "message-3", "message-4", "message-5"],
        "messages": [
            _msg("message-0", "system", system_text, "2025-10-21T16:55:56+00:00"),
            _msg("message-1", "user", [_text('{"type": "login"}')], "2025-10-21T16:56:00+00:00"),
            _msg(
                "message-2",
                "user",
                [_text(_alert("Summary: the user lives in Oslo."))],
                "2025-10-22T08:00:00+00:00",
            ),
            _msg("message-3", "user", [_text("weather in Oslo?")], "2025-10-22T08:00:01+00:00"),
            _msg(
                "message-4",
                "assistant",
                [{"type": "reasoning", "reasoning": "call the tool", "is_native": True}],
                "2025-10-22T08:00:02+00:00",
                tool_calls=[
                    {
                        "id": "call_abc",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                    }
                ],
            ),
            _msg(
                "message-5",
                "tool",
                [_text('{"status": "OK", "message": "4C, rain"}')],
                "2025-10-22T08:00:03+00:00",
                name="get_weather",
                tool_call_id="call_abc",
                tool_returns=[
                    {
                        "tool_call_id": "call_abc",
                        "status": "success",
                        "stdout": [],
                        "stderr": [],
                        "func_response": '{"status": "OK", "message": "4C, rain"}',
                    }
                ],
            ),
        ],
    }
    sleeper = {
        **common,
        "id": "agent-1",
        "name": "Weatherbot-sleeptime",
        "system": "You organise memory.",
        "description": None,
        "tags": [],
        "metadata": None,
        "block_ids": ["block-1", "block-2"],
        "tool_ids": ["tool-1"],
        "tool_rules": [],
        "llm_config": None,
        "in_context_message_ids": ["message-6"],
        "messages": [_msg("message-6", "system", system_text, "2025-10-21T16:55:56+00:00")],
    }
    return {
        "agents": [main, sleeper],
        "groups": [
            {
                "agent_ids": ["agent-1"],
                "description": "",
                "manager_config": {"manager_type": "sleeptime", "manager_agent_id": "agent-0"},
                "shared_block_ids": [],
                "id": "group-0",
            }
        ],
        "blocks": [
            _block("block-0", "persona", "I am Weatherbot.", read_only=True),
            _block("block-1", "human", "Lives in Oslo."),
            _block("block-2", "memory_persona", "I tidy memory."),
        ],
        "files": [],
        "sources": [{"id": "source-0", "name": "docs", "embedding_config": None}],
        "tools": [
            _tool("tool-0", "send_message", "letta_core"),
            _tool("tool-1", "core_memory_append", "letta_memory_core"),
            {
                **_tool("tool-2", "get_weather", "custom"),
                "source_code": "def get_weather(city: str) -> str:\n    return 'sunny'\n",
            },
        ],
        "mcp_servers": [
            {"id": "mcp_server-0", "server_type": "sse", "server_name": "maps", "server_url": "x"}
        ],
        "skills": [],
        "metadata": {"revision_id": "3e54e2fa2f7e"},
        "created_at": "2026-02-12T19:12:25.808800+00:00",
    }


def _text(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text, "signature": None}


def _alert(summary: str) -> str:
    message = (
        "Note: prior messages (4 of 10 total messages) have been hidden from view due to "
        f"conversation memory constraints.\nThe following is a summary of the previous messages:\n"
        f" {summary}"
    )
    return json.dumps({"type": "system_alert", "message": message, "time": "2025-10-22"})


def _msg(id_: str, role: str, content: list[Any], at: str, **fields: Any) -> dict[str, Any]:
    base = {"type": "message", "role": role, "content": content, "name": None, "otid": None}
    extra = {"tool_calls": None, "tool_call_id": None, "tool_returns": [], "approvals": []}
    return {**base, "id": id_, "agent_id": "agent-0", **extra, "created_at": at, **fields}


def _block(id_: str, label: str, value: str, read_only: bool = False) -> dict[str, Any]:
    return {
        "value": value,
        "limit": 20000,
        "is_template": False,
        "label": label,
        "read_only": read_only,
        "description": f"the {label} block",
        "metadata": {},
        "id": id_,
    }


def _tool(id_: str, name: str, tool_type: str) -> dict[str, Any]:
    schema = {"name": name, "description": name, "parameters": {"type": "object"}}
    return {
        "id": id_,
        "tool_type": tool_type,
        "description": name,
        "source_type": "python",
        "name": name,
        "tags": [tool_type],
        "source_code": None,
        "json_schema": schema,
        "metadata_": {},
    }


async def test_a_letta_file_imports_what_botmem_understands(served: Served) -> None:
    imported = await _import(served, letta_file(), "weatherbot.af")
    main_id, sleeper_id = imported.agent_ids
    main = await served.client.agents.retrieve(main_id)
    assert (main.name, main.system, main.description) == (
        "Weatherbot",
        "You are Weatherbot.",
        "Tells the weather.",
    )
    assert main.tags == ["weather"] and main.metadata["team"] == "ops"
    assert main.model == "openai/test-model"  # the server's model, not the file's handle
    blocks = {b.label: b for b in main.memory.blocks}
    assert blocks["persona"].value == "I am Weatherbot." and blocks["persona"].read_only
    assert blocks["human"].value == "Lives in Oslo." and blocks["human"].limit == 20000
    key = main.metadata["agent_key"]
    history = await served.app.stores.history.since(key, 0)
    assert [(m.role, m.content) for m in history] == [
        ("user", '{"type": "login"}'),
        ("user", "weather in Oslo?"),
        ("assistant", None),
        ("tool", '{"status": "OK", "message": "4C, rain"}'),
    ]
    assert history[2].tool_calls == (ToolCall("call_abc", "get_weather", '{"city": "Oslo"}'),)
    assert history[3].tool_call_id == "call_abc" and history[3].name == "get_weather"
    assert history[1].created_at == datetime(2025, 10, 22, 8, 0, 1, tzinfo=UTC)
    assert all(m.tokens > 0 for m in history)
    state = await served.app.stores.agents.get(key)
    assert state is not None and state.summary == "Summary: the user lives in Oslo."
    assert state.context_start_id == history[1].id  # the login message is out of context

    sleeper = await served.client.agents.retrieve(sleeper_id)
    sleeper_key = sleeper.metadata["agent_key"]
    assert sleeper.name == "Weatherbot-sleeptime"
    assert await served.app.stores.history.count(sleeper_key) == 0
    await served.app.stores.blocks.edit(key, "human", lambda b: "Moved to Bergen.")
    shared = await served.app.stores.blocks.get(sleeper_key, "human")
    assert shared is not None and shared.value == "Moved to Bergen."  # still one block

    skipped = "\n".join((imported.model_extra or {})["skipped"])
    for expected in (
        "tool get_weather (custom): botmem has no tool of that name",
        "group group-0 (sleeptime of agent-1)",
        "MCP server maps",
        "1 source (folder)(s)",
        "agent Weatherbot: 1 tool rule(s)",
        "agent Weatherbot: tool environment variables and secrets",
        "agent Weatherbot: model openai/gpt-4.1",
    ):
        assert expected in skipped
    assert "send_message" not in skipped and "core_memory_append" not in skipped
    assert "WEATHER_KEY" not in skipped


async def test_import_overrides_name_and_model(served: Served) -> None:
    single = letta_file()
    single["agents"] = single["agents"][:1]
    imported = await _import(served, single, name="Renamed", model="openai/gpt-4.1-mini")
    agent = await served.client.agents.retrieve(imported.agent_ids[0])
    assert (agent.name, agent.model) == ("Renamed", "openai/gpt-4.1-mini")


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"\x89PNG not json", "not UTF-8"),
        (b"{not json", "not JSON"),
        (b"[1, 2]", "not an object"),
        (b'{"hello": 1}', "no 'agents' list"),
        (b'{"agents": []}', "no agents"),
        (b'{"agents": [{"id": "agent-0", "messages": [{"content": "hi"}]}]}', "role"),
        (b'{"agents": [{"name": "x"}]}', "agents.0.id"),
        (b'{"agent_type": "memgpt_agent", "core_memory": []}', "legacy"),
        (b'{"format": "botmem-agent", "version": 1, "agent_key": "a:b", "blocks": [{}]}', "label"),
        (b'{"format": "botmem-agent", "version": 9}', "newer"),
    ],
)
async def test_a_malformed_file_is_422_with_the_reason(
    served: Served, content: bytes, reason: str
) -> None:
    with pytest.raises(UnprocessableEntityError) as refused:
        await _import(served, content)
    assert reason in str(refused.value.body)
    assert await served.app.stores.agents.all() == []  # nothing half-imported
