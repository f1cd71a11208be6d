"""/v1/agents/{id}/messages: talk to an agent (blocking or streamed) and read its history.

A posted message is a turn like a chat platform's: it goes through the router (stored
first, one turn at a time per agent) and the request follows what the turn stores. The
answer holds the turn's messages as Letta's types (letta_messages.py) without the user's
own, a stop reason and usage. A client that goes away loses nothing: the turn runs on and
is in the history. ``if_busy=fail`` answers 409 instead of waiting for a running turn.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing
from typing import Any, Literal

from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from botmem.agent.loop import CHECKIN_DOWN_REPLY, LLM_DOWN_REPLY, STUCK_REPLY
from botmem.app import App
from botmem.errors import BotmemError
from botmem.server.agents import existing_agent
from botmem.server.api import ConflictError, api_adapter, botmem_app
from botmem.server.api_adapter import ApiAdapter, TurnWatch
from botmem.server.letta_messages import LettaMessage, letta_messages, message_id
from botmem.server.paging import Page
from botmem.server.scrubbing import ScrubbedRoute
from botmem.types import AgentKey, Message

router = APIRouter(tags=["messages"], route_class=ScrubbedRoute)
IfBusy = Literal["wait", "fail"]
STREAM_POLL = 0.1
"""Seconds between reads of a streamed turn's stored messages."""
WAIT_POLL = 1.0
"""...and of a blocking one (only matters when another process runs the turn)."""
_GIVE_UPS = {
    STUCK_REPLY: "max_steps",
    LLM_DOWN_REPLY: "llm_api_error",
    CHECKIN_DOWN_REPLY: "llm_api_error",
}
"""The loop's fixed apologies (stored as the turn's reply) and the stop reason each means."""
_REQUEST = ConfigDict(extra="ignore")
_IF_BUSY = Query("wait", description="fail: answer 409 while the agent is in a turn.")
_IDEMPOTENCY_KEY = Header(
    None,
    max_length=200,
    description="A retried post with the same key is answered once (like a message's otid).",
)


class ContentPart(BaseModel):
    model_config = _REQUEST
    type: str = "text"
    text: str | None = None


Content = str | list[ContentPart]


class MessageIn(BaseModel):
    model_config = _REQUEST
    role: Literal["user", "system"]
    content: Content
    otid: str | None = Field(
        default=None,
        max_length=200,
        description="Sent again with the same otid, the message is answered once: a retry "
        "gets the first post's turn.",
    )


class MessageCreate(BaseModel):
    """What Letta's client posts; botmem reads the text and the fields below."""

    model_config = _REQUEST
    messages: list[MessageIn] | None = Field(default=None, max_length=100)
    input: Content | None = None
    streaming: bool = False
    use_assistant_message: bool = True
    include_return_message_types: list[str] | None = None


class StopReasonOut(BaseModel):
    message_type: Literal["stop_reason"] = "stop_reason"
    stop_reason: str


class UsageOut(BaseModel):
    """A turn's steps and tokens (see `usage`)."""

    message_type: Literal["usage_statistics"] = "usage_statistics"
    completion_tokens: int
    prompt_tokens: int | None = None
    total_tokens: int | None = None
    step_count: int


class LettaResponseOut(BaseModel):
    messages: list[dict[str, Any]]
    stop_reason: StopReasonOut
    usage: UsageOut


@router.post(
    "/agents/{agent_id}/messages",
    response_model=LettaResponseOut,
    summary="Send a message and get the agent's answer (streamed with streaming=true)",
)
async def create_message(
    agent_id: str,
    body: MessageCreate,
    if_busy: IfBusy = _IF_BUSY,
    idempotency_key: str | None = _IDEMPOTENCY_KEY,
    app: App = Depends(botmem_app),
    adapter: ApiAdapter = Depends(api_adapter),
) -> Response | LettaResponseOut:
    if body.streaming:
        watch = await _start(app, adapter, agent_id, body, if_busy, idempotency_key=idempotency_key)
        return await _streamed(watch, body)
    watch = await _start(
        app, adapter, agent_id, body, if_busy, poll=WAIT_POLL, idempotency_key=idempotency_key
    )
    await watch.finish()
    if _refused(watch):
        return _refusal(watch)
    return LettaResponseOut(
        messages=[m for message in watch.messages for m in _shown(message, body)],
        stop_reason=StopReasonOut(stop_reason=stop_reason(watch)),
        usage=usage(watch),
    )


@router.post(
    "/agents/{agent_id}/messages/stream",
    summary="Send a message and stream the agent's messages as they are stored (SSE)",
    response_class=StreamingResponse,
)
async def stream_message(
    agent_id: str,
    body: MessageCreate,
    if_busy: IfBusy = _IF_BUSY,
    idempotency_key: str | None = _IDEMPOTENCY_KEY,
    app: App = Depends(botmem_app),
    adapter: ApiAdapter = Depends(api_adapter),
) -> Response:
    watch = await _start(app, adapter, agent_id, body, if_busy, idempotency_key=idempotency_key)
    return await _streamed(watch, body)


@router.get(
    "/agents/{agent_id}/messages",
    response_model=list[dict[str, Any]],
    summary="List the agent's history (every message, paged)",
)
async def list_messages(
    agent_id: str,
    page: Page = Depends(),
    use_assistant_message: bool = Query(True, description="send_message calls as replies."),
    include_return_message_types: list[str] | None = Query(None),
    app: App = Depends(botmem_app),
) -> list[LettaMessage]:
    key = await existing_agent(app, agent_id)
    history = await app.stores.history.since(key, 0)
    types = include_return_message_types

    def view(message: Message) -> list[LettaMessage]:
        return letta_messages(message, use_assistant_message=use_assistant_message, types=types)

    # Paged by stored message (the cursor is its id, shared by its Letta messages), and
    # only those shown, so that no page is empty before the end.
    shown = [(message, letta) for message in history if (letta := view(message))]
    chosen = page.apply(shown, lambda pair: message_id(pair[0]))
    if page.order == "desc":
        return [m for _message, letta in chosen for m in reversed(letta)]
    return [m for _message, letta in chosen for m in letta]


async def _start(
    app: App,
    adapter: ApiAdapter,
    agent_id: str,
    body: MessageCreate,
    if_busy: IfBusy,
    poll: float = STREAM_POLL,
    idempotency_key: str | None = None,
) -> TurnWatch:
    key = await existing_agent(app, agent_id)
    text = posted_text(body)
    if if_busy == "fail" and app.router.busy(key):
        raise ConflictError(f"agent {agent_id} is busy with a turn (if_busy=fail)")
    message_id = _message_id(key, body, idempotency_key)
    watch = TurnWatch(app.stores, await adapter.submit(key, text, message_id), poll)
    await watch.find()
    return watch


def _message_id(key: AgentKey, body: MessageCreate, idempotency_key: str | None) -> str | None:
    """The inbound id that makes a retried post a duplicate (dropped by the inbox, answered
    with the first post's turn): the first message's `otid`, or an Idempotency-Key header.
    Scoped to the agent, so one client's id never finds another agent's turn."""
    otid = next((m.otid for m in body.messages or [] if m.otid), None)
    chosen = otid or idempotency_key
    return f"{key}|{chosen}" if chosen else None


def posted_text(body: MessageCreate) -> str:
    """The text of the turn: the messages' (joined), or `input`; BotmemError (422) if none."""
    if body.messages:
        parts = [_message_text(n, message) for n, message in enumerate(body.messages)]
    elif body.input is not None:
        parts = [_content_text("input", body.input)]
    else:
        raise BotmemError("messages: send at least one message (or input)")
    text = "\n\n".join(part for part in parts if part.strip())
    if not text.strip():
        raise BotmemError("messages: the messages have no text")
    return text


def _message_text(n: int, message: MessageIn) -> str:
    text = _content_text(f"messages[{n}].content", message.content)
    return f"[System message] {text}" if message.role == "system" and text.strip() else text


def _content_text(where: str, content: Content) -> str:
    if isinstance(content, str):
        return content
    for n, part in enumerate(content):
        if part.type != "text" or part.text is None:
            raise BotmemError(f"{where}[{n}]: expected a text part with text (got {part.type!r})")
    return "\n".join(part.text or "" for part in content)


def stop_reason(watch: TurnWatch) -> str:
    """Letta's stop reason for a finished turn: "error" unless it replied."""
    task = watch.submission.task
    if task is not None and task.cancelled():
        return "cancelled"  # the server is stopping; the turn runs again at its next start
    if watch.status not in ("replied", "delivered"):
        return "error"  # failed (a bug), or left for later after store failures
    last = watch.messages[-1] if watch.messages else None
    if last is not None and last.role == "assistant" and not last.tool_calls:
        return _GIVE_UPS.get(last.content or "", "end_turn")
    return "end_turn"


def usage(watch: TurnWatch) -> UsageOut:
    """As the model reported it for the turn's calls (steps and any summary) when the turn
    ran in this process; else botmem's own count of the reply tokens."""
    steps = [m for m in watch.messages if m.role == "assistant"]
    metered = watch.submission.usage
    if metered and any(u.prompt_tokens or u.completion_tokens for u in metered):
        prompt = sum(u.prompt_tokens for u in metered)
        completion = sum(u.completion_tokens for u in metered)
        return UsageOut(
            prompt_tokens=prompt,
            completion_tokens=completion,
            total_tokens=prompt + completion,
            step_count=len(steps),
        )
    return UsageOut(completion_tokens=sum(m.tokens for m in steps), step_count=len(steps))


def _refused(watch: TurnWatch) -> bool:
    """Answered without running (over a rate or token limit): replied, nothing stored."""
    return not watch.messages and watch.status in ("replied", "delivered")


def _refusal(watch: TurnWatch) -> Response:
    text = watch.submission.reply_text() or "refused: over a usage limit"
    return JSONResponse({"detail": text}, status_code=429)


def _shown(message: Message, body: MessageCreate) -> list[LettaMessage]:
    """A message of the turn as answered: the user's own message is not sent back."""
    if message.role in ("user", "system"):
        return []
    return letta_messages(
        message,
        use_assistant_message=body.use_assistant_message,
        types=body.include_return_message_types,
    )


async def _streamed(watch: TurnWatch, body: MessageCreate) -> Response:
    """Wait for the turn to start (a refusal is then a 429), then stream it."""
    steps = watch.steps()
    first: list[Message] = await anext(steps, [])  # the user's message: stored once the turn starts
    if _refused(watch):
        await steps.aclose()
        return _refusal(watch)
    events = _events(watch, first, steps, lambda m: _shown(m, body))
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(events, media_type="text/event-stream", headers=headers)


async def _events(
    watch: TurnWatch,
    first: list[Message],
    steps: AsyncGenerator[list[Message], None],
    view: Callable[[Message], list[LettaMessage]],
) -> AsyncIterator[str]:
    """One SSE event per Letta message as stored, then the stop reason, usage and [DONE]."""
    async with aclosing(steps):
        for message in first:
            for letta in view(message):
                yield _event(letta)
        async for batch in steps:
            for message in batch:
                for letta in view(message):
                    yield _event(letta)
    yield _event(StopReasonOut(stop_reason=stop_reason(watch)).model_dump())
    yield _event(usage(watch).model_dump())
    yield "data: [DONE]\n\n"


def _event(data: dict[str, Any]) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"
