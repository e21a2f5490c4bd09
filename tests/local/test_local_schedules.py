"""``kairos local`` on a small stage synthesized here: runs at the evaluator's fire times (a DST day
in New York), the exact scheduled input, a timeout recorded FAILED, no overlapping runs, Ctrl-C
losing nothing, and a second command reading the runs while it runs."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import boto3
import pytest
from typer.testing import CliRunner

from kairos import cli
from kairos.catalog import load_catalog
from kairos.loading import load_tasks_file
from kairos.local.assembly import read_assembly
from kairos.local.dynamodb import DATA_DIR_ENV, dynamodb_endpoint
from kairos.local.server import running_server, stop_server
from kairos.plan import plan_stage
from kairos.schedule import next_fire_times, parse_schedule
from kairos_stack.app_builder import build_stage
from tests.conftest import CDK_FEATURE_FLAGS, PROJECT_ROOT

TASKS = """
defaults: {runtime: python3.13, memory: 256, timeout: 60, timezone: UTC}
stages:
  dev:
    enabled: [ny-echo, node-tick, slow, stuck]
tasks:
  - {name: ny-echo, description: echo, task_type: simple_task_2, schedule: "cron(0 1-3 * * ? *)",
     timezone: America/New_York, params: {payload: {from: ny}}}
  - {name: node-tick, description: tick, task_type: simple_task_1, runtime: nodejs22.x, schedule: rate(20 minutes)}
  - {name: slow, description: longer than its interval, task_type: simple_task_1, schedule: rate(10 minutes)}
  - {name: stuck, description: past its timeout, task_type: simple_task_1, schedule: rate(30 minutes), timeout: 1}
  - {name: quiet, description: disabled, task_type: simple_task_1, schedule: rate(1 minute)}
"""
# 2026-03-08 is the day New York springs forward: 01:00 EST is 06:00Z, 02:00 does not exist, 03:00
# EDT is 07:00Z. A cron read without DST would also fire at 07:00Z for 02:00 and at 08:00Z for 03:00.
START = datetime(2026, 3, 8, 5, 45, tzinfo=UTC)
FOR = timedelta(minutes=78)
SPEED = "150"
"""78 virtual minutes in about 31 s of wall time: the first fire lands 6 s in, leaving the second
command 25 s to start and read it while ``kairos local`` still runs, on a loaded CI machine too (at
300x the window was 12 s, and a busy machine once missed it)."""
SLOW = {"slow": 6.0, "stuck": 5.0}
"""Seconds each slow function sleeps before running the task (its timeout is 60 s and 1 s)."""


@pytest.fixture(scope="module")
def assembly(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The stage synthesized to a cloud assembly; two functions pointed at a slow handler."""
    root = tmp_path_factory.mktemp("stage")
    tasks_file = root / "tasks.yaml"
    tasks_file.write_text(TASKS, encoding="utf-8")
    catalog = load_catalog()
    plan = plan_stage(load_tasks_file(tasks_file, catalog), catalog, "dev")
    outdir = root / "cdk.out"
    app = cdk.App(
        outdir=str(outdir),
        context={**CDK_FEATURE_FLAGS, "aws:cdk:bundling-stacks": [], "aws:cdk:enable-path-metadata": True},
    )
    build_stage(app, plan)
    app.synth()
    for stack_name in plan.stack_names:  # the core stack and every shard stack
        template_file = outdir / f"{stack_name}.template.json"
        template = json.loads(template_file.read_text(encoding="utf-8"))
        for resource in template["Resources"].values():
            path = resource.get("Metadata", {}).get("aws:cdk:path", "")
            task = path.split("/")[1] if path.count("/") >= 2 else ""
            if resource["Type"] == "AWS::Lambda::Function" and task in SLOW:
                resource["Properties"]["Handler"] = "tests.local.slow_handler.handler"
                resource["Properties"]["Environment"]["Variables"]["SLOW_HANDLER_SLEEP_S"] = str(SLOW[task])
        template_file.write_text(json.dumps(template), encoding="utf-8")
    return outdir


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "dynamodb"
    yield directory
    stop_server(directory, force=True)


def kairos_local(assembly: Path, data_dir: Path, *args: str, **environment: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(Path(sys.executable).with_name("kairos")), "local", "--assembly", str(assembly), "--json", *args],
        cwd=PROJECT_ROOT,
        env={**os.environ, DATA_DIR_ENV: str(data_dir), "COLUMNS": "80", **environment},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def records(url: str, task: str) -> list[dict[str, Any]]:
    table = boto3.resource(
        "dynamodb", endpoint_url=url, region_name="us-east-1", aws_access_key_id="l", aws_secret_access_key="l"
    ).Table("kairos-dev-TaskRuns")
    # Run records only: each slot's claim item (SLOT#...) sits beside them.
    return table.query(
        KeyConditionExpression="pk = :pk AND begins_with(sk, :run)",
        ExpressionAttributeValues={":pk": f"TASK#{task}", ":run": "RUN#"},
    )["Items"]


def predicted(assembly: Path, task: str) -> list[str]:
    schedule = read_assembly(assembly, stage="dev").schedule(task)
    times = next_fire_times(parse_schedule(schedule.expression), timezone=schedule.timezone, after=START, count=50)
    return [moment.strftime("%Y-%m-%dT%H:%M:%SZ") for moment in times if moment <= START + FOR]


def test_the_assembly_gives_each_schedule_and_its_function(assembly: Path) -> None:
    local = read_assembly(assembly, stage="dev")

    echo = local.schedule("ny-echo")
    assert (echo.expression, echo.timezone, echo.enabled) == ("cron(0 1-3 * * ? *)", "America/New_York", True)
    assert echo.input_template["scheduled_time"] == "<aws.scheduler.scheduled-time>"
    assert echo.function is not None
    assert echo.function.environment["KAIROS_TASK_RUNS_TABLE"] == "kairos-dev-TaskRuns"
    assert local.schedule("stuck").function.timeout == 1  # type: ignore[union-attr]
    assert local.schedule("node-tick").function.family == "node"  # type: ignore[union-attr]
    assert not local.schedule("quiet").enabled


def test_kairos_local_fires_at_the_evaluators_times_while_another_command_reads_the_runs(
    assembly: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    process = kairos_local(assembly, data_dir, "--start", START.isoformat(), "--for", "78m", "--speed", SPEED)
    # A second command, meanwhile, shares the embedded DynamoDB the first one started.
    monkeypatch.setattr(cli.services, "endpoint", lambda: dynamodb_endpoint(data_dir))
    runner = CliRunner()
    seen = ""
    deadline = time.monotonic() + 60
    while "ny-echo" not in seen and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)
        if running_server(data_dir) is None:
            continue
        result = runner.invoke(cli.app, ["runs", "ny-echo", "--file", str(assembly.parent / "tasks.yaml"), "--json"])
        assert result.exit_code in (0, 1), result.output
        seen = result.output if result.exit_code == 0 else ""
    if process.poll() is not None:
        _, ended = process.communicate()
        pytest.fail(f"kairos local ended (exit {process.returncode}) before a second command read its runs:\n{ended}")
    assert json.loads(seen)["runs"][0]["scheduled_time"] == "2026-03-08T06:00:00Z"
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    fires = [json.loads(line) for line in stdout.splitlines()]
    url = running_server(data_dir).url  # type: ignore[union-attr]

    for task in ("ny-echo", "node-tick", "slow", "stuck"):
        expected = predicted(assembly, task)
        assert sorted(fire["scheduled_time"] for fire in fires if fire["task"] == task) == expected, task
        assert sorted(record["scheduled_time"] for record in records(url, task)) == expected, task
    assert predicted(assembly, "ny-echo") == ["2026-03-08T06:00:00Z", "2026-03-08T07:00:00Z"]
    assert not [fire for fire in fires if fire["task"] == "quiet"]

    # The exact input: Scheduler's attributes substituted, the params the schedule carries.
    for record in records(url, "ny-echo"):
        assert record["status"] == "SUCCEEDED"
        event = record["detail"]["event"]
        assert event["scheduled_time"] == record["scheduled_time"]
        assert event["execution_id"] == record["execution_id"]
        assert event["params"] == {"payload": {"from": "ny"}}
        assert event["attempt"] == 1
    assert {record["runtime"] for record in records(url, "node-tick")} == {"nodejs22.x"}

    # Past its 1 s timeout: killed, recorded FAILED.
    stuck = records(url, "stuck")
    timed_out = [record for record in stuck if record["status"] == "FAILED"]
    assert timed_out
    assert all(record["error_type"] == "Timeout" for record in timed_out)
    assert all(record["status"] in ("FAILED", "SKIPPED") for record in stuck)

    # Never two runs of one task at once: a fire during a run is skipped, and says so.
    slow = sorted((fire for fire in fires if fire["task"] == "slow"), key=lambda fire: fire["started_at"])
    ran = [fire for fire in slow if fire["status"] != "SKIPPED"]
    assert any(fire["status"] == "SKIPPED" for fire in slow)
    assert all(earlier["finished_at"] <= later["started_at"] for earlier, later in itertools.pairwise(ran))
    skipped = [record for record in records(url, "slow") if record["status"] == "SKIPPED"]
    assert skipped
    assert "still in flight" in skipped[0]["detail"]["skipped"]


def test_ctrl_c_lets_the_runs_in_flight_finish(assembly: Path, data_dir: Path, tmp_path: Path) -> None:
    started = tmp_path / "started"
    process = kairos_local(
        assembly,
        data_dir,
        "--only",
        "slow",
        "--start",
        START.isoformat(),
        "--speed",
        "120",
        SLOW_HANDLER_STARTED=str(started),
    )
    # The first fire is 10 minutes in, 5 s at 120x; its handler sleeps 4 s.
    deadline = time.monotonic() + 60
    while not started.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)

    assert process.returncode == 0, stderr
    assert "waiting for 1 run(s) in flight" in stderr
    fires = [json.loads(line) for line in stdout.splitlines()]
    assert [fire["status"] for fire in fires] == ["SUCCEEDED"]
    assert [record["status"] for record in records(running_server(data_dir).url, "slow")] == ["SUCCEEDED"]  # type: ignore[union-attr]


def test_unknown_and_disabled_tasks_are_refused_in_one_line(assembly: Path) -> None:
    runner = CliRunner()

    unknown = runner.invoke(cli.app, ["local", "--assembly", str(assembly), "--only", "ny-ech"])
    disabled = runner.invoke(cli.app, ["local", "--assembly", str(assembly), "--only", "quiet"])
    missing = runner.invoke(cli.app, ["local", "--assembly", str(assembly / "nowhere")])

    assert unknown.exit_code == 2
    assert "unknown task 'ny-ech'" in unknown.output
    assert "did you mean" in unknown.output
    assert disabled.exit_code == 2
    assert "DISABLED" in disabled.output
    assert missing.exit_code == 1
    assert "no cloud assembly" in missing.output
    assert "Traceback" not in unknown.output + disabled.output + missing.output
