"""Standard 5-field crontabs as APScheduler triggers.

APScheduler numbers weekdays from Monday = 0 and reads a step like ``*/2`` on that numbering;
crontab (and every model that writes one) counts Sunday = 0 (or 7). The weekday field is
therefore expanded here to explicit day names, which both agree on.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def cron_trigger(spec: str, tz: ZoneInfo) -> CronTrigger:
    """The trigger of a crontab like ``0 9 * * 1-5``; ValueError naming what is wrong."""
    fields = spec.split()
    if len(fields) != 5:
        raise ValueError(
            f"a crontab has 5 fields (minute hour day month weekday), not {len(fields)}"
        )
    minute, hour, day, month, weekday = fields
    return CronTrigger(
        minute=minute,
        hour=hour,
        day=day,
        month=month,
        day_of_week=weekday_names(weekday),
        timezone=tz,
    )


def weekday_names(field: str) -> str:
    """A crontab weekday field as APScheduler reads it: ``1-5`` -> ``mon,tue,wed,thu,fri``."""
    days: set[int] = set()
    for item in field.lower().split(","):
        days |= _days(item)
    if len(days) == len(DAY_NAMES):
        return "*"
    return ",".join(DAY_NAMES[d] for d in sorted(days))


def _days(item: str) -> set[int]:
    """One comma-separated item: ``*``, ``N``, ``A-B``, each with an optional ``/STEP``."""
    span, _, step_text = item.partition("/")
    step = _number(step_text, "step") if step_text else 1
    if step < 1:
        raise ValueError(f"weekday step {step_text!r} must be at least 1")
    if span == "*":
        first, last = 0, 6
    elif "-" in span:
        start, _, end = span.partition("-")
        first, last = _day(start), _day(end)
        if last == 0 and end.strip() == "7":
            last = 7  # "5-7": Friday to Sunday
        if first > last:
            raise ValueError(f"weekday range {span!r} runs backwards")
    else:
        first = last = _day(span)
        if step_text:
            last = 6  # "1/2": from Monday, every other day
    return {day % 7 for day in range(first, last + 1, step)}


def _day(text: str) -> int:
    text = text.strip()
    if text in DAY_NAMES:
        return DAY_NAMES.index(text)
    day = _number(text, "weekday")
    if not 0 <= day <= 7:
        raise ValueError(f"weekday {text!r} is not 0-7 (0 and 7 are Sunday) or sun-sat")
    return day % 7


def _number(text: str, what: str) -> int:
    if not text.strip().isdigit():
        raise ValueError(f"{what} {text!r} is not a number")
    return int(text)
