"""Safer enabling through the CLI: the state in every stage after an edit, a column per stage in
`list --all-stages`, JSON output, one clear error for an unknown name, and tables that keep their
essential cells whole at 80 columns, also when piped."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from kairos import cli
from kairos.local.dynamodb import DynamoEndpoint
from tests.conftest import PROJECT_ROOT

NOW = datetime(2026, 11, 27, 7, 12, 30, tzinfo=UTC)


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setattr(cli.services, "clock", lambda: NOW)
    # Fresh consoles, so a COLUMNS given to one invocation does not carry over to the next test.
    monkeypatch.setattr(cli.services, "console", cli._console(stderr=False))
    monkeypatch.setattr(cli.services, "errors", cli._console(stderr=True))
    return CliRunner()


@pytest.fixture
def tasks_file(tmp_path: Path) -> Path:
    path = tmp_path / "tasks.yaml"
    shutil.copy(PROJECT_ROOT / "tasks.yaml", path)
    return path


def invoke(runner: CliRunner, *args: str, columns: int | None = None) -> Result:
    return runner.invoke(cli.app, list(args), env={"COLUMNS": str(columns)} if columns else None)


def table_rows(output: str) -> list[list[str]]:
    return [[cell.strip() for cell in line.split("│")[1:-1]] for line in output.splitlines() if line.startswith("│")]


def test_enable_in_prod_prints_the_state_in_every_stage(runner: CliRunner, tasks_file: Path) -> None:
    result = invoke(runner, "enable", "crypto-markets", "--stage", "prod", "--file", str(tasks_file))

    assert result.exit_code == 0, result.output
    assert f"{tasks_file}: stages.prod.overrides.crypto-markets.enabled: true" in result.stdout
    assert table_rows(result.stdout) == [
        ["dev", "○ off", "stage enabled list"],
        ["prod", "● on", "override"],
    ]


def test_disable_everywhere_prints_json_naming_the_deciding_layers(runner: CliRunner, tasks_file: Path) -> None:
    result = invoke(runner, "disable", "python-task-1", "--file", str(tasks_file), "--json")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "file": str(tasks_file),
        "task": "python-task-1",
        "change": "python-task-1: enabled: false (stages dev decide for themselves: use --stage to change them)",
        "stages": {
            "dev": {"enabled": True, "decided_by": "stage enabled list"},
            "prod": {"enabled": False, "decided_by": "task entry"},
        },
    }
    assert "    enabled: false\n    memory: 512" in tasks_file.read_text()


def test_list_all_stages_shows_a_column_per_stage(runner: CliRunner, tasks_file: Path) -> None:
    invoke(runner, "enable", "daily-summary", "--stage", "prod", "--file", str(tasks_file))

    result = invoke(runner, "list", "--all-stages", "--file", str(tasks_file))

    assert result.exit_code == 0, result.output
    header = next(line for line in result.stdout.splitlines() if line.startswith("┃"))
    assert [cell.strip() for cell in header.split("┃")[1:-1]][:3] == ["name", "dev", "prod"]
    rows = {row[0]: row for row in table_rows(result.stdout) if row[0]}
    assert rows["python-task-1"][1:3] == ["● on", "○ off"]
    assert rows["daily-summary"][1:3] == ["○ off", "● on"]
    assert rows["crypto-markets"][1:3] == ["○ off", "○ off"]
    shipped = tasks_file.read_text(encoding="utf-8").count("\n  - name: ")
    assert f"{shipped} tasks: 4 enabled in dev, 1 enabled in prod" in result.stdout


def test_list_refuses_a_stage_and_all_stages_together(runner: CliRunner, tasks_file: Path) -> None:
    result = invoke(runner, "list", "--all-stages", "--stage", "prod", "--file", str(tasks_file))

    assert result.exit_code == 2
    assert result.stderr == "error: give --stage or --all-stages, not both\n"


def test_list_json_has_the_documented_fields(runner: CliRunner, tasks_file: Path) -> None:
    one = json.loads(invoke(runner, "list", "--json", "--file", str(tasks_file)).stdout)
    every = json.loads(invoke(runner, "list", "--json", "--all-stages", "--file", str(tasks_file)).stdout)

    assert (one["file"], one["stages"], every["stages"]) == (str(tasks_file), ["dev"], ["dev", "prod"])
    task = next(task for task in every["tasks"] if task["name"] == "python-task-1")
    assert task == {
        "name": "python-task-1",
        "description": "Python simple task 1 - log timestamp",
        "task_type": "simple_task_1",
        "runtime": "python3.13",
        "stages": {
            "dev": {
                "enabled": True,
                "decided_by": "stage enabled list",
                "schedule": "rate(5 minutes)",
                "timezone": "UTC",
                "schedule_in_words": "every 5 minutes",
                "next_fire": "2026-11-27T07:17:30Z",
            },
            "prod": {
                "enabled": False,
                "decided_by": "built-in default",
                "schedule": "rate(5 minutes)",
                "timezone": "UTC",
                "schedule_in_words": "every 5 minutes",
                "next_fire": None,
            },
        },
    }
    assert [task["name"] for task in one["tasks"]] == [task["name"] for task in every["tasks"]]
    assert all(list(task["stages"]) == ["dev"] for task in one["tasks"])


def test_show_json_has_the_documented_fields(runner: CliRunner, tasks_file: Path) -> None:
    result = invoke(runner, "show", "crypto-markets", "--stage", "prod", "--json", "--file", str(tasks_file))

    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert set(shown) == {
        "name",
        "description",
        "stage",
        "enabled",
        "decided_by",
        "task_type",
        "runtime",
        "architecture",
        "dependencies",
        "memory_mb",
        "timeout_s",
        "function",
        "shared_function",
        "schedule",
        "timezone",
        "schedule_in_words",
        "retries",
        "backfill",
        "tables",
        "ssm_parameters",
        "params",
        "next_fire",
        "stages",
        "alarms",
        "freshness_alarm",
    }
    assert (shown["stage"], shown["enabled"], shown["decided_by"]) == ("prod", False, "built-in default")
    assert shown["alarms"] == ["kairos-prod-crypto-markets-failed"]
    assert shown["freshness_alarm"] == {
        "name": None,
        "window_s": None,
        "period_s": None,
        "evaluation_periods": None,
        "note": "none: the task is disabled in stage prod",
    }
    # A snapshot of present quotes: refused for a slot later than both retry windows (600 s each).
    assert shown["backfill"] == {"allowed": False, "late_delivery_limit_s": 1200}
    assert (shown["architecture"], shown["dependencies"], shown["memory_mb"]) == ("x86_64", "crawler", 512)
    assert shown["tables"] == {"market_data": "write"}
    assert shown["params"] == {"top_n": 50, "vs_currency": "usd"}
    assert shown["retries"] == {"scheduler_attempts": 3, "max_event_age_s": 600, "lambda_async_attempts": 2}
    assert shown["next_fire"][:2] == ["2026-11-27T07:22:30Z", "2026-11-27T07:32:30Z"]
    assert shown["stages"]["dev"] == {"enabled": False, "decided_by": "stage enabled list"}


def test_show_says_what_decided_the_state_in_every_stage(runner: CliRunner, tasks_file: Path) -> None:
    result = invoke(runner, "show", "python-task-1", "--file", str(tasks_file))

    assert "enabled  yes (stage enabled list)" in result.stdout
    assert "dev on (stage enabled list); prod off (built-in default)" in result.stdout


UNKNOWN_TASK = "error: unknown task 'pyhton-task-1' (did you mean 'python-task-1'?)\n"


@pytest.mark.parametrize(
    "args",
    [
        ["enable", "pyhton-task-1"],
        ["disable", "pyhton-task-1", "--stage", "prod"],
        ["show", "pyhton-task-1"],
        ["run", "pyhton-task-1"],
        ["runs", "pyhton-task-1"],
    ],
)
def test_an_unknown_task_is_one_line_with_a_suggestion(runner: CliRunner, tasks_file: Path, args: list[str]) -> None:
    before = tasks_file.read_text()

    result = invoke(runner, *args, "--file", str(tasks_file))

    assert result.exit_code == 1
    assert result.stderr == UNKNOWN_TASK
    assert result.stdout == ""
    assert tasks_file.read_text() == before


@pytest.mark.parametrize(
    "args",
    [
        ["list", "--stage", "prd"],
        ["show", "python-task-1", "--stage", "prd"],
        ["enable", "python-task-1", "--stage", "prd"],
        ["run", "python-task-1", "--stage", "prd"],
        ["runs", "--stage", "prd"],
    ],
)
def test_an_unknown_stage_is_one_line_with_a_suggestion(runner: CliRunner, tasks_file: Path, args: list[str]) -> None:
    result = invoke(runner, *args, "--file", str(tasks_file))

    assert result.exit_code == 1
    assert result.stderr == "error: unknown stage 'prd' (did you mean 'prod'?)\n"


def test_an_unknown_name_without_a_close_match_says_where_to_look(runner: CliRunner, tasks_file: Path) -> None:
    result = invoke(runner, "show", "zzz", "--file", str(tasks_file))

    assert result.exit_code == 1
    assert result.stderr == "error: unknown task 'zzz' (kairos list shows every task)\n"


def test_version_comes_from_the_package_metadata(runner: CliRunner) -> None:
    result = invoke(runner, "--version")

    assert result.exit_code == 0
    assert result.stdout == f"kairos {version('kairos')}\n"


@pytest.mark.parametrize(
    "command", [[], ["list"], ["enable"], ["disable"], ["show"], ["run"], ["runs"], ["schedule", "next"]]
)
def test_help_shows_no_type_for_flags(runner: CliRunner, command: list[str]) -> None:
    result = invoke(runner, *command, "--help")

    assert result.exit_code == 0, result.output
    assert "--help" in result.stdout
    assert "<bool>" not in result.stdout


def test_list_at_80_columns_keeps_marker_name_and_next_fire_whole(runner: CliRunner, tasks_file: Path) -> None:
    result = invoke(runner, "list", "--file", str(tasks_file), columns=80)

    lines = result.stdout.splitlines()
    assert max(map(len, lines)) <= 80
    rows = [row for row in table_rows(result.stdout) if row[1]]
    assert [row[1] for row in rows] == [entry for entry in _task_names(tasks_file)]
    first = rows[0]
    assert (first[0], first[3]) == ("●", "2026-11-27T07:17:30Z")
    # The columns that did not fit moved under the row, into the last cell.
    assert "task_type:" in result.stdout
    assert "simple_task_1" in result.stdout


def _task_names(tasks_file: Path) -> list[str]:
    return [line.split(": ", 1)[1] for line in tasks_file.read_text().splitlines() if line.startswith("  - name: ")]


@contextmanager
def fixed_endpoint(url: str) -> Iterator[DynamoEndpoint]:
    yield DynamoEndpoint(url=url, embedded=False)


LONG_ERROR = (
    "CoinGecko answered 429 Too Many Requests on every attempt within the retry budget of 30 seconds; "
    "the next slot will try again"
)


@pytest.mark.parametrize("columns", [80, 100])
def test_runs_keep_status_name_and_the_whole_error_at_narrow_widths(
    runner: CliRunner, tasks_file: Path, local_dynamodb: str, monkeypatch: pytest.MonkeyPatch, columns: int
) -> None:
    import boto3

    from kairos.local.session import LocalStage
    from kairos_runtime.events import ScheduledEvent
    from kairos_runtime.runs import ErrorKind, RunError, RunRecorder, RunStatus
    from kairos_runtime.tables import TableId

    monkeypatch.setattr(cli.services, "endpoint", lambda: fixed_endpoint(local_dynamodb))
    stage = LocalStage(stage="dev", endpoint=DynamoEndpoint(url=local_dynamodb, embedded=False))
    stage.prepare_tables()
    table = boto3.resource("dynamodb", endpoint_url=local_dynamodb, region_name="us-east-1").Table(
        stage.table_names[TableId.TASK_RUNS]
    )
    recorder = RunRecorder(table, ttl_days=90)
    for minutes, status, error in (
        (0, RunStatus.SUCCEEDED, None),
        (10, RunStatus.FAILED, RunError("SourceUnavailable", LONG_ERROR, ErrorKind.TRANSIENT)),
    ):
        slot = NOW + timedelta(minutes=minutes)
        event = ScheduledEvent(
            task="crypto-markets", task_type="crypto_markets", scheduled_time=slot, execution_id=f"x{minutes}"
        )
        key = recorder.start(event, runtime="python3.13", request_id=f"r{minutes}", started_at=slot)
        recorder.finish(key, status=status, finished_at=slot, duration_ms=1234, items_written=50, error=error)

    result = invoke(runner, "runs", "crypto-markets", "--file", str(tasks_file), columns=columns)

    assert result.exit_code == 0, result.output
    assert max(map(len, result.stdout.splitlines())) <= columns
    rows = table_rows(result.stdout)
    starts = [index for index, row in enumerate(rows) if row[0]]
    assert [rows[index][:2] for index in starts] == [["crypto-markets", "FAILED"], ["crypto-markets", "SUCCEEDED"]]
    failed = rows[starts[0] : starts[1]]
    error_cell = "".join("".join(row[-1].split()) for row in failed)
    assert "".join(f"SourceUnavailable: {LONG_ERROR}".split()) in error_cell
