"""`kairos backfill --stage`, `kairos redrive` and `kairos cost --stage` against a deployed stage in
moto (in-process), the stack shaped like the synthesized one (tests/cli/test_operations.py).

moto's Lambda without Docker runs nothing: it answers with the event it was sent. So a slot's run
record is put in the table by the test where the function would have written it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from kairos import cli
from kairos.catalog import load_catalog
from kairos.loading import load_tasks_file
from kairos.plan import StagePlan, plan_stage
from tests.cli.test_operations import physical, runs_table, stack_templates

NOW = datetime(2026, 11, 27, 7, 12, 30, tzinfo=UTC)
TASKS_YAML = """\
defaults: {runtime: python3.13, memory: 256, timeout: 60, timezone: UTC}
stages:
  dev: {enabled: [echo-nightly]}
tasks:
  - name: echo-nightly
    task_type: simple_task_2
    schedule: cron(0 18 * * ? *)
  - name: every-five
    task_type: simple_task_1
    schedule: rate(5 minutes)
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


@pytest.fixture
def aws(plan: StagePlan, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    import boto3
    from moto import mock_aws

    monkeypatch.setattr(cli.services, "clock", lambda: NOW)
    with mock_aws(config={"lambda": {"use_docker": False}}):
        for name, template in stack_templates(plan).items():
            boto3.client("cloudformation").create_stack(StackName=name, TemplateBody=json.dumps(template))
        yield boto3.session.Session()


def kairos(*args: str, columns: int = 200) -> Any:
    return CliRunner().invoke(cli.app, list(args), env={"COLUMNS": str(columns)})


def record(table: Any, task: str, slot: str, execution_id: str, status: str, **extra: Any) -> None:
    table.put_item(
        Item={
            "pk": f"TASK#{task}",
            "sk": f"RUN#{slot}#{execution_id}#1",
            "task": task,
            "status": status,
            "scheduled_time": slot,
            "execution_id": execution_id,
            **extra,
        }
    )


def queue_url(session: Any, plan: StagePlan) -> str:
    return physical(session, plan, "DeadLetters/Queue/Resource")


def event(slot: str, execution_id: str, task: str = "echo-nightly") -> dict[str, Any]:
    return {
        "task": task,
        "task_type": "simple_task_2",
        "params": {},
        "scheduled_time": slot,
        "execution_id": execution_id,
        "attempt": "1",
    }


def test_a_deployed_dry_run_lists_the_slots_and_what_is_done(aws: Any, plan: StagePlan, tasks_file: Path) -> None:
    record(runs_table(aws, plan), "echo-nightly", "2026-11-25T18:00:00Z", "exec-a", "SUCCEEDED")
    record(runs_table(aws, plan), "echo-nightly", "2026-11-26T18:00:00Z", "exec-b", "FAILED")

    args = ("backfill", "echo-nightly", "--from", "2026-11-24", "--to", "2026-11-30", "--dry-run")
    result = kairos(*args, "--stage", "dev", "--file", str(tasks_file), "--json")

    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["deployed"] is True
    outcomes = {slot["scheduled_time"]: slot["outcome"] for slot in document["slots"]}
    assert outcomes == {
        "2026-11-24T18:00:00Z": "would_run",
        "2026-11-25T18:00:00Z": "already_done",
        "2026-11-26T18:00:00Z": "would_run",
    }, "a FAILED slot runs again; nothing after now (27 November, 07:12)"


def test_a_deployed_backfill_invokes_each_slot_with_its_event(
    aws: Any, plan: StagePlan, tasks_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uuid

    monkeypatch.setattr(uuid, "uuid4", lambda: "fixed")
    # Where the function would have written its record (moto runs no code).
    record(runs_table(aws, plan), "echo-nightly", "2026-11-26T18:00:00Z", "kairos-backfill-fixed", "SUCCEEDED")

    args = ("backfill", "echo-nightly", "--from", "2026-11-25", "--to", "2026-11-26", "--concurrency", "2")
    result = kairos(*args, "--rerun", "--stage", "dev", "--file", str(tasks_file), "--json")

    document = json.loads(result.stdout)
    assert result.exit_code == 1, "the slot whose invocation wrote no record failed"
    outcomes = {slot["scheduled_time"]: (slot["outcome"], slot["error"]) for slot in document["slots"]}
    assert outcomes == {
        "2026-11-25T18:00:00Z": ("failed", "no run record was written"),
        "2026-11-26T18:00:00Z": ("succeeded", None),
    }, "--rerun runs the slot already done too; its record is read back by the backfill's execution id"


def test_a_task_that_cannot_be_backfilled_is_refused_before_aws_is_asked(tasks_file: Path) -> None:
    result = kairos("backfill", "every-five", "--from", "2026-11-25", "--to", "2026-11-26", "--stage", "dev",
                    "--file", str(tasks_file))  # fmt: skip

    assert result.exit_code == 2
    assert "every-five cannot be backfilled" in result.stderr


def test_redrive_reruns_both_shapes_deletes_what_is_recorded_and_keeps_the_rest(
    aws: Any, plan: StagePlan, tasks_file: Path
) -> None:
    sqs = aws.client("sqs")
    url = queue_url(aws, plan)
    table = runs_table(aws, plan)
    lambda_record = {
        "version": "1.0",
        "timestamp": "2026-11-26T18:09:00.000Z",
        "requestContext": {
            "requestId": "req-1",
            "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:echo:$LATEST",
            "condition": "RetriesExhausted",
            "approximateInvokeCount": 3,
        },
        "requestPayload": event("2026-11-26T18:00:00Z", "exec-lambda"),
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": {"errorType": "TaskRunFailed", "errorMessage": "echo-nightly: SourceUnavailable: down"},
    }
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps(lambda_record))
    sqs.send_message(
        QueueUrl=url,
        MessageBody=json.dumps(event("2026-11-25T18:00:00Z", "exec-scheduler")),
        MessageAttributes={
            "ERROR_CODE": {"DataType": "String", "StringValue": "AWS.Scheduler.InternalServerError"},
            "ERROR_MESSAGE": {"DataType": "String", "StringValue": "Internal error"},
            "EXECUTION_ID": {"DataType": "String", "StringValue": "exec-scheduler"},
            "SCHEDULE_ARN": {"DataType": "String", "StringValue": "arn:aws:scheduler:us-east-1:1:schedule/g/s"},
        },
    )
    sqs.send_message(QueueUrl=url, MessageBody="not json {")
    # The Lambda record's re-run is recorded (where the function would write it); the Scheduler one's is not.
    record(table, "echo-nightly", "2026-11-26T18:00:00Z", "exec-lambda", "SUCCEEDED")

    listed = kairos("redrive", "--stage", "dev", "--file", str(tasks_file), "--dry-run", "--json")

    assert listed.exit_code == 1, "the garbled message stays"
    dry = {message["source"]: message for message in json.loads(listed.stdout)["messages"]}
    assert dry["lambda"]["why"] == (
        "RetriesExhausted after 3 attempt(s): TaskRunFailed: echo-nightly: SourceUnavailable: down"
    )
    assert dry["scheduler"]["why"] == "AWS.Scheduler.InternalServerError: Internal error"
    assert (dry["scheduler"]["task"], dry["scheduler"]["scheduled_time"]) == ("echo-nightly", "2026-11-25T18:00:00Z")
    assert dry["lambda"]["action"] == dry["scheduler"]["action"] == "would_redrive"
    assert dry["unknown"]["action"] == "kept"

    result = kairos("redrive", "--stage", "dev", "--file", str(tasks_file), "--json")

    assert result.exit_code == 1
    actions = {message["source"]: message["action"] for message in json.loads(result.stdout)["messages"]}
    assert actions == {"lambda": "redriven", "scheduler": "kept", "unknown": "kept"}
    left = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"])["Messages"]
    bodies = sorted(message["Body"][:20] for message in left)
    assert bodies == sorted([json.dumps(event("2026-11-25T18:00:00Z", "exec-scheduler"))[:20], "not json {"])


def test_redrive_prints_a_table_at_80_columns(aws: Any, plan: StagePlan, tasks_file: Path) -> None:
    aws.client("sqs").send_message(
        QueueUrl=queue_url(aws, plan),
        MessageBody=json.dumps(event("2026-11-25T18:00:00Z", "exec-x", task="gone-task")),
        MessageAttributes={"ERROR_CODE": {"DataType": "String", "StringValue": "AWS.Scheduler.TargetNotFound"}},
    )

    result = kairos("redrive", "--stage", "dev", "--file", str(tasks_file), columns=80)

    assert result.exit_code == 1
    assert max(len(line) for line in result.stdout.splitlines()) <= 80
    assert "kept" in result.stdout
    assert "1 messages: 0 redriven and deleted, 1 kept in the queue" in result.stdout
    assert "gone-task" in result.stdout, "the task the message names, though the stage has none such"


def test_redrive_of_an_empty_queue_says_so(aws: Any, plan: StagePlan, tasks_file: Path) -> None:
    result = kairos("redrive", "--stage", "dev", "--file", str(tasks_file), columns=80)

    assert result.exit_code == 0, result.output
    assert "the dead-letter queue of stage dev is empty" in result.stdout


def test_cost_of_a_deployed_stage_takes_the_recorded_durations(aws: Any, plan: StagePlan, tasks_file: Path) -> None:
    table = runs_table(aws, plan)
    for day, ms in ((23, 1000), (24, 3000), (25, 2000)):
        record(table, "echo-nightly", f"2026-11-{day}T18:00:00Z", f"e{day}", "SUCCEEDED", duration_ms=ms)

    result = kairos("cost", "--stage", "dev", "--file", str(tasks_file), "--json")

    assert result.exit_code == 0, result.output
    tasks = {task["name"]: task for task in json.loads(result.stdout)["tasks"]}
    assert (tasks["echo-nightly"]["duration_ms"], tasks["echo-nightly"]["duration_source"]) == (2000.0, "recorded")
    assert tasks["echo-nightly"]["fires_30d"] == 30
    assert tasks["every-five"]["total_usd"] == 0


@pytest.mark.parametrize("command", ["backfill", "redrive", "cost"])
def test_help_of_the_new_commands_shows_no_type_for_flags(command: str) -> None:
    result = kairos(command, "--help", columns=80)

    assert result.exit_code == 0, result.output
    assert "--stage" in result.stdout
    assert "--json" in result.stdout
    assert "<bool>" not in result.stdout


def test_redrive_needs_a_deployed_stage(tasks_file: Path) -> None:
    result = kairos("redrive", "--file", str(tasks_file))

    assert result.exit_code == 2
    assert "--stage" in result.stderr
