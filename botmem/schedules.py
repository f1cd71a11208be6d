"""Pure schedule arithmetic: what the agent writes ("2026-03-14T09:00", "0 9 * * mon") to
stored triggers and their next times, in the person's timezone."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from botmem.config import parse_hours
from botmem.crontab import cron_trigger
from botmem.errors import ToolError

MAX_CATCH_UP_STEPS = 100_000
"""Bound on the missed runs walked through to find the latest (a minutely job, 69 days)."""
WHEN_HELP = (
    "give an ISO 8601 date and time like 2026-03-14T09:00 (in the person's timezone), or a "
    "5-field crontab for a repeating check-in like '0 9 * * mon' (every Monday at 9:00)"
)


def parse_when(when: str, tz: ZoneInfo, now: datetime) -> tuple[str, datetime]:
    """The stored trigger and its first time; a ToolError the model can act on otherwise."""
    text = when.strip()
    if len(text.split()) == 5:
        trigger = f"cron:{text}"
        first = next_run(trigger, tz, now)
        if first is None:
            raise ToolError(f"the crontab {text!r} never fires; {WHEN_HELP}")
        return trigger, first
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise ToolError(f"{text!r} is not a time I understand: {WHEN_HELP}") from None
    if at.tzinfo is None:
        at = at.replace(tzinfo=tz)
    if at <= now:
        local = now.astimezone(tz)
        raise ToolError(f"{text} is in the past (it is now {local:%Y-%m-%d %H:%M} there)")
    return f"at:{at.isoformat()}", at


def next_run(trigger: str, tz: ZoneInfo, after: datetime) -> datetime | None:
    """The first time strictly after `after` (None: a one-off that is over)."""
    kind, _, spec = trigger.partition(":")
    if kind == "at":
        at = datetime.fromisoformat(spec)
        return at if at > after else None
    if kind == "cron":
        try:
            cron = cron_trigger(spec, tz)
        except ValueError as exc:
            raise ToolError(f"the crontab {spec!r} is not valid ({exc}); {WHEN_HELP}") from None
        fire = cron.get_next_fire_time(None, after + timedelta(microseconds=1))
        return None if fire is None else fire
    raise ValueError(f"unknown trigger {trigger!r}")


def upcoming(trigger: str, tz: ZoneInfo, first: datetime, count: int) -> list[datetime]:
    """`first` and the runs after it, at most `count` in all (one for a one-off)."""
    times = [first]
    while len(times) < count and (following := next_run(trigger, tz, times[-1])) is not None:
        times.append(following)
    return times


def latest_due(trigger: str, tz: ZoneInfo, due: datetime, now: datetime) -> datetime:
    """The last time the trigger came due at or before `now`, from `due` on: the missed runs
    of a repeating job coalesce into the most recent one."""
    for _ in range(MAX_CATCH_UP_STEPS):
        following = next_run(trigger, tz, due)
        if following is None or following > now:
            return due
        due = following
    return due


def describe(trigger: str, tz: ZoneInfo) -> str:
    kind, _, spec = trigger.partition(":")
    if kind == "at":
        return f"once, at {datetime.fromisoformat(spec).astimezone(tz):%Y-%m-%d %H:%M}"
    return f"repeating ({spec})"


def within_hours(moment: datetime, tz: ZoneInfo, allowed: str, quiet: str) -> bool:
    """Whether the local hour of `moment` is allowed and not quiet."""
    hour = moment.astimezone(tz).hour + moment.astimezone(tz).minute / 60
    allowed_range = parse_hours(allowed) or (0, 24)
    if not _in_range(hour, allowed_range):
        return False
    quiet_range = parse_hours(quiet) if quiet else None
    return quiet_range is None or not _in_range(hour, quiet_range)


def _in_range(hour: float, bounds: tuple[int, int]) -> bool:
    start, end = bounds
    if start == end:
        return False  # an empty range
    if start < end:
        return start <= hour < end
    return hour >= start or hour < end  # wraps midnight, e.g. 22-7


def day_start(moment: datetime, tz: ZoneInfo) -> datetime:
    """Local midnight of `moment`'s day in `tz` (per-day limits count from there)."""
    local = moment.astimezone(tz)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)
