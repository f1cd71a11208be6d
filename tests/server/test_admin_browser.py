"""The /admin pages in a real headless Chromium (Debian's, driven by Playwright) against
`botmem serve`: log in, find an agent, edit a block and see it in the database and the next
prompt; two tabs saving one block; logging out; a wrong key; a script in memory shown as text
and never run; reading without JavaScript; an agent with some history, as an admin sees it.

`BOTMEM_SCREENSHOT=docs/admin-agent.png pytest tests/server/test_admin_browser.py` also saves the
agent page with realistic data as the screenshot in the docs.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, Locator, Page

from botmem.server.ids import agent_key
from botmem.testing.openai_server import text, tool_call
from tests.server.browser import chromium, log_in, make_agent, run_turn, system_prompt
from tests.server.conftest import Served

ROOT = Path(__file__).resolve().parents[2]
# It closes the elements whose content is never markup (textarea, title) before its tags.
XSS = '</textarea></title><img src=x onerror="window.__pwned=1"><script>window.__pwned=1</script>'
HUMAN = {"label": "human", "value": "Name: Ann.", "limit": 200}
PERSONA = {"label": "persona", "value": "I am Sam, a patient helper.", "limit": 200}
WAIT_MS = 15_000
"""How long Playwright waits for an element or a page before failing (its default is 30 s)."""


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as launched:
        yield launched


@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    opened = await browser.new_context(viewport={"width": 1280, "height": 900})
    opened.set_default_timeout(WAIT_MS)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def page(context: BrowserContext) -> Page:
    return await context.new_page()


def block_form(page: Page, label: str) -> Locator:
    return page.locator(f'#blocks form.block[data-label="{label}"]')


async def save_block(page: Page, label: str, value: str) -> None:
    form = block_form(page, label)
    await form.locator("textarea[name=value]").fill(value)
    async with page.expect_navigation():
        await form.get_by_role("button", name="Save").click()


async def test_log_in_open_an_agent_and_edit_a_block_into_the_next_prompt(
    served: Served, page: Page
) -> None:
    agent = await make_agent(served, "ann's agent", [HUMAN, PERSONA])
    bob = await make_agent(served, "bob's agent", [HUMAN, PERSONA])
    key = agent_key(agent)
    response = await log_in(page, served)
    assert response is not None and response.ok
    assert page.url == f"{served.url}/admin"
    assert await page.locator("#agents tr[data-agent-key]").count() == 2
    assert await page.locator("#messages-chart svg").count() == 1
    async with page.expect_navigation():
        await page.locator("#search input[name=q]").fill("ann's")
        await page.locator("#search input[name=q]").press("Enter")
    assert await page.locator(f'#agents tr[data-agent-key="{agent_key(bob)}"]').count() == 0
    row = page.locator(f'#agents tr[data-agent-key="{key}"]')
    assert await row.count() == 1

    await row.locator(f'a[href="/admin/agents/{agent}"]').click()
    await page.wait_for_url(f"{served.url}/admin/agents/{agent}")
    textarea = block_form(page, "human").locator("textarea[name=value]")
    assert await textarea.input_value() == "Name: Ann."
    await save_block(page, "human", "Name: Ann. Allergic to cats.")
    assert await textarea.input_value() == "Name: Ann. Allergic to cats."

    stored = await served.app.stores.blocks.get(key, "human")
    assert stored is not None
    assert (stored.value, stored.version) == ("Name: Ann. Allergic to cats.", 2)
    await run_turn(served, agent, "hi", text("Noted."))
    prompt = system_prompt(served)
    assert "Name: Ann. Allergic to cats." in prompt
    assert "Name: Ann.\n" not in prompt


async def test_a_save_over_a_newer_version_is_a_conflict_and_loses_neither(
    served: Served, page: Page, context: BrowserContext
) -> None:
    agent = await make_agent(served, "ann", [HUMAN, PERSONA])
    await log_in(page, served)
    other = await context.new_page()  # a second tab of the same admin, opened at version 1
    for tab in (page, other):
        await tab.goto(f"{served.url}/admin/agents/{agent}")
    await save_block(page, "human", "Name: Ann. Likes tea.")
    await save_block(other, "human", "Name: Ann. Likes coffee.")

    conflict = block_form(other, "human").locator("div.conflict[role=alert]")
    assert await conflict.count() == 1
    assert "Name: Ann. Likes coffee." in await conflict.inner_text()  # kept to merge by hand
    current = await block_form(other, "human").locator("textarea[name=value]").input_value()
    assert current == "Name: Ann. Likes tea."
    stored = await served.app.stores.blocks.get(agent_key(agent), "human")
    assert stored is not None and (stored.value, stored.version) == ("Name: Ann. Likes tea.", 2)


async def test_logging_out_ends_the_session(served: Served, page: Page) -> None:
    await log_in(page, served)
    async with page.expect_navigation():
        await page.locator("form#logout").get_by_role("button").click()
    assert page.url == f"{served.url}/admin/login"
    await page.goto(f"{served.url}/admin")
    assert page.url == f"{served.url}/admin/login"


async def test_a_wrong_key_is_refused_and_leaves_no_session(
    served: Served, page: Page, context: BrowserContext
) -> None:
    response = await log_in(page, served, key="not-the-key")
    assert response is not None and response.status == 401
    assert "wrong key" in await page.locator("p.error[role=alert]").inner_text()
    assert await page.locator("form#login").count() == 1
    assert await context.cookies() == []
    await page.goto(f"{served.url}/admin")
    assert page.url == f"{served.url}/admin/login"


async def assert_nothing_ran(page: Page) -> None:
    """The page's load event has fired (it waits for images), so an onerror would have run."""
    assert await page.evaluate("window.__pwned") is None
    assert await page.locator("img[src=x]").count() == 0
    scripts = "[...document.scripts].some(s => s.text.includes('__pwned'))"
    assert await page.evaluate(scripts) is False


async def test_a_script_in_memory_is_shown_as_text_and_never_runs(
    served: Served, page: Page
) -> None:
    agent = await make_agent(served, XSS, [HUMAN, PERSONA])  # in the name,
    await run_turn(served, agent, XSS, text("I will not run that."))  # a message
    await log_in(page, served)
    assert XSS in await page.locator("#agents").inner_text()
    await assert_nothing_ran(page)
    await page.goto(f"{served.url}/admin/agents/{agent}")
    await save_block(page, "human", XSS)  # and a block, typed into the textarea

    stored = await served.app.stores.blocks.get(agent_key(agent), "human")
    assert stored is not None and stored.value == XSS
    await page.reload()
    assert await page.locator("h1").inner_text() == XSS
    assert await block_form(page, "human").locator("textarea[name=value]").input_value() == XSS
    edits = await block_form(page, "human").locator("details.edits").text_content()
    assert XSS in (edits or "")  # the previous versions, folded away
    assert XSS in await page.locator("#history").inner_text()
    await assert_nothing_ran(page)


async def test_the_agent_page_reads_without_javascript(served: Served, browser: Browser) -> None:
    agent = await make_agent(served, "ann", [HUMAN, PERSONA])
    await run_turn(served, agent, "I love green tea.", text("Green tea it is."))
    await run_turn(served, agent, "When is the demo?", text("On Friday at 15:00."))
    context = await browser.new_context(java_script_enabled=False)
    context.set_default_timeout(WAIT_MS)
    try:
        page = await context.new_page()
        await log_in(page, served)
        await page.goto(f"{served.url}/admin/agents/{agent}")
        assert await page.evaluate("typeof filterAgents") == "undefined"  # admin.js never ran
        labels = await page.locator("#blocks form.block").evaluate_all(
            "forms => forms.map(f => f.dataset.label)"
        )
        assert labels == ["human", "persona"]
        human = block_form(page, "human").locator("textarea[name=value]")
        assert await human.input_value() == "Name: Ann."
        history = page.locator("#history")
        assert "I love green tea." in await history.inner_text()
        assert "On Friday at 15:00." in await history.inner_text()

        async with page.expect_navigation():  # a search is a plain GET form
            await page.locator("form#history-search input[name=text]").fill("love")
            await page.locator("form#history-search").get_by_role("button").click()
        assert "I love green tea." in await history.inner_text()
        assert "On Friday at 15:00." not in await history.inner_text()
    finally:
        await context.close()


async def realistic_agent(served: Served) -> str:
    """Ann's agent after a short first conversation: blocks (one shared with Bob's agent), a
    tool call, a passage in archival memory and a check-in planned for Monday evening."""
    team = await served.client.blocks.create(
        label="team",
        value="Team Blue: Ann, Bob and Cleo. Demo every Friday at 15:00.",
        limit=300,
        description="The team everyone here belongs to.",
    )
    human = {"label": "human", "value": "Name: Ann. Likes green tea.", "limit": 200}
    ann = await make_agent(served, "ann", [human, PERSONA])
    bob = await make_agent(served, "bob", [{"label": "human", "value": "Name: Bob."}, PERSONA])
    for agent in (ann, bob):
        await served.client.agents.blocks.attach(team.id, agent_id=agent)
    today = date.today()
    monday = today + timedelta(days=(7 - today.weekday()) % 7 or 7)
    await run_turn(
        served,
        ann,
        "I start at the bakery on Monday! Can you check in with me after my first day?",
        tool_call("core_memory_append", {"label": "human", "content": "Bakery job from Monday."}),
        tool_call(
            "archival_memory_insert",
            {"content": "Ann starts a new job at the bakery on Monday.", "tags": ["work"]},
        ),
        tool_call(
            "schedule_checkin",
            {"when": f"{monday.isoformat()}T18:00", "note": "ask how her first day went"},
        ),
        text("Congratulations, Ann! I'll check in on Monday evening to hear how it went."),
    )
    return ann


async def test_the_agent_page_shows_memory_history_archival_and_checkins(
    served: Served, page: Page
) -> None:
    agent = await realistic_agent(served)
    await log_in(page, served)
    await page.goto(f"{served.url}/admin/agents/{agent}")
    team = block_form(page, "team")
    assert "shared" in (await team.get_attribute("class") or "").split()
    assert "bob" in await team.locator("ul.shared-with").inner_text()
    assert (
        "Bakery job from Monday."
        in await block_form(page, "human").locator("textarea[name=value]").input_value()
    )
    assert await page.locator("#history details.tool").count() >= 3
    assert "Congratulations, Ann!" in await page.locator("#history").inner_text()
    assert "bakery on Monday" in await page.locator("#archival").inner_text()
    assert "ask how her first day went" in await page.locator("#checkins").inner_text()
    assert await page.locator("#context-chart svg").count() == 1

    shot = os.environ.get("BOTMEM_SCREENSHOT")
    if shot:  # only on request, so a normal run never rewrites the docs' picture
        inserted = page.locator("#history details.tool", has_text="archival_memory_insert call")
        await inserted.locator("summary").click()  # one tool call opened, to show what it holds
        await page.screenshot(path=str(ROOT / shot), full_page=True)
