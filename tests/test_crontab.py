"""Standard crontab weekdays (Sunday = 0 or 7) read right by APScheduler."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from botmem.config import load_settings
from botmem.crontab import cron_trigger, weekday_names
from botmem.errors import ConfigError


@pytest.mark.parametrize(
    ("field", "names"),
    [
        ("1", "mon"),
        ("0", "sun"),
        ("7", "sun"),
        ("1-5", "mon,tue,wed,thu,fri"),
        ("5-7", "sun,fri,sat"),
        ("*/2", "sun,tue,thu,sat"),
        ("1/2", "mon,wed,fri"),
        ("SAT,sun", "sun,sat"),
        ("mon-fri", "mon,tue,wed,thu,fri"),
        ("0-6", "*"),
        ("*", "*"),
    ],
)
def test_weekdays_are_expanded_to_names(field: str, names: str) -> None:
    assert weekday_names(field) == names


@pytest.mark.parametrize("field", ["8", "funday", "5-1", "*/0", "1-", ""])
def test_bad_weekdays_are_refused(field: str) -> None:
    with pytest.raises(ValueError, match=r"weekday|step"):
        weekday_names(field)


def test_mondays_to_fridays_fire_on_those_days() -> None:
    trigger = cron_trigger("0 9 * * 1-5", ZoneInfo("Europe/Paris"))
    moment = datetime(2026, 3, 14, 12, 0, tzinfo=UTC)  # a Saturday
    days = []
    for _ in range(6):
        moment = trigger.get_next_fire_time(None, moment + timedelta(seconds=1))
        days.append(moment.strftime("%a %H"))
    assert days == ["Mon 09", "Tue 09", "Wed 09", "Thu 09", "Fri 09", "Mon 09"]


def test_a_crontab_needs_five_fields() -> None:
    with pytest.raises(ValueError, match="5 fields"):
        cron_trigger("0 9 * *", ZoneInfo("UTC"))


def test_a_bad_consolidation_schedule_names_the_setting(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[llm]\nmodel = "x"\n[consolidation]\nschedule = "0 3 * * 9"\n')
    with pytest.raises(ConfigError, match=r"consolidation\.schedule.*weekday '9'"):
        load_settings(config)
