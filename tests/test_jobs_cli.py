"""`botmem jobs list` and `botmem jobs cancel` as an operator runs them, on a real SQLite file."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from botmem.app import open_stores
from botmem.config import load_settings
from botmem.stores.jobs import Job

MONDAY_9 = datetime(2026, 3, 16, 8, 0, tzinfo=UTC)  # 09:00 in Paris
CALL_MUM = datetime(2026, 3, 15, 8, 0, tzinfo=UTC)
SOON = datetime(2026, 3, 14, 12, 1, tzinfo=UTC)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f'[storage]\ndata_dir = "{tmp_path / "data"}"\n')
    return path


async def add_jobs(config: Path, *jobs: Job) -> list[int]:
    stores = await open_stores(load_settings(config))
    try:
        return [(await stores.jobs.add(job)).id or 0 for job in jobs]
    finally:
        await stores.aclose()


def botmem(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "botmem.cli", "jobs", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def listed_ids(result: subprocess.CompletedProcess[str]) -> list[int]:
    return [int(line.split("\t")[0]) for line in result.stdout.splitlines()]


async def test_list_shows_every_active_job_and_filters_by_agent(config: Path) -> None:
    mum, weekly, tidy = await add_jobs(
        config,
        Job(
            "telegram:42",
            "checkin",
            f"at:{CALL_MUM.isoformat()}",
            "Europe/Paris",
            CALL_MUM,
            {"note": "remind them to call mum", "conversation": {"channel_id": "42"}},
        ),
        Job(
            "telegram:42",
            "checkin",
            "cron:0 9 * * mon",
            "Europe/Paris",
            MONDAY_9,
            {"note": "plan the week"},
        ),
        Job(
            "slack:T1:U9",
            "consolidate",
            f"at:{SOON.isoformat()}",
            "UTC",
            SOON,
            {"reason": "scheduled"},
        ),
    )

    everything = botmem(config, "list")
    assert everything.returncode == 0, everything.stderr
    assert everything.stdout.splitlines() == [
        f"{mum}\tcheckin\ttelegram:42\tonce, at 2026-03-15 09:00 (Europe/Paris)"
        "\tnext 2026-03-15T08:00:00+00:00\tremind them to call mum",
        f"{weekly}\tcheckin\ttelegram:42\trepeating (0 9 * * mon) (Europe/Paris)"
        "\tnext 2026-03-16T08:00:00+00:00\tplan the week",
        f"{tidy}\tconsolidate\tslack:T1:U9\tonce, at 2026-03-14 12:01 (UTC)"
        "\tnext 2026-03-14T12:01:00+00:00\tscheduled",
    ]
    assert listed_ids(botmem(config, "list", "--agent", "telegram:42")) == [mum, weekly]
    assert listed_ids(botmem(config, "list", "--agent", "slack:T1:U9")) == [tidy]
    nobody = botmem(config, "list", "--agent", "discord:7")
    assert (nobody.returncode, nobody.stdout) == (0, "")
    assert "no active jobs" in nobody.stderr


async def test_cancel_removes_the_job_from_the_list(config: Path) -> None:
    kept, cancelled = await add_jobs(
        config,
        Job("telegram:42", "checkin", f"at:{CALL_MUM.isoformat()}", "UTC", CALL_MUM, {"note": "a"}),
        Job("telegram:42", "checkin", f"at:{SOON.isoformat()}", "UTC", SOON, {"note": "b"}),
    )

    done = botmem(config, "cancel", str(cancelled))
    assert done.returncode == 0, done.stderr
    assert f"cancelled job {cancelled}" in done.stderr
    assert listed_ids(botmem(config, "list")) == [kept]

    again = botmem(config, "cancel", str(cancelled))  # no longer active
    assert again.returncode == 1
    assert f"no active job {cancelled}" in again.stderr
    assert listed_ids(botmem(config, "list")) == [kept]


def test_cancel_of_an_unknown_job_fails_clearly(config: Path) -> None:
    result = botmem(config, "cancel", "999")
    assert result.returncode == 1
    assert result.stderr.strip() == "botmem: no active job 999"
    assert "Traceback" not in result.stderr


def test_an_empty_list_says_so(config: Path) -> None:
    result = botmem(config, "list")
    assert (result.returncode, result.stdout) == (0, "")
    assert result.stderr.strip() == "botmem: no active jobs"
