"""The /admin pages over HTTP (httpx against `botmem serve`): logging in, every page, and
every action, checked in the database, the next prompt and the audit log."""

from __future__ import annotations

import html
import json
import logging
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from botmem.events import InboundMessage
from botmem.server.api_adapter import ApiAdapter
from botmem.server.ids import agent_id
from botmem.server.serve import http_api
from botmem.stores.base import Passage
from botmem.stores.jobs import Job
from botmem.stores.steps import StepRecord
from botmem.testing.openai_server import text, tool_call
from botmem.types import BlockSpec
from tests.server.conftest import API_KEY, Served

ANN = "telegram:42"
BOB = "telegram:43"
NOW = datetime.now(UTC)


@pytest.fixture
async def admin(served: Served) -> AsyncIterator[httpx.AsyncClient]:
    """A browser-like client logged in as "ann"."""
    async with httpx.AsyncClient(base_url=served.url) as client:
        response = await client.post("/admin/login", data={"name": "ann", "key": API_KEY})
        assert response.status_code == 303
        yield client


async def page(client: httpx.AsyncClient, path: str) -> str:
    response = await client.get(path)
    assert response.status_code == 200, response.text
    return response.text


def token(page_html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page_html)
    assert found, "no form token on the page"
    return found.group(1)


async def post(
    client: httpx.AsyncClient, path: str, data: dict[str, str] | None = None
) -> httpx.Response:
    """A form POST as the page would send it (with the token from the agent list)."""
    form = {"csrf": token(await page(client, "/admin")), **(data or {})}
    return await client.post(path, data=form)


async def make_agent(served: Served, key: str = ANN, human: str = "Name: Ann.") -> str:
    await served.app.runner.ensure_agent(key)
    await served.app.stores.blocks.edit(key, "human", lambda _block: human)
    return agent_id(key)


async def block_value(served: Served, key: str, label: str = "human") -> str:
    block = await served.app.stores.blocks.get(key, label)
    assert block is not None
    return block.value


def checkin_job(payload: dict[str, str]) -> Job:
    at = datetime(2031, 5, 1, 10, tzinfo=UTC)
    return Job(ANN, "checkin", f"at:{at.isoformat()}", "UTC", at, payload)


async def run_turn(served: Served, key: str, message_id: str, said: str = "hi") -> None:
    turn = await served.app.handle(
        InboundMessage(source="api", message_id=message_id, agent_key=key, text=said, user_id=key)
    )
    assert turn is not None
    await turn


# --- logging in -----------------------------------------------------------------------


async def test_login_sets_a_signed_session_cookie_and_a_wrong_key_is_refused(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with httpx.AsyncClient(base_url=served.url) as client:
        away = await client.get("/admin")
        assert (away.status_code, away.headers["location"]) == (303, "/admin/login")
        form = await page(client, "/admin/login")
        assert '<form id="login" method="post" action="/admin/login">' in form
        assert '<input name="key" type="password"' in form

        wrong = await client.post("/admin/login", data={"name": "mallory", "key": "guess"})
        assert wrong.status_code == 401
        assert "set-cookie" not in wrong.headers
        assert re.search(r'<p class="error" role="alert">[^<]*wrong key', wrong.text)
        assert (await client.get("/admin")).status_code == 303

        right = await client.post("/admin/login", data={"name": "ann", "key": API_KEY})
        assert (right.status_code, right.headers["location"]) == (303, "/admin")
        cookie = right.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
        assert API_KEY not in cookie
        assert '<table id="agents">' in await page(client, "/admin")

        value = client.cookies["botmem_admin"]
        client.cookies.set("botmem_admin", value[:-2] + "xx", path="/admin")
        assert (await client.get("/admin")).status_code == 303  # a forged signature
    assert "admin mallory: login refused (wrong key)" in caplog.text
    assert "admin ann: logged in" in caplog.text


async def test_a_name_cannot_forge_audit_log_lines(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with httpx.AsyncClient(base_url=served.url) as client:
        forged = "eve\nadmin root: wiped telegram:1"
        await client.post("/admin/login", data={"name": forged, "key": API_KEY})
    lines = [r.getMessage() for r in caplog.records if "logged in" in r.getMessage()]
    assert lines == ["admin eveadmin root: wiped telegram:1: logged in from 127.0.0.1"]


async def test_the_session_does_not_open_the_api_and_logout_ends_it(
    served: Served, admin: httpx.AsyncClient
) -> None:
    assert (await admin.get("/v1/agents/")).status_code == 401  # the API wants the bearer key
    assert (await post(admin, "/admin/logout")).status_code == 303
    assert (await admin.get("/admin")).status_code == 303


async def test_a_form_without_the_sessions_token_changes_nothing(
    served: Served, admin: httpx.AsyncClient
) -> None:
    id_ = await make_agent(served)
    forged = await admin.post(
        f"/admin/agents/{id_}/blocks/human", data={"value": "pwned", "version": "2"}
    )
    assert forged.status_code == 403
    assert await block_value(served, ANN) == "Name: Ann."
    assert (await admin.post(f"/admin/agents/{id_}/wipe/confirm", data={})).status_code == 403
    assert await served.app.stores.agents.get(ANN) is not None


async def test_without_an_api_key_nobody_logs_in_and_changes_are_by_local(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    id_ = await make_agent(served)
    async with (
        http_api(served.app, ApiAdapter(), host="127.0.0.1", port=0, key=None) as url,
        httpx.AsyncClient(base_url=url) as client,
    ):
        assert (await client.get("/admin/login")).headers["location"] == "/admin"
        agent_page = await page(client, f"/admin/agents/{id_}")
        assert 'id="logout"' not in agent_page
        saved = await client.post(
            f"/admin/agents/{id_}/blocks/human",
            data={"value": "Name: Ann B.", "version": "2", "csrf": token(agent_page)},
        )
        assert saved.status_code == 303
    assert await block_value(served, ANN) == "Name: Ann B."
    assert "admin local: edited telegram:42 block 'human'" in caplog.text


# --- the pages ------------------------------------------------------------------------


async def test_the_agents_list_shows_every_agent_with_full_blocks_highlighted(
    served: Served, admin: httpx.AsyncClient
) -> None:
    await make_agent(served)
    await make_agent(served, BOB, "x" * 4500)  # over 80% of the 5,000 default limit
    served.llm.queue(text("Hello."))
    await run_turn(served, ANN, "m1")
    listed = await page(admin, "/admin")
    for key in (ANN, BOB):
        assert f'<tr data-agent-key="{key}"' in listed
        assert f'<a href="/admin/agents/{agent_id(key)}">' in listed
    rows = dict(re.findall(r'<tr data-agent-key="([^"]+)"[^>]*?( class="over-limit")?>', listed))
    assert rows == {ANN: "", BOB: ' class="over-limit"'}
    assert re.search(r'<section id="messages-chart"[^>]*>.*?<svg', listed, re.S)
    assert '<form id="search" method="get"' in listed and 'id="logout"' in listed

    ann_only = await page(admin, "/admin?q=:42")
    assert ANN in ann_only and f'data-agent-key="{BOB}"' not in ann_only
    assert f'data-agent-key="{BOB}"' in await page(admin, "/admin?q=TELEGRAM")


async def test_the_agent_page_shows_every_part_of_its_memory(
    served: Served, admin: httpx.AsyncClient
) -> None:
    id_ = await make_agent(served)
    await make_agent(served, BOB)
    team = BlockSpec("team", "Team: blue.", 500)
    for key in (ANN, BOB):
        await served.app.stores.blocks.attach(key, team, shared_name="telegram-group-1")
    served.llm.queue(
        tool_call("core_memory_append", {"label": "human", "content": "Likes tea."}),
        tool_call("send_message", {"message": "Noted, tea it is."}, content="Remember tea."),
    )
    await run_turn(served, ANN, "m1", "I like tea")
    await served.app.stores.agents.save_summary(ANN, "Ann likes tea.", 0)
    await served.app.retriever.insert_passage(Passage(ANN, "Ann's cat is Tom.", NOW, ("pets",)))
    await served.app.scheduler.add(checkin_job({"note": "exam?"}))
    for n, summarized in enumerate([False, False, True, False]):
        step = StepRecord(ANN, n + 1, NOW, 1000 * (n + 1), 50, summarized)
        await served.app.stores.steps.record(step)

    shown = await page(admin, f"/admin/agents/{id_}")
    for section in ("blocks", "history", "summary", "archival", "checkins", "consolidations"):
        assert f'<section id="{section}"' in shown
    human = re.search(r'<form id="block-human" class="block".*?</form>', shown, re.S)
    assert human and 'data-label="human"' in human.group(0)
    assert 'name="version" value="3"' in human.group(0) and "<meter" in human.group(0)
    assert "Likes tea." in human.group(0)
    team_form = re.search(r'<form id="block-team" class="block shared".*?</form>', shown, re.S)
    assert team_form and '<ul class="shared-with">' in team_form.group(0)
    assert f'href="/admin/agents/{agent_id(BOB)}"' in team_form.group(0)
    assert re.search(r'<details class="tool">\s*<summary>core_memory_append call', shown)
    assert re.search(r'<details class="tool">\s*<summary>result of core_memory_append', shown)
    assert "Noted, tea it is." in shown and "Remember tea." in shown
    assert "Ann likes tea." in shown and "Ann&#39;s cat is Tom." in shown
    assert '<form class="delete-passage" method="post"' in shown and "exam?" in shown
    chart = re.search(r'<section id="context-chart".*?</section>', shown, re.S)
    assert chart and "<svg" in chart.group(0) and chart.group(0).count('class="summarized"') == 1
    assert f'<form id="wipe" method="post" action="/admin/agents/{id_}/wipe">' in shown
    assert f'<a id="export" href="/admin/agents/{id_}/export"' in shown


async def test_the_history_is_searched_by_words_and_dates(
    served: Served, admin: httpx.AsyncClient
) -> None:
    id_ = await make_agent(served)
    served.llm.queue(text("Tea is lovely."), text("Rain again."))
    await run_turn(served, ANN, "m1", "Tell me about tea")
    await run_turn(served, ANN, "m2", "What about the weather")
    found = await page(admin, f"/admin/agents/{id_}?text=weather")
    assert "What about the weather" in found and "Tell me about tea" not in found
    today = NOW.date().isoformat()
    assert "Rain again." in await page(admin, f"/admin/agents/{id_}?from={today}&to={today}")
    tomorrow = (NOW.date() + timedelta(days=2)).isoformat()
    assert "Rain again." not in await page(admin, f"/admin/agents/{id_}?from={tomorrow}")
    bad = await page(admin, f"/admin/agents/{id_}?from=soon")
    assert "is not a date" in bad


async def test_unknown_agents_are_a_404_page(served: Served, admin: httpx.AsyncClient) -> None:
    for id_ in ("agent-00000000-0000-4000-8000-000000000000", "nonsense", agent_id("x:1")):
        missing = await admin.get(f"/admin/agents/{id_}")
        assert missing.status_code == 404 and 'role="alert"' in missing.text


# --- editing a block ------------------------------------------------------------------


async def test_a_saved_block_is_in_the_database_and_the_next_prompt(
    served: Served, admin: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    id_ = await make_agent(served)
    saved = await post(
        admin,
        f"/admin/agents/{id_}/blocks/human",
        {"value": "Name: Ann.\r\nAllergic to cats.", "version": "2"},
    )
    assert (saved.status_code, saved.headers["location"]) == (303, f"/admin/agents/{id_}")
    assert await block_value(served, ANN) == "Name: Ann.\nAllergic to cats."
    [edit, *_] = await served.app.stores.blocks.edits(ANN, "human")
    assert (edit.agent_key, edit.version) == ("admin", 3)
    assert "Allergic to cats." in await page(admin, f"/admin/agents/{id_}")

    served.llm.queue(text("Noted."))
    await run_turn(served, ANN, "m1")
    system = served.llm.requests[-1]["messages"][0]
    assert "Name: Ann.\nAllergic to cats." in system["content"]
    assert (
        "admin ann: edited telegram:42 block 'human' (version 3, 10 -> 28 characters)"
        in caplog.text
    )


async def test_a_stale_version_shows_the_conflict_and_writes_nothing(
    served: Served, admin: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    id_ = await make_agent(served)
    await served.app.stores.blocks.edit(ANN, "human", lambda b: b.value + " Likes tea.")
    stale = await post(
        admin, f"/admin/agents/{id_}/blocks/human", {"value": "Name: Ann B.", "version": "2"}
    )
    assert stale.status_code == 409
    conflict = re.search(r'<div class="conflict" role="alert">.*?</div>', stale.text, re.S)
    assert conflict and "Name: Ann. Likes tea." in conflict.group(0)
    assert "Name: Ann B." in conflict.group(0)
    assert 'name="version" value="3"' in stale.text  # the editor now holds the current one
    assert await block_value(served, ANN) == "Name: Ann. Likes tea."
    assert "admin ann: edit of telegram:42 block 'human' refused" in caplog.text


async def test_a_value_over_the_limit_or_without_a_version_is_refused(
    served: Served, admin: httpx.AsyncClient
) -> None:
    id_ = await make_agent(served)
    path = f"/admin/agents/{id_}/blocks/human"
    too_long = await post(admin, path, {"value": "x" * 5001, "version": "2"})
    assert too_long.status_code == 422 and "over its limit" in too_long.text
    assert (await post(admin, path, {"value": "y"})).status_code == 422
    assert (
        await post(admin, f"/admin/agents/{id_}/blocks/nope", {"version": "1"})
    ).status_code == 404
    assert await block_value(served, ANN) == "Name: Ann."


async def test_a_block_value_is_shown_escaped(served: Served, admin: httpx.AsyncClient) -> None:
    attack = '</textarea><script>alert("xss")</script><img src=x onerror=alert(1)>'
    id_ = await make_agent(served, human=attack)
    await served.app.stores.agents.set_metadata(ANN, {"name": "<b>Ann</b>"})
    for shown in (await page(admin, f"/admin/agents/{id_}"), await page(admin, "/admin")):
        assert "<script>alert" not in shown and "<img src=x" not in shown
        assert "<b>Ann</b>" not in shown and "&lt;b&gt;Ann&lt;/b&gt;" in shown
    agent_page = await page(admin, f"/admin/agents/{id_}")
    editor = re.search(
        r'data-label="human".*?<textarea name="value"[^>]*>\n(.*?)</textarea>', agent_page, re.S
    )
    assert editor and html.unescape(editor.group(1)) == attack  # what the browser shows
    assert "Content-Security-Policy" in (await admin.get(f"/admin/agents/{id_}")).headers


# --- the other actions ----------------------------------------------------------------


async def test_wipe_happens_only_after_the_confirmation(
    served: Served, admin: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    id_ = await make_agent(served)
    asked = await post(admin, f"/admin/agents/{id_}/wipe")
    assert asked.status_code == 200
    assert '<form id="wipe-confirm" method="post"' in asked.text and ">Wipe</button>" in asked.text
    assert await served.app.stores.agents.get(ANN) is not None
    done = await post(admin, f"/admin/agents/{id_}/wipe/confirm")
    assert (done.status_code, done.headers["location"]) == (303, "/admin?wiped=telegram%3A42")
    assert await served.app.stores.agents.get(ANN) is None
    assert await served.app.stores.blocks.for_agent(ANN) == []
    assert "Wiped telegram:42" in await page(admin, done.headers["location"])
    assert "admin ann: wiped telegram:42" in caplog.text


async def test_export_downloads_the_agent_file(
    served: Served, admin: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    id_ = await make_agent(served)
    response = await admin.get(f"/admin/agents/{id_}/export")
    assert response.status_code == 200
    assert response.headers["content-disposition"] == 'attachment; filename="telegram_42.af"'
    document = json.loads(response.text)
    [agent] = document["agents"]
    assert any(b["value"] == "Name: Ann." for b in document["blocks"]), agent
    assert "admin ann: exported telegram:42" in caplog.text


async def test_a_passage_is_deleted(
    served: Served, admin: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    id_ = await make_agent(served)
    keep = await served.app.retriever.insert_passage(Passage(ANN, "Ann's cat is Tom.", NOW))
    drop = await served.app.retriever.insert_passage(Passage(ANN, "Ann's dog is Rex.", NOW))
    found = await page(admin, f"/admin/agents/{id_}?archival=dog")
    assert "Rex" in found
    gone = await post(admin, f"/admin/agents/{id_}/passages/{drop.id}/delete")
    assert gone.status_code == 303
    left = await served.app.stores.archival.select(ANN, limit=10)
    assert [p.id for p in left] == [keep.id]
    again = await post(admin, f"/admin/agents/{id_}/passages/{drop.id}/delete")
    assert again.status_code == 404
    assert f"admin ann: deleted telegram:42 archival passage {drop.id}" in caplog.text


async def test_a_consolidation_is_undone(
    served: Served, admin: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    id_ = await make_agent(served)
    await served.app.stores.blocks.edit(
        ANN, "human", lambda _b: "Ann.", edit_key="consolidation:run7:0:0"
    )
    shown = await page(admin, f"/admin/agents/{id_}")
    run = re.search(r'<article class="run" id="run-run7">.*?</article>', shown, re.S)
    assert (
        run and "Name: Ann." in run.group(0) and '<form class="undo" method="post"' in run.group(0)
    )
    undone = await post(admin, f"/admin/agents/{id_}/consolidations/run7/undo")
    assert undone.status_code == 303
    assert await block_value(served, ANN) == "Name: Ann."
    again = await post(admin, f"/admin/agents/{id_}/consolidations/run7/undo")
    assert again.status_code == 409 and 'class="error" role="alert"' in again.text
    assert "admin ann: undid telegram:42 consolidation run7: restored human" in caplog.text


async def test_a_checkin_is_cancelled(
    served: Served, admin: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    id_ = await make_agent(served)
    job = await served.app.scheduler.add(checkin_job({"note": "exam?"}))
    cancelled = await post(admin, f"/admin/agents/{id_}/checkins/{job.id}/cancel")
    assert cancelled.status_code == 303
    assert await served.app.scheduler.checkins(ANN) == []
    assert f"admin ann: cancelled telegram:42 check-in {job.id}" in caplog.text
