"""logs, invoke and status of tasks on a shared function (docs/adr/0183-shared-functions.md), against
a stage created through moto's CloudFormation from templates shaped like the synthesized ones: the
shared function and its log group at ``SharedFunction<key>/...``, each task's schedule at its own path."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import tests.deploy.moto_server_with_scheduler  # noqa: F401 - registers AWS::Scheduler::* in moto's CloudFormation
from kairos import cli, cli_operations
from kairos.catalog import load_catalog
from kairos.loading import load_tasks_file
from kairos.operations.deployed import FUNCTION_PATH, LOG_GROUP_PATH, SCHEDULE_PATH
from kairos.plan import StagePlan, input_json, plan_stage
from tests.cli.test_operations import ROLE, invoke, physical, stack_templates

NOW = datetime(2026, 11, 27, 7, 12, 30, tzinfo=UTC)
TASKS_YAML = """\
defaults: {enabled: true}
stages:
  dev: {shards: 1, shared_function: true}
tasks:
  - {name: quote-a, task_type: simple_task_1, schedule: rate(5 minutes), params: {label: a}}
  - {name: quote-b, task_type: simple_task_1, schedule: rate(5 minutes), params: {label: b}}
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


def shared_templates(plan: StagePlan) -> dict[str, dict[str, Any]]:
    """The core stack as the other operations tests build it, and one shard: a shared function, its log
    group, and a schedule per task targeting it."""
    templates = stack_templates(plan)
    [shard] = plan.shards
    [function] = shard.shared_functions

    def at(path: str) -> dict[str, Any]:
        return {"aws:cdk:path": f"{shard.stack_name}/{path}"}

    resources: dict[str, Any] = {
        "Role": {**ROLE, "Metadata": at("Role/Resource")},
        "Function": {
            "Type": "AWS::Lambda::Function",
            "Properties": {
                "FunctionName": function.function_name,
                "Runtime": "python3.13",
                "Handler": "index.handler",
                "Role": {"Fn::GetAtt": ["Role", "Arn"]},
                "Code": {"ZipFile": "def handler(event, context):\n    return event\n"},
            },
            "Metadata": at(FUNCTION_PATH.format(task=function.construct_id)),
        },
        "Logs": {
            "Type": "AWS::Logs::LogGroup",
            "Properties": {},
            "Metadata": at(LOG_GROUP_PATH.format(task=function.construct_id)),
        },
    }
    for index, task in enumerate(shard.tasks):
        resources[f"Schedule{index}"] = {
            "Type": "AWS::Scheduler::Schedule",
            "Properties": {
                "Name": f"{task.name}-schedule",
                "GroupName": plan.schedule_group_name,
                "ScheduleExpression": task.schedule_expression,
                "FlexibleTimeWindow": {"Mode": "OFF"},
                "State": "ENABLED",
                "Target": {
                    "Arn": {"Fn::GetAtt": ["Function", "Arn"]},
                    "RoleArn": {"Fn::GetAtt": ["Role", "Arn"]},
                    "Input": input_json(dict(task.input_template)),
                },
            },
            "Metadata": at(SCHEDULE_PATH.format(task=task.name)),
        }
    templates[shard.stack_name] = {"Resources": resources}
    return templates


@pytest.fixture
def aws(plan: StagePlan, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    import boto3
    from moto import mock_aws

    monkeypatch.setattr(cli.services, "clock", lambda: NOW)
    with mock_aws(config={"lambda": {"use_docker": False}}):
        for name, template in shared_templates(plan).items():
            boto3.client("cloudformation").create_stack(StackName=name, TemplateBody=json.dumps(template))
        yield boto3.session.Session()


def test_logs_of_a_task_on_a_shared_function_show_its_lines_only(
    aws: Any, plan: StagePlan, tasks_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the shared log group with both tasks' Powertools lines
    function = plan.shared_functions[0]
    group = physical(aws, plan, f"{function.construct_id}/Logs/Resource")
    logs = aws.client("logs")
    logs.create_log_stream(logGroupName=group, logStreamName="stream")
    base = int((NOW - timedelta(minutes=5)).timestamp() * 1000)
    lines = [
        {"level": "INFO", "message": "run finished for a", "task": "quote-a", "function_request_id": "r-1"},
        {"level": "INFO", "message": "run finished for b", "task": "quote-b", "function_request_id": "r-2"},
    ]
    logs.put_log_events(
        logGroupName=group,
        logStreamName="stream",
        logEvents=[{"timestamp": base + index, "message": json.dumps(line)} for index, line in enumerate(lines)],
    )

    requests: list[dict[str, Any]] = []
    aws_logs = cli_operations.deployed_stage
    # moto's FilterLogEvents ignores JSON patterns: the request CloudWatch would filter on is checked.
    monkeypatch.setattr(
        cli_operations,
        "deployed_stage",
        lambda *args: _recording(aws_logs(*args), requests),
    )

    # When the logs of one task are read
    result = invoke("logs", "quote-b", "--stage", "dev", "--file", str(tasks_file))

    # Then they come from the shared log group, filtered on the task's key in each JSON line
    assert result.exit_code == 0, result.output
    assert "run finished for b" in result.stdout
    assert requests == [{"logGroupName": group, "filterPattern": '{ $.task = "quote-b" }'}]


def _recording(stage: Any, requests: list[dict[str, Any]]) -> Any:
    """``stage`` whose logs client records each FilterLogEvents request (group and pattern)."""
    client = stage.client

    def client_for(service: str, **options: Any) -> Any:
        made = client(service, **options)
        if service == "logs":

            def record(params: dict[str, Any], **_: Any) -> None:
                requests.append({key: params[key] for key in ("logGroupName", "filterPattern") if key in params})

            made.meta.events.register("provide-client-params.logs.FilterLogEvents", record)
        return made

    return dataclasses.replace(stage, session=_Session(stage.session, client_for))


class _Session:
    def __init__(self, session: Any, client: Any) -> None:
        self._session = session
        self.client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)


def test_invoke_of_a_task_on_a_shared_function_sends_its_own_event_to_it(
    aws: Any, plan: StagePlan, tasks_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uuid

    monkeypatch.setattr(uuid, "uuid4", lambda: "fixed")
    slot = "2026-11-27T07:10:00Z"
    runs = aws.resource("dynamodb").Table(physical(aws, plan, "Tables/TaskRuns/Resource"))
    runs.put_item(
        Item={
            "pk": "TASK#quote-a",
            "sk": f"RUN#{slot}#kairos-invoke-fixed#1",
            "task": "quote-a",
            "status": "SUCCEEDED",
            "scheduled_time": slot,
            "duration_ms": 5,
        }
    )

    result = invoke(
        "invoke", "quote-a", "--stage", "dev", "--file", str(tasks_file), "--scheduled-time", slot, "--json"
    )

    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    # moto's function (the shared one: the only function of the stage) echoes the event it was sent
    assert document["response"]["task"] == document["event"]["task"] == "quote-a"
    assert document["record"]["status"] == "SUCCEEDED"
    functions = aws.client("lambda").list_functions()["Functions"]
    assert [entry["FunctionName"] for entry in functions] == [plan.shared_functions[0].function_name]


def test_status_rows_each_task_on_a_shared_function(aws: Any, tasks_file: Path) -> None:
    result = invoke("status", "--stage", "dev", "--file", str(tasks_file))

    assert "quote-a" in result.stdout
    assert "quote-b" in result.stdout
    assert "Traceback" not in result.output


def test_show_names_the_shared_function_a_task_runs_on(plan: StagePlan, tasks_file: Path) -> None:
    text = invoke("show", "quote-a", "--stage", "dev", "--file", str(tasks_file))
    document = json.loads(invoke("show", "quote-a", "--stage", "dev", "--file", str(tasks_file), "--json").stdout)

    name = plan.shared_functions[0].function_name
    assert f"{name} (shared: shared_function)" in text.stdout.replace("\n", "")
    assert (document["function"], document["shared_function"]) == (name, True)
