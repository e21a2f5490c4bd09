"""A stage's shards: a task's stack is a pure function of its name and the stage's fixed shard count,
so adding or removing a task moves no other; the core stack names no shard resource (no cycle); one
Scheduler role per stage invokes only the stage's functions and sends only to its queue."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

from kairos.catalog import load_catalog
from kairos.loading import load_tasks_file
from kairos.plan import (
    FUNCTION_NAME_MAX_LENGTH,
    MAX_STACK_RESOURCES,
    PlanError,
    StagePlan,
    function_name,
    plan_stage,
    shard_of,
)
from kairos_stack.app_builder import StageStacks, add_checks, build_stage
from tests.conftest import CDK_FEATURE_FLAGS

CONTEXT = {**CDK_FEATURE_FLAGS, "aws:cdk:bundling-stacks": [], "aws:cdk:enable-path-metadata": True}


def tasks_yaml(names: list[str], *, shards: int = 4) -> str:
    text = f"stages:\n  s:\n    shards: {shards}\ntasks:\n"
    text += "".join(f"  - {{name: {name}, task_type: simple_task_1, schedule: rate(5 minutes)}}\n" for name in names)
    text += "  - {name: coins, task_type: crypto_markets, schedule: rate(15 minutes)}\n"
    return text


def plan_of(tmp_path: Path, text: str, name: str = "tasks.yaml") -> StagePlan:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    catalog = load_catalog()
    return plan_stage(load_tasks_file(path, catalog), catalog, "s")


def synth(plan: StagePlan) -> tuple[StageStacks, dict[str, dict[str, Any]]]:
    app = cdk.App(context=CONTEXT)
    stacks = build_stage(app, plan)
    add_checks(app)
    assembly = app.synth()  # cdk-nag runs here: an unacknowledged finding fails the test
    return stacks, {stack.stack_name: assembly.get_stack_by_name(stack.stack_name).template for stack in stacks.stacks}


def task_resources(templates: dict[str, dict[str, Any]], task: str) -> dict[str, tuple[str, str]]:
    """Construct path below the task to (stack, logical id), for every resource of the task."""
    found = {}
    for stack, template in templates.items():
        for logical_id, resource in template["Resources"].items():
            path = resource.get("Metadata", {}).get("aws:cdk:path", "")
            if path.startswith(f"{stack}/{task}/"):
                found[path.removeprefix(f"{stack}/")] = (stack, logical_id)
    return found


NAMES = [f"job-{index}" for index in range(24)]


def test_a_tasks_shard_depends_on_its_name_and_the_shard_count_only() -> None:
    assert [shard_of(name, 4) for name in NAMES] == [shard_of(name, 4) for name in NAMES]
    # SHA-256, not Python's salted hash: these values hold on every machine and every run.
    assert [shard_of(name, 4) for name in ("a", "b", "python-task-1")] == [
        int.from_bytes(__import__("hashlib").sha256(name.encode()).digest()[:8], "big") % 4
        for name in ("a", "b", "python-task-1")
    ]
    assert len({shard_of(name, 4) for name in NAMES}) == 4, "24 names spread over every shard"


def test_adding_or_removing_a_task_moves_no_other_task(tmp_path: Path) -> None:
    before = plan_of(tmp_path, tasks_yaml(NAMES), "before.yaml")
    added = plan_of(tmp_path, tasks_yaml([*NAMES, "job-new"]), "added.yaml")
    removed = plan_of(tmp_path, tasks_yaml(NAMES[1:]), "removed.yaml")
    _, before_templates = synth(before)

    for after in (added, removed):
        _, after_templates = synth(after)
        kept = {task.name for task in before.tasks} & {task.name for task in after.tasks}
        assert len(kept) >= len(NAMES)
        for name in kept:
            assert before.task_stack_name(before.task(name)) == after.task_stack_name(after.task(name))
            # Same stack and same logical id for every resource: nothing of the task is replaced.
            assert task_resources(before_templates, name) == task_resources(after_templates, name), name
            assert task_resources(before_templates, name)


def test_every_shard_stack_exists_even_empty_and_the_core_names_no_shard_resource(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, tasks_yaml(["only-one"], shards=6))
    stacks, templates = synth(plan)

    assert list(templates) == [plan.stack_name, *(f"kairos-s-Shard{index}" for index in range(6))]
    assert sum(1 for shard in plan.shards if not shard.tasks) >= 4
    core = json.dumps(templates[plan.stack_name])
    # The core stack reads nothing from another stack, so the shards depend on it and never the reverse.
    assert "Fn::GetStackOutput" not in core
    assert "Fn::ImportValue" not in core
    for shard in stacks.shards:
        assert stacks.core in shard.dependencies
        assert shard not in stacks.core.dependencies


def test_one_scheduler_role_invokes_only_the_stages_functions_and_sends_only_to_its_queue(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, tasks_yaml(NAMES[:6]))
    stacks, templates = synth(plan)
    core = Template.from_stack(stacks.core)
    role_id = stacks.core.get_logical_id(stacks.core.scheduler_role.role.node.default_child)  # type: ignore[arg-type]
    group_id = stacks.core.get_logical_id(stacks.core.schedule_group.node.default_child)  # type: ignore[arg-type]
    queue_id = stacks.core.get_logical_id(stacks.core.dead_letter_queue.queue.node.default_child)  # type: ignore[arg-type]

    role = templates[plan.stack_name]["Resources"][role_id]["Properties"]
    assert role["AssumeRolePolicyDocument"]["Statement"] == [
        {
            "Action": "sts:AssumeRole",
            "Condition": {
                "StringEquals": {
                    "aws:SourceAccount": {"Ref": "AWS::AccountId"},
                    "aws:SourceArn": {"Fn::GetAtt": [group_id, "Arn"]},
                }
            },
            "Effect": "Allow",
            "Principal": {"Service": "scheduler.amazonaws.com"},
        }
    ]
    (policy,) = core.find_resources("AWS::IAM::Policy", {"Properties": {"Roles": [{"Ref": role_id}]}}).values()
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    pattern = {
        "Fn::Join": [
            "",
            [
                "arn:",
                {"Ref": "AWS::Partition"},
                ":lambda:",
                {"Ref": "AWS::Region"},
                ":",
                {"Ref": "AWS::AccountId"},
                ":function:kairos_s_*",
            ],
        ]
    }
    assert statements == [
        {"Action": "lambda:InvokeFunction", "Effect": "Allow", "Resource": pattern},
        {"Action": "sqs:SendMessage", "Effect": "Allow", "Resource": {"Fn::GetAtt": [queue_id, "Arn"]}},
    ]
    # Every function is named into that pattern, and no other stage's pattern matches it.
    schedules = 0
    for shard in plan.shards:
        resources = templates[shard.stack_name]["Resources"].values()
        assert not [item for item in resources if item["Type"] == "AWS::IAM::Role" and "scheduler" in json.dumps(item)]
        for task in shard.tasks:
            (function,) = [
                item
                for item in resources
                if item["Type"] == "AWS::Lambda::Function"
                and item["Metadata"]["aws:cdk:path"].endswith(f"/{task.name}/Function/Resource")
            ]
            assert function["Properties"]["FunctionName"] == f"kairos_s_{task.name}"
        for item in resources:
            if item["Type"] == "AWS::Scheduler::Schedule":
                schedules += 1
                role_arn = item["Properties"]["Target"]["RoleArn"]
                output = role_arn["Fn::GetStackOutput"]
                assert output["StackName"] == plan.stack_name
                value = templates[plan.stack_name]["Outputs"][output["OutputName"]]["Value"]
                assert value == {"Fn::GetAtt": [role_id, "Arn"]}
    assert schedules == len(plan.tasks)


def test_function_names_fit_lambdas_limit_and_stay_distinct() -> None:
    long_a, long_b = "a" * 47 + "x", "a" * 47 + "y"
    names = {function_name("stage-sixteen-ch", name) for name in (long_a, long_b)}

    assert len(names) == 2
    for name in names:
        assert len(name) == FUNCTION_NAME_MAX_LENGTH
        assert name.startswith("kairos_stage-sixteen-ch_")
    assert function_name("dev", "python-task-1") == "kairos_dev_python-task-1"


def test_a_stage_a_shard_of_which_would_pass_a_limit_is_refused_with_the_fix(tmp_path: Path) -> None:
    names = [f"t-{index}" for index in range(300)]

    with pytest.raises(PlanError) as raised:
        plan_of(tmp_path, tasks_yaml(names, shards=4))

    message = str(raised.value)
    assert "\n" not in message
    assert f"kairos keeps {MAX_STACK_RESOURCES} for headroom" in message
    assert "shard stack kairos-s-Shard" in message
    needed = int(message.split("(shards: ")[1].split(" ")[0])
    fits = plan_of(tmp_path, tasks_yaml(names, shards=needed), "fits.yaml")
    assert all(shard.resource_count <= MAX_STACK_RESOURCES for shard in fits.shards)
