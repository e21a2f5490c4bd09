"""A pure plan of what one stage deploys, derived from the models and the catalog.

Everything the CDK constructs need is decided here, so it is unit-tested without CDK, and the CLI
(``kairos run``, ``kairos list``) reads the same decisions the stack deploys.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, Literal

from kairos.catalog import PROJECT_ROOT, TaskCatalog
from kairos.config import ResolvedTask, StageConfig, TasksFile
from kairos.schedule import AtSchedule, RateSchedule, next_fire_times
from kairos_runtime.events import schedule_input
from kairos_runtime.registry import Access, DependencyGroup
from kairos_runtime.settings import (
    HTTPS_PROXY_ENV,
    LAMBDA_RETRY_ATTEMPTS_ENV,
    MAX_EVENT_AGE_ENV,
    RUNTIME_ENV,
    SSM_PARAMETERS_ENV,
    STAGE_ENV,
    TASK_ENV,
    TASK_MODULE_ENV,
    TASK_TYPE_ENV,
)
from kairos_runtime.tables import TABLE_DESIGNS, TableDesign, TableId

PYTHON_CODE_DIR = PROJECT_ROOT / "lambdas" / "python"
NODE_CODE_DIR = PROJECT_ROOT / "lambdas" / "node"
PYTHON_HANDLER = "kairos_runtime.handler.handler"
NODE_HANDLER = "src/index.handler"

# Scheduler retries a delivery it could not make (throttling, a missing permission); a function that
# ran and failed is retried by Lambda's own asynchronous retries instead.
SCHEDULER_RETRY_ATTEMPTS = 3
LAMBDA_ASYNC_RETRY_ATTEMPTS = 2
MIN_EVENT_AGE = timedelta(seconds=60)
LAMBDA_MAX_EVENT_AGE = timedelta(hours=6)
"""The longest a queued asynchronous invocation may wait (Lambda's own limit)."""
MAX_EVENT_AGE = timedelta(hours=24)
# A fixed reference instant keeps the derived event age (and so the template) deterministic.
_GAP_REFERENCE = datetime(2026, 1, 5, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class TaskPlan:
    name: str
    description: str
    task_type: str
    runtime: str
    family: Literal["python", "nodejs"]
    group: DependencyGroup
    architecture: Literal["arm64", "x86_64"]
    code_dir: str
    handler: str
    memory: int
    timeout: int
    schedule_expression: str
    timezone: str
    enabled: bool
    input_template: Mapping[str, Any]
    tables: Mapping[TableId, Access]
    """Tables the task type declared, beyond writing its own run records."""
    ssm_parameters: tuple[str, ...]
    """SSM parameters the task reads (an API key, say); the stack grants read on exactly these."""
    environment: Mapping[str, str]
    scheduler_retry_attempts: int
    max_event_age_seconds: int
    async_retry_attempts: int

    @property
    def lambda_max_event_age_seconds(self) -> int:
        return lambda_event_age_seconds(timedelta(seconds=self.max_event_age_seconds))


@dataclass(frozen=True, slots=True)
class StagePlan:
    stage: str
    stack_name: str
    schedule_group_name: str
    retain_data: bool
    log_retention_days: int
    alarm_email: str | None
    account: str | None
    region: str | None
    tables: tuple[TableDesign, ...]
    tasks: tuple[TaskPlan, ...]

    def task(self, name: str) -> TaskPlan:
        for task in self.tasks:
            if task.name == name:
                return task
        raise KeyError(name)

    @property
    def enabled_tasks(self) -> tuple[TaskPlan, ...]:
        return tuple(task for task in self.tasks if task.enabled)


class PlanError(ValueError):
    pass


def plan_stage(tasks_file: TasksFile, catalog: TaskCatalog, stage: str) -> StagePlan:
    if stage not in tasks_file.stages:
        raise PlanError(f"unknown stage {stage!r}; tasks.yaml defines: {', '.join(tasks_file.stages)}")
    config = tasks_file.stages[stage]
    tasks = tuple(_plan_task(task, catalog, stage, config) for task in tasks_file.resolved_tasks(stage))
    return StagePlan(
        stage=stage,
        stack_name=f"kairos-{stage}",
        schedule_group_name=f"kairos-{stage}",
        retain_data=config.retain_data,
        log_retention_days=config.log_retention_days,
        alarm_email=config.alarm_email,
        account=config.account,
        region=config.region,
        tables=tuple(TABLE_DESIGNS.values()),
        tasks=tasks,
    )


def _plan_task(task: ResolvedTask, catalog: TaskCatalog, stage: str, config: StageConfig) -> TaskPlan:
    entry = catalog.lookup(task.family, task.task_type)
    if entry is None:
        raise PlanError(f"task {task.name!r}: task_type {task.task_type!r} is not registered for {task.runtime}")
    event_age = max_event_age(task)
    ssm_parameters = tuple(entry.parameters_for(task.params))
    environment = {
        STAGE_ENV: stage,
        TASK_ENV: task.name,
        # Pinned, so an event cannot have the function run another type or read other parameters.
        TASK_TYPE_ENV: task.task_type,
        SSM_PARAMETERS_ENV: json.dumps(ssm_parameters),
        RUNTIME_ENV: task.runtime,
        LAMBDA_RETRY_ATTEMPTS_ENV: str(LAMBDA_ASYNC_RETRY_ATTEMPTS),
        MAX_EVENT_AGE_ENV: str(lambda_event_age_seconds(event_age)),
    }
    if entry.group is DependencyGroup.CRAWLER:
        environment["TQDM_DISABLE"] = "1"
        if config.https_proxy:
            environment[HTTPS_PROXY_ENV] = config.https_proxy
    if task.family == "python":
        environment |= {"POWERTOOLS_SERVICE_NAME": "kairos", "POWERTOOLS_METRICS_NAMESPACE": "Kairos"}
        if entry.module:
            environment[TASK_MODULE_ENV] = entry.module
    return TaskPlan(
        name=task.name,
        description=task.description or entry.description,
        task_type=task.task_type,
        runtime=task.runtime,
        family=task.family,
        group=entry.group,
        architecture=task.architecture or entry.architecture.value,
        code_dir=str(PYTHON_CODE_DIR if task.family == "python" else NODE_CODE_DIR),
        handler=PYTHON_HANDLER if task.family == "python" else NODE_HANDLER,
        memory=task.memory,
        timeout=task.timeout,
        schedule_expression=task.schedule,
        timezone=task.timezone,
        enabled=task.enabled,
        input_template=MappingProxyType(schedule_input(task=task.name, task_type=task.task_type, params=task.params)),
        tables=entry.tables,
        ssm_parameters=ssm_parameters,
        environment=MappingProxyType(environment),
        scheduler_retry_attempts=SCHEDULER_RETRY_ATTEMPTS,
        max_event_age_seconds=int(event_age.total_seconds()),
        async_retry_attempts=LAMBDA_ASYNC_RETRY_ATTEMPTS,
    )


def lambda_event_age_seconds(max_age: timedelta) -> int:
    """How long Lambda keeps an event for its own retries: the schedule's limit, within Lambda's."""
    return int(min(max_age, LAMBDA_MAX_EVENT_AGE).total_seconds())


def max_event_age(task: ResolvedTask) -> timedelta:
    """How long a delivery may wait: no longer than the gap to the task's next slot.

    An event older than that is superseded by the next scheduled run, so delivering it late would
    only run the same slot's work twice in a row.
    """
    schedule = task.parsed_schedule
    if isinstance(schedule, AtSchedule):
        gap = MAX_EVENT_AGE
    elif isinstance(schedule, RateSchedule):
        gap = schedule.interval
    else:
        times = next_fire_times(schedule, timezone=task.timezone, after=_GAP_REFERENCE, count=32)
        gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
        gap = min(gaps, default=MAX_EVENT_AGE)
    return min(max(gap, MIN_EVENT_AGE), MAX_EVENT_AGE)
