"""Export and import round-trip an agent: blocks, messages, summary, context position."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from botmem.agent.retrieval import Retriever
from botmem.agentfile import (
    AgentFileError,
    check_export,
    export_agent,
    import_agent,
    without_messages,
)
from botmem.config import RetrievalSettings
from botmem.letta_agentfile import AgentProfile, to_letta
from botmem.letta_import import read_agent_file
from botmem.stores.base import Passage
from botmem.stores.memory import memory_stores
from botmem.stores.sql import open_sql_stores
from botmem.testing.embeddings import HashEmbedder
from botmem.types import BlockSpec, Message, ToolCall

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def strip(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    """Rows without store ids (they differ between databases)."""
    return [{k: v for k, v in r.items() if k not in ("id", "source_message_ids")} for r in rows]


async def _agent(stores: object) -> None:
    s = stores  # type: ignore[assignment]
    await s.agents.ensure("console:ann")  # type: ignore[attr-defined]
    await s.blocks.attach("console:ann", BlockSpec("human", "Name: Ann", 500, "about her"))  # type: ignore[attr-defined]
    await s.blocks.attach(
        "console:ann",
        BlockSpec("team", "we ship", 900),  # type: ignore[attr-defined]
        shared_name="org",
    )
    msgs = await s.history.append(
        [  # type: ignore[attr-defined]
            Message("console:ann", "user", "hello", NOW, turn_id=1, tokens=5),
            Message(
                "console:ann",
                "assistant",
                None,
                NOW,
                turn_id=1,
                tool_calls=(ToolCall("c1", "send_message", '{"message": "hi"}'),),
            ),
            Message(
                "console:ann",
                "tool",
                "Message sent.",
                NOW,
                turn_id=1,
                tool_call_id="c1",
                name="send_message",
            ),
            Message("console:ann", "user", "later", NOW, turn_id=2),
        ]
    )
    await s.agents.save_summary("console:ann", "Ann said hello.", msgs[3].id)  # type: ignore[attr-defined]
    await s.archival.insert(
        [
            Passage(
                "console:ann",
                "Ann's cat is Tom",
                NOW,
                ("pets",),  # type: ignore[attr-defined]
                (msgs[0].id,),
            )
        ]
    )


async def test_round_trip_between_databases(tmp_path: Path) -> None:
    source = memory_stores(lambda: NOW)
    await _agent(source)
    data = json.loads(json.dumps(await export_agent(source, "console:ann", NOW)))
    target = await open_sql_stores(f"sqlite:///{tmp_path / 'b.db'}", lambda: NOW)
    try:
        retriever = Retriever(target, HashEmbedder(), RetrievalSettings())
        key = await import_agent(target, retriever, data)
        assert key == "console:ann"
        again = await export_agent(target, key, NOW)
        ids = {"messages", "archival"}
        assert {k: v for k, v in again.items() if k not in ids} == {
            k: v for k, v in data.items() if k not in ids
        }
        assert strip(again["messages"]) == strip(data["messages"])
        assert strip(again["archival"]) == strip(data["archival"])
        (passage,) = again["archival"]
        assert passage["source_message_ids"] == [again["messages"][0]["id"]]
        found = await retriever.search_passages(key, "cat", limit=5)
        assert [p.text for p in found] == ["Ann's cat is Tom"]
        state = await target.agents.get(key)
        assert state is not None and state.summary == "Ann said hello."
        in_context = await target.history.since(key, state.context_start_id)
        assert [m.content for m in in_context] == ["later"]
        team = await target.blocks.get(key, "team")
        assert team is not None and team.shared_name == "org"
        with pytest.raises(AgentFileError, match="already exists"):
            await import_agent(target, retriever, data)
        assert await import_agent(target, retriever, data, "console:bob") == "console:bob"
        await import_agent(target, retriever, data, replace=True)
        assert await target.history.count(key) == 4
    finally:
        await target.aclose()


async def test_wrong_files_are_refused() -> None:
    stores = memory_stores()
    retriever = Retriever(stores, HashEmbedder(), RetrievalSettings())
    with pytest.raises(AgentFileError, match="not a botmem agent export"):
        await import_agent(stores, retriever, {"agents": []})
    with pytest.raises(AgentFileError, match="newer"):
        await import_agent(stores, retriever, {"format": "botmem-agent", "version": 99})
    with pytest.raises(AgentFileError, match="no agent"):
        await export_agent(stores, "console:nobody", NOW)


def test_cli_import_and_wipe(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[storage]\ndata_dir = "{tmp_path / "data"}"\n')
    export = {
        "format": "botmem-agent",
        "version": 1,
        "agent_key": "console:cy",
        "summary": "",
        "context_start_index": 0,
        "messages": [],
        "archival": [],
        "blocks": [{"label": "human", "value": "Cy likes tea", "limit": 100}],
    }
    (tmp_path / "cy.json").write_text(json.dumps(export))

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "botmem.cli", *args, "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert cli("memory", "import", str(tmp_path / "cy.json")).returncode == 0
    shown = cli("memory", "show", "--user", "cy")
    assert shown.stdout == "[human] 12/100 chars\nCy likes tea\n\n"
    assert cli("memory", "wipe", "--user", "cy").returncode == 1  # needs --yes
    assert cli("memory", "wipe", "--user", "cy", "--yes").returncode == 0
    gone = cli("memory", "show", "--user", "cy")
    assert gone.returncode == 1 and "no agent 'console:cy'" in gone.stderr
    bad = cli("memory", "import", str(tmp_path / "missing.json"))
    assert bad.returncode == 2 and "cannot read" in bad.stderr


async def test_settings_round_trip_and_a_malformed_export_writes_nothing() -> None:
    source = memory_stores(lambda: NOW)
    await _agent(source)
    settings_ = {"name": "Ann's bot", "model": "openai/x", "timezone": "Europe/Oslo"}
    bookkeeping = {"token_usage": {"day": 5}, "consolidated_through": 99}
    await source.agents.set_metadata("console:ann", {**settings_, **bookkeeping})
    data = json.loads(json.dumps(await export_agent(source, "console:ann", NOW)))
    target = memory_stores(lambda: NOW)
    retriever = Retriever(target, HashEmbedder(), RetrievalSettings())
    key = await import_agent(target, retriever, data, "console:copy")
    state = await target.agents.get(key)
    assert state is not None and state.metadata == settings_  # not this database's counters
    broken = {**data, "messages": [*data["messages"], {"role": "wizard", "created_at": "x"}]}
    with pytest.raises(AgentFileError, match="messages: unknown role 'wizard'"):
        await import_agent(target, retriever, broken, "console:broken")
    no_time = {**data, "archival": [{"text": "t"}]}
    with pytest.raises(AgentFileError, match="archival: missing 'created_at'"):
        await import_agent(target, retriever, no_time, "console:broken")
    assert await target.agents.get("console:broken") is None
    scrubbed = without_messages(data)
    assert scrubbed["messages"] == [] and scrubbed["archival"][0]["source_message_ids"] == []
    assert await import_agent(target, retriever, scrubbed, "console:quiet") == "console:quiet"
    assert await target.history.count("console:quiet") == 0


async def test_a_letta_file_botmem_wrote_reads_back_without_the_botmem_part() -> None:
    """The .af alone (as Letta would see it) keeps blocks, messages, summary and context."""
    source = memory_stores(lambda: NOW)
    await _agent(source)
    export = json.loads(json.dumps(await export_agent(source, "console:ann", NOW)))
    profile = AgentProfile(
        name="ann",
        system="Be kind.",
        agent_type="memgpt_v2_agent",
        llm_config={"model": "m", "model_endpoint_type": "openai", "context_window": 8000},
        tools=[{"name": "send_message", "description": "d", "parameters": {}}],
    )
    document = to_letta(export, profile, NOW, "botmem test")
    assert [t["name"] for t in document["tools"]] == ["send_message"]
    letta_only = {k: v for k, v in json.loads(json.dumps(document)).items() if k != "botmem"}
    (read,) = read_agent_file(letta_only, {"send_message"}, NOW).agents
    assert read["summary"] == "Ann said hello."
    assert read["metadata"]["name"] == "ann" and read["metadata"]["system"] == "Be kind."
    assert [(b["label"], b["value"]) for b in read["blocks"]] == [
        ("human", "Name: Ann"),
        ("team", "we ship"),
    ]
    keep = ("role", "content", "tool_calls", "tool_call_id", "name", "created_at")
    assert [{k: m[k] for k in keep} for m in read["messages"]] == [
        {k: m[k] for k in keep} for m in export["messages"]
    ]
    assert read["context_start_index"] == export["context_start_index"] == 3
    target = memory_stores(lambda: NOW)
    retriever = Retriever(target, HashEmbedder(), RetrievalSettings())
    key = await import_agent(target, retriever, read, "console:letta")
    state = await target.agents.get(key)
    assert state is not None and state.summary == "Ann said hello."
    assert [m.content for m in await target.history.since(key, state.context_start_id)] == ["later"]


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)
_AGENT_FIELDS = st.fixed_dictionaries(
    {"id": st.text(max_size=4)},
    optional={
        k: _JSON
        for k in ("messages", "block_ids", "tool_ids", "in_context_message_ids", "llm_config")
    },
)


@given(
    st.fixed_dictionaries(
        {"agents": st.lists(_AGENT_FIELDS, max_size=2)},
        optional={k: _JSON for k in ("blocks", "tools", "groups", "mcp_servers", "botmem")},
    )
    | _JSON
)
@settings(max_examples=300, deadline=None)
def test_any_json_is_read_or_refused_with_a_reason(data: object) -> None:
    try:
        for export in read_agent_file(data, {"send_message"}, NOW).agents:
            check_export(export)
    except AgentFileError as refused:
        assert str(refused)


@given(
    st.fixed_dictionaries(
        {"format": st.just("botmem-agent"), "version": st.just(2)},
        optional={
            k: _JSON for k in ("agent_key", "metadata", "blocks", "messages", "archival", "summary")
        },
    )
)
@settings(max_examples=300, deadline=None)
def test_any_botmem_export_is_checked_or_refused_with_a_reason(data: dict[str, object]) -> None:
    try:
        check_export(data)
    except AgentFileError as refused:
        assert "malformed botmem agent export" in str(refused)
