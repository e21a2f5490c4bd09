"""Reading a cloud assembly of several stacks (a core stack exporting the tables, a shard stack with
the functions and schedules), and the one-line errors for what a local run cannot provide."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kairos.local.assembly import AssemblyError, read_assembly
from kairos.plan import NODE_CODE_DIR

TABLE = {
    "Type": "AWS::DynamoDB::Table",
    "Properties": {"KeySchema": [], "AttributeDefinitions": []},
    "Metadata": {"aws:cdk:path": "kairos-dev-core/Tables/TaskRuns/Resource"},
}


def function(environment: dict[str, Any]) -> dict[str, Any]:
    return {
        "Type": "AWS::Lambda::Function",
        "Properties": {
            "Handler": "src/index.handler",
            "Runtime": "nodejs22.x",
            "MemorySize": 512,
            "Timeout": 42,
            "Environment": {"Variables": environment},
        },
    }


def schedule(task: str, target: Any, state: str = "ENABLED") -> dict[str, Any]:
    return {
        "Type": "AWS::Scheduler::Schedule",
        "Properties": {
            "ScheduleExpression": "cron(0 9 * * ? *)",
            "ScheduleExpressionTimezone": "Europe/Berlin",
            "State": state,
            "Target": {
                "Arn": target,
                "Input": json.dumps(
                    {"task": task, "task_type": "simple_task_1", "scheduled_time": "<aws.scheduler.scheduled-time>"}
                ),
            },
        },
        "Metadata": {"aws:cdk:path": f"kairos-dev-shard-1/{task}/Schedule/Resource"},
    }


def write_assembly(directory: Path, stacks: dict[str, dict[str, Any]]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    artifacts: dict[str, Any] = {"Tree": {"type": "cdk:tree"}}
    for name, template in stacks.items():
        (directory / f"{name}.template.json").write_text(json.dumps(template), encoding="utf-8")
        artifacts[name] = {"type": "aws:cloudformation:stack", "properties": {"templateFile": f"{name}.template.json"}}
    (directory / "manifest.json").write_text(json.dumps({"artifacts": artifacts}), encoding="utf-8")
    return directory


def core() -> dict[str, Any]:
    return {
        "Resources": {"TasksRuns1": TABLE},
        "Outputs": {
            "ExportRuns": {"Value": {"Ref": "TasksRuns1"}, "Export": {"Name": "kairos-dev-core:TaskRuns"}},
        },
    }


MACHINE = {
    "Type": "AWS::StepFunctions::StateMachine",
    "Properties": {
        # CDK's shape: a Fn::Join of literal JSON and the functions' ARNs; one through a substitution.
        "DefinitionString": {
            "Fn::Join": [
                "",
                [
                    '{"StartAt":"P","TimeoutSeconds":600,"States":{"P":{"Type":"Task","Next":"M","Resource":"',
                    {"Fn::GetAtt": ["Fn1", "Arn"]},
                    '"},"M":{"Type":"Map","MaxConcurrency":7,"Next":"S","ItemProcessor":{"StartAt":"B",'
                    '"States":{"B":{"Type":"Task","End":true,"Resource":"${BatchArn}"}}}},'
                    '"S":{"Type":"Task","End":true,"Resource":"arn:',
                    {"Ref": "AWS::Partition"},
                    ':states:::lambda:invoke","Parameters":{"FunctionName":"',
                    {"Fn::GetAtt": ["Fn1", "Arn"]},
                    '"}}}}',
                ],
            ]
        },
        "DefinitionSubstitutions": {"BatchArn": {"Fn::GetAtt": ["Fn1", "Arn"]}},
    },
}


def test_every_stack_is_read_and_imports_resolve_to_local_tables(tmp_path: Path) -> None:
    shard = {
        "Resources": {
            "Fn1": function(
                {
                    "KAIROS_TASK_RUNS_TABLE": {"Fn::ImportValue": "kairos-dev-core:TaskRuns"},
                    "LABEL": {"Fn::Join": ["-", ["a", "b"]]},
                }
            ),
            "Sched1": schedule("berlin", {"Fn::GetAtt": ["Fn1", "Arn"]}),
            "Sched2": schedule("off", {"Fn::GetAtt": ["Fn1", "Arn"]}, state="DISABLED"),
            "Sched3": schedule("fanout", {"Ref": "Machine"}),
            "Machine": MACHINE,
        }
    }
    assembly = read_assembly(
        write_assembly(tmp_path, {"kairos-dev-core": core(), "kairos-dev-shard-1": shard}), stage="dev"
    )

    assert assembly.stacks == ("kairos-dev-core", "kairos-dev-shard-1")
    berlin = assembly.schedule("berlin")
    assert (berlin.expression, berlin.timezone, berlin.enabled) == ("cron(0 9 * * ? *)", "Europe/Berlin", True)
    assert berlin.function is not None
    assert berlin.function.environment == {"KAIROS_TASK_RUNS_TABLE": "kairos-dev-TaskRuns", "LABEL": "a-b"}
    assert (berlin.function.memory, berlin.function.timeout, berlin.function.family) == (512, 42, "node")
    assert berlin.function.code_dir == NODE_CODE_DIR
    assert not assembly.schedule("off").enabled
    fanout = assembly.schedule("fanout")
    assert fanout.function is None
    assert fanout.target_type == "AWS::StepFunctions::StateMachine"
    assert fanout.fan_out is not None
    assert (fanout.fan_out.max_concurrency, fanout.fan_out.timeout) == (7, 600)
    assert {step: function.logical_id for step, function in fanout.fan_out.functions.items()} == dict.fromkeys(
        ("plan", "batch", "summarize"), "Fn1"
    )
    assert fanout.fan_out.batch_retry.max_attempts == 0, "a batch Task without Retry"
    assert fanout.environment["KAIROS_TASK_RUNS_TABLE"] == "kairos-dev-TaskRuns"


@pytest.mark.parametrize(
    ("variable", "message"),
    [
        ({"Ref": "SomeQueue"}, 'variable QUEUE is {"Ref": "SomeQueue"}, which kairos local cannot provide'),
        ({"Fn::ImportValue": "nobody:exports-this"}, "imports nobody:exports-this, which no stack"),
    ],
)
def test_what_cannot_be_provided_locally_is_one_line(tmp_path: Path, variable: Any, message: str) -> None:
    shard = {
        "Resources": {
            "Fn1": function({"QUEUE": variable}),
            "Sched1": schedule("berlin", {"Fn::GetAtt": ["Fn1", "Arn"]}),
            "SomeQueue": {"Type": "AWS::SQS::Queue"},
        }
    }
    directory = write_assembly(tmp_path, {"kairos-dev-core": core(), "kairos-dev-shard-1": shard})

    with pytest.raises(AssemblyError) as raised:
        read_assembly(directory, stage="dev")
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


def test_a_missing_or_broken_assembly_says_so(tmp_path: Path) -> None:
    with pytest.raises(AssemblyError, match=r"no cloud assembly in .*make synth"):
        read_assembly(tmp_path / "nowhere", stage="dev")
    (tmp_path / "manifest.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(AssemblyError, match="cannot be read"):
        read_assembly(tmp_path, stage="dev")
