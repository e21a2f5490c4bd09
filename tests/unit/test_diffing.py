"""The pure diff (kairos/diffing.py) and its rendering, on hand-made templates shaped as CDK writes them."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from kairos.diff_render import render_markdown, render_text
from kairos.diffing import Assembly, DiffReport, StackTemplate, diff, render_statement

STACK = "kairos-dev"


def _meta(path: str) -> dict[str, Any]:
    return {"aws:cdk:path": f"{STACK}/{path}"}


def task_resources(name: str, *, memory: int = 256, code: str = "aaa", params: Any = None) -> dict[str, Any]:
    """The resources of one task, with logical ids as CDK derives them from the construct path."""
    prefix = name.replace("-", "")
    event = {"task": name, "task_type": "simple_task_1", "params": params or {"label": name}}
    return {
        f"{prefix}Logs1": {
            "Type": "AWS::Logs::LogGroup",
            "Properties": {"RetentionInDays": 7, "Tags": [{"Key": "kairos:task", "Value": name}]},
            "Metadata": _meta(f"{name}/Logs/Resource"),
        },
        f"{prefix}Role1": {
            "Type": "AWS::IAM::Role",
            "Properties": {"Tags": [{"Key": "kairos:task", "Value": name}]},
            "Metadata": _meta(f"{name}/Role/Resource"),
        },
        f"{prefix}RoleDefaultPolicy1": {
            "Type": "AWS::IAM::Policy",
            "Properties": {
                "PolicyDocument": {
                    "Statement": [
                        {
                            "Action": ["dynamodb:GetItem", "dynamodb:PutItem"],
                            "Effect": "Allow",
                            "Resource": {"Fn::GetAtt": ["TablesTaskRuns1", "Arn"]},
                            "Condition": {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": [f"TASK#{name}"]}},
                        }
                    ]
                },
                "Roles": [{"Ref": f"{prefix}Role1"}],
            },
            "Metadata": _meta(f"{name}/Role/DefaultPolicy/Resource"),
        },
        f"{prefix}Function1": {
            "Type": "AWS::Lambda::Function",
            "Properties": {
                "Code": {"S3Bucket": {"Fn::Sub": "cdk-assets"}, "S3Key": f"{code}.zip"},
                "MemorySize": memory,
                "Timeout": 60,
                "Runtime": "python3.13",
                "Tags": [{"Key": "kairos:task", "Value": name}],
            },
            "Metadata": {**_meta(f"{name}/Function/Resource"), "aws:asset:path": f"asset.{code}"},
        },
        f"{prefix}Schedule1": {
            "Type": "AWS::Scheduler::Schedule",
            "Properties": {
                "ScheduleExpression": "rate(5 minutes)",
                "ScheduleExpressionTimezone": "UTC",
                "State": "ENABLED",
                "Target": {"Arn": {"Fn::GetAtt": [f"{prefix}Function1", "Arn"]}, "Input": json.dumps(event)},
            },
            "Metadata": _meta(f"{name}/Schedule/Resource"),
        },
        f"{prefix}FailureAlarm1": {
            "Type": "AWS::CloudWatch::Alarm",
            "Properties": {"Threshold": 1, "EvaluationPeriods": 1},
            "Metadata": _meta(f"{name}/FailureAlarm/Resource"),
        },
    }


def stage_resources() -> dict[str, Any]:
    return {
        "TablesTaskRuns1": {
            "Type": "AWS::DynamoDB::Table",
            "Properties": {
                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
                "BillingMode": "PAY_PER_REQUEST",
            },
            "Metadata": _meta("Tables/TaskRuns/Resource"),
        }
    }


def template(*tasks: dict[str, Any]) -> dict[str, Any]:
    resources = stage_resources()
    for task in tasks:
        resources.update(task)
    return {"Resources": resources}


def assembly(
    label: str, *stacks: tuple[str, dict[str, Any]], files: dict[str, dict[str, str]] | None = None
) -> Assembly:
    return Assembly(label, tuple(StackTemplate(name, body) for name, body in stacks), files or {})


def one_stack(label: str, body: dict[str, Any], files: dict[str, dict[str, str]] | None = None) -> Assembly:
    return assembly(label, (STACK, body), files=files)


def test_identical_templates_make_an_empty_report() -> None:
    body = template(task_resources("alpha"))

    report = diff(one_stack("base", body), one_stack("head", copy.deepcopy(body)))

    assert report.empty
    assert "No changes." in render_text(report)


def test_an_added_task_is_listed_with_its_settings_and_the_others_are_untouched() -> None:
    base = template(task_resources("alpha"))
    head = template(task_resources("alpha"), task_resources("beta", memory=512, params={"label": "b"}))

    report = diff(one_stack("base", base), one_stack("head", head))

    assert [task.name for task in report.tasks_added] == ["beta"]
    added = report.tasks_added[0].fields
    assert added["memory"] == "512 MB"
    assert added["schedule"] == "rate(5 minutes)"
    assert added["params"] == '{"label":"b"}'
    assert report.tasks_changed == ()
    assert report.code == ()
    assert report.replacements == ()


def test_a_removed_task_is_listed_and_its_log_group_is_a_loss() -> None:
    report = diff(one_stack("base", template(task_resources("alpha"))), one_stack("head", template()))

    assert [task.name for task in report.tasks_removed] == ["alpha"]
    assert [(r.resource, r.reason) for r in report.replacements] == [("alpha/Logs", "removed: its data goes with it")]


def test_memory_params_state_and_alarm_changes_are_reported_per_task() -> None:
    base = template(task_resources("alpha"))
    changed = task_resources("alpha", memory=1024, params={"label": "new"})
    changed["alphaSchedule1"]["Properties"]["State"] = "DISABLED"
    changed["alphaFailureAlarm1"]["Properties"]["Threshold"] = 3
    head = template(changed)

    report = diff(one_stack("base", base), one_stack("head", head))

    (task,) = report.tasks_changed
    changes = {change.what: (change.before, change.after) for change in task.changes}
    assert changes["memory"] == ("256 MB", "1024 MB")
    assert changes["state"] == ("ENABLED", "DISABLED")
    assert changes["params"] == ('{"label":"alpha"}', '{"label":"new"}')
    assert changes["alarm FailureAlarm Threshold"] == ("1", "3")
    # The function's code did not change, nor the schedule's target besides its params.
    assert "Target (besides params)" not in changes
    assert report.code == ()


def test_a_grant_change_is_one_line_per_statement_with_references_as_paths() -> None:
    base = template(task_resources("alpha"))
    head_task = task_resources("alpha")
    statements = head_task["alphaRoleDefaultPolicy1"]["Properties"]["PolicyDocument"]["Statement"]
    statements.append({"Action": "ssm:GetParameter", "Effect": "Allow", "Resource": "arn:aws:ssm:::parameter/x"})
    report = diff(one_stack("base", base), one_stack("head", template(head_task)))

    (task,) = report.tasks_changed
    assert task.grants_added == ("Role/DefaultPolicy: Allow ssm:GetParameter on arn:aws:ssm:::parameter/x",)
    assert task.grants_removed == ()
    line = render_statement(statements[0], {"TablesTaskRuns1": "Tables/TaskRuns"})
    assert line.startswith("Allow dynamodb:GetItem, dynamodb:PutItem on <Tables/TaskRuns>.Arn if ")
    assert "TASK#alpha" in line


def test_code_changes_are_grouped_by_asset_with_the_files_that_differ() -> None:
    base = template(task_resources("alpha", code="old1"), task_resources("beta", code="old1"), task_resources("gamma"))
    head = template(task_resources("alpha", code="new1"), task_resources("beta", code="new1"), task_resources("gamma"))
    files_before = {"old1": {"kairos_runtime/a.py": "1", "kairos_runtime/gone.py": "2"}, "aaa": {"x.mjs": "1"}}
    files_after = {"new1": {"kairos_runtime/a.py": "9", "kairos_runtime/tasks/new.py": "3"}, "aaa": {"x.mjs": "1"}}

    report = diff(one_stack("base", base, files_before), one_stack("head", head, files_after))

    (code,) = report.code
    assert code.used_by == ("alpha", "beta")
    assert code.files_changed == ("kairos_runtime/a.py",)
    assert code.files_added == ("kairos_runtime/tasks/new.py",)
    assert code.files_removed == ("kairos_runtime/gone.py",)
    assert report.tasks_changed == (), "a code change is reported under the asset, not as a task change"


def test_code_changes_without_asset_folders_say_the_files_are_unknown() -> None:
    base = template(task_resources("alpha", code="old1"))
    head = template(task_resources("alpha", code="new1"))

    report = diff(one_stack("base", base), one_stack("head", head, {"new1": {"a.py": "1"}}))

    (code,) = report.code
    assert not code.files_known
    assert "files unknown" in render_text(report)


@pytest.mark.parametrize(
    ("logical_id", "prop", "value", "reason"),
    [
        ("alphaLogs1", "LogGroupName", "custom-name", "LogGroupName changed: replaced"),
        ("alphaFunction1", "FunctionName", "custom-fn", "FunctionName changed: replaced"),
        ("TablesTaskRuns1", "KeySchema", [{"AttributeName": "id", "KeyType": "HASH"}], "KeySchema changed: replaced"),
    ],
)
def test_a_replacing_property_change_is_a_warning(logical_id: str, prop: str, value: Any, reason: str) -> None:
    base = template(task_resources("alpha"))
    head = copy.deepcopy(base)
    head["Resources"][logical_id]["Properties"][prop] = value

    report = diff(one_stack("base", base), one_stack("head", head))

    assert [r.reason for r in report.replacements] == [reason]
    assert "WARNING: resources replaced or lost (1)" in render_text(report)


def test_a_property_that_updates_in_place_is_no_replacement() -> None:
    base = template(task_resources("alpha"))
    head = copy.deepcopy(base)
    head["Resources"]["alphaLogs1"]["Properties"]["RetentionInDays"] = 30

    report = diff(one_stack("base", base), one_stack("head", head))

    assert report.replacements == ()
    (task,) = report.tasks_changed
    assert [(c.what, c.before, c.after) for c in task.changes] == [("Logs RetentionInDays", "7", "30")]


def test_a_task_moving_to_another_stack_of_the_stage_is_replaced_and_not_added_or_removed() -> None:
    base = assembly("base", (STACK, template(task_resources("alpha"), task_resources("beta"))))
    shard = {"Resources": task_resources("beta")}
    for body in shard["Resources"].values():
        body["Metadata"]["aws:cdk:path"] = body["Metadata"]["aws:cdk:path"].replace(STACK, "kairos-dev-shard-1")
    head = assembly("head", (STACK, template(task_resources("alpha"))), ("kairos-dev-shard-1", shard))

    report = diff(base, head)

    assert report.tasks_added == report.tasks_removed == ()
    assert report.stacks_added == ("kairos-dev-shard-1",)
    (task,) = report.tasks_changed
    assert ("stack", STACK, "kairos-dev-shard-1") in [(c.what, c.before, c.after) for c in task.changes]
    moved = {r.resource for r in report.replacements if r.reason.startswith("moves to stack kairos-dev-shard-1")}
    assert {"beta/Function", "beta/Logs", "beta/Schedule"} <= moved


def test_stage_resource_changes_are_listed_apart_from_tasks() -> None:
    base = template(task_resources("alpha"))
    head = copy.deepcopy(base)
    head["Resources"]["TablesTaskRuns1"]["Properties"]["BillingMode"] = "PROVISIONED"

    report = diff(one_stack("base", base), one_stack("head", head))

    assert [(c.what, c.before, c.after) for c in report.stage_changes] == [
        ("Tables/TaskRuns BillingMode", "PAY_PER_REQUEST", "PROVISIONED")
    ]
    assert report.tasks_changed == ()


def _busy_report() -> DiffReport:
    base = template(task_resources("alpha", code="old1"), task_resources("removed-task"))
    changed = task_resources("alpha", memory=2048, code="new1", params={"label": "x" * 300})
    changed["alphaLogs1"]["Properties"]["LogGroupName"] = "renamed"
    head = template(changed, task_resources("a-very-long-task-name-that-goes-on-and-on-for-a-while-xx"))
    files = {"new1": {f"kairos_runtime/tasks/module_{i}.py": "1" for i in range(20)}}
    return diff(one_stack("stage dev, HEAD", base, {"old1": {}}), one_stack("working tree", head, files))


def test_the_text_report_fits_80_columns_and_names_each_section() -> None:
    text = render_text(_busy_report())

    assert max(len(line) for line in text.splitlines()) <= 80
    for heading in ("Tasks added (1)", "Tasks removed (1)", "Tasks changed (1)", "Code changes, by asset (1)"):
        assert heading in text
    assert "memory: 256 MB → 2048 MB" in text
    assert "… and 8 more files" in text


def test_the_markdown_report_warns_first_and_lists_tasks() -> None:
    markdown = render_markdown(_busy_report())

    lines = markdown.splitlines()
    assert lines[0] == "### kairos diff: stage dev, HEAD → working tree"
    assert lines.index("> [!WARNING]") < lines.index("#### Tasks added")
    assert "- **alpha**" in lines
    assert any(line.startswith("  - memory: `256 MB` → `2048 MB`") for line in lines)


def test_the_json_form_has_stable_fields() -> None:
    document = _busy_report().as_json()

    assert set(document) == {
        "base", "head", "changed", "stacks_added", "stacks_removed", "tasks_added", "tasks_removed",
        "tasks_changed", "code", "replacements", "stage_changes", "shared_functions",
    }  # fmt: skip
    assert document["changed"] is True
    assert document["tasks_changed"][0]["name"] == "alpha"
    json.dumps(document)


def test_a_scheduler_role_at_the_stack_root_belongs_to_the_task_whose_function_it_invokes() -> None:
    def with_scheduler_role(name: str, suffix: str) -> dict[str, Any]:
        resources = task_resources(name)
        prefix = name.replace("-", "")
        resources[f"SchedulerRole{suffix}"] = {
            "Type": "AWS::IAM::Role",
            "Properties": {},
            "Metadata": _meta(f"SchedulerRoleForTarget-{suffix}/Resource"),
        }
        resources[f"SchedulerRole{suffix}Policy"] = {
            "Type": "AWS::IAM::Policy",
            "Properties": {
                "PolicyDocument": {
                    "Statement": [
                        {
                            "Action": "lambda:InvokeFunction",
                            "Effect": "Allow",
                            "Resource": {"Fn::GetAtt": [f"{prefix}Function1", "Arn"]},
                        },
                        {"Action": "sqs:SendMessage", "Effect": "Allow", "Resource": {"Fn::GetAtt": ["Dlq1", "Arn"]}},
                    ]
                },
                "Roles": [{"Ref": f"SchedulerRole{suffix}"}],
            },
            "Metadata": _meta(f"SchedulerRoleForTarget-{suffix}/DefaultPolicy/Resource"),
        }
        return resources

    base = template(with_scheduler_role("alpha", "aa11"))
    head = template(with_scheduler_role("alpha", "aa11"), with_scheduler_role("beta", "bb22"))

    report = diff(one_stack("base", base), one_stack("head", head))

    assert [task.name for task in report.tasks_added] == ["beta"]
    assert report.stage_changes == (), "the new task's Scheduler role is the task's, not the stage's"


def shared_function_resources(
    key: str, tasks: list[str], *, tagged: bool = True, memory: int = 256, code: str = "sss"
) -> dict[str, Any]:
    """A shared function's resources (docs/adr/0183): under ``SharedFunction<key>``, tagged with its
    name (``tagged=False``: as synthesized before the tag), its environment listing its tasks."""
    name = f"kairos_dev_shared_{key}_0"
    tags = [{"Key": "kairos:shared-function", "Value": name}] if tagged else []
    construct = f"SharedFunction{key}"
    return {
        f"{construct}Logs1": {
            "Type": "AWS::Logs::LogGroup",
            "Properties": {"RetentionInDays": 7, "Tags": tags},
            "Metadata": _meta(f"{construct}/Logs/Resource"),
        },
        f"{construct}RoleDefaultPolicy1": {
            "Type": "AWS::IAM::Policy",
            "Properties": {
                "PolicyDocument": {
                    "Statement": [
                        {
                            "Action": ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"],
                            "Effect": "Allow",
                            "Resource": {"Fn::GetAtt": ["TablesTaskRuns1", "Arn"]},
                            "Condition": {
                                "ForAllValues:StringEquals": {"dynamodb:LeadingKeys": [f"TASK#{t}" for t in tasks]}
                            },
                        }
                    ]
                },
                "Roles": [{"Ref": f"{construct}Role1"}],
            },
            "Metadata": _meta(f"{construct}/Role/DefaultPolicy/Resource"),
        },
        f"{construct}Function1": {
            "Type": "AWS::Lambda::Function",
            "Properties": {
                "FunctionName": name,
                "Code": {"S3Bucket": {"Fn::Sub": "cdk-assets"}, "S3Key": f"{code}.zip"},
                "MemorySize": memory,
                "Environment": {"Variables": {"KAIROS_TASKS": json.dumps(tasks), "KAIROS_STAGE": "dev"}},
                "Tags": tags,
            },
            "Metadata": {**_meta(f"{construct}/Function/Resource"), "aws:asset:path": f"asset.{code}"},
        },
    }


@pytest.mark.parametrize("tagged", [True, False], ids=["tagged", "synthesized-before-the-tag"])
def test_shared_functions_are_reported_with_their_tasks_not_as_stage_resources(tagged: bool) -> None:
    base = template(
        shared_function_resources("aa", ["a-1", "a-2"], tagged=tagged),
        shared_function_resources("bb", ["b-1"], tagged=tagged),
    )
    head = template(
        shared_function_resources("aa", ["a-1", "a-2", "a-3"], tagged=tagged, memory=512, code="ttt"),
        shared_function_resources("cc", ["c-1", "c-2"], tagged=tagged),
    )

    report = diff(one_stack("base", base), one_stack("head", head))

    assert report.stage_changes == ()
    by_name = {function.name: function for function in report.shared_functions}
    assert {name: function.status for name, function in by_name.items()} == {
        "kairos_dev_shared_aa_0": "changed",
        "kairos_dev_shared_bb_0": "removed",
        "kairos_dev_shared_cc_0": "added",
    }
    changed = by_name["kairos_dev_shared_aa_0"]
    assert (changed.tasks_before, changed.tasks_after) == (("a-1", "a-2"), ("a-1", "a-2", "a-3"))
    # The task list is its own line, the code the code section's, the grants one a line: none of
    # them is repeated as a raw property.
    assert [(change.what, change.before, change.after) for change in changed.changes] == [
        ("Function MemorySize", "256", "512")
    ]
    assert len(changed.grants_added) == len(changed.grants_removed) == 1
    assert changed.grants_added[0].startswith("Role/DefaultPolicy: Allow dynamodb:GetItem")
    assert "TASK#a-3" in changed.grants_added[0]
    assert "TASK#a-3" not in changed.grants_removed[0]
    assert by_name["kairos_dev_shared_bb_0"].tasks_before == ("b-1",)
    assert by_name["kairos_dev_shared_cc_0"].tasks_after == ("c-1", "c-2")
    assert [code.used_by for code in report.code] == [("shared function kairos_dev_shared_aa_0",)]
    # A lost shared function's log group is still a loss.
    assert [item.resource for item in report.replacements] == ["SharedFunctionbb/Logs"]

    text = render_text(report)
    assert all(len(line) <= 80 for line in text.splitlines())
    assert "Shared functions (3)" in text
    assert "  ~ kairos_dev_shared_aa_0 (kairos-dev): tasks a-1, a-2 → a-1, a-2, a-3" in text
    assert "  - kairos_dev_shared_bb_0 (kairos-dev): ran b-1" in text
    assert "      grant + Role/DefaultPolicy: Allow dynamodb:GetItem" in text
    assert "  + kairos_dev_shared_cc_0 (kairos-dev): runs c-1, c-2" in text
    assert "Stage resources changed" not in text
    markdown = render_markdown(report)
    assert "#### Shared functions" in markdown
    assert "- ~ kairos_dev_shared_aa_0 (kairos-dev): tasks a-1, a-2 → a-1, a-2, a-3" in markdown
    document = report.as_json()
    assert [function["status"] for function in document["shared_functions"]] == ["changed", "removed", "added"]
    assert document["shared_functions"][0]["tasks_after"] == ["a-1", "a-2", "a-3"]


def test_a_shared_function_whose_tasks_and_settings_are_the_same_is_not_reported() -> None:
    body = template(task_resources("alpha"), shared_function_resources("aa", ["a-1"]))

    report = diff(one_stack("base", body), one_stack("head", copy.deepcopy(body)))

    assert report.empty
    assert report.shared_functions == ()


def test_a_tagged_shared_function_resource_is_its_functions_without_construct_paths() -> None:
    def without_paths(resources: dict[str, Any]) -> dict[str, Any]:
        return {key: {k: v for k, v in body.items() if k != "Metadata"} for key, body in resources.items()}

    base = template(without_paths(shared_function_resources("aa", ["a-1"])))
    head = template(without_paths(shared_function_resources("aa", ["a-1"], memory=512)))

    report = diff(one_stack("base", base), one_stack("head", head))

    assert report.stage_changes == ()
    [changed] = report.shared_functions
    assert changed.name == "kairos_dev_shared_aa_0"
    assert [change.what for change in changed.changes] == ["SharedFunctionaaFunction1 MemorySize"]


@pytest.mark.parametrize(
    "environment",
    [
        "not a mapping",
        {"Variables": ["KAIROS_TASKS"]},
        {"Variables": {"KAIROS_TASKS": "not json"}},
        {"Variables": {"KAIROS_TASKS": json.dumps({"a-1": True})}},
        {"Variables": {"KAIROS_TASKS": 7}},
    ],
    ids=["string", "variables-list", "tasks-not-json", "tasks-not-a-list", "tasks-a-number"],
)
def test_a_saved_template_with_an_odd_environment_is_compared_not_crashed_on(environment: Any) -> None:
    # A --template may come from anywhere: whatever it holds there, the diff still reports.
    base = template(shared_function_resources("aa", ["a-1"]))
    head = copy.deepcopy(base)
    head["Resources"]["SharedFunctionaaFunction1"]["Properties"]["Environment"] = environment

    report = diff(one_stack("base", base), one_stack("head", head))

    [changed] = report.shared_functions
    assert changed.tasks_before == ("a-1",)
    assert changed.tasks_after == ()
    assert render_text(report)
    json.dumps(report.as_json())
