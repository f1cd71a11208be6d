"""Real headless Chromium for the /admin page tests: Debian's /usr/bin/chromium driven by
Playwright (its own browser download is never used: `playwright install` needs the network).

Without /usr/bin/chromium the browser tests are skipped with how to install it, except under CI
(the CI environment variable set), where they fail: CI must never skip them silently.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, Response, async_playwright

from botmem.events import InboundMessage
from botmem.server.ids import agent_key
from botmem.testing.openai_server import Reply
from tests.server.conftest import API_KEY, Served

CHROMIUM = Path("/usr/bin/chromium")
INSTALL_HINT = "apt-get install chromium (Debian's package; .ci/run installs it)"
# As root Chromium needs --no-sandbox. The rest keep it from calling Google's services at start
# (on a closed network those connections fail, many at a time) and from using a GPU.
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require_chromium() -> None:
    """Skip (or, under CI, fail) the test when Debian's chromium is not installed."""
    if CHROMIUM.exists():
        return
    message = f"{CHROMIUM} is missing: the admin browser tests need it; {INSTALL_HINT}"
    if in_ci():
        pytest.fail(f"CI is set, so this is not skipped: {message}")
    pytest.skip(message)


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """`async with chromium() as browser`: a headless Chromium, closed at the end."""
    require_chromium()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()


async def log_in(
    page: Page, served: Served, *, name: str = "ann", key: str = API_KEY
) -> Response | None:
    """Fill and send the login form like a person; the response to the form's POST."""
    await page.goto(f"{served.url}/admin/login")
    form = page.locator("form#login")
    await form.locator("input[name=name]").fill(name)
    await form.locator("input[name=key][type=password]").fill(key)
    async with page.expect_navigation() as sent:
        await form.get_by_role("button", name="Log in").click()
    return await sent.value


async def make_agent(served: Served, name: str, blocks: list[dict[str, Any]]) -> str:
    """An agent made over the API (Letta's client); its id."""
    agent = await served.client.agents.create(name=name, memory_blocks=blocks)  # type: ignore[arg-type]
    return agent.id


async def run_turn(served: Served, agent: str, text: str, *replies: Reply) -> None:
    """One user message to the agent, the fake LLM answering with `replies` in order."""
    served.llm.queue(*replies)
    key = agent_key(agent)
    message_id = uuid.uuid4().hex
    turn = await served.app.handle(
        InboundMessage(source="api", message_id=message_id, agent_key=key, text=text, user_id=key)
    )
    assert turn is not None
    await turn


def system_prompt(served: Served) -> str:
    """The system message of the last prompt the LLM was sent."""
    system = served.llm.requests[-1]["messages"][0]
    assert system["role"] == "system"
    return str(system["content"])
