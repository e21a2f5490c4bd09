"""The kairos CLI, driven as a user would, with the clock and DynamoDB endpoint swapped in."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from ruamel.yaml import YAML
from typer.testing import CliRunner

from kairos import cli
from kairos.local.dynamodb import DynamoEndpoint, dynamodb_endpoint
from tests.conftest import PROJECT_ROOT

NOW = datetime(2026, 11, 27, 7, 12, 30, tzinfo=UTC)  # a Friday


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setattr(cli.services, "clock", lambda: NOW)
    return CliRunner()


@pytest.fixture
def tasks_file(tmp_path: Path) -> Path:
    path = tmp_path / "tasks.yaml"
    shutil.copy(PROJECT_ROOT / "tasks.yaml", path)
    return path


def invoke(runner: CliRunner, *args: str) -> tuple[int, str]:
    result = runner.invoke(cli.app, list(args))
    return result.exit_code, result.output


def test_list_shows_every_task_with_its_next_fire_time(runner: CliRunner, tasks_file: Path) -> None:
    code, output = invoke(runner, "list", "--file", str(tasks_file), "--stage", "dev")

    assert code == 0, output
    rows = {line.split("│")[2].strip(): line for line in output.splitlines() if line.count("│") > 5}
    assert "●" in rows["python-task-1"]
    assert "rate(5 minutes)" in rows["python-task-1"]
    assert "2026-11-27T07:17:30Z" in rows["python-task-1"], "a rate schedule counted from now"
    assert "nodejs22.x" in rows["nodejs-task-1"]
    assert "○" in rows["daily-summary"]
    assert "cron(0 18 * * ? *)" in rows["daily-summary"]
    assert "tasks," in output
    assert "enabled" in output


def test_validate_accepts_the_projects_file(runner: CliRunner, tasks_file: Path) -> None:
    code, output = invoke(runner, "validate", "--file", str(tasks_file))

    assert code == 0
    assert "valid" in output


def test_validate_json_reports_problems_and_warnings_by_name(runner: CliRunner, tasks_file: Path) -> None:
    import json

    code, output = invoke(runner, "validate", "--file", str(tasks_file), "--json")
    assert code == 0, output
    document = json.loads(output)
    shipped = YAML(typ="safe").load(tasks_file.read_text())
    assert (document["valid"], document["tasks"], document["stages"]) == (True, len(shipped["tasks"]), ["dev", "prod"])
    assert document["problems"] == []
    assert [warning for warning in document["warnings"] if "stage 'prod' keeps its data" in warning]

    tasks_file.write_text(tasks_file.read_text().replace("schedule: rate(5 minutes)", "schedule: rate(5 minute)", 1))
    code, output = invoke(runner, "validate", "--file", str(tasks_file), "--json")
    assert code == 1
    document = json.loads(output)
    assert document["valid"] is False
    [problem] = document["problems"]
    assert problem.startswith(f"{tasks_file}:")
    assert "rate(5 minute)" in problem


def test_validate_reports_problems_without_a_traceback(runner: CliRunner, tasks_file: Path) -> None:
    text = tasks_file.read_text().replace("schedule: rate(5 minutes)", "shedule: rate(5 minutes)", 1)
    tasks_file.write_text(text.replace("memory: 512", "memory: 99999"))

    code, output = invoke(runner, "validate", "--file", str(tasks_file))

    assert code == 1
    assert "task 'python-task-1', field 'shedule': unknown field (did you mean 'schedule'?)" in output
    assert "task 'python-task-1', field 'memory'" in output
    assert "Traceback" not in output


def test_enable_edits_one_line_and_keeps_comments_and_layout(runner: CliRunner, tasks_file: Path) -> None:
    before = tasks_file.read_text().splitlines()

    code, output = invoke(runner, "enable", "stock-spot", "--file", str(tasks_file))

    after = tasks_file.read_text().splitlines()
    assert code == 0, output
    changed = [(old, new) for old, new in zip(before, after, strict=True) if old != new]
    assert changed == [("    enabled: false", "    enabled: true")]
    assert after[0].startswith("# yaml-language-server:")
    code, _ = invoke(runner, "disable", "stock-spot", "--file", str(tasks_file))
    assert tasks_file.read_text().splitlines() == before


def test_enable_inserts_the_key_when_a_task_has_none(runner: CliRunner, tasks_file: Path) -> None:
    entry = "    task_type: daily_summary\n    schedule: cron(0 18 * * ? *)\n    timezone: Asia/Shanghai\n"
    text = tasks_file.read_text()
    assert entry + "    enabled: false\n" in text
    tasks_file.write_text(text.replace(entry + "    enabled: false\n", entry))

    code, output = invoke(runner, "enable", "daily-summary", "--file", str(tasks_file))

    assert code == 0, output
    lines = tasks_file.read_text().splitlines()
    schedule_line = lines.index("    schedule: cron(0 18 * * ? *)")
    assert lines[schedule_line + 1] == "    enabled: true"


def test_enable_in_one_stage_edits_that_stages_list(runner: CliRunner, tasks_file: Path) -> None:
    code, output = invoke(runner, "enable", "daily-summary", "--stage", "dev", "--file", str(tasks_file))

    assert code == 0, output
    assert "enabled: [python-task-1, python-task-2, nodejs-task-1, nodejs-task-2, daily-summary]" in (
        tasks_file.read_text()
    )
    code, output = invoke(runner, "list", "--file", str(tasks_file), "--stage", "prod")
    summary = next(line for line in output.splitlines() if "daily-summary" in line)
    assert "○" in summary, "prod keeps the task's own flag"


def test_enable_without_a_stage_says_which_stages_decide_for_themselves(runner: CliRunner, tasks_file: Path) -> None:
    code, output = invoke(runner, "enable", "stock-spot", "--file", str(tasks_file))

    assert code == 0, output
    assert "stock-spot: enabled: true (stages dev decide for themselves: use --stage to change them)" in output


def test_an_edit_that_would_not_validate_names_the_real_file_and_leaves_no_scratch(
    runner: CliRunner, tasks_file: Path
) -> None:
    text = tasks_file.read_text().replace(
        "    enabled: [python-task-1,", "    overrides: {daily-summary: {enabled: true}}\n    enabled: [python-task-1,"
    )
    tasks_file.write_text(text)

    code, output = invoke(runner, "disable", "python-task-1", "--file", str(tasks_file))

    assert code == 1
    assert f"{tasks_file}:" in output
    assert ".edit" not in output
    assert [path.name for path in tasks_file.parent.iterdir()] == ["tasks.yaml"]
    assert tasks_file.read_text() == text


def test_enable_of_an_unknown_task_fails_and_changes_nothing(runner: CliRunner, tasks_file: Path) -> None:
    before = tasks_file.read_text()

    code, output = invoke(runner, "enable", "ghost", "--file", str(tasks_file))

    assert code == 1
    assert "unknown task 'ghost'" in output
    assert tasks_file.read_text() == before


def test_show_prints_the_resolved_task(runner: CliRunner, tasks_file: Path) -> None:
    code, output = invoke(runner, "show", "python-task-1", "--file", str(tasks_file))

    assert code == 0, output
    assert "512 MB / 300 s" in output
    assert "rate(5 minutes) in UTC" in output
    assert "its own run records only" in output
    assert "2026-11-27T07:17:30Z, 2026-11-27T07:22:30Z" in output
    # Its freshness alarm (dev enables it): the window rate(5 minutes) and a 300 s timeout make.
    assert "freshness alarm  kairos-dev-python-task-1-late: no success or skip for 33 min" in output
    assert "kairos-dev-python-task-1-failed, kairos-dev-python-task-1-late" in output


def test_show_says_why_a_task_has_no_freshness_alarm(runner: CliRunner, tmp_path: Path) -> None:
    import json

    tasks_file = tmp_path / "tasks.yaml"
    tasks_file.write_text(
        "stages: {dev: {}}\ntasks:\n"
        "  - {name: weekly, task_type: simple_task_1, schedule: cron(0 6 ? * MON *), enabled: true}\n",
        encoding="utf-8",
    )
    code, output = invoke(runner, "show", "weekly", "--file", str(tasks_file))
    assert code == 0, output
    assert "longer than a CloudWatch alarm looks back" in " ".join(output.split())
    assert "kairos status --stage dev judges it" in " ".join(output.split())

    code, output = invoke(runner, "show", "weekly", "--file", str(tasks_file), "--json")
    assert code == 0, output
    freshness = json.loads(output)["freshness_alarm"]
    assert freshness["name"] is None
    assert freshness["window_s"] == 14 * 86_400 + 3 * 60 + 3 * 60 + 5 * 60
    assert json.loads(output)["alarms"] == ["kairos-dev-weekly-failed"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param(
            [
                "cron(30 2 * * ? *)",
                "--tz",
                "America/New_York",
                "--after",
                "2026-03-07T00:00:00Z",
                "--count",
                "3",
            ],
            ["2026-03-07T07:30:00Z", "2026-03-09T06:30:00Z", "2026-03-10T06:30:00Z"],
            id="spring-forward-gap-is-skipped",
        ),
        pytest.param(
            ["cron(30 1 * * ? *)", "--tz", "America/New_York", "--after", "2026-10-31T12:00:00Z", "-n", "2"],
            ["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"],
            id="fall-back-repeat-runs-once",
        ),
        pytest.param(
            ["cron(0 18 * * ? *)", "--tz", "Asia/Shanghai", "--after", "2026-11-27T10:00:00Z", "-n", "2"],
            ["2026-11-28T10:00:00Z", "2026-11-29T10:00:00Z"],
            id="strictly-after",
        ),
        pytest.param(
            # the documented wrapped range: Friday night runs to 23:30, Saturday's small hours don't, Monday's do
            ["cron(0/30 20-2 ? * MON-FRI *)", "--after", "2026-01-09T22:45:00Z", "-n", "4"],
            ["2026-01-09T23:00:00Z", "2026-01-09T23:30:00Z", "2026-01-12T00:00:00Z", "2026-01-12T00:30:00Z"],
            id="wrapped-hours",
        ),
        pytest.param(["rate(7 minutes)", "-n", "2"], ["2026-11-27T07:19:30Z", "2026-11-27T07:26:30Z"], id="rate"),
    ],
)
def test_schedule_next_prints_fire_times_in_utc(runner: CliRunner, args: list[str], expected: list[str]) -> None:
    code, output = invoke(runner, "schedule", "next", *args)

    assert code == 0, output
    assert output.split() == expected


def test_schedule_next_in_json_names_the_expression_zone_start_and_fires(runner: CliRunner) -> None:
    args = ["cron(0 18 * * ? *)", "--tz", "Asia/Shanghai", "--after", "2026-11-27T10:00:00Z", "-n", "2", "--json"]
    result = runner.invoke(cli.app, ["schedule", "next", *args])

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "expression": "cron(0 18 * * ? *)",
        "timezone": "Asia/Shanghai",
        "after": "2026-11-27T10:00:00Z",
        "fires": ["2026-11-28T10:00:00Z", "2026-11-29T10:00:00Z"],
    }


@pytest.mark.parametrize(
    "args",
    [
        ["cron(0 18 * * * *)"],
        ["rate(1 minutes)"],
        ["rate(5 minutes)", "--tz", "Nowhere/City"],
        ["rate(5 minutes)", "--after", "yesterday"],
        ["rate(5 minutes)", "--after", "9999-12-31T23:59:59-01:00"],
    ],
)
def test_schedule_next_rejects_invalid_input(runner: CliRunner, args: list[str]) -> None:
    code, output = invoke(runner, "schedule", "next", *args)

    assert code == 2
    assert "error:" in output


@contextmanager
def fixed_endpoint(url: str) -> Iterator[DynamoEndpoint]:
    yield DynamoEndpoint(url=url, embedded=False)


def test_run_then_runs_against_a_dynamodb_endpoint(
    runner: CliRunner, tasks_file: Path, local_dynamodb: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli.services, "endpoint", lambda: fixed_endpoint(local_dynamodb))

    code, output = invoke(runner, "run", "python-task-1", "--file", str(tasks_file))
    assert code == 0, output
    assert "SUCCEEDED" in output
    assert "2026-11-27T07:12:00Z" in output, "the slot is now, to the minute"

    invoke(runner, "run", "nodejs-task-2", "--file", str(tasks_file))
    # History across tasks is read by the day the runs started, which is today.
    monkeypatch.setattr(cli.services, "clock", lambda: datetime.now(UTC))
    code, output = invoke(runner, "runs", "python-task-1", "--file", str(tasks_file))
    assert code == 0
    assert output.count("python-task-1 ") == 1
    assert "nodejs-task-2" not in output
    code, output = invoke(runner, "runs", "--file", str(tasks_file))
    assert "python-task-1" in output
    assert "nodejs-task-2" in output


def test_run_in_json_prints_the_event_response_and_record_and_a_declined_slot_too(
    runner: CliRunner, tasks_file: Path, local_dynamodb: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli.services, "endpoint", lambda: fixed_endpoint(local_dynamodb))
    slot = ("--scheduled-time", "2026-11-27T05:00:00Z")

    first = runner.invoke(cli.app, ["run", "python-task-1", "--file", str(tasks_file), *slot, "--json"])
    again = runner.invoke(cli.app, ["run", "python-task-1", "--file", str(tasks_file), *slot, "--json", "-v"])

    assert first.exit_code == 0, first.output
    document = json.loads(first.stdout)
    assert (document["task"], document["stage"], document["endpoint"]) == ("python-task-1", "dev", local_dynamodb)
    assert document["event"]["scheduled_time"] == "2026-11-27T05:00:00Z"
    assert document["record"]["status"] == "SUCCEEDED"
    assert document["record"]["scheduled_time"] == "2026-11-27T05:00:00Z"
    assert document["response"]["status"] == "SUCCEEDED"
    assert "output" not in document
    # The slot is done: the handler declines it and says so; the earlier record is the answer.
    assert again.exit_code == 0, again.output
    declined = json.loads(again.stdout)
    assert declined["response"]["declined"] == "done"
    assert "already SUCCEEDED: not run again" in again.stderr
    assert declined["record"]["sk"] == document["record"]["sk"]
    assert isinstance(declined["output"], str)


def test_run_of_a_disabled_task_says_so(
    runner: CliRunner, tasks_file: Path, local_dynamodb: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli.services, "endpoint", lambda: fixed_endpoint(local_dynamodb))

    code, output = invoke(runner, "run", "daily-summary", "--file", str(tasks_file))

    assert code == 0, output
    assert "daily-summary is disabled in stage dev" in output


def test_run_uses_the_embedded_dynamodb_and_keeps_its_data(
    runner: CliRunner,
    tasks_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    from kairos.local.server import stop_server

    data_dir = tmp_path / "dynamodb"
    # The shared server outlives the command that started it (docs/adr/0200): stopped after the test.
    request.addfinalizer(lambda: stop_server(data_dir, force=True))
    monkeypatch.setattr(cli.services, "endpoint", lambda: dynamodb_endpoint(data_dir))

    code, output = invoke(runner, "run", "python-task-2", "--file", str(tasks_file))
    assert code == 0, output
    assert "http://127.0.0.1:" in output
    assert "SUCCEEDED" in output

    # A second command over the same directory sees the first run.
    code, output = invoke(runner, "runs", "python-task-2", "--file", str(tasks_file))
    assert code == 0
    assert "SUCCEEDED" in output
    assert any(data_dir.iterdir())


def test_a_second_user_of_the_embedded_dynamodb_gets_a_clear_error(tmp_path: Path) -> None:
    from kairos.local.dynamodb import EmbeddedDynamoError, embedded_dynamodb, exclusive_use

    data_dir = tmp_path / "dynamodb"
    with (
        exclusive_use(data_dir, wait_s=0),
        pytest.raises(EmbeddedDynamoError, match="another kairos command"),
        embedded_dynamodb(data_dir, lock_wait_s=0.2),
    ):
        pass


def test_a_local_table_of_an_older_design_is_reported_not_reused(
    runner: CliRunner, tasks_file: Path, local_dynamodb: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3

    client = boto3.client("dynamodb", endpoint_url=local_dynamodb, region_name="us-east-1")
    client.create_table(
        TableName="kairos-dev-TaskRuns",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    monkeypatch.setattr(cli.services, "endpoint", lambda: fixed_endpoint(local_dynamodb))

    code, output = invoke(runner, "run", "python-task-1", "--file", str(tasks_file))

    assert code == 1
    assert "local table kairos-dev-TaskRuns has an older key or index design" in output
    assert client.describe_table(TableName="kairos-dev-TaskRuns")["Table"]["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"}
    ]


def test_run_stage_creates_the_templates_tables_and_runs_every_enabled_task(
    runner: CliRunner, tasks_file: Path, tmp_path: Path, local_dynamodb: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What `make run` does after synthesizing: here the template is synthesized in-process.
    import json

    import aws_cdk as cdk
    import boto3
    from aws_cdk.assertions import Template

    from kairos_stack.app_builder import build_stage, stage_plan

    app = cdk.App(context={"aws:cdk:bundling-stacks": [], "aws:cdk:enable-path-metadata": True})
    template_file = tmp_path / "kairos-dev.template.json"
    template_file.write_text(
        json.dumps(Template.from_stack(build_stage(app, stage_plan(tasks_file, "dev")).core).to_json())
    )
    monkeypatch.setattr(cli.services, "endpoint", lambda: fixed_endpoint(local_dynamodb))

    code, output = invoke(runner, "run-stage", "--file", str(tasks_file), "--template", str(template_file))

    assert code == 0, output
    assert "created tables on" in output
    assert "kairos-dev-TaskRuns, kairos-dev-MarketData" in output
    rows = [line for line in output.splitlines() if "SUCCEEDED" in line and "│" in line]
    assert sorted(line.split("│")[1].strip() for line in rows) == [
        "nodejs-task-1",
        "nodejs-task-2",
        "python-task-1",
        "python-task-2",
    ]
    # `make run` ends with one line: how many tasks ran, by status.
    assert output.splitlines()[-1] == "stage dev: 4 tasks run: 4 SUCCEEDED, 0 FAILED, 0 SKIPPED"
    client = boto3.client("dynamodb", endpoint_url=local_dynamodb, region_name="us-east-1")
    runs = client.describe_table(TableName="kairos-dev-TaskRuns")["Table"]
    assert [index["IndexName"] for index in runs["GlobalSecondaryIndexes"]] == ["by_date"]


def test_the_run_summary_counts_every_status_and_missing_records() -> None:
    assert cli.run_summary("dev", ["SUCCEEDED", "FAILED", "SUCCEEDED", "SKIPPED"]) == (
        "stage dev: 4 tasks run: 2 SUCCEEDED, 1 FAILED, 1 SKIPPED"
    )
    assert cli.run_summary("prod", ["STARTED"], missing=1) == (
        "stage prod: 2 tasks run: 0 SUCCEEDED, 0 FAILED, 0 SKIPPED, 1 STARTED, 1 without a run record"
    )
    assert cli.run_summary("dev", []) == "stage dev: 0 tasks run: 0 SUCCEEDED, 0 FAILED, 0 SKIPPED"


def test_validate_warns_when_a_stage_that_keeps_data_has_no_alarm_subscriber(
    runner: CliRunner, tasks_file: Path
) -> None:
    code, output = invoke(runner, "validate", "--file", str(tasks_file))

    assert code == 0, "a warning, not a problem"
    assert f"{tasks_file}: warning: stage 'prod' keeps its data (retain_data: true)" in output.replace("\n", " ")
    assert "valid" in output

    tasks_file.write_text(tasks_file.read_text().replace("alarm_email: null", "alarm_email: ops@example.com"))
    code, output = invoke(runner, "validate", "--file", str(tasks_file))

    assert code == 0
    assert "warning" not in output


def test_show_names_the_partitions_a_task_may_touch(runner: CliRunner, tasks_file: Path) -> None:
    code, output = invoke(runner, "show", "stock-daily", "--file", str(tasks_file))
    summary = invoke(runner, "show", "daily-summary", "--file", str(tasks_file))[1]

    assert code == 0, output
    assert "market_data (read_write: read STOCK#, CALENDAR#; write STOCK#)" in output
    assert "task_runs (query_indexes, whole table)" in summary.replace("\n", " ")
    assert "market_data (read_write: read SUMMARY#; write SUMMARY#; query its indexes)" in " ".join(summary.split())
    assert "query its indexes" not in output


def test_run_of_a_fan_out_task_runs_its_steps_through_the_fan_out_handlers(
    runner: CliRunner, tasks_file: Path, local_dynamodb: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``kairos run`` of stock-daily-all starts the local fan-out driver in a fresh interpreter: its
    planner (the real plan handler) finds Saturday closed and the record says so; no batch runs."""
    monkeypatch.setattr(cli.services, "endpoint", lambda: fixed_endpoint(local_dynamodb))

    code, output = invoke(
        runner, "run", "stock-daily-all", "--file", str(tasks_file), "--scheduled-time", "2026-11-28T08:00:00Z", "-v"
    )

    assert code == 0, output
    assert "SKIPPED" in output
    assert "not a trading day" in output
    assert "stock-daily-all-plan" in output, "the plan step logged under its own function name"


def test_a_second_run_of_a_done_slot_does_not_run_and_rerun_does(
    runner: CliRunner, tasks_file: Path, local_dynamodb: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli.services, "endpoint", lambda: fixed_endpoint(local_dynamodb))
    slot = ("--scheduled-time", "2026-11-27T06:00:00Z")

    first = invoke(runner, "run", "python-task-1", "--file", str(tasks_file), *slot)
    second = invoke(runner, "run", "python-task-1", "--file", str(tasks_file), *slot)
    rerun = invoke(runner, "run", "python-task-1", "--file", str(tasks_file), *slot, "--rerun")

    assert first[0] == second[0] == rerun[0] == 0, (first, second, rerun)
    assert "note: python-task-1's slot 2026-11-27T06:00:00Z already SUCCEEDED: not run again" in second[1]
    assert "SUCCEEDED" in second[1], "the earlier run is printed"
    assert "not run again" not in rerun[1]
    import boto3

    table = boto3.resource(
        "dynamodb",
        endpoint_url=local_dynamodb,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    ).Table("kairos-dev-TaskRuns")
    runs = table.query(
        KeyConditionExpression="pk = :pk AND begins_with(sk, :run)",
        ExpressionAttributeValues={":pk": "TASK#python-task-1", ":run": "RUN#2026-11-27T06:00:00Z#"},
    )["Items"]
    assert len(runs) == 2, "the second run was declined, the rerun ran"
    assert [run.get("rerun", False) for run in runs].count(True) == 1
