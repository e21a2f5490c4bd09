"""The real Lambda entry point in a fresh interpreter, as ``kairos run`` invokes it: Powertools
logging and metrics on stdout, the run record in DynamoDB (moto's server on loopback)."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from kairos.catalog import load_catalog
from kairos.loading import load_tasks_file
from kairos.local.dynamodb import DynamoEndpoint
from kairos.local.session import LocalStage
from kairos.plan import StagePlan, plan_stage
from kairos_runtime.settings import SDK_TRACING_ENV, TASK_TYPE_ENV
from tests.conftest import PROJECT_ROOT, run_in_fresh_interpreter

SLOT = datetime(2026, 11, 27, 7, 15, tzinfo=UTC)


@pytest.fixture(scope="module")
def dev_plan() -> StagePlan:
    catalog = load_catalog()
    return plan_stage(load_tasks_file(PROJECT_ROOT / "tasks.yaml", catalog), catalog, "dev")


@pytest.fixture
def local_stage(local_dynamodb: str) -> LocalStage:
    stage = LocalStage(stage="dev", endpoint=DynamoEndpoint(url=local_dynamodb, embedded=False))
    stage.prepare_tables()
    return stage


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


@pytest.mark.parametrize("task", ["python-task-1", "nodejs-task-1"])
def test_a_local_run_goes_through_the_real_handler_with_logs_and_metrics(
    local_stage: LocalStage, dev_plan: StagePlan, task: str
) -> None:
    result = local_stage.run(dev_plan.task(task), scheduled_time=SLOT)

    assert result.invocation.ok, result.invocation.output
    assert result.invocation.event["scheduled_time"] == "2026-11-27T07:15:00Z"
    execution_id = result.invocation.event["execution_id"]
    lines = json_lines(result.invocation.output)
    logs = [line for line in lines if "message" in line]
    [metrics] = [line for line in lines if "_aws" in line]
    assert logs, result.invocation.output
    assert {log["correlation_id"] for log in logs} == {execution_id}
    [directive] = metrics["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "Kairos"
    assert sorted(directive["Dimensions"][0]) == ["service", "stage", "task"]
    assert (metrics["service"], metrics["stage"], metrics["task"]) == ("kairos", "dev", task)
    assert metrics["RunsSucceeded"] in ([1.0], 1), "Powertools writes a list of values, the Node runtime a number"
    record = result.record
    assert record is not None
    assert record["status"] == "SUCCEEDED"
    assert record["sk"] == f"RUN#2026-11-27T07:15:00Z#{execution_id}#1"
    assert record["runtime"] == dev_plan.task(task).runtime


def test_a_local_run_of_an_unknown_task_type_is_recorded_as_failed(
    local_stage: LocalStage, dev_plan: StagePlan
) -> None:
    # A function deployed for a type its module no longer registers: event and pin agree.
    plan = dev_plan.task("python-task-2")
    broken = dataclasses.replace(
        plan,
        input_template={**plan.input_template, "task_type": "retired_type"},
        environment={**plan.environment, TASK_TYPE_ENV: "retired_type"},
    )

    result = local_stage.run(broken, scheduled_time=SLOT)

    assert result.invocation.ok, "a permanent failure is returned, not raised"
    assert result.record is not None
    assert (result.record["status"], result.record["error_type"]) == ("FAILED", "UnknownTaskType")


def test_a_local_run_gets_the_pinned_task_type_and_refuses_an_event_naming_another(
    local_stage: LocalStage, dev_plan: StagePlan
) -> None:
    plan = dev_plan.task("python-task-2")
    assert plan.environment[TASK_TYPE_ENV] == "simple_task_2"
    other = dataclasses.replace(plan, input_template={**plan.input_template, "task_type": "simple_task_1"})

    result = local_stage.run(other, scheduled_time=SLOT)

    assert result.invocation.ok, "a permanent failure is returned, not raised"
    assert result.record is not None
    assert (result.record["status"], result.record["error_type"]) == ("FAILED", "InvalidEvent")
    assert result.record["error_message"] == (
        "this function runs task_type 'simple_task_2'; the event names 'simple_task_1'"
    )
    assert "detail" not in result.record or result.record["detail"] == {}, "simple_task_1 did not run"


@pytest.mark.parametrize(
    ("task_module", "task_types", "not_loaded"),
    [
        pytest.param(
            "kairos_runtime.tasks.simple",
            ["simple_task_1", "simple_task_2"],
            ["kairos_runtime.tasks.market", "pandas", "akshare", "pycoingecko", "numpy", "requests"],
            id="simple-task-function",
        ),
        pytest.param(
            "kairos_runtime.tasks.market.a_shares",
            ["etf_daily", "etf_spot", "index_daily", "index_spot", "stock_daily", "stock_spot"],
            ["pandas", "akshare", "pycoingecko", "numpy", "requests"],
            id="crawler-function",
        ),
        pytest.param(
            "kairos_runtime.tasks.market.funds",
            ["fund_nav"],
            ["pandas", "akshare", "py_mini_racer", "numpy", "requests"],
            id="fund-function",
        ),
    ],
)
def test_a_function_imports_only_its_own_task_module_and_no_heavy_library(
    task_module: str, task_types: list[str], not_loaded: list[str]
) -> None:
    # A fresh interpreter: what a cold start pays for.
    probe = (
        "import json, sys, kairos_runtime.handler as h; "
        "print(json.dumps([sorted(sys.modules), h.RUNNER._registry.names()]))"
    )
    output = run_in_fresh_interpreter(probe, KAIROS_TASK_MODULE=task_module)
    modules, registered = json.loads(output.splitlines()[-1])
    assert task_module in modules
    assert set(not_loaded).isdisjoint(modules)
    assert registered == task_types, "the function's registry holds its own module's task types only"


@pytest.mark.parametrize(("retried", "metric"), [(True, "RunsRetried"), (False, "RunsFailed")])
def test_a_failure_lambda_delivers_again_is_published_as_runs_retried(retried: bool, metric: str) -> None:
    probe = f"""
import json
from datetime import UTC, datetime
import kairos_runtime.handler as h
from kairos_runtime.events import ScheduledEvent
from kairos_runtime.runner import RunResult
from kairos_runtime.runs import ErrorKind, RunError, RunStatus
slot = datetime(2026, 11, 27, tzinfo=UTC)
event = ScheduledEvent(task="probe", task_type="probe", scheduled_time=slot, execution_id="e")
error = RunError("TransientTaskError", "upstream down", ErrorKind.TRANSIENT)
result = RunResult(task="probe", status=RunStatus.FAILED, run_id="r", duration_ms=5, error=error, retried={retried})
h.PowertoolsObserver().run_finished(event, result)
print(json.dumps(h.metrics.serialize_metric_set()))
"""
    output = run_in_fresh_interpreter(probe)
    emf = json.loads(output.splitlines()[-1])
    [directive] = emf["_aws"]["CloudWatchMetrics"]
    names = {entry["Name"] for entry in directive["Metrics"]}
    assert metric in names
    assert ({"RunsRetried", "RunsFailed"} - {metric}).isdisjoint(names)


@pytest.mark.parametrize(("sdk_tracing", "traced"), [(None, False), ("true", True), ("false", False)])
def test_the_x_ray_sdk_loads_only_where_the_stage_turns_sdk_tracing_on(sdk_tracing: str | None, traced: bool) -> None:
    # Given a simple task's function, with or without KAIROS_SDK_TRACING (the plan's sdk_tracing)
    probe = (
        "import json, sys, kairos_runtime.handler as h; "
        "print(json.dumps([h.tracer is not None, any(m.startswith('aws_xray_sdk') for m in sys.modules)]))"
    )
    environment = {"KAIROS_TASK_MODULE": "kairos_runtime.tasks.simple"}
    if sdk_tracing is not None:
        environment[SDK_TRACING_ENV] = sdk_tracing
    # When the handler is imported cold, Then the Tracer (and the X-Ray SDK with it) is there only when asked for
    output = run_in_fresh_interpreter(probe, **environment)
    assert json.loads(output.splitlines()[-1]) == [traced, traced]


def test_a_traced_handler_still_runs_the_task_and_annotates_nothing_when_tracing_is_off(
    local_stage: LocalStage, dev_plan: StagePlan
) -> None:
    # Given python-task-1 run through the real handler with SDK tracing on (Powertools disables it locally)
    task = dataclasses.replace(
        dev_plan.task("python-task-1"),
        environment={**dev_plan.task("python-task-1").environment, SDK_TRACING_ENV: "true"},
    )
    # When it runs, Then the run succeeds as it does untraced
    result = local_stage.run(task, scheduled_time=SLOT)
    assert result.invocation.ok, result.invocation.output
    assert result.record is not None
    assert result.record["status"] == "SUCCEEDED"
