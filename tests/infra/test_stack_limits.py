"""The plan's count of each stack's CloudFormation resources is its template's, and its size estimate
is above the template's size, so the limit check in ``plan_stage`` cannot drift when a construct gains
a resource; and a synth that CDK refuses anyway ends in one line on stderr, not a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

from kairos.catalog import load_catalog
from kairos.loading import load_tasks_file
from kairos.plan import CDK_METADATA_RESOURCES, plan_stage
from kairos_stack.app_builder import build_stage
from tests.conftest import CDK_FEATURE_FLAGS, PROJECT_ROOT

NO_BUNDLING = {**CDK_FEATURE_FLAGS, "aws:cdk:bundling-stacks": [], "aws:cdk:enable-path-metadata": True}
"""cdk.json's flags, as the CLI gives them to app.py, without bundling."""


def tasks_file(tmp_path: Path, tasks: int, *, crawler: bool, alarm_email: bool) -> Path:
    email = "ops@example.com" if alarm_email else "null"
    text = f"stages:\n  s{tasks}:\n    alarm_email: {email}\ntasks:\n"
    text += "".join(
        f"  - {{name: t-{index}, task_type: simple_task_1, schedule: rate(5 minutes)}}\n" for index in range(tasks)
    )
    if crawler:
        text += "  - {name: spot, task_type: stock_spot, schedule: rate(15 minutes)}\n"
        text += "  - {name: coins, task_type: crypto_markets, schedule: rate(15 minutes)}\n"
    path = tmp_path / f"tasks-{tasks}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_plans_resource_count_is_the_templates(tmp_path: Path) -> None:
    catalog = load_catalog()
    app = cdk.App(context=NO_BUNDLING, analytics_reporting=False)
    stacks = []
    for tasks, crawler, alarm_email in [(1, False, False), (4, True, True), (7, False, True)]:
        stage_name = f"s{tasks}"
        plan = plan_stage(
            load_tasks_file(tasks_file(tmp_path, tasks, crawler=crawler, alarm_email=alarm_email), catalog),
            catalog,
            stage_name,
        )
        stacks.append((plan, build_stage(app, plan)))
    shipped = plan_stage(load_tasks_file(PROJECT_ROOT / "tasks.yaml", catalog), catalog, "prod")
    stacks.append((shipped, build_stage(app, shipped)))

    for plan, stage in stacks:
        core = Template.from_stack(stage.core).to_json()
        assert plan.shared_resource_count == len(core["Resources"]), plan.stage
        # The core's estimate is above its template, and close: its dashboard bodies are the deployed text.
        written = len(json.dumps(core, indent=1))
        assert written <= plan.core_template_bytes < written + 10_000 + 1_000 * len(plan.dashboards), plan.stage
        for shard, stack in zip(plan.shards, stage.shards, strict=True):
            template = Template.from_stack(stack).to_json()
            assert shard.resource_count == len(template["Resources"]), (plan.stage, shard.index)
            # As the CLI writes it (indent 1) with CDK's path metadata, the size CloudFormation measures.
            assert shard.template_bytes >= len(json.dumps(template, indent=1)), (plan.stage, shard.index)
            functions = [item for item in template["Resources"].values() if item["Type"] == "AWS::Lambda::Function"]
            # A fan-out task has a function per step (plan, batch, summarize: docs/adr/0162).
            assert len(functions) == sum(len(task.fan_out.functions) if task.fan_out else 1 for task in shard.tasks)
    assert len({plan.resource_count for plan, _ in stacks}) == len(stacks)


def test_a_task_costs_seven_resources_and_no_role_of_its_own_for_its_schedule(tmp_path: Path) -> None:
    catalog = load_catalog()
    app = cdk.App(context=NO_BUNDLING, analytics_reporting=False)
    plan = plan_stage(
        load_tasks_file(tasks_file(tmp_path, 3, crawler=False, alarm_email=False), catalog), catalog, "s3"
    )
    stage = build_stage(app, plan)

    for shard, stack in zip(plan.shards, stage.shards, strict=True):
        resources = Template.from_stack(stack).to_json()["Resources"].values()
        types = sorted(resource["Type"] for resource in resources)
        if shard.tasks:
            assert len(types) == 7 * len(shard.tasks)
            assert types.count("AWS::IAM::Role") == len(shard.tasks), "the function's role only"
        else:
            assert types == ["AWS::CloudFormation::WaitConditionHandle"]


def test_cdks_metadata_resource_is_the_one_the_limit_reserves(tmp_path: Path) -> None:
    catalog = load_catalog()
    app = cdk.App(context=NO_BUNDLING, analytics_reporting=True)
    plan = plan_stage(
        load_tasks_file(tasks_file(tmp_path, 1, crawler=False, alarm_email=False), catalog), catalog, "s1"
    )
    stage = build_stage(app, plan)
    assembly = app.synth()

    counts = [plan.shared_resource_count, *(shard.resource_count for shard in plan.shards)]
    for stack, count in zip(stage.stacks, counts, strict=True):
        assert len(assembly.get_stack_by_name(stack.stack_name).template["Resources"]) == count + CDK_METADATA_RESOURCES


def test_a_synth_cdk_refuses_is_one_line_on_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import app as cdk_app

    # A resource limit below the stage's makes CDK itself refuse the stack (TooManyResourcesInStack).
    path = tasks_file(tmp_path, 1, crawler=False, alarm_email=False)
    context = {**NO_BUNDLING, "stage": "s1", "tasks_file": str(path), "@aws-cdk/core:stackResourceLimit": 5}
    with pytest.raises(SystemExit) as exited:
        cdk_app.main(cdk.App(context=context, outdir=str(tmp_path / "out")))

    assert exited.value.code == 1
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"kairos: stage 's1' of {path} failed to synthesize: ")
    assert "Number of resources" in lines[0]
    assert "Traceback" not in lines[0]


def test_a_bad_tasks_file_stops_the_synth_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import app as cdk_app

    path = tmp_path / "tasks.yaml"
    path.write_bytes(b"stages: {dev: {}}\ntasks: [\x1b]\n")
    with pytest.raises(SystemExit) as exited:
        cdk_app.main(
            cdk.App(context={**NO_BUNDLING, "stage": "dev", "tasks_file": str(path)}, outdir=str(tmp_path / "o"))
        )

    assert exited.value.code == 1
    error = capsys.readouterr().err
    assert f"{path}:2:9: control character U+001B is not allowed in YAML" in error
    assert "Traceback" not in error


def test_a_template_over_cloudformations_size_limit_fails_the_synth(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import app as cdk_app

    # The real limit takes about 50 tasks with large params to reach; a small one shows the check.
    monkeypatch.setattr(cdk_app, "TEMPLATE_MAX_BYTES", 10_000)
    path = tasks_file(tmp_path, 1, crawler=False, alarm_email=False)
    with pytest.raises(SystemExit) as exited:
        cdk_app.main(
            cdk.App(context={**NO_BUNDLING, "stage": "s1", "tasks_file": str(path)}, outdir=str(tmp_path / "o"))
        )

    assert exited.value.code == 1
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"kairos: stage 's1' of {path}: the template of kairos-s1")
    assert "and CloudFormation takes at most 10,000" in lines[0]


def test_a_stage_whose_core_stack_would_pass_the_template_limit_fails_with_the_stack_and_the_fix(
    tmp_path: Path,
) -> None:
    """Enough shards for every task, but the core stack's dashboard pages alone pass 80 % of 1 MB."""
    from kairos.plan import MAX_TEMPLATE_BYTES, PlanError

    catalog = load_catalog()
    text = "stages:\n  big:\n    shards: 40\ntasks:\n" + "".join(
        f"  - {{name: task-with-a-long-name-{index:04d}, task_type: simple_task_1, schedule: rate(5 minutes)}}\n"
        for index in range(1_300)
    )
    path = tmp_path / "tasks.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PlanError) as raised:
        plan_stage(load_tasks_file(path, catalog), catalog, "big")
    message = str(raised.value)
    assert "core stack kairos-big would be a template of about" in message
    assert "dashboard page(s) of 1300 tasks" in message
    assert f"kairos keeps {MAX_TEMPLATE_BYTES:,}" in message
    assert "Move tasks to another tasks file" in message
