"""Bad input never crashes botmem: fuzzed commands, tool arguments, messages and payloads.

- `Commands.run` with arbitrary text (command words mixed with control characters, lone
  surrogates, digits of other scripts, huge strings), as a user and as an admin.
- Every tool of the app's toolset with arbitrary argument strings, arbitrary JSON values, and
  objects with the tool's own argument names holding values of any type: only `ToolError`
  (a message for the model) may come out; any other exception is a bug (botmem/agent/tools.py).
- Oversize (1 MB) and binary (NUL, control characters, lone surrogates) user messages through
  the whole App: every one gets a reply, and no turn or command fails.
- Recorded platform payloads (tests/adapters/payloads/) mutated (keys deleted, values of the
  wrong type) through each adapter's translate functions: an inbound or None, never an
  exception.

The stores are SQLite (the default backend): it is stricter than the in-memory stores about
what it accepts (integer sizes, encodable text). Inputs that once hit a bug (now fixed) are pinned
by the tests at the end.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import logging
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import discord
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from telegram import Update

from adapters.discord import gateway_intents
from adapters.discord_translate import interaction_to_inbound, message_to_inbound
from adapters.slack_translate import BotIdentity as SlackBot
from adapters.slack_translate import command_to_inbound, event_to_inbound
from adapters.telegram_translate import BotIdentity as TelegramBot
from adapters.telegram_translate import to_inbound
from botmem.agent.archival_tools import ARCHIVAL_TOOLS
from botmem.agent.checkin_tools import CHECKIN_TOOLS
from botmem.agent.memory_tools import BUILTIN_TOOLS
from botmem.agent.tools import Tool, ToolContext, Toolset
from botmem.app import App
from botmem.commands_reply import CommandReply
from botmem.errors import ToolError
from botmem.events import InboundMessage
from botmem.platform_config import DiscordSettings
from botmem.router import BUG_REPLY
from botmem.stores.sql import open_sql_stores
from botmem.testing import FakeAdapter, ScriptedLLM, reply
from botmem.testing.embeddings import HashEmbedder
from botmem.unicode import scrub
from tests.adapters.fake_discord import BOT_ID as DISCORD_BOT_ID
from tests.adapters.fake_discord import payload as discord_payload
from tests.helpers import make_settings

T = TypeVar("T")
ADMIN = "1"
PAYLOADS = Path(__file__).parent.parent / "adapters" / "payloads"
FUZZ = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
IDS = itertools.count()
TOOLSET = Toolset([*BUILTIN_TOOLS, *ARCHIVAL_TOOLS, *CHECKIN_TOOLS])
"""The toolset App.open gives every agent (botmem/app.py)."""
COUNTS: dict[str, int] = {}
"""Examples run per fuzz test (the report at the end of the module prints them)."""


def counted(name: str) -> None:
    COUNTS[name] = COUNTS.get(name, 0) + 1


# --- an App on SQLite, driven from synchronous hypothesis tests -------------------------------


@dataclass
class Bot:
    app: App
    chat: FakeAdapter
    llm: ScriptedLLM
    runner: asyncio.Runner

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.runner.run(coro)


@pytest.fixture(scope="module")
def bot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bot]:
    runner = asyncio.Runner()
    database = tmp_path_factory.mktemp("fuzz") / "botmem.db"

    async def start() -> Bot:
        llm = ScriptedLLM(responder=lambda messages: reply("Got it."))
        settings_ = make_settings(telegram={"admins": [f"telegram:{ADMIN}"]})
        stores = await open_sql_stores(f"sqlite:///{database}")
        app = await App.open(settings_, llm=llm, embedder=HashEmbedder(), stores=stores)
        chat = FakeAdapter("telegram")
        await app.start([chat])
        return Bot(app, chat, llm, runner)

    started = runner.run(start())
    yield started

    async def stop() -> None:
        await started.app.stop()
        await started.app.aclose()

    runner.run(stop())
    runner.close()


@pytest.fixture
def errors(caplog: pytest.LogCaptureFixture) -> Callable[[], list[str]]:
    """The ERROR records logged so far (a failed turn or command logs one, with traceback)."""
    caplog.set_level(logging.WARNING)

    def found() -> list[str]:
        return [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.ERROR]

    return found


# --- strategies ---------------------------------------------------------------------------

ANY_CHAR = st.characters(codec=None, exclude_categories=())  # surrogates and controls too
NASTY = st.sampled_from(
    ["\x00", "\x1b[31m", "\r\n", "\u202e", "\ufeff", "\ud800", "\udfff", "\U0001f600", "²", "١"]
)
COMMAND_WORDS = st.sampled_from(
    [
        "help", "show", "export", "wipe", "confirm", "agents", "team", "set", "append",
        "checkins", "cancel", "all", "timezone", "history", "undo", "telegram:1",
        "telegram:2", "Europe/Paris", "../../etc/passwd", "UTC", "1", "0", "-1",
        "99999999999999999999999", "@bot", "/memory", "",
    ]
)  # fmt: skip
COMMAND_TEXT = st.one_of(
    st.text(ANY_CHAR, max_size=200),
    st.lists(st.one_of(COMMAND_WORDS, NASTY, st.text(ANY_CHAR, max_size=12)), max_size=6).map(
        " ".join
    ),
    st.tuples(
        COMMAND_WORDS, st.integers(1, 1_000_000), st.sampled_from(["x", "\x00", " ", "é"])
    ).map(lambda t: f"{t[0]} {t[2] * t[1]}"),
)
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(ANY_CHAR, max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)
DATES = st.one_of(
    st.dates().map(str),
    st.sampled_from(["0001-01-01", "9999-12-31", "2026-02-30", "today", "", " 2026-01-01 "]),
)


def unencodable(text: str) -> bool:
    """A lone surrogate: not valid UTF-8, so no database or platform can take it (see the
    tests below)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def has_lone_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        return unencodable(value)
    if isinstance(value, list):
        return any(has_lone_surrogate(v) for v in value)
    if isinstance(value, dict):
        return any(has_lone_surrogate(k) or has_lone_surrogate(v) for k, v in value.items())
    return False


def command(user: str, text: str, *, group: bool) -> InboundMessage:
    return InboundMessage(
        source="telegram",
        message_id=f"fuzz-cmd-{next(IDS)}",
        agent_key=f"telegram:{user}",
        text=text,
        user_id=user,
        user_name=f"user{user}",
        channel_id="-100" if group else user,
        team_id="-100" if group else "",
        is_direct=not group,
        kind="command",
    )


# --- commands -----------------------------------------------------------------------------


@FUZZ
@given(text=COMMAND_TEXT, admin=st.booleans(), group=st.booleans())
def test_commands_answer_any_text(
    bot: Bot, errors: Callable[[], list[str]], text: str, admin: bool, group: bool
) -> None:
    counted("commands")
    inbound = command(ADMIN if admin else "5", text, group=group)
    answer = bot.run(bot.app.commands.run(inbound))
    assert isinstance(answer, CommandReply)
    assert isinstance(answer.text, str) and answer.text.strip()
    assert answer.text != BUG_REPLY
    assert not errors()


# --- tool arguments -----------------------------------------------------------------------


def tool_context(bot: Bot, agent_key: str) -> ToolContext:
    app = bot.app
    return ToolContext(
        agent_key=agent_key,
        stores=app.stores,
        retriever=app.retriever,
        now=datetime.now(UTC),
        timezone=ZoneInfo("UTC"),
        call_key=f"fuzz:{next(IDS)}",
        turn_start_id=None,
        inbound=InboundMessage("telegram", f"m{next(IDS)}", agent_key, "hi", user_id="7"),
        memory_pressure=lambda reason: None,
        planner=app.scheduler,
    )


FUZZ_AGENT = "telegram:fuzz-tools"


def tool_arguments(tool: Tool) -> st.SearchStrategy[str]:
    """Raw argument strings: anything; any JSON; an object of the tool's own argument names
    (some required ones possibly missing) with values of the right or any type."""
    props = tool.parameters["properties"]

    def value_for(name: str) -> st.SearchStrategy[Any]:
        kind = props[name].get("type")
        right: st.SearchStrategy[Any] = {
            "string": DATES if "date" in name else st.text(ANY_CHAR, max_size=60),
            "integer": st.integers(-(2**70), 2**70),
            "array": st.lists(JSON_VALUES, max_size=4),
            "boolean": st.booleans(),
            "number": st.floats(),
        }.get(kind, JSON_VALUES)
        if "enum" in props[name]:
            right = st.sampled_from(props[name]["enum"])
        return st.one_of(right, JSON_VALUES)

    objects = st.fixed_dictionaries({}, optional={name: value_for(name) for name in props}).map(
        json.dumps
    )
    return st.one_of(
        st.text(ANY_CHAR, max_size=80),
        JSON_VALUES.map(json.dumps),
        objects,
        objects,
        objects,
    )


@FUZZ
@given(data=st.data())
def test_every_tool_takes_any_arguments(bot: Bot, data: st.DataObject) -> None:
    tool = data.draw(st.sampled_from([TOOLSET.get(n) for n in TOOLSET.names()]))
    assert tool is not None
    raw = data.draw(tool_arguments(tool), label=f"{tool.name} arguments")
    counted("tool calls")
    ctx = tool_context(bot, FUZZ_AGENT)
    bot.run(bot.app.runner.ensure_agent(FUZZ_AGENT))
    try:
        result = bot.run(tool.call(ctx, raw))
    except ToolError as exc:
        assert str(exc).strip()  # a message the model can act on
        return
    assert isinstance(result, str) and result.strip()


def test_the_fuzzed_toolset_is_the_apps(bot: Bot) -> None:
    schemas = bot.llm.tool_requests[0].tools if bot.llm.tool_requests else None
    if schemas is None:
        assert bot.run(bot.chat.say("toolset", "hello")) == "Got it."
        schemas = bot.llm.tool_requests[-1].tools
    assert schemas is not None
    assert sorted(s["function"]["name"] for s in schemas) == sorted(TOOLSET.names())


# --- user messages through the whole App ----------------------------------------------------

MESSAGES = st.one_of(
    st.text(ANY_CHAR, min_size=1, max_size=300),
    st.lists(NASTY | st.text(max_size=5), min_size=1, max_size=20).map("".join),
    st.binary(min_size=1, max_size=200).map(lambda b: b.decode("latin-1")),
    st.builds(
        lambda c, n: c * n, st.sampled_from(["a", "\x00", "é ", "😀", "word "]), st.just(1 << 20)
    ),
)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(text=MESSAGES)
def test_any_user_message_gets_a_reply(
    bot: Bot, errors: Callable[[], list[str]], text: str
) -> None:
    counted("user messages")
    user = f"msg{next(IDS)}"  # one agent each: the per-agent message rate stays low
    answer = bot.run(bot.chat.say(user, text))
    assert answer == "Got it."
    assert not errors()
    stored = bot.run(bot.app.stores.history.since(f"telegram:{user}", 0))
    # kept as it came, but for lone surrogates and NULs (PostgreSQL takes neither)
    assert stored[0].role == "user" and stored[0].content == scrub(text)


def test_a_one_megabyte_message_is_stored_and_answered(bot: Bot) -> None:
    text = "All work and no play makes Jack a dull boy. " * 24_000  # ~1 MB
    assert bot.run(bot.chat.say("huge", text)) == "Got it."
    (said, answer) = bot.run(bot.app.stores.history.since("telegram:huge", 0))
    assert said.content == text and answer.content == "Got it."


# --- platform payloads ----------------------------------------------------------------------

WRONG_TYPES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**64), 2**64),
    st.text(ANY_CHAR, max_size=20),
    st.just([]),
    st.just({}),
    st.lists(st.integers(), max_size=2),
)


def paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    items = (
        data.items()
        if isinstance(data, dict)
        else enumerate(data)
        if isinstance(data, list)
        else ()
    )
    for key, value in items:
        out.append((*prefix, key))
        out += paths(value, (*prefix, key))
    return out


@st.composite
def mutated(draw: st.DrawFn, payloads: dict[str, Any], *, same_types: bool) -> Any:
    """A recorded payload with 1-4 mutations: a key (or list item) deleted, or a value replaced
    by one of another type (or, `same_types`, by another value of its type)."""
    name = draw(st.sampled_from(sorted(payloads)))
    data = copy.deepcopy(payloads[name])
    for _ in range(draw(st.integers(1, 4))):
        where = paths(data)
        if not where:
            break
        path = draw(st.sampled_from(where))
        parent = data
        for key in path[:-1]:
            parent = parent[key]
        key = path[-1]
        if draw(st.booleans()):
            del parent[key]
        elif same_types:
            parent[key] = draw(same_type_as(parent[key]))
        else:
            parent[key] = draw(WRONG_TYPES)
    return data


def same_type_as(value: Any) -> st.SearchStrategy[Any]:
    if isinstance(value, bool):
        return st.booleans()
    if isinstance(value, int):
        return st.integers(-(2**63), 2**63 - 1)
    if isinstance(value, str):
        return st.text(max_size=30) | st.sampled_from(
            ["", " ", "<@UBOT>", "/memory", "@botmem_bot"]
        )
    return st.just(copy.deepcopy(value))


def load(platform: str) -> dict[str, Any]:
    return {
        p.stem: json.loads(p.read_text(encoding="utf-8"))
        for p in (PAYLOADS / platform).glob("*.json")
    }


SLACK_EVENTS = {k: v for k, v in load("slack").items() if "event" in v}
SLACK_COMMANDS = {k: v for k, v in load("slack").items() if "command" in v}
SLACK_BOT = SlackBot(user_id="UBOT", bot_id="BBOT", team_id="T1")


def known_slack_bug(body: Any) -> bool:
    """Values of the wrong type where a str or dict is read (test_slack_wrong_types...)."""
    if not isinstance(body, dict):
        return True
    event = body.get("event") or {}
    if not isinstance(event, dict):
        return True
    strings = ("text", "channel", "ts", "thread_ts", "subtype", "team", "user_team", "user")
    return any(event.get(k) is not None and not isinstance(event.get(k), str) for k in strings) or (
        body.get("team_id") is not None and not isinstance(body.get("team_id"), str)
    )


@FUZZ
@given(body=mutated(SLACK_EVENTS, same_types=False), scope=st.sampled_from(["user", "thread"]))
def test_slack_events_of_any_shape(body: Any, scope: Any) -> None:
    if known_slack_bug(body):
        return
    counted("slack events")
    got = event_to_inbound(body, SLACK_BOT, scope, {("C1", "1700000000.000100")})
    assert got is None or (got.source == "slack" and got.agent_key.startswith("slack:"))


def known_slack_command_bug(payload: Any) -> bool:
    keys = ("team_id", "channel_id", "text", "trigger_id", "user_id", "user_name")
    return any(payload.get(k) is not None and not isinstance(payload.get(k), str) for k in keys)


@FUZZ
@given(payload=mutated(SLACK_COMMANDS, same_types=False))
def test_slack_commands_of_any_shape(payload: Any) -> None:
    if known_slack_command_bug(payload):
        return
    counted("slack commands")
    got = command_to_inbound(payload, "user")
    assert got.kind == "command" and got.text.strip()


def entity_splits_a_character(message: Any) -> bool:
    """An entity whose UTF-16 bounds fall inside a character (or outside the text)."""
    for text, entities in (
        (message.text, message.entities),
        (message.caption, message.caption_entities),
    ):
        units = (text or "").encode("utf-16-le") if isinstance(text, str) else b""
        for entity in entities or ():
            try:
                units[2 * entity.offset : 2 * (entity.offset + entity.length)].decode("utf-16-le")
            except (UnicodeDecodeError, TypeError):
                return True
    return False


TELEGRAM = load("telegram")
TELEGRAM_BOT = TelegramBot(999, "botmem_bot")


@FUZZ
@given(
    data=mutated(TELEGRAM, same_types=True), scope=st.sampled_from(["user", "channel", "thread"])
)
def test_telegram_updates_of_any_shape(data: Any, scope: Any) -> None:
    try:
        update = Update.de_json(data, None)  # python-telegram-bot's own parsing
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError, OSError):
        return  # refused by the SDK before botmem sees it
    message = update.effective_message
    if message is not None and message.chat is None:
        return  # Telegram always sends the chat; PTB leaves it None when it is missing
    if message is not None and entity_splits_a_character(message):
        return  # test_an_entity_that_splits_a_character...
    counted("telegram updates")
    got = to_inbound(update, TELEGRAM_BOT, scope)
    assert got is None or got.agent_key.startswith("telegram:")


DISCORD_MESSAGES = {
    k: v
    for k, v in (
        (p.stem, discord_payload(p.stem)) for p in (PAYLOADS / "discord").glob("message_*.json")
    )
}
DISCORD_INTERACTIONS = {
    k: v
    for k, v in (
        (p.stem, discord_payload(p.stem)) for p in (PAYLOADS / "discord").glob("interaction_*.json")
    )
}


@pytest.fixture(scope="module")
def discord_state() -> Any:
    client = discord.Client(intents=gateway_intents(DiscordSettings()))
    state = client._connection
    state.user = discord.ClientUser(state=state, data=discord_payload("user_me"))  # type: ignore[arg-type]
    state._add_guild_from_data(discord_payload("guild_create"))  # type: ignore[arg-type]
    return state


def complete_discord_message(message: discord.Message) -> bool:
    """Whether discord.py built every attribute botmem reads (it leaves them unset when a key
    Discord always sends is missing, and its snowflake dates fail on absurd ids)."""
    needed = ("author", "mentions", "content", "type", "reference", "created_at")
    try:
        reference = getattr(message, "reference", None)
        resolved = reference.resolved if reference is not None else None
        shown = [m for m in (message, resolved) if isinstance(m, discord.Message)]
        if not all(hasattr(m, a) for m in shown for a in needed) or not message.author:
            return False
    except (OverflowError, OSError, ValueError):
        return False
    return not (isinstance(message.author, discord.Member) and not message.guild)


@FUZZ
@given(data=mutated(DISCORD_MESSAGES, same_types=True), admins=st.booleans())
def test_discord_messages_of_any_shape(discord_state: Any, data: Any, admins: bool) -> None:
    try:
        channel, _ = discord_state._get_guild_channel(data)
        message = discord.Message(state=discord_state, channel=channel, data=data)
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError, OSError):
        return  # refused by discord.py before botmem sees it
    if not complete_discord_message(message):
        return  # discord.py leaves these unset when a key Discord always sends is missing
    counted("discord messages")
    got = message_to_inbound(message, DISCORD_BOT_ID, DiscordSettings(platform_admins=admins))
    assert got is None or got.agent_key.startswith("discord:")


@FUZZ
@given(data=mutated(DISCORD_INTERACTIONS, same_types=True), text=st.text(max_size=30))
def test_discord_interactions_of_any_shape(discord_state: Any, data: Any, text: str) -> None:
    try:
        interaction = discord.Interaction(data=data, state=discord_state)  # type: ignore[arg-type]
        _ = interaction.created_at  # discord.py's snowflake date (absurd ids fail there)
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError, OSError):
        return
    if not interaction.user:
        return  # Discord always sends the member (in a server) or the user (in a DM)
    counted("discord interactions")
    settings_ = DiscordSettings(platform_admins=True)
    got = interaction_to_inbound(interaction, text or "help", settings_)
    assert got.kind == "command" and got.agent_key.startswith("discord:")


def test_zz_fuzz_counts() -> None:
    """Runs last in this module: how many examples reached the code under test."""
    print("fuzz examples:", json.dumps(COUNTS, sort_keys=True))
    assert all(n > 0 for n in COUNTS.values())


# --- bugs found by the fuzzing, pinned --------------------------------------------------------


def call_tool(bot: Bot, name: str, arguments: dict[str, Any]) -> str:
    tool = TOOLSET.get(name)
    assert tool is not None
    bot.run(bot.app.runner.ensure_agent(FUZZ_AGENT))
    try:
        return bot.run(tool.call(tool_context(bot, FUZZ_AGENT), json.dumps(arguments)))
    except ToolError as exc:
        return f"Error: {exc}"


@pytest.mark.parametrize("name", ["archival_memory_insert", "archival_memory_search"])
@pytest.mark.parametrize("tags", [[None], [1], [["x"]]])
def test_tags_that_are_not_strings_are_a_tool_error(bot: Bot, name: str, tags: list[Any]) -> None:
    key = "content" if name == "archival_memory_insert" else "query"
    assert call_tool(bot, name, {key: "bees", "tags": tags}).startswith("Error:")


@pytest.mark.parametrize(
    ("name", "arguments"),
    [
        ("conversation_search_date", {"start_date": "2026-01-01", "end_date": "9999-12-31"}),
        ("archival_memory_search", {"query": "bees", "end_date": "9999-12-31"}),
    ],
)
def test_an_end_date_at_the_end_of_time_is_answered(
    bot: Bot, name: str, arguments: dict[str, Any]
) -> None:
    assert call_tool(bot, name, arguments)


@pytest.mark.parametrize(
    ("name", "arguments"),
    [
        ("conversation_search", {"query": "bees", "page": 2**62}),
        ("archival_memory_search", {"query": "bees", "page": 2**62}),
        ("cancel_checkin", {"checkin_id": 2**63}),
    ],
)
def test_a_huge_number_is_answered(bot: Bot, name: str, arguments: dict[str, Any]) -> None:
    assert call_tool(bot, name, arguments)


@pytest.mark.parametrize(
    ("name", "arguments"),
    [
        ("core_memory_append", {"label": "human", "content": "likes \ud800 bees"}),
        ("archival_memory_insert", {"content": "likes \ud800 bees"}),
    ],
)
def test_a_lone_surrogate_from_the_model_is_stored_or_refused(
    bot: Bot, name: str, arguments: dict[str, Any]
) -> None:
    assert call_tool(bot, name, arguments)


def test_a_lone_surrogate_in_a_user_message_is_answered(
    bot: Bot, errors: Callable[[], list[str]]
) -> None:
    assert bot.run(bot.chat.say("surrogate", "broken \ud83d emoji")) == "Got it."
    assert not errors()


@pytest.mark.parametrize("number", ["²", "99999999999999999999"])
@pytest.mark.parametrize("admin", [False, True])
def test_checkins_cancel_with_an_odd_number_is_answered(
    bot: Bot, errors: Callable[[], list[str]], number: str, admin: bool
) -> None:
    inbound = command(ADMIN if admin else "5", f"checkins cancel {number}", group=False)
    answer = bot.run(bot.app.commands.run(inbound))
    assert "no check-in" in answer.text


def test_an_entity_that_splits_a_character_is_tolerated() -> None:
    data = copy.deepcopy(TELEGRAM["group_mention"])
    data["message"]["entities"][0]["offset"] = 1  # inside the rocket emoji
    to_inbound(Update.de_json(data, None), TELEGRAM_BOT, "user")


@pytest.mark.parametrize(
    "change",
    [{"event": True}, {"event.text": 5}, {"event": ["message"]}],
    ids=str,
)
def test_slack_wrong_types_are_ignored(change: dict[str, Any]) -> None:
    body = copy.deepcopy(SLACK_EVENTS["dm_message"])
    ((path, value),) = change.items()
    if path.startswith("event."):
        body["event"][path.removeprefix("event.")] = value
    else:
        body[path] = value
    got = event_to_inbound(body, SLACK_BOT, "user", set())
    assert got is None or got.source == "slack"


@pytest.mark.parametrize("key", ["channel_id", "text"])
def test_slack_command_wrong_types_are_tolerated(key: str) -> None:
    payload = copy.deepcopy(SLACK_COMMANDS["slash_command"])
    payload[key] = True
    assert command_to_inbound(payload, "user").kind == "command"


@pytest.mark.parametrize(
    ("name", "arguments"),
    [
        ("archival_memory_insert", {"content": None}),
        ("conversation_search", {"query": None}),
        ("core_memory_append", {"label": "human", "content": None}),
    ],
)
def test_a_null_required_argument_is_a_tool_error(
    bot: Bot, name: str, arguments: dict[str, Any]
) -> None:
    answer = call_tool(bot, name, arguments)
    assert answer.startswith("Error: missing required argument")


def test_a_null_optional_argument_takes_its_default(bot: Bot) -> None:
    with_null = call_tool(bot, "conversation_search", {"query": "bees", "page": None})
    assert with_null == call_tool(bot, "conversation_search", {"query": "bees"})
    assert not with_null.startswith("Error:")
