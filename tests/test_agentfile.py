"""Export and import round-trip an agent: blocks, messages, summary, context position."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from botmem.agent.retrieval import Retriever
from botmem.agentfile import AgentFileError, export_agent, import_agent
from botmem.config import RetrievalSettings
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
