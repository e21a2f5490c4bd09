"""status, runs --stage, logs, invoke, pause and resume against a deployed stage in moto (in-process).

The stack is created through moto's CloudFormation from a template shaped like the synthesized one
(the same construct paths, tables from the designs, a function, log group and schedule per task),
so ``kairos.operations.deployed`` finds it exactly as it finds a real deployment. The Scheduler
resource models are the deploy smoke's (moto lacks them).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import tests.deploy.moto_server_with_scheduler  # noqa: F401 - registers AWS::Scheduler::* in moto's CloudFormation
from kairos import cli
from kairos.catalog import load_catalog
from kairos.loading import load_tasks_file
from kairos.local.tables import tables_from_designs
from kairos.operations.deployed import FUNCTION_PATH, LOG_GROUP_PATH, SCHEDULE_PATH, TABLE_PATH
from kairos.plan import AlarmPlan, StagePlan, TaskPlan, input_json, plan_stage
from kairos_runtime.tables import TABLE_DESIGNS

NOW = datetime(2026, 11, 27, 7, 12, 30, tzinfo=UTC)
TASKS_YAML = """\
defaults: {runtime: python3.13, memory: 256, timeout: 60, timezone: UTC}
stages:
  dev: {enabled: [every-five]}
tasks:
  - name: every-five
    task_type: simple_task_1
    schedule: rate(5 minutes)
    params: {label: five}
  - name: nightly
    task_type: simple_task_1
    schedule: cron(0 18 * * ? *)
    params: {label: nightly}
"""


@pytest.fixture
def tasks_file(tmp_path: Path) -> Path:
    path = tmp_path / "tasks.yaml"
    path.write_text(TASKS_YAML, encoding="utf-8")
    return path


@pytest.fixture
def plan(tasks_file: Path) -> StagePlan:
    catalog = load_catalog()
    return plan_stage(load_tasks_file(tasks_file, catalog), catalog, "dev")


ROLE = {
    "Type": "AWS::IAM::Role",
    "Properties": {"AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": []}},
}


def stack_templates(plan: StagePlan) -> dict[str, dict[str, Any]]:
    """The stage's core stack and its shard stacks, each task in the shard the plan gives it."""

    def at(path: str, stack: str = plan.stack_name) -> dict[str, Any]:
        return {"aws:cdk:path": f"{stack}/{path}"}

    resources: dict[str, Any] = {
        "Role": {**ROLE, "Metadata": at("Role/Resource")},
        "Group": {
            "Type": "AWS::Scheduler::ScheduleGroup",
            "Properties": {"Name": plan.schedule_group_name},
            "Metadata": at("ScheduleGroup/Resource"),
        },
        "Queue": {"Type": "AWS::SQS::Queue", "Properties": {}, "Metadata": at("DeadLetters/Queue/Resource")},
    }
    for table in tables_from_designs(plan.stage):
        design = TABLE_DESIGNS[table.table_id]
        resources[f"Table{design.construct_id}"] = {
            "Type": "AWS::DynamoDB::Table",
            "Properties": dict(table.definition),
            "Metadata": at(TABLE_PATH.format(construct_id=design.construct_id)),
        }
    templates = {plan.stack_name: {"Resources": resources}}
    for shard in plan.shards:
        templates[shard.stack_name] = shard_template(plan, shard.stack_name, shard.tasks)
    return templates


def shard_template(plan: StagePlan, stack: str, tasks: tuple[TaskPlan, ...]) -> dict[str, Any]:
    def at(path: str) -> dict[str, Any]:
        return {"aws:cdk:path": f"{stack}/{path}"}

    resources: dict[str, Any] = {"Role": {**ROLE, "Metadata": at("Role/Resource")}}
    for index, task in enumerate(tasks):
        resources[f"Function{index}"] = {
            "Type": "AWS::Lambda::Function",
            "Properties": {
                "Runtime": "python3.13",
                "Handler": "index.handler",
                "Role": {"Fn::GetAtt": ["Role", "Arn"]},
                "Code": {"ZipFile": "def handler(event, context):\n    return event\n"},
            },
            "Metadata": at(FUNCTION_PATH.format(task=task.name)),
        }
        resources[f"Logs{index}"] = {
            "Type": "AWS::Logs::LogGroup",
            "Properties": {},
            "Metadata": at(LOG_GROUP_PATH.format(task=task.name)),
        }
        resources[f"Schedule{index}"] = {
            "Type": "AWS::Scheduler::Schedule",
            "Properties": {
                "Name": f"{task.name}-schedule",
                "GroupName": plan.schedule_group_name,
                "Description": f"{task.name}: {task.schedule_expression}",
                "ScheduleExpression": task.schedule_expression,
                "ScheduleExpressionTimezone": task.timezone,
                "FlexibleTimeWindow": {"Mode": "OFF"},
                "State": "ENABLED" if task.enabled else "DISABLED",
                "Target": {
                    "Arn": {"Fn::GetAtt": [f"Function{index}", "Arn"]},
                    "RoleArn": {"Fn::GetAtt": ["Role", "Arn"]},
                    "Input": input_json(dict(task.input_template)),
                    "RetryPolicy": {"MaximumRetryAttempts": 3, "MaximumEventAgeInSeconds": 300},
                },
            },
            "Metadata": at(SCHEDULE_PATH.format(task=task.name)),
        }
    return {"Resources": resources}


@pytest.fixture
def aws(plan: StagePlan, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    import boto3
    from moto import mock_aws

    monkeypatch.setattr(cli.services, "clock", lambda: NOW)
    with mock_aws(config={"lambda": {"use_docker": False}}):
        for name, template in stack_templates(plan).items():
            boto3.client("cloudformation").create_stack(StackName=name, TemplateBody=json.dumps(template))
        yield boto3.session.Session()


def physical(session: Any, plan: StagePlan, path: str) -> str:
    """The physical id of the resource at ``path`` (below its stack), in whichever of the stage's stacks."""
    cloudformation = session.client("cloudformation")
    found = []
    for name in plan.stack_names:
        template = cloudformation.get_template(StackName=name)["TemplateBody"]
        logical = [
            key for key, value in template["Resources"].items() if value["Metadata"]["aws:cdk:path"] == f"{name}/{path}"
        ]
        summaries = cloudformation.list_stack_resources(StackName=name)["StackResourceSummaries"]
        found += [s["PhysicalResourceId"] for s in summaries if s["LogicalResourceId"] in logical]
    (one,) = found
    return str(one)


def runs_table(session: Any, plan: StagePlan) -> Any:
    return session.resource("dynamodb").Table(physical(session, plan, "Tables/TaskRuns/Resource"))


def put_run(table: Any, task: str, slot: datetime, status: str, **extra: Any) -> None:
    started = slot + timedelta(seconds=2)
    started_text = started.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    slot_text = slot.strftime("%Y-%m-%dT%H:%M:%SZ")
    table.put_item(
        Item={
            "pk": f"TASK#{task}",
            "sk": f"RUN#{slot_text}#exec-{slot:%H%M}#1",
            "gsi1pk": f"RUNDATE#{started_text[:10]}",
            "gsi1sk": f"{started_text}#{task}",
            "task": task,
            "status": status,
            "scheduled_time": slot_text,
            "execution_id": f"exec-{slot:%H%M}",
            "request_id": f"request-{slot:%H%M}",
            "started_at": started_text,
            "duration_ms": 1200,
            **extra,
        }
    )


def invoke(*args: str, columns: int = 200) -> Any:
    return CliRunner().invoke(cli.app, list(args), env={"COLUMNS": str(columns)})


def test_status_rows_each_task_with_freshness_and_exits_1_when_one_is_late(
    aws: Any, plan: StagePlan, tasks_file: Path
) -> None:
    table = runs_table(aws, plan)
    put_run(table, "every-five", datetime(2026, 11, 27, 6, 40, tzinfo=UTC), "SUCCEEDED")

    result = invoke("status", "--stage", "dev", "--file", str(tasks_file), "--json")

    assert result.exit_code == 1, result.output
    rows = {row["name"]: row for row in json.loads(result.stdout)["tasks"]}
    assert rows["every-five"]["freshness"] == "LATE"
    assert rows["every-five"]["schedule_state"] == "ENABLED"
    assert rows["every-five"]["last_run"] == {
        "status": "SUCCEEDED",
        "scheduled_time": "2026-11-27T06:40:00Z",
        "started_at": "2026-11-27T06:40:02.000Z",
        "duration_ms": 1200,
    }
    assert rows["every-five"]["next_fire"] == "2026-11-27T07:15:00Z"
    assert rows["nightly"]["freshness"] == "PAUSED"
    assert rows["nightly"]["drift"] is False


def test_status_is_ok_after_a_recent_success_and_prints_at_80_columns(
    aws: Any, plan: StagePlan, tasks_file: Path
) -> None:
    put_run(runs_table(aws, plan), "every-five", datetime(2026, 11, 27, 7, 0, tzinfo=UTC), "SUCCEEDED")

    result = invoke("status", "--stage", "dev", "--file", str(tasks_file), columns=80)

    assert result.exit_code == 0, result.output
    assert all(len(line) <= 80 for line in result.stdout.splitlines())
    assert "every-five" in result.stdout
    assert "OK" in result.stdout
    assert "PAUSED" in result.stdout


def test_pause_keeps_every_other_field_and_status_shows_the_drift(aws: Any, plan: StagePlan, tasks_file: Path) -> None:
    scheduler = aws.client("scheduler")
    before = scheduler.get_schedule(Name="every-five-schedule", GroupName=plan.schedule_group_name)

    paused = invoke("pause", "every-five", "--stage", "dev", "--file", str(tasks_file))

    assert paused.exit_code == 0, paused.output
    assert "ENABLED -> DISABLED" in paused.stdout
    assert "the next deploy applies tasks.yaml again" in paused.stdout
    after = scheduler.get_schedule(Name="every-five-schedule", GroupName=plan.schedule_group_name)
    assert after["State"] == "DISABLED"
    for field in ("ScheduleExpression", "ScheduleExpressionTimezone", "Description", "Target", "FlexibleTimeWindow"):
        assert after[field] == before[field], field
    status = json.loads(invoke("status", "--stage", "dev", "--file", str(tasks_file), "--json").stdout)
    row = next(row for row in status["tasks"] if row["name"] == "every-five")
    assert (row["freshness"], row["schedule_state"], row["drift"]) == ("PAUSED", "DISABLED", True)

    resumed = invoke("resume", "every-five", "--stage", "dev", "--file", str(tasks_file))

    assert resumed.exit_code == 0, resumed.output
    assert scheduler.get_schedule(Name="every-five-schedule", GroupName=plan.schedule_group_name)["State"] == "ENABLED"
    # This stand-in stack has no alarms (nor does moto's CloudFormation make them): said, not an error.
    assert "freshness alarm kairos-dev-every-five-late: not deployed in this stage" in resumed.stdout


def test_pause_and_resume_in_json_say_what_changed(aws: Any, plan: StagePlan, tasks_file: Path) -> None:
    common = ("--stage", "dev", "--file", str(tasks_file), "--json")

    paused = invoke("pause", "every-five", *common)
    again = invoke("pause", "every-five", *common)
    resumed = invoke("resume", "every-five", *common)

    assert paused.exit_code == again.exit_code == resumed.exit_code == 0, (paused.output, resumed.output)
    first = json.loads(paused.stdout)
    assert first == {
        "task": "every-five",
        "stage": "dev",
        "schedule": "every-five-schedule",
        "before": "ENABLED",
        "after": "DISABLED",
        "changed": True,
        # This stand-in stack deploys no alarms: named, and said to be missing.
        "freshness_alarm": {"name": "kairos-dev-every-five-late", "deployed": False, "actions_enabled": None},
        "enabled_in_tasks_yaml": True,
    }
    assert (json.loads(again.stdout)["before"], json.loads(again.stdout)["changed"]) == ("DISABLED", False)
    assert {key: json.loads(resumed.stdout)[key] for key in ("before", "after", "changed")} == {
        "before": "DISABLED",
        "after": "ENABLED",
        "changed": True,
    }


def deploy_freshness_alarm(
    aws: Any, plan: StagePlan, task: str, *, dimensions: dict[str, str] | None = None
) -> AlarmPlan:
    """The task's freshness alarm, put in place as the stack would (moto's CloudFormation makes none),
    reading the plan's dimensions unless ``dimensions`` says otherwise."""
    freshness = plan.task(task).freshness.alarm
    assert freshness is not None
    reads = dict(freshness.only_metric.dimensions) if dimensions is None else dimensions
    aws.client("cloudwatch").put_metric_alarm(
        AlarmName=freshness.alarm_name,
        MetricName="RunsAlive",
        Namespace="Kairos",
        Dimensions=[{"Name": name, "Value": value} for name, value in reads.items()],
        Statistic="Sum",
        Period=freshness.period_seconds,
        EvaluationPeriods=freshness.evaluation_periods,
        Threshold=1,
        ComparisonOperator="LessThanThreshold",
        ActionsEnabled=True,
    )
    return freshness


def test_pause_mutes_the_freshness_alarm_and_resume_rearms_it(aws: Any, plan: StagePlan, tasks_file: Path) -> None:
    freshness = deploy_freshness_alarm(aws, plan, "every-five")
    cloudwatch = aws.client("cloudwatch")
    cloudwatch.set_alarm_state(AlarmName=freshness.alarm_name, StateValue="ALARM", StateReason="test: not running")

    def alarm() -> dict[str, Any]:
        [found] = cloudwatch.describe_alarms(AlarmNames=[freshness.alarm_name])["MetricAlarms"]
        return found  # type: ignore[no-any-return]

    paused = invoke("pause", "every-five", "--stage", "dev", "--file", str(tasks_file))
    assert paused.exit_code == 0, paused.output
    assert "freshness alarm kairos-dev-every-five-late: notifies no one until resume" in paused.stdout
    assert alarm()["ActionsEnabled"] is False

    resumed = invoke("resume", "every-five", "--stage", "dev", "--file", str(tasks_file))
    assert resumed.exit_code == 0, resumed.output
    assert "notifies again; its window starts now" in resumed.stdout
    assert alarm()["ActionsEnabled"] is True
    # The window starts again: one RunsAlive for the task, where the alarm reads it.
    [metric] = cloudwatch.list_metrics(Namespace="Kairos", MetricName="RunsAlive")["Metrics"]
    assert sorted((d["Name"], d["Value"]) for d in metric["Dimensions"]) == [
        ("service", "kairos"),
        ("stage", "dev"),
        ("task", "every-five"),
    ]
    sums = cloudwatch.get_metric_statistics(
        Namespace="Kairos",
        MetricName="RunsAlive",
        Dimensions=metric["Dimensions"],
        StartTime=datetime(2000, 1, 1, tzinfo=UTC),
        EndTime=datetime(2100, 1, 1, tzinfo=UTC),
        Period=86_400,
        Statistics=["Sum"],
    )["Datapoints"]
    assert [point["Sum"] for point in sums] == [1]
    # A task without a freshness alarm (disabled in dev) changes no alarm and says nothing of one.
    nightly = invoke("pause", "nightly", "--stage", "dev", "--file", str(tasks_file))
    assert nightly.exit_code == 0, nightly.output
    assert "freshness alarm" not in nightly.stdout


def test_runs_of_the_deployed_stage_filter_by_task_status_and_since(
    aws: Any, plan: StagePlan, tasks_file: Path
) -> None:
    table = runs_table(aws, plan)
    for minute, status in ((50, "SUCCEEDED"), (55, "FAILED"), (0, "SUCCEEDED")):
        hour = 6 if minute else 7
        put_run(table, "every-five", datetime(2026, 11, 27, hour, minute, tzinfo=UTC), status)
    put_run(table, "every-five", datetime(2026, 11, 25, 7, 0, tzinfo=UTC), "FAILED")

    failed = invoke("runs", "every-five", "--stage", "dev", "--file", str(tasks_file), "--status", "failed", "--json")
    recent = invoke("runs", "--stage", "dev", "--file", str(tasks_file), "--since", "1h", "--json")

    assert failed.exit_code == 0, failed.output
    assert [run["scheduled_time"] for run in json.loads(failed.stdout)["runs"]] == [
        "2026-11-27T06:55:00Z",
        "2026-11-25T07:00:00Z",
    ]
    assert json.loads(failed.stdout)["runs"][0]["duration_ms"] == 1200
    assert recent.exit_code == 0, recent.output
    assert [run["scheduled_time"] for run in json.loads(recent.stdout)["runs"]] == [
        "2026-11-27T07:00:00Z",
        "2026-11-27T06:55:00Z",
        "2026-11-27T06:50:00Z",
    ]


def put_slot(table: Any, task: str, slot: datetime, *, run_id: str, reasons: list[str]) -> None:
    """A slot's claim item as ``kairos_runtime.slots`` leaves it: one claim and ``reasons`` declines."""
    slot_text = slot.strftime("%Y-%m-%dT%H:%M:%SZ")
    table.put_item(
        Item={
            "pk": f"TASK#{task}",
            "sk": f"SLOT#{slot_text}",
            "task": task,
            "scheduled_time": slot_text,
            "status": "SUCCEEDED",
            "run_id": run_id,
            "request_id": "request-owner",
            "claimed_at": slot_text,
            "deliveries": 1 + len(reasons),
            "declined": [
                {"request_id": f"request-{n}", "execution_id": f"dup-{n}", "attempt": 1, "at": slot_text, "reason": r}
                for n, r in enumerate(reasons)
            ],
        }
    )


def test_runs_of_a_task_count_its_slots_declined_deliveries(aws: Any, plan: StagePlan, tasks_file: Path) -> None:
    table = runs_table(aws, plan)
    declined_slot, quiet_slot = datetime(2026, 11, 27, 7, 0, tzinfo=UTC), datetime(2026, 11, 27, 6, 55, tzinfo=UTC)
    for slot in (declined_slot, quiet_slot):
        put_run(table, "every-five", slot, "SUCCEEDED")
    put_slot(table, "every-five", declined_slot, run_id="RUN#2026-11-27T07:00:00Z#exec-0700#1", reasons=["done"] * 2)
    put_slot(table, "every-five", quiet_slot, run_id="RUN#2026-11-27T06:55:00Z#exec-0655#1", reasons=[])

    as_json = invoke("runs", "every-five", "--stage", "dev", "--file", str(tasks_file), "--json")
    table_text = invoke("runs", "every-five", "--stage", "dev", "--file", str(tasks_file), columns=80)

    assert as_json.exit_code == 0, as_json.output
    runs = json.loads(as_json.stdout)["runs"]
    assert [run["scheduled_time"] for run in runs] == ["2026-11-27T07:00:00Z", "2026-11-27T06:55:00Z"]
    assert runs[0]["slot"] == {
        "deliveries": 3,
        "declined": 2,
        "declined_at_least": False,
        "declined_reasons": {"done": 2},
    }
    assert runs[1]["slot"]["declined"] == 0
    assert runs[1]["slot"]["deliveries"] == 1
    assert table_text.exit_code == 0, table_text.output
    assert all(len(line) <= 80 for line in table_text.stdout.splitlines())
    flat = " ".join(table_text.stdout.replace("│", " ").split())
    assert "2 more deliveries declined (done 2)" in flat
    assert flat.count("deliveries declined") == 1


def test_invoke_sends_the_schedules_event_and_reports_a_missing_record(
    aws: Any, plan: StagePlan, tasks_file: Path
) -> None:
    result = invoke(
        "invoke", "every-five", "--stage", "dev", "--file", str(tasks_file), "--scheduled-time", "2026-11-27T07:10"
    )

    # moto's Lambda without Docker answers with the payload it received, and runs nothing.
    assert result.exit_code == 1
    assert "wrote no run record for 2026-11-27T07:10:00Z" in result.stderr
    assert "Traceback" not in result.output


def test_invoke_prints_the_record_the_run_wrote(
    aws: Any, plan: StagePlan, tasks_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uuid

    monkeypatch.setattr(uuid, "uuid4", lambda: "fixed")
    table = runs_table(aws, plan)
    slot = "2026-11-27T07:10:00Z"
    table.put_item(
        Item={
            "pk": "TASK#every-five",
            "sk": f"RUN#{slot}#kairos-invoke-fixed#1",
            "task": "every-five",
            "status": "SUCCEEDED",
            "scheduled_time": slot,
            "duration_ms": 5,
        }
    )

    result = invoke(
        "invoke", "every-five", "--stage", "dev", "--file", str(tasks_file), "--scheduled-time", slot, "--json"
    )

    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    expected_event = {
        "task": "every-five",
        "task_type": "simple_task_1",
        "params": {"label": "five"},
        "scheduled_time": slot,
        "execution_id": "kairos-invoke-fixed",
        "attempt": "1",
    }
    assert document["event"] == expected_event
    assert document["response"] == expected_event, "moto's function echoes the event it was invoked with"
    assert document["record"]["status"] == "SUCCEEDED"


def test_logs_pretty_print_powertools_lines_and_filter_to_one_run(aws: Any, plan: StagePlan, tasks_file: Path) -> None:
    group = physical(aws, plan, "every-five/Logs/Resource")
    logs = aws.client("logs")
    logs.create_log_stream(logGroupName=group, logStreamName="stream")
    base = int((NOW - timedelta(minutes=10)).timestamp() * 1000)
    lines = [
        {
            "level": "INFO",
            "message": "run started",
            "timestamp": "2026-11-27T07:02:30.000Z",
            "function_request_id": "request-0700",
        },
        {
            "level": "ERROR",
            "message": "run failed",
            "timestamp": "2026-11-27T07:02:31.000Z",
            "function_request_id": "request-0700",
            "exception_name": "ValueError",
            "exception": "bad quote",
        },
        {
            "level": "INFO",
            "message": "another run",
            "timestamp": "2026-11-27T07:07:30.000Z",
            "function_request_id": "request-0705",
        },
    ]
    logs.put_log_events(
        logGroupName=group,
        logStreamName="stream",
        logEvents=[{"timestamp": base + index, "message": json.dumps(line)} for index, line in enumerate(lines)],
    )
    put_run(runs_table(aws, plan), "every-five", datetime(2026, 11, 27, 7, 0, tzinfo=UTC), "FAILED")

    every = invoke("logs", "every-five", "--stage", "dev", "--file", str(tasks_file))
    one = invoke("logs", "every-five", "--stage", "dev", "--file", str(tasks_file), "--run", "exec-0700")

    assert every.exit_code == 0, every.output
    assert "2026-11-27T07:02:31.000Z ERROR   run failed  [request-0700]" in every.stdout
    assert "ValueError: bad quote" in every.stdout
    assert "another run" in every.stdout
    assert one.exit_code == 0, one.output
    assert "run failed" in one.stdout
    # --since counts back from now; a run's own lines are found from when it started all the same.
    older = invoke(
        "logs", "every-five", "--stage", "dev", "--file", str(tasks_file), "--run", "exec-0700", "--since", "1m"
    )
    assert "run failed" in older.stdout
    assert "another run" not in one.stdout

    # For scripts: a JSON object a line, with the raw message and its own JSON beside the fields.
    scripted = invoke("logs", "every-five", "--stage", "dev", "--file", str(tasks_file), "--run", "exec-0700", "--json")
    assert scripted.exit_code == 0, scripted.output
    objects = [json.loads(line) for line in scripted.stdout.splitlines()]
    assert [(each["level"], each["message"], each["request_id"]) for each in objects] == [
        ("INFO", "run started", "request-0700"),
        ("ERROR", "run failed", "request-0700"),
    ]
    assert objects[1]["error"] == "ValueError: bad quote"
    assert objects[1]["record"] == lines[1]
    assert json.loads(objects[1]["raw"]) == lines[1]
    assert objects[1]["log_stream"] == "stream"


def test_logs_follow_polls_until_interrupted_and_exits_cleanly(
    aws: Any, plan: StagePlan, tasks_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    group = physical(aws, plan, "every-five/Logs/Resource")
    logs = aws.client("logs")
    logs.create_log_stream(logGroupName=group, logStreamName="stream")
    stamp = int(NOW.timestamp() * 1000) - 1000
    logs.put_log_events(
        logGroupName=group, logStreamName="stream", logEvents=[{"timestamp": stamp, "message": "first"}]
    )
    polls: list[float] = []

    def sleep(seconds: float) -> None:
        polls.append(seconds)
        if len(polls) == 1:
            logs.put_log_events(
                logGroupName=group, logStreamName="stream", logEvents=[{"timestamp": stamp + 5, "message": "second"}]
            )
            return
        raise KeyboardInterrupt

    monkeypatch.setattr(cli.services, "sleep", sleep)

    result = invoke("logs", "every-five", "--stage", "dev", "--file", str(tasks_file), "--follow")

    assert result.exit_code == 0, result.output
    assert result.stdout.count("first") == 1, "an event already printed is not printed again"
    assert result.stdout.index("first") < result.stdout.index("second")
    assert polls == [2.0, 2.0]


@pytest.mark.parametrize("command", ["status", "runs", "logs every-five", "invoke every-five", "pause every-five"])
def test_a_stage_that_is_not_deployed_is_one_line(
    command: str, tasks_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto import mock_aws

    monkeypatch.setattr(cli.services, "clock", lambda: NOW)
    with mock_aws():
        result = invoke(*command.split(), "--stage", "dev", "--file", str(tasks_file))

    assert result.exit_code == 1
    assert result.stderr.startswith("error: stage dev is not deployed: no stack kairos-dev in us-east-1")
    assert result.stderr.count("\n") == 1


def test_a_stack_deployed_from_another_file_is_one_line(aws: Any, tasks_file: Path) -> None:
    tasks_file.write_text(TASKS_YAML.replace("name: nightly", "name: weekly"), encoding="utf-8")

    result = invoke("status", "--stage", "dev", "--file", str(tasks_file))

    assert result.exit_code == 1
    assert "deployed from a different tasks.yaml (not deployed: weekly; deployed but not in the file: nightly)" in (
        result.stderr.replace("\n", " ")
    )


def test_an_unknown_task_has_a_suggestion(aws: Any, tasks_file: Path) -> None:
    result = invoke("pause", "every-fiv", "--stage", "dev", "--file", str(tasks_file))

    assert result.exit_code == 1
    assert result.stderr == "error: unknown task 'every-fiv' (did you mean 'every-five'?)\n"


def test_alive_starts_the_freshness_windows_of_running_tasks_and_leaves_a_paused_one_alone(
    aws: Any, plan: StagePlan, tasks_file: Path
) -> None:
    cloudwatch = aws.client("cloudwatch")
    common = ("--stage", "dev", "--file", str(tasks_file))

    def alive_sums() -> list[float]:
        points = cloudwatch.get_metric_statistics(
            Namespace="Kairos",
            MetricName="RunsAlive",
            Dimensions=[
                {"Name": "service", "Value": "kairos"},
                {"Name": "stage", "Value": "dev"},
                {"Name": "task", "Value": "every-five"},
            ],
            StartTime=datetime(2000, 1, 1, tzinfo=UTC),
            EndTime=datetime(2100, 1, 1, tzinfo=UTC),
            Period=86_400,
            Statistics=["Sum"],
        )["Datapoints"]
        return [point["Sum"] for point in points]

    # Before its alarm is deployed: said, and nothing published.
    early = invoke("alive", *common)
    assert early.exit_code == 0, early.output
    assert early.stdout == "every-five: its freshness alarm is not deployed in this stage\n"
    assert alive_sums() == []

    freshness = deploy_freshness_alarm(aws, plan, "every-five")

    # Every task enabled in the stage by default: the one RunsAlive a run would publish.
    marked = invoke("alive", *common, "--json")
    assert marked.exit_code == 0, marked.output
    assert json.loads(marked.stdout) == {
        "stage": "dev",
        "tasks": [{"task": "every-five", "outcome": "marked", "alarm": freshness.alarm_name, "reason": None}],
    }
    assert alive_sums() == [1]

    # A paused task is left alone: nothing runs it, and its alarm is there to say so.
    assert invoke("pause", "every-five", *common).exit_code == 0
    paused = invoke("alive", "every-five", "nightly", *common)
    assert paused.exit_code == 0, paused.output
    lines = paused.stdout.splitlines()
    assert lines[0] == "every-five: left alone: its schedule is paused"
    assert lines[1].startswith("nightly: no freshness alarm (none: the task is disabled in stage dev")
    assert alive_sums() == [1]

    unknown = invoke("alive", "every-fiv", *common)
    assert unknown.exit_code == 1
    assert "did you mean 'every-five'?" in unknown.stderr


def test_alive_marks_nothing_where_the_deployed_alarm_reads_other_dimensions_or_the_schedule_is_gone(
    aws: Any, plan: StagePlan, tasks_file: Path
) -> None:
    # An alarm deployed before run metrics named their stage reads the stage-less stream (ADR 0206).
    deploy_freshness_alarm(aws, plan, "every-five", dimensions={"service": "kairos", "task": "every-five"})
    common = ("--stage", "dev", "--file", str(tasks_file))

    outdated = invoke("alive", *common)

    assert outdated.exit_code == 1
    assert outdated.stdout == (
        "every-five: not marked: its freshness alarm is older than tasks.yaml (it reads service=kairos, "
        "task=every-five); deploy dev first\n"
    )
    assert cloudwatch_alive_points(aws) == []

    aws.client("scheduler").delete_schedule(Name="every-five-schedule", GroupName=plan.schedule_group_name)
    gone = invoke("alive", *common, "--json")
    assert gone.exit_code == 1
    assert json.loads(gone.stdout)["tasks"][0]["outcome"] == "missing"


def cloudwatch_alive_points(aws: Any) -> list[Any]:
    return aws.client("cloudwatch").list_metrics(Namespace="Kairos", MetricName="RunsAlive")["Metrics"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("command", ["status", "logs", "invoke", "pause", "resume", "runs", "alive"])
def test_help_of_the_operation_commands_shows_no_type_for_flags(command: str) -> None:
    result = invoke(command, "--help")

    assert result.exit_code == 0, result.output
    assert "--stage" in result.stdout
    assert "<bool>" not in result.stdout


def test_an_unknown_run_status_is_refused_with_the_known_ones(tasks_file: Path) -> None:
    result = invoke("runs", "--stage", "dev", "--file", str(tasks_file), "--status", "FAILD")

    assert result.exit_code == 2
    assert result.stderr == (
        "error: unknown status 'FAILD' (did you mean 'FAILED'?) (one of STARTED, SUCCEEDED, FAILED, SKIPPED)\n"
    )


def test_a_bad_since_is_one_line(aws: Any, tasks_file: Path) -> None:
    result = invoke("logs", "every-five", "--stage", "dev", "--file", str(tasks_file), "--since", "yesterday")

    assert result.exit_code == 2
    assert result.stderr == "error: not a duration: 'yesterday' (use a number and s, m, h or d, e.g. 24h)\n"


def test_invoke_with_rerun_sends_rerun_in_the_schedules_event(aws: Any, plan: StagePlan, tasks_file: Path) -> None:
    slot = "2026-11-27T07:10:00Z"
    result = invoke(
        "invoke",
        "every-five",
        "--stage",
        "dev",
        "--file",
        str(tasks_file),
        "--scheduled-time",
        slot,
        "--rerun",
        "--json",
    )

    document = json.loads(result.stdout)
    assert document["event"]["rerun"] is True
    assert document["response"]["rerun"] is True, "moto's function echoes the event it was invoked with"


@pytest.mark.parametrize("extra", [(), ("--rerun",), ("--json",)])
def test_invoke_refuses_a_past_slot_of_a_task_that_cannot_be_backfilled_before_invoking(
    aws: Any, plan: StagePlan, tasks_file: Path, extra: tuple[str, ...]
) -> None:
    task = plan.task("every-five")
    assert not task.backfill
    slot = (NOW - timedelta(seconds=task.late_delivery_limit_seconds + 600)).replace(second=0)
    slot_text = slot.strftime("%Y-%m-%dT%H:%M:%SZ")

    result = invoke(
        "invoke", "every-five", "--stage", "dev", "--file", str(tasks_file), "--scheduled-time", slot_text, *extra
    )

    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    message = result.stderr.replace("\n", " ")
    assert message.startswith(f"error: every-five cannot run for past slot {slot_text} (")
    assert f"over its late-delivery limit of {task.late_delivery_limit_seconds} s" in message
    assert "PastSlotRefused" in message
    assert "--rerun does not lift the limit" in message
    assert "leave out --scheduled-time" in message
    assert "Traceback" not in result.output


def test_invoke_sends_a_slot_within_the_late_delivery_limit(aws: Any, plan: StagePlan, tasks_file: Path) -> None:
    task = plan.task("every-five")
    slot = (NOW - timedelta(seconds=task.late_delivery_limit_seconds - 60)).replace(second=0)
    slot_text = slot.strftime("%Y-%m-%dT%H:%M:%SZ")

    result = invoke(
        "invoke", "every-five", "--stage", "dev", "--file", str(tasks_file), "--scheduled-time", slot_text, "--json"
    )

    # Invoked: moto's function echoes the event and writes no record (exit 1, not the refusal's 2).
    assert result.exit_code == 1, result.output
    assert json.loads(result.stdout)["event"]["scheduled_time"] == slot_text


def test_past_slot_refusal_follows_the_handlers_rule(plan: StagePlan) -> None:
    from dataclasses import replace

    from kairos.operations.invoke import past_slot_refusal
    from kairos_runtime.settings import RuntimeSettings

    task = plan.task("every-five")
    limit = task.late_delivery_limit_seconds
    settings = RuntimeSettings.from_environ({"KAIROS_LATE_DELIVERY_LIMIT_SECONDS": str(limit)})
    for backfill in (False, True):
        for lateness in (limit - 1, limit, limit + 1, 10 * limit):
            slot = NOW - timedelta(seconds=lateness)
            refused = past_slot_refusal(replace(task, backfill=backfill), slot, now=NOW) is not None
            assert refused == settings.refuses_past_slot(backfill=backfill, lateness_seconds=lateness), (
                backfill,
                lateness,
            )
