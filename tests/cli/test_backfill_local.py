"""`kairos backfill` locally: the real handler per slot, against the embedded DynamoDB (dynalite), over
a range with a weekend (no slots: the schedule is MON-FRI) and an exchange holiday (a slot the daily
bars task skips). A second backfill runs nothing that is done."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from kairos import cli
from kairos.local.dynamodb import embedded_dynamodb

NOW = datetime(2026, 10, 10, tzinfo=UTC)
CLOSED_PORT_PROXY = "http://127.0.0.1:9"
TASKS_YAML = f"""\
defaults: {{runtime: python3.13, memory: 256, timeout: 60, timezone: Asia/Shanghai}}
stages:
  dev: {{https_proxy: "{CLOSED_PORT_PROXY}"}}
tasks:
  - name: echo-close
    task_type: simple_task_2
    schedule: cron(30 15 ? * MON-FRI *)
  - name: bars
    task_type: stock_daily
    schedule: cron(30 15 ? * MON-FRI *)
    params: {{symbols: ["600519"], lookback_days: 5}}
  - name: spot
    task_type: stock_spot
    schedule: cron(0/15 9-11,13-14 ? * MON-FRI *)
"""


@pytest.fixture
def tasks_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "tasks.yaml"
    path.write_text(TASKS_YAML, encoding="utf-8")
    monkeypatch.setattr(cli.services, "clock", lambda: NOW)
    monkeypatch.setattr(cli.services, "endpoint", lambda: embedded_dynamodb(tmp_path / "dynamodb"))
    monkeypatch.delenv("AWS_ENDPOINT_URL_DYNAMODB", raising=False)
    # The handler process is not guarded by pytest-socket: the source is reached through a closed port.
    for name in ("HTTPS_PROXY", "HTTP_PROXY"):
        monkeypatch.setenv(name, CLOSED_PORT_PROXY)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    return path


def backfill(tasks_file: Path, *args: str) -> Any:
    return CliRunner().invoke(cli.app, ["backfill", *args, "--file", str(tasks_file), "--json"], env={"COLUMNS": "200"})


@pytest.mark.slow
def test_a_local_backfill_runs_each_weekday_slot_once_and_a_second_one_runs_nothing(tasks_file: Path) -> None:
    # Thursday 24 September 2026 to Tuesday the 29th: the weekend of the 26th and 27th has no slot.
    first = backfill(tasks_file, "echo-close", "--from", "2026-09-24", "--to", "2026-09-29", "--concurrency", "2")

    assert first.exit_code == 0, first.output
    report = json.loads(first.stdout)
    assert [slot["scheduled_time"] for slot in report["slots"]] == [
        "2026-09-24T07:30:00Z",
        "2026-09-25T07:30:00Z",
        "2026-09-28T07:30:00Z",
        "2026-09-29T07:30:00Z",
    ], "15:30 in Shanghai is 07:30 UTC, on weekdays only"
    assert {slot["status"] for slot in report["slots"]} == {"SUCCEEDED"}
    assert report["summary"] | {} == {
        "slots": 4, "run": 4, "succeeded": 4, "skipped": 0, "failed": 0, "already_done": 0, "would_run": 0,
    }  # fmt: skip

    second = backfill(tasks_file, "echo-close", "--from", "2026-09-24", "--to", "2026-09-29")

    assert second.exit_code == 0, second.output
    again = json.loads(second.stdout)
    assert again["summary"]["run"] == 0
    assert again["summary"]["already_done"] == 4

    rerun = backfill(tasks_file, "echo-close", "--from", "2026-09-29", "--to", "2026-09-29", "--rerun")
    assert json.loads(rerun.stdout)["summary"]["succeeded"] == 1, "--rerun runs a slot already done"
    listed = CliRunner().invoke(cli.app, ["runs", "echo-close", "--file", str(tasks_file), "--json"])
    assert listed.exit_code == 0, listed.output
    slot_runs = [run for run in json.loads(listed.stdout)["runs"] if run["scheduled_time"] == "2026-09-29T07:30:00Z"]
    # The handler ran the slot again (it declines a done slot unless the event says rerun).
    assert sorted(bool(run.get("rerun")) for run in slot_runs) == [False, True]


@pytest.mark.slow
def test_a_holiday_slot_is_skipped_by_the_task_and_counts_as_done(tasks_file: Path) -> None:
    # Friday 25 September 2026 is the Mid-Autumn Festival; Monday the 28th trades (the source is unreachable).
    first = backfill(tasks_file, "bars", "--from", "2026-09-25", "--to", "2026-09-28")

    assert first.exit_code == 1, "a failed slot makes the backfill fail"
    outcomes = {slot["scheduled_time"]: slot["outcome"] for slot in json.loads(first.stdout)["slots"]}
    assert outcomes == {"2026-09-25T07:30:00Z": "skipped", "2026-09-28T07:30:00Z": "failed"}

    second = backfill(tasks_file, "bars", "--from", "2026-09-25", "--to", "2026-09-28", "--dry-run")

    again = {slot["scheduled_time"]: slot["outcome"] for slot in json.loads(second.stdout)["slots"]}
    assert again == {"2026-09-25T07:30:00Z": "already_done", "2026-09-28T07:30:00Z": "would_run"}


def test_a_task_that_cannot_be_backfilled_is_refused_up_front(tasks_file: Path) -> None:
    result = backfill(tasks_file, "spot", "--from", "2026-09-24", "--to", "2026-09-24")

    assert result.exit_code == 2
    assert "spot cannot be backfilled: task_type stock_spot only sees the present" in result.stderr


def test_more_slots_than_the_limit_need_yes(tasks_file: Path) -> None:
    result = backfill(tasks_file, "echo-close", "--from", "2026-01-01", "--to", "2026-09-30", "--max-slots", "20")

    assert result.exit_code == 2
    assert "holds more than 20 slots of echo-close" in result.stderr
    assert "--yes" in result.stderr

    wide = ("--from", "2026-01-01", "--to", "2026-09-30", "--max-slots", "20")
    listed = backfill(tasks_file, "echo-close", *wide, "--yes", "--dry-run")
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.stdout)["summary"]["slots"] > 20


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--from", "2026-13-01", "--to", "2026-09-30"), "--from: not a date: '2026-13-01' (use YYYY-MM-DD)"),
        (("--from", "2026-09-30", "--to", "2026-09-01"), "--to 2026-09-01 is before --from 2026-09-30"),
    ],
)
def test_a_bad_range_is_one_line(tasks_file: Path, args: tuple[str, ...], message: str) -> None:
    result = backfill(tasks_file, "echo-close", *args)

    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_the_tables_read_at_80_columns(tasks_file: Path) -> None:
    result = CliRunner().invoke(
        cli.app,
        [
            "backfill",
            "echo-close",
            "--from",
            "2026-09-24",
            "--to",
            "2026-09-29",
            "--file",
            str(tasks_file),
            "--dry-run",
        ],
        env={"COLUMNS": "80"},
    )

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert any("4 (dry run)" in line for line in lines), "the summary says how many would run"
    assert sum("would run" in line for line in lines) == 4, "a dry run lists its slots"
