"""The pure plan: what each stage deploys, decided without CDK."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from kairos.catalog import load_catalog
from kairos.loading import load_tasks_file
from kairos.plan import MAX_EVENT_AGE, MIN_EVENT_AGE, PlanError, StagePlan, plan_stage
from kairos_runtime.registry import DependencyGroup

TASKS = """\
    defaults: {enabled: true}
    stages:
      dev: {enabled: [every-minute], log_retention_days: 7, https_proxy: "http://proxy.internal:3128"}
      prod: {log_retention_days: 90, retain_data: true, alarm_email: ops@example.com}
    tasks:
      - {name: every-minute, task_type: simple_task_1, schedule: rate(1 minute)}
      - {name: hourly, task_type: simple_task_2, schedule: rate(2 hours), runtime: nodejs22.x}
      - {name: weekday-close, task_type: simple_task_1, schedule: "cron(5 15 ? * MON-FRI *)",
         timezone: Asia/Shanghai, params: {label: close}}
      - {name: yearly, task_type: simple_task_1, schedule: "cron(0 0 1 1 ? *)"}
      - {name: once, task_type: simple_task_1, schedule: "at(2027-01-01T00:00:00)", enabled: false}
      - {name: quotes, task_type: stock_spot, schedule: "cron(0/15 9-15 ? * MON-FRI *)", timezone: Asia/Shanghai}
"""


def plan_for(tmp_path: Path, stage: str) -> StagePlan:
    path = tmp_path / "tasks.yaml"
    path.write_text(textwrap.dedent(TASKS), encoding="utf-8")
    catalog = load_catalog()
    return plan_stage(load_tasks_file(path, catalog), catalog, stage)


def test_stage_settings_flow_into_the_plan(tmp_path: Path) -> None:
    dev, prod = plan_for(tmp_path, "dev"), plan_for(tmp_path, "prod")

    assert (dev.stack_name, dev.schedule_group_name, dev.retain_data, dev.log_retention_days) == (
        "kairos-dev",
        "kairos-dev",
        False,
        7,
    )
    assert (prod.retain_data, prod.alarm_emails, prod.alarm_topic_arn) == (True, ("ops@example.com",), None)
    assert [task.name for task in dev.enabled_tasks] == ["every-minute"]
    assert [task.name for task in prod.enabled_tasks] == ["every-minute", "hourly", "weekday-close", "yearly", "quotes"]


def test_runtime_family_decides_code_handler_and_architecture(tmp_path: Path) -> None:
    plan = plan_for(tmp_path, "dev")

    python, node = plan.task("every-minute"), plan.task("hourly")
    assert (python.family, python.handler, python.architecture) == (
        "python",
        "kairos_runtime.handler.handler",
        "arm64",
    )
    assert python.code_dir.endswith("lambdas/python")
    assert (node.family, node.handler, node.runtime) == ("nodejs", "src/index.handler", "nodejs22.x")
    assert node.code_dir.endswith("lambdas/node")
    assert python.group is DependencyGroup.CORE
    assert python.environment["KAIROS_TASK_MODULE"] == "kairos_runtime.tasks.simple"
    assert "KAIROS_TASK_MODULE" not in node.environment


def test_the_schedule_input_carries_identity_params_and_context_attributes(tmp_path: Path) -> None:
    task = plan_for(tmp_path, "dev").task("weekday-close")

    assert dict(task.input_template) == {
        "task": "weekday-close",
        "task_type": "simple_task_1",
        "params": {"label": "close"},
        "scheduled_time": "<aws.scheduler.scheduled-time>",
        "execution_id": "<aws.scheduler.execution-id>",
        "attempt": "<aws.scheduler.attempt-number>",
    }
    assert (task.timezone, task.schedule_expression) == ("Asia/Shanghai", "cron(5 15 ? * MON-FRI *)")


@pytest.mark.parametrize(
    ("task", "seconds"),
    [
        ("every-minute", MIN_EVENT_AGE.total_seconds()),
        ("hourly", 2 * 3600),
        ("weekday-close", MAX_EVENT_AGE.total_seconds()),
        ("yearly", MAX_EVENT_AGE.total_seconds()),
        ("once", MAX_EVENT_AGE.total_seconds()),
    ],
)
def test_a_delivery_may_not_outlive_the_gap_to_the_next_slot(tmp_path: Path, task: str, seconds: float) -> None:
    assert plan_for(tmp_path, "dev").task(task).max_event_age_seconds == seconds


def test_only_tasks_with_crawler_dependencies_get_the_proxy(tmp_path: Path) -> None:
    plan = plan_for(tmp_path, "dev")

    assert "KAIROS_HTTPS_PROXY" not in plan.task("every-minute").environment
    assert plan.task("quotes").environment["KAIROS_HTTPS_PROXY"] == "http://proxy.internal:3128"
    assert plan.task("quotes").group is DependencyGroup.CRAWLER
    assert plan.task("every-minute").environment["KAIROS_STAGE"] == "dev"
    assert plan.task("every-minute").environment["KAIROS_TASK"] == "every-minute"


def test_simple_tasks_get_no_tables_or_parameters(tmp_path: Path) -> None:
    task = plan_for(tmp_path, "dev").task("every-minute")

    assert dict(task.tables) == {}
    assert task.ssm_parameters == ()


def test_each_function_is_pinned_to_its_task_type_and_parameters(tmp_path: Path) -> None:
    task = plan_for(tmp_path, "dev").task("every-minute")

    assert task.environment["KAIROS_TASK_TYPE"] == task.task_type == task.input_template["task_type"]
    assert task.environment["KAIROS_SSM_PARAMETERS"] == "[]"


def test_an_unknown_stage_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match=r"unknown stage 'qa'; tasks\.yaml defines: dev, prod"):
        plan_for(tmp_path, "qa")


@pytest.mark.parametrize(
    ("stage", "warns"),
    [
        ("{retain_data: true}", True),
        ("{retain_data: true, alarm_email: null}", True),
        ("{retain_data: true, alarm_email: ops@example.com}", False),
        ("{retain_data: true, alarm_email: [ops@example.com, pager@example.com]}", False),
        ("{retain_data: true, alarm_topic_arn: 'arn:aws:sns:eu-west-1:111122223333:paging'}", False),
        ("{retain_data: false}", False),
    ],
)
def test_a_stage_that_keeps_data_warns_when_nobody_would_hear_its_alarms(
    tmp_path: Path, stage: str, warns: bool
) -> None:
    path = tmp_path / "tasks.yaml"
    path.write_text(f"stages:\n  prod: {stage}\ntasks: []\n", encoding="utf-8")
    catalog = load_catalog()

    warning = plan_stage(load_tasks_file(path, catalog), catalog, "prod").alarm_warning()

    assert (warning is not None) is warns
    if warning:
        assert "set alarm_email (one address or a list) or alarm_topic_arn" in warning


def test_sdk_tracing_is_a_stage_switch_that_reaches_python_functions_only(tmp_path: Path) -> None:
    path = tmp_path / "tasks.yaml"
    path.write_text(
        textwrap.dedent(TASKS).replace(
            "prod: {log_retention_days: 90,", "prod: {sdk_tracing: true, log_retention_days: 90,"
        ),
        encoding="utf-8",
    )
    catalog = load_catalog()
    tasks_file = load_tasks_file(path, catalog)
    dev, prod = plan_stage(tasks_file, catalog, "dev"), plan_stage(tasks_file, catalog, "prod")

    assert all("KAIROS_SDK_TRACING" not in task.environment for task in dev.tasks), "off unless a stage says so"
    assert prod.task("every-minute").environment["KAIROS_SDK_TRACING"] == "true"
    assert prod.task("quotes").environment["KAIROS_SDK_TRACING"] == "true"
    assert "KAIROS_SDK_TRACING" not in prod.task("hourly").environment, "the Node runtime has no X-Ray SDK to load"
