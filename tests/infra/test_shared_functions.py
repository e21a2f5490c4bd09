"""Shared functions on the synthesized stage (docs/adr/0183-shared-functions.md): one function per
group, the members' schedules targeting it, its grants the union of its members' (their own run
records, their declared tables), each member's own alarms, and the deployed stage found by path."""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

from kairos.catalog import load_catalog
from kairos.loading import load_tasks_file
from kairos.operations.deployed import match_stage
from kairos.plan import StagePlan, plan_stage
from kairos_runtime import metrics
from kairos_runtime.settings import TASK_ENV, TASKS_ENV
from kairos_stack.app_builder import StageStacks, add_checks, build_stage
from tests.conftest import CDK_FEATURE_FLAGS
from tests.infra.test_deployed_paths import deployed, logical_id_in
from tests.infra.test_stage_stack import permissions

TASKS = """\
defaults: {enabled: true}
stages:
  s: {shards: 2, shared_function: true}
tasks:
  - {name: py-1, task_type: simple_task_1, schedule: rate(5 minutes)}
  - {name: py-2, task_type: simple_task_1, schedule: rate(5 minutes)}
  - {name: py-3, task_type: simple_task_1, schedule: rate(5 minutes)}
  - {name: py-4, task_type: simple_task_1, schedule: rate(5 minutes)}
  - {name: py-5, task_type: simple_task_1, schedule: rate(5 minutes)}
  - {name: node-1, task_type: simple_task_1, runtime: nodejs22.x, schedule: rate(5 minutes)}
  - {name: node-2, task_type: simple_task_1, runtime: nodejs22.x, schedule: rate(5 minutes)}
  - {name: coins-1, task_type: crypto_markets, schedule: rate(15 minutes)}
  - {name: coins-2, task_type: crypto_markets, schedule: rate(15 minutes)}
  - {name: alone, task_type: simple_task_1, schedule: rate(5 minutes), shared_function: false}
"""


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory) -> tuple[StagePlan, StageStacks, dict[str, Any]]:
    path: Path = tmp_path_factory.mktemp("shared") / "tasks.yaml"
    path.write_text(TASKS, encoding="utf-8")
    catalog = load_catalog()
    plan = plan_stage(load_tasks_file(path, catalog), catalog, "s")
    app = cdk.App(context={**CDK_FEATURE_FLAGS, "aws:cdk:bundling-stacks": [], "aws:cdk:enable-path-metadata": True})
    stacks = build_stage(app, plan)
    add_checks(app)
    app.synth()  # cdk-nag runs here: an unacknowledged finding fails the test
    templates = {stack.stack_name: Template.from_stack(stack).to_json() for stack in stacks.stacks}
    return plan, stacks, templates


def of_type(templates: dict[str, Any], resource_type: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(stack, logical id, resource) of every resource of the type: logical ids are unique per stack only
    (each shard's shared function of one group has the same construct id)."""
    return [
        (stack, logical_id, resource)
        for stack, template in templates.items()
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == resource_type
    ]


def functions_by_name(templates: dict[str, Any]) -> dict[str, tuple[str, str, dict[str, Any]]]:
    return {
        resource["Properties"]["FunctionName"]: (stack, logical_id, resource)
        for stack, logical_id, resource in of_type(templates, "AWS::Lambda::Function")
    }


def test_one_function_per_group_and_none_per_sharing_task(stage: tuple[StagePlan, StageStacks, dict[str, Any]]) -> None:
    plan, _, templates = stage
    functions = functions_by_name(templates)

    shared = {function.function_name: function for function in plan.shared_functions}
    assert set(functions) == {*shared, "kairos_s_alone"}
    assert sorted(name for function in plan.shared_functions for name in function.tasks) == sorted(
        task.name for task in plan.tasks if task.name != "alone"
    )
    for name, function in shared.items():
        stack, _, resource = functions[name]
        environment = resource["Properties"]["Environment"]["Variables"]
        assert json.loads(environment[TASKS_ENV]) == list(function.tasks)
        assert TASK_ENV not in environment
        assert resource["Properties"]["MemorySize"] == function.memory
        assert stack == plan.shard_stack_name(function.shard)


def test_each_sharing_tasks_schedule_targets_its_shared_function(
    stage: tuple[StagePlan, StageStacks, dict[str, Any]],
) -> None:
    plan, _, templates = stage
    functions = functions_by_name(templates)
    schedules = {
        json.loads(resource["Properties"]["Target"]["Input"])["task"]: (stack, resource)
        for stack, _, resource in of_type(templates, "AWS::Scheduler::Schedule")
    }

    assert set(schedules) == {task.name for task in plan.tasks}
    for task in plan.tasks:
        stack, schedule = schedules[task.name]
        function_stack, function_id, _ = functions[task.function_name]
        assert stack == function_stack == plan.task_stack_name(task)
        assert schedule["Properties"]["Target"]["Arn"] == {"Fn::GetAtt": [function_id, "Arn"]}
    # The stage's one Scheduler role reaches every function by its name pattern
    assert all(fnmatch.fnmatchcase(name, plan.function_name_pattern) for name in functions)


def test_a_shared_function_writes_the_run_records_of_its_tasks_and_no_others(
    stage: tuple[StagePlan, StageStacks, dict[str, Any]],
) -> None:
    plan, _, templates = stage
    functions = functions_by_name(templates)
    for function in plan.shared_functions:
        stack, _, resource = functions[function.function_name]
        role = resource["Properties"]["Role"]["Fn::GetAtt"][0]
        statements = [
            statement
            for policy in templates[stack]["Resources"].values()
            if policy["Type"] == "AWS::IAM::Policy" and {"Ref": role} in policy["Properties"]["Roles"]
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        ]
        run_record_keys = [
            statement["Condition"]["ForAllValues:StringEquals"]["dynamodb:LeadingKeys"]
            for statement in statements
            if "dynamodb:PutItem" in statement["Action"] and "TASK#" in json.dumps(statement.get("Condition"))
        ]
        assert run_record_keys == [[f"TASK#{task}" for task in function.tasks]]
        market = permissions(statements, "MarketData")
        if function.group.value == "crawler":
            # crypto_markets declares MarketData writes under its own partitions, as its own function would
            assert market
            assert all("dynamodb:LeadingKeys" in condition for _, _, _, condition in market)
        else:
            assert not market


def test_each_sharing_task_keeps_its_alarms_and_each_shared_function_alarms_on_drops(
    stage: tuple[StagePlan, StageStacks, dict[str, Any]],
) -> None:
    plan, _, templates = stage
    functions = functions_by_name(templates)
    alarms = {
        resource["Properties"]["AlarmName"]: resource["Properties"]
        for _, _, resource in of_type(templates, "AWS::CloudWatch::Alarm")
    }

    for task in plan.tasks:
        if task.shared_function is None:
            continue
        failed = alarms[f"kairos-s-{task.name}-failed"]
        assert failed["MetricName"] == metrics.RUNS_FAILED
        assert {"Name": metrics.TASK_DIMENSION, "Value": task.name} in failed["Dimensions"]
        assert {"Name": metrics.STAGE_DIMENSION, "Value": "s"} in failed["Dimensions"]
        assert f"kairos-s-{task.name}-late" in alarms
    for function in plan.shared_functions:
        dropped = alarms[function.dropped_alarm.alarm_name]
        assert dropped["MetricName"] == metrics.LAMBDA_ASYNC_EVENTS_DROPPED
        assert dropped["Dimensions"] == [
            {"Name": "FunctionName", "Value": {"Ref": functions[function.function_name][1]}}
        ]
    assert len(alarms) == len(plan.alarms)


def test_the_plans_resource_count_is_each_shards(stage: tuple[StagePlan, StageStacks, dict[str, Any]]) -> None:
    plan, _, templates = stage
    for shard in plan.shards:
        assert shard.resource_count == len(templates[shard.stack_name]["Resources"]), shard.index
        assert shard.template_bytes >= len(json.dumps(templates[shard.stack_name], indent=1))


def test_a_sharing_task_is_found_deployed_on_its_shared_function(
    stage: tuple[StagePlan, StageStacks, dict[str, Any]],
) -> None:
    plan, _, templates = stage

    found = match_stage(plan, deployed(templates))

    assert set(found.tasks) == {task.name for task in plan.tasks}
    for task in plan.tasks:
        stack = plan.task_stack_name(task)
        deployed_task = found.task(task.name)
        if task.shared_function is None:
            assert not deployed_task.shared
            continue
        construct = plan.shared_function(task.shared_function).construct_id
        assert deployed_task.shared
        assert (
            deployed_task.function_name
            == f"physical-{logical_id_in(templates, f'{stack}/{construct}/Function/Resource')}"
        )
        assert (
            deployed_task.log_group_name == f"physical-{logical_id_in(templates, f'{stack}/{construct}/Logs/Resource')}"
        )
        assert (
            deployed_task.schedule_name
            == f"physical-{logical_id_in(templates, f'{stack}/{task.name}/Schedule/Resource')}"
        )


def test_a_shared_functions_resources_carry_its_name_for_kairos_diff(
    stage: tuple[StagePlan, StageStacks, dict[str, Any]],
) -> None:
    plan, _, templates = stage
    functions = functions_by_name(templates)
    log_groups = [resource for _, _, resource in of_type(templates, "AWS::Logs::LogGroup")]

    for function in plan.shared_functions:
        resource = functions[function.function_name][2]
        assert {"Key": "kairos:shared-function", "Value": function.function_name} in resource["Properties"]["Tags"]
        assert any(
            {"Key": "kairos:shared-function", "Value": function.function_name} in group["Properties"].get("Tags", [])
            for group in log_groups
        )


def test_the_dashboard_graphs_each_shared_functions_dropped_events_and_shows_its_alarm(
    stage: tuple[StagePlan, StageStacks, dict[str, Any]],
) -> None:
    from tests.infra.test_freshness_and_dashboard import dashboard_body

    plan, _, templates = stage
    [dashboard] = [resource for _, _, resource in of_type(templates, "AWS::CloudWatch::Dashboard")]
    widgets = dashboard_body(dashboard)["widgets"]
    [graph] = [widget for widget in widgets if widget["properties"].get("title") == "Shared functions: events dropped"]
    lines = graph["properties"]["metrics"]
    assert plan.shared_functions
    assert [line[:4] for line in lines] == [
        [metrics.LAMBDA_NAMESPACE, metrics.LAMBDA_ASYNC_EVENTS_DROPPED, "FunctionName", function.function_name]
        for function in plan.shared_functions
    ]
    shown = {
        arn.rsplit(":", 1)[1]
        for widget in widgets
        if widget["type"] == "alarm"
        for arn in widget["properties"]["alarms"]
    }
    assert shown == {alarm.alarm_name for alarm in plan.alarms}, "every alarm of the stage, the shared ones included"
