from __future__ import annotations

from dataclasses import replace

import pytest

from botmem.events import InboundMessage
from botmem.routing import addressed, is_private_agent, resolve_key

GROUP = InboundMessage(
    source="slack",
    message_id="m1",
    agent_key="",
    text="hi",
    user_id="T1:U9",
    channel_id="C5",
    thread_id="171.5",
    team_id="T1",
    is_direct=False,
    mentions_bot=True,
)


@pytest.mark.parametrize(
    ("scope", "key"),
    [
        ("user", "slack:T1:U9"),
        ("channel", "slack:channel:C5"),
        ("user_in_channel", "slack:channel:C5:user:T1:U9"),
        ("thread", "slack:channel:C5:thread:171.5"),
    ],
)
def test_each_scope_keys_a_group_message(scope: str, key: str) -> None:
    assert resolve_key(GROUP, scope) == key  # type: ignore[arg-type]


def test_thread_scope_outside_a_thread_is_the_channel() -> None:
    assert resolve_key(replace(GROUP, thread_id=""), "thread") == "slack:channel:C5"


@pytest.mark.parametrize("scope", ["user", "channel", "user_in_channel", "thread"])
def test_a_direct_message_is_always_the_persons_own_agent(scope: str) -> None:
    dm = replace(GROUP, is_direct=True, channel_id="D1", team_id="")
    assert resolve_key(dm, scope) == "slack:T1:U9"  # type: ignore[arg-type]


def test_people_in_one_channel_get_different_private_agents() -> None:
    other = replace(GROUP, user_id="T1:U10")
    for scope in ("user", "user_in_channel"):
        assert resolve_key(GROUP, scope) != resolve_key(other, scope)  # type: ignore[arg-type]
    assert resolve_key(GROUP, "channel") == resolve_key(other, "channel")


def test_private_agents_are_those_of_one_person() -> None:
    assert is_private_agent("telegram:42")
    assert is_private_agent("slack:channel:C5:user:T1:U9")
    assert not is_private_agent("slack:channel:C5")
    assert not is_private_agent("discord:channel:5:thread:6")


def test_the_bot_answers_dms_mentions_and_commands_only() -> None:
    assert addressed(replace(GROUP, is_direct=True, mentions_bot=False))
    assert addressed(GROUP)
    assert not addressed(replace(GROUP, mentions_bot=False))
    assert addressed(replace(GROUP, mentions_bot=False, kind="command"))
