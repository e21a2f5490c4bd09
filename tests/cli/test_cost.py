"""`kairos cost`: fires from the evaluator over the next 30 days, prices from kairos/data/prices.json,
assumptions marked, a disabled task at zero; deterministic with a fixed now."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from kairos import cli
from kairos.catalog import load_catalog
from kairos.loading import load_tasks_file
from kairos.operations.cost import fires_within, load_prices, stage_cost
from kairos.plan import plan_stage

NOW = datetime(2026, 3, 1, tzinfo=UTC)
TASKS_YAML = """\
defaults: {runtime: python3.13, memory: 1024, timeout: 60, timezone: UTC}
stages:
  dev: {enabled: [every-minute, nightly]}
tasks:
  - name: every-minute
    task_type: simple_task_2
    schedule: rate(1 minute)
  - name: nightly
    task_type: simple_task_2
    schedule: cron(0 2 * * ? *)
    timezone: America/New_York
    memory: 512
    timeout: 10
  - name: resting
    task_type: simple_task_2
    schedule: rate(5 minutes)
"""


@pytest.fixture
def tasks_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "tasks.yaml"
    path.write_text(TASKS_YAML, encoding="utf-8")
    monkeypatch.setattr(cli.services, "clock", lambda: NOW)
    return path


def cost(tasks_file: Path, *args: str, columns: int = 200) -> Any:
    return CliRunner().invoke(cli.app, ["cost", "--file", str(tasks_file), *args], env={"COLUMNS": str(columns)})


def test_the_estimate_counts_fires_and_prices_each_part(tasks_file: Path) -> None:
    result = cost(tasks_file, "--json")

    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    tasks = {task["name"]: task for task in document["tasks"]}
    minute = tasks["every-minute"]
    assert minute["fires_30d"] == 43_200, "a rate(1 minute) task fires 60 x 24 x 30 times"
    assert minute["duration_source"] == "timeout (assumed)"
    # 43,200 runs x 60 s x 1 GB at the arm64 price, plus 43,200 requests.
    assert minute["gb_seconds"] == pytest.approx(43_200 * 60.0)
    assert minute["lambda_usd"] == pytest.approx(43_200 * 60 * 0.0000133334 + 43_200 * 0.2 / 1e6, abs=1e-4)
    assert minute["scheduler_usd"] == pytest.approx(0.0432)
    assert minute["dynamodb_usd"] == pytest.approx(43_200 * 2 * 0.625 / 1e6, abs=1e-4)
    assert any("HIGH FREQUENCY" in note for note in minute["notes"])
    # 02:00 in New York on 1 to 30 March, but 8 March has no 02:00 (spring forward): Scheduler skips it.
    assert tasks["nightly"]["fires_30d"] == 29
    assert tasks["nightly"]["memory_mb"] == 512
    resting = tasks["resting"]
    assert (resting["enabled"], resting["fires_30d"], resting["total_usd"]) == (False, 0, 0)
    assert resting["notes"] == ["disabled: costs nothing (its alarms: the stage line)"]
    assert document["total_usd"] == pytest.approx(sum(t["total_usd"] for t in tasks.values()) + document["stage_usd"])
    assert document["prices_retrieved"] == load_prices(None).retrieved
    assert document["price_sources"]["lambda"].startswith("https://aws.amazon.com/lambda/pricing")
    assert any("free tiers not deducted" in line for line in document["assumptions"])


def test_the_table_reads_at_80_columns_and_marks_its_assumptions(tasks_file: Path) -> None:
    result = cost(tasks_file, columns=80)

    assert result.exit_code == 0, result.output
    assert max(len(line) for line in result.stdout.splitlines()) <= 80
    assert "43,200" in result.stdout
    assert "every-minute" in result.stdout
    assert "assumptions:" in result.stdout
    assert "priced as us-east-1" in result.stdout, "the stage names no region: the default region is said"


def test_recorded_durations_replace_the_timeout(tasks_file: Path) -> None:
    catalog = load_catalog()
    plan = plan_stage(load_tasks_file(tasks_file, catalog), catalog, "dev")
    records = [{"status": "SUCCEEDED", "duration_ms": ms, "items_written": 3} for ms in (100, 300, 200)]
    records.append({"status": "STARTED", "duration_ms": 99_999})

    estimate = stage_cost(plan, load_prices("us-east-1"), now=NOW, records_of=lambda task: records)

    minute = next(each for each in estimate.tasks if each.task.name == "every-minute")
    assert (minute.duration_ms, minute.duration_recorded, minute.items_per_run) == (200.0, True, 3.0)
    assert minute.notes == ("HIGH FREQUENCY: 43,200 fires a month",)


def test_fires_follow_the_schedule_over_30_days(tasks_file: Path) -> None:
    catalog = load_catalog()
    plan = plan_stage(load_tasks_file(tasks_file, catalog), catalog, "dev")

    assert fires_within(plan.task("resting"), now=NOW) == 8_640
