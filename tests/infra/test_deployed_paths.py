"""The construct paths ``kairos.operations.deployed`` looks for are the ones the stack synthesizes."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from aws_cdk.assertions import Template

from kairos.operations.deployed import AwsAccess, DeployedStageError, StackContents, match_stage, resolve_stage
from kairos.plan import StagePlan
from kairos_runtime.tables import TableId
from tests.infra.test_stage_stack import synth_stacks


@pytest.fixture(scope="module")
def dev() -> tuple[StagePlan, dict[str, Any]]:
    plan, stacks = synth_stacks("dev")
    return plan, {stack.stack_name: Template.from_stack(stack).to_json() for stack in stacks.stacks}


def physical_ids(template: dict[str, Any]) -> dict[str, str]:
    return {logical_id: f"physical-{logical_id}" for logical_id in template["Resources"]}


def deployed(templates: dict[str, Any]) -> dict[str, StackContents]:
    """Each stack as CloudFormation would list it: its template, and a physical id per logical id."""
    return {name: (template, physical_ids(template)) for name, template in templates.items()}


def logical_id_in(templates: dict[str, Any], path: str) -> str:
    stack = path.split("/")[0]
    return logical_id_at(templates[stack], path)


def logical_id_at(template: dict[str, Any], path: str) -> str:
    found: str
    (found,) = [key for key, value in template["Resources"].items() if value["Metadata"]["aws:cdk:path"] == path]
    return found


def test_every_task_table_and_the_queue_are_found_by_construct_path(dev: tuple[StagePlan, dict[str, Any]]) -> None:
    plan, templates = dev

    stage = match_stage(plan, deployed(templates))

    assert set(stage.tasks) == {task.name for task in plan.tasks}
    assert len({plan.task_stack_name(task) for task in plan.tasks}) > 1, "the tasks are spread over shards"
    for task in plan.tasks:
        found = stage.task(task.name)
        prefix = f"{plan.task_stack_name(task)}/{task.name}"
        # A fan-out task is operated through its planner, which owns the slot's run record.
        own = f"{prefix}/PlanFunction" if task.fan_out is not None else prefix
        assert found.function_name == f"physical-{logical_id_in(templates, f'{own}/Function/Resource')}"
        assert found.log_group_name == f"physical-{logical_id_in(templates, f'{own}/Logs/Resource')}"
        assert found.schedule_name == f"physical-{logical_id_in(templates, f'{prefix}/Schedule/Resource')}"
        if task.fan_out is not None:  # what kairos invoke starts (docs/adr/0167)
            machine = logical_id_in(templates, f"{prefix}/StateMachine/Resource")
            assert found.state_machine_arn == f"physical-{machine}"
        else:
            assert found.state_machine_arn is None
    assert any(task.fan_out is not None for task in plan.tasks), "dev ships a fan-out task"
    runs = logical_id_in(templates, f"{plan.stack_name}/Tables/TaskRuns/Resource")
    assert stage.table_names[TableId.TASK_RUNS] == f"physical-{runs}"
    assert stage.dead_letter_queue_url.startswith("physical-")


def test_a_stack_deployed_from_another_file_names_the_tasks_that_differ(
    dev: tuple[StagePlan, dict[str, Any]],
) -> None:
    plan, templates = dev
    first, *rest = plan.tasks
    renamed = dataclasses.replace(first, name="not-deployed-yet")
    other_file = dataclasses.replace(plan, tasks=(renamed, *rest))

    with pytest.raises(DeployedStageError) as raised:
        match_stage(other_file, deployed(templates))

    message = str(raised.value)
    assert "deployed from a different tasks.yaml" in message
    assert "not deployed: not-deployed-yet" in message
    assert f"deployed but not in the file: {first.name}" in message
    assert "\n" not in message


def test_a_template_without_construct_paths_is_refused(dev: tuple[StagePlan, dict[str, Any]]) -> None:
    plan, templates = dev
    bare = {
        name: {"Resources": {key: {"Type": value["Type"]} for key, value in template["Resources"].items()}}
        for name, template in templates.items()
    }

    with pytest.raises(DeployedStageError, match="construct path"):
        match_stage(plan, deployed(bare))


def test_a_task_found_in_another_shard_is_a_deploy_from_another_shard_count(
    dev: tuple[StagePlan, dict[str, Any]],
) -> None:
    plan, templates = dev
    task = plan.tasks[0]
    moved = dataclasses.replace(task, shard=(task.shard + 1) % plan.shard_count)
    other_count = dataclasses.replace(plan, tasks=(moved, *plan.tasks[1:]))

    with pytest.raises(DeployedStageError, match=f"task {task.name} in stack .* lacks its function"):
        match_stage(other_count, deployed(templates))


def test_a_stage_that_is_not_deployed_is_one_line(dev: tuple[StagePlan, dict[str, Any]]) -> None:
    from moto import mock_aws

    plan, _ = dev
    with mock_aws(), pytest.raises(DeployedStageError) as raised:
        resolve_stage(plan, AwsAccess(region="eu-west-1"))

    assert str(raised.value).startswith("stage dev is not deployed: no stack kairos-dev in eu-west-1")
