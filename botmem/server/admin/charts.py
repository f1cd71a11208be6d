"""The two charts, drawn on the server as inline SVG (no script, no library).

Each point and bar has a <title>, which browsers show on hover: the numbers stay readable
without JavaScript. Every text is escaped: the SVG goes into the page as markup.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from markupsafe import Markup, escape

from botmem.stores.steps import StepRecord

WIDTH, HEIGHT = 720, 220
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 20, 28
"""Margins: room for the y-axis numbers on the left and the x-axis labels below."""
TICKS = 4


def context_chart(steps: Sequence[StepRecord], window: int, trigger: float) -> Markup:
    """Prompt tokens of each step, oldest left; steps just after a summary are marked
    (class "summarized") and the window's summarization threshold is a dashed line."""
    threshold = int(window * trigger) if window else 0
    top = max([s.prompt_tokens for s in steps] or [0])
    if threshold and threshold < top * 1.5:
        top = max(top, threshold)  # only when it does not flatten the line to nothing
    else:
        threshold = 0
    scale = _Scale(len(steps), top)
    parts = [_y_axis(scale, "prompt tokens")]
    if threshold:
        y = scale.y(threshold)
        parts.append(
            f'<line class="threshold" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y}" y2="{y}">'
            f"<title>summarized above {threshold:,} tokens</title></line>"
        )
    if steps:
        points = " ".join(f"{scale.x(n)},{scale.y(s.prompt_tokens)}" for n, s in enumerate(steps))
        parts.append(f'<polyline class="line" points="{points}"/>')
    parts += [_step_point(scale, n, step) for n, step in enumerate(steps)]
    if not steps:
        parts.append(_note("No steps recorded yet."))
    label = f"Prompt tokens of the last {len(steps)} steps"
    return _svg(label, parts)


def _step_point(scale: _Scale, n: int, step: StepRecord) -> str:
    x, y = scale.x(n), scale.y(step.prompt_tokens)
    what = f"turn {step.turn_id}, {step.created_at:%Y-%m-%d %H:%M} UTC: {step.prompt_tokens:,}"
    title = escape(what + " prompt tokens" + (" (just summarized)" if step.summarized else ""))
    if step.summarized:
        return (
            f'<g class="summarized"><line x1="{x}" x2="{x}" y1="{TOP}" y2="{HEIGHT - BOTTOM}"/>'
            f'<circle cx="{x}" cy="{y}" r="5"><title>{title}</title></circle></g>'
        )
    return f'<circle class="step" cx="{x}" cy="{y}" r="3"><title>{title}</title></circle>'


def messages_chart(days: Sequence[tuple[date, int]]) -> Markup:
    """One bar per day (oldest left); today and every week before it labelled."""
    scale = _Scale(len(days), max([count for _day, count in days] or [0]), bars=True)
    parts = [_y_axis(scale, "messages")]
    width = max(scale.step * 0.8, 1)
    for n, (day, count) in enumerate(days):
        x, y = scale.x(n) - width / 2, scale.y(count)
        title = escape(f"{day:%a %Y-%m-%d}: {count:,} messages")
        parts.append(
            f'<rect class="bar" x="{x:.1f}" y="{y}" width="{width:.1f}" '
            f'height="{HEIGHT - BOTTOM - y:.1f}"><title>{title}</title></rect>'
        )
        if (len(days) - 1 - n) % 7 == 0:  # today, and every week back
            parts.append(_x_label(scale.x(n), f"{day:%b %d}"))
    if not any(count for _day, count in days):
        parts.append(_note("No messages in these days."))
    return _svg(f"Messages per day, the last {len(days)} days", parts)


class _Scale:
    """Data to pixels: item n of `count` across, 0..`top` (rounded up) upwards."""

    def __init__(self, count: int, top: int, *, bars: bool = False):
        self.top = _round_up(top)
        inner = WIDTH - LEFT - RIGHT
        self.step = inner / max(count, 1) if bars else inner / max(count - 1, 1)
        self._offset = self.step / 2 if bars else 0.0

    def x(self, n: int) -> float:
        return round(LEFT + self._offset + n * self.step, 1)

    def y(self, value: float) -> float:
        inner = HEIGHT - TOP - BOTTOM
        return round(HEIGHT - BOTTOM - inner * value / self.top, 1)


def _round_up(top: int) -> int:
    """A top the ticks divide into round numbers: 1, 2 or 5 times a power of ten, x TICKS."""
    if top <= TICKS:
        return TICKS
    magnitude = 1
    while True:
        for factor in (1, 2, 5):
            if factor * magnitude * TICKS >= top:
                return factor * magnitude * TICKS
        magnitude *= 10


def _y_axis(scale: _Scale, unit: str) -> str:
    lines = []
    for n in range(TICKS + 1):
        value = scale.top * n // TICKS
        y = scale.y(value)
        lines.append(
            f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y}" y2="{y}"/>'
            f'<text class="tick" x="{LEFT - 6}" y="{y + 4}" text-anchor="end">{value:,}</text>'
        )
    lines.append(f'<text class="unit" x="{LEFT}" y="{TOP - 2}">{escape(unit)}</text>')
    return "".join(lines)


def _x_label(x: float, text: str) -> str:
    y = HEIGHT - BOTTOM + 16
    return f'<text class="tick" x="{x}" y="{y}" text-anchor="middle">{escape(text)}</text>'


def _note(text: str) -> str:
    return (
        f'<text class="note" x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle">'
        f"{escape(text)}</text>"
    )


def _svg(label: str, parts: list[str]) -> Markup:
    return Markup(  # built from numbers and escaped text only
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(label)}"><title>{escape(label)}</title>{"".join(parts)}</svg>'
    )
