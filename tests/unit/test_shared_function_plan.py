"""Shared functions in the plan (docs/adr/0183-shared-functions.md): which tasks share, under which
stable name, in which shard, with which environment, alarms and resource counts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kairos.catalog import load_catalog
from kairos.loading import ConfigError, load_tasks_file
from kairos.plan import (
    RESOURCES_PER_SHARED_FUNCTION,
    PlanError,
    StagePlan,
    TaskPlan,
    plan_stage,
    shard_of,
)
from kairos_runtime import metrics
from kairos_runtime.settings import TASK_ENV, TASK_TYPE_ENV, TASKS_ENV

HEAD = """\
defaults: {enabled: true}
stages:
  dev: {shards: 1}
  prod: {shards: 3, shared_function: false}
tasks:
"""


def entry(name: str, *, extra: str = "", task_type: str = "simple_task_1", schedule: str = "rate(5 minutes)") -> str:
    return f"  - {{name: {name}, task_type: {task_type}, schedule: '{schedule}'{extra}}}\n"


FLEET = (
    entry("a-1", extra=", shared_function: true")
    + entry("a-2", extra=", shared_function: true")
    + entry("a-3", extra=", shared_function: true")
    + entry("b-1", extra=", shared_function: true, memory: 512")
    + entry("own-1")
    + entry("n-1", extra=", shared_function: true, runtime: nodejs22.x")
    + entry("n-2", extra=", shared_function: true, runtime: nodejs22.x")
)


def plan_of(tmp_path: Path, tasks: str, stage: str = "dev", head: str = HEAD) -> StagePlan:
    path = tmp_path / "tasks.yaml"
    path.write_text(head + tasks, encoding="utf-8")
    catalog = load_catalog()
    return plan_stage(load_tasks_file(path, catalog), catalog, stage)


def test_tasks_alike_share_one_function_named_for_what_they_share(tmp_path: Path) -> None:
    # Given three alike Python tasks, one with more memory, one that does not share and two Node tasks
    plan = plan_of(tmp_path, FLEET)

    # Then each group runs on one function of its own, under the stage's function prefix
    by_function = {function.function_name: function.tasks for function in plan.shared_functions}
    assert sorted(by_function.values()) == [("a-1", "a-2", "a-3"), ("b-1",), ("n-1", "n-2")]
    for name, tasks in by_function.items():
        assert name.startswith("kairos_dev_shared_")
        assert name.endswith("_0")
        for task in tasks:
            assert plan.task(task).shared_function == plan.task(task).function_name == name
    assert plan.task("own-1").shared_function is None
    assert plan.task("own-1").function_name == "kairos_dev_own-1"
    assert plan.function_count == 4


def test_a_shared_functions_environment_lists_its_tasks_and_pins_the_rest(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, FLEET)
    shared = plan.shared_function(plan.task("a-1").function_name)

    environment = dict(shared.environment)

    assert json.loads(environment[TASKS_ENV]) == ["a-1", "a-2", "a-3"]
    assert TASK_ENV not in environment
    assert environment[TASK_TYPE_ENV] == "simple_task_1"
    # Everything else is each task's own environment: equal by the grouping rule
    own = {key: value for key, value in plan.task("a-2").environment.items() if key != TASK_ENV}
    assert {key: value for key, value in environment.items() if key != TASKS_ENV} == own
    assert (shared.memory, shared.timeout, shared.runtime) == (256, 60, "python3.13")


def test_a_task_added_or_removed_leaves_the_other_tasks_on_the_same_function(tmp_path: Path) -> None:
    before = plan_of(tmp_path, FLEET)
    changed = FLEET.replace(entry("a-2", extra=", shared_function: true"), "") + entry(
        "a-9", extra=", shared_function: true"
    )

    after = plan_of(tmp_path, changed)

    assert after.task("a-1").function_name == before.task("a-1").function_name
    assert after.shared_function(after.task("a-1").function_name).tasks == ("a-1", "a-3", "a-9")


def test_shared_functions_live_in_their_tasks_shard(tmp_path: Path) -> None:
    # Given a fleet of alike tasks over three shards (prod: the default is off, so each says true)
    names = [f"t-{index}" for index in range(12)]
    plan = plan_of(tmp_path, "".join(entry(name, extra=", shared_function: true") for name in names), stage="prod")

    # Then every shard with tasks has one function, holding exactly its shard's tasks
    assert sorted(function.shard for function in plan.shared_functions) == sorted({shard_of(n, 3) for n in names})
    for function in plan.shared_functions:
        assert function.tasks == tuple(name for name in names if shard_of(name, 3) == function.shard)
        assert function.function_name.endswith(f"_{function.shard}")
    assert len({function.key for function in plan.shared_functions}) == 1


def test_a_stage_default_applies_where_a_task_says_nothing(tmp_path: Path) -> None:
    head = HEAD.replace("dev: {shards: 1}", "dev: {shards: 1, shared_function: true}")
    tasks = entry("a-1") + entry("a-2", extra=", shared_function: false") + entry("a-3")

    dev = plan_of(tmp_path, tasks, head=head)
    prod = plan_of(tmp_path, tasks.replace("{name: a-3,", "{name: a-3, shared_function: true,"), "prod", head=head)

    assert [task.shares_function for task in dev.tasks] == [True, False, True]
    assert [task.shares_function for task in prod.tasks] == [False, False, True]


def test_the_files_defaults_apply_under_the_stages(tmp_path: Path) -> None:
    head = HEAD.replace("{enabled: true}", "{enabled: true, shared_function: true}")
    plan = plan_of(tmp_path, entry("a-1") + entry("a-2"), "prod", head=head)
    dev = plan_of(tmp_path, entry("a-1") + entry("a-2"), "dev", head=head)

    assert [task.shares_function for task in plan.tasks] == [False, False]  # prod says false
    assert [task.shares_function for task in dev.tasks] == [True, True]


FAN_OUT = entry(
    "all-daily",
    task_type="stock_daily_all",
    schedule="cron(0 16 ? * MON-FRI *)",
    extra=", timeout: 900, params: {symbols: all}",
)


def test_a_fan_out_task_keeps_its_own_functions_under_a_default(tmp_path: Path) -> None:
    head = HEAD.replace("{enabled: true}", "{enabled: true, shared_function: true}")
    plan = plan_of(tmp_path, FAN_OUT + entry("a-1"), head=head)

    assert plan.task("all-daily").fan_out is not None
    assert plan.task("all-daily").shared_function is None
    assert plan.task("a-1").shared_function is not None


def test_a_fan_out_task_that_asks_to_share_is_refused_at_its_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        plan_of(tmp_path, entry("a-1") + FAN_OUT.replace("timeout: 900", "timeout: 900, shared_function: true"))

    [problem] = refused.value.problems
    assert "tasks.yaml:7" in problem
    assert "all-daily" in problem
    assert "shared_function" in problem
    assert "cannot share" in problem


def test_a_task_on_a_shared_function_keeps_its_own_alarms_and_the_function_alarms_on_drops(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, FLEET)
    task = plan.task("a-1")
    shared = plan.shared_function(task.function_name)

    failed = task.failure_alarm
    assert failed.alarm_name == "kairos-dev-a-1-failed"
    assert failed.only_metric.metric_name == metrics.RUNS_FAILED
    assert dict(failed.only_metric.dimensions) == {
        metrics.SERVICE_DIMENSION: metrics.SERVICE,
        metrics.STAGE_DIMENSION: "dev",
        metrics.TASK_DIMENSION: "a-1",
    }
    assert task.freshness.alarm is not None
    assert dict(task.freshness.alarm.only_metric.dimensions)[metrics.TASK_DIMENSION] == "a-1"
    dropped = shared.dropped_alarm.only_metric
    assert (dropped.metric_name, dropped.resource_dimension) == (metrics.LAMBDA_ASYNC_EVENTS_DROPPED, "FunctionName")
    assert shared.dropped_alarm.alarm_name == f"kairos-dev-shared-{shared.key}-0-dropped"
    assert shared.dropped_alarm in plan.alarms


def _own(task: TaskPlan) -> int:
    return 1 + len(task.alarms)


def test_a_shared_task_costs_its_schedule_and_alarms(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, FLEET)

    # a schedule, a failure alarm and a freshness alarm (enabled, steady)
    assert plan.task("a-1").resource_count == _own(plan.task("a-1")) == 3
    assert plan.task("own-1").resource_count == 8
    [shard] = plan.shards
    assert shard.resource_count == sum(task.resource_count for task in plan.tasks) + 3 * RESOURCES_PER_SHARED_FUNCTION


def test_a_shared_function_whose_task_list_overflows_its_environment_is_refused(tmp_path: Path) -> None:
    names = [f"task-with-a-rather-long-name-{index:04d}" for index in range(120)]

    with pytest.raises(PlanError) as refused:
        plan_of(tmp_path, "".join(entry(name, extra=", shared_function: true") for name in names))

    message = str(refused.value)
    assert "kairos_dev_shared_" in message
    assert "120 tasks" in message
    assert "environment" in message
    assert "4,096" in message
    assert "shards" in message
