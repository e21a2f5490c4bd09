"""A pure plan of what one stage deploys, derived from the models and the catalog.

Everything the CDK constructs need is decided here, so it is unit-tested without CDK, and the CLI
(``kairos run``, ``kairos list``) reads the same decisions the stack deploys.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, Literal

from kairos.catalog import PROJECT_ROOT, CatalogEntry, TaskCatalog, dependency_group
from kairos.config import DEFAULT_SHARDS, MAX_SHARDS, ResolvedTask, StageConfig, TasksFile
from kairos.limits import (
    LAMBDA_DESCRIPTION_MAX_LENGTH,
    SCHEDULE_INPUT_MAX_BYTES,
    STACK_MAX_RESOURCES,
    TEMPLATE_MAX_BYTES,
    utf16_length,
)
from kairos.schedule import AtSchedule, RateSchedule, next_fire_times
from kairos_runtime import metrics
from kairos_runtime.events import schedule_input
from kairos_runtime.registry import Access, DependencyGroup, Partitions
from kairos_runtime.settings import (
    HTTPS_PROXY_ENV,
    LAMBDA_RETRY_ATTEMPTS_ENV,
    MAX_EVENT_AGE_ENV,
    RUN_RECORD_TTL_DAYS_ENV,
    RUNTIME_ENV,
    SSM_PARAMETERS_ENV,
    STAGE_ENV,
    TASK_ENV,
    TASK_MODULE_ENV,
    TASK_TYPE_ENV,
)
from kairos_runtime.tables import TABLE_DESIGNS, TableDesign, TableId
from kairos_runtime.tasks.market.trading_calendar import CALENDAR_WARNING_DAYS

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
# What the stacks declare (kairos_stack; docs/adr/0180-stage-shards.md). The core stack, per stage:
# a table per design, the dead-letter queue with its policy and alarm, the schedule group, the one
# Scheduler execution role with its policy, and the stage's own alarm topic (key, topic, policy) with
# a subscription per e-mail, unless an existing topic is named. Each shard stack, per task: the
# function with its role, policy, event invoke config and log group, the schedule and the failure
# alarm, plus an alarm per gauge the plan watches; per shard, one layer per crawler platform its
# tasks use, or a placeholder when it holds no task (a stack needs one resource).
STAGE_RESOURCES = 6
"""Beside the tables: the queue, its policy and alarm, the schedule group, the Scheduler role and its policy."""
RESOURCES_PER_TASK = 7
OWN_ALARM_TOPIC_RESOURCES = 3
EMPTY_SHARD_RESOURCES = 1
# CDK adds its own AWS::CDK::Metadata resource to a stack synthesized with version reporting on.
CDK_METADATA_RESOURCES = 1
LIMIT_HEADROOM = 0.8
"""No stack may use more than this share of a CloudFormation limit: room to grow without a move."""
MAX_STACK_RESOURCES = int(STACK_MAX_RESOURCES * LIMIT_HEADROOM) - CDK_METADATA_RESOURCES
MAX_TEMPLATE_BYTES = int(TEMPLATE_MAX_BYTES * LIMIT_HEADROOM)
TEMPLATE_BYTES_PER_TASK = 9_000
"""A task's share of its shard's template beyond its schedule's input and descriptions, rounded up
from the synthesized templates (tests/infra/test_stack_limits.py holds the estimate above the truth)."""
TEMPLATE_BYTES_PER_SHARD = 4_000
FUNCTION_NAME_MAX_LENGTH = 64
"""Lambda's ``FunctionName``: at most 64 characters (Lambda API reference, CreateFunction)."""
FUNCTION_NAME_PREFIX = "kairos_{stage}_"
"""Every function of a stage is named ``kairos_<stage>_<task>``: neither a stage nor a task name has an
underscore, so the Scheduler role's ``kairos_<stage>_*`` matches this stage's functions and no other's."""
# A fixed reference instant keeps the derived event age (and so the template) deterministic.
_GAP_REFERENCE = datetime(2026, 1, 5, tzinfo=UTC)


RUN_RECORD_TTL_DAYS = 90
"""How long DynamoDB keeps a run record (its TTL attribute), unless a stage's environment says otherwise."""
ALARM_PERIOD_SECONDS = 300
"""The failure and dead-letter alarms look at 5-minute windows: a failure notifies within minutes."""
DAY_SECONDS = 86_400

Comparison = Literal["GreaterThanOrEqualToThreshold", "LessThanOrEqualToThreshold"]
MissingData = Literal["notBreaching", "ignore"]
ResourceDimension = Literal["FunctionName", "QueueName"]


@dataclass(frozen=True, slots=True)
class MetricPlan:
    """One metric an alarm reads, by name from :mod:`kairos_runtime.metrics`."""

    namespace: str
    metric_name: str
    statistic: str
    dimensions: Mapping[str, str]
    resource_dimension: ResourceDimension | None = None
    """A dimension whose value is a deployed resource's name (a CloudFormation token the plan cannot
    know): the construct that owns the resource fills it in."""


@dataclass(frozen=True, slots=True)
class AlarmPlan:
    """One CloudWatch alarm, as deployed; ``kairos_stack.alarms`` maps it onto the construct."""

    construct_id: str
    description: str
    metrics: Mapping[str, MetricPlan]
    """By the id a math expression names it with; a single metric without an expression is the alarm's own."""
    period_seconds: int
    threshold: float
    comparison: Comparison
    evaluation_periods: int
    treat_missing_data: MissingData
    expression: str | None = None
    label: str | None = None
    datapoints_to_alarm: int | None = None
    """None: every evaluated period (CloudWatch's default, as many as ``evaluation_periods``)."""

    @property
    def only_metric(self) -> MetricPlan:
        if self.expression is not None or len(self.metrics) != 1:
            raise ValueError(f"alarm {self.construct_id} reads a math expression, not one metric")
        [metric] = self.metrics.values()
        return metric

    @property
    def metric_name(self) -> str:
        return self.only_metric.metric_name

    @property
    def statistic(self) -> str:
        return self.only_metric.statistic


def task_dimensions(task: str) -> Mapping[str, str]:
    """The dimensions the handler publishes a task's own metrics with."""
    return MappingProxyType({metrics.SERVICE_DIMENSION: metrics.SERVICE, metrics.TASK_DIMENSION: task})


def failure_alarm(task: str) -> AlarmPlan:
    return AlarmPlan(
        construct_id="FailureAlarm",
        description=(
            f"Kairos task {task} recorded a FAILED run, or Lambda gave up on one of its events "
            "(retries used up or too old; the event is in the stage's dead-letter queue)"
        ),
        # Both count final outcomes only: a blip that Lambda's retry absorbs is in neither, a
        # timeout or crash on the last attempt is in the second (no run record could say so).
        expression="FILL(failed, 0) + FILL(dropped, 0)",
        metrics=MappingProxyType(
            {
                "failed": MetricPlan(metrics.NAMESPACE, metrics.RUNS_FAILED, "Sum", task_dimensions(task)),
                "dropped": MetricPlan(
                    metrics.LAMBDA_NAMESPACE,
                    metrics.LAMBDA_ASYNC_EVENTS_DROPPED,
                    "Sum",
                    MappingProxyType({}),
                    resource_dimension="FunctionName",
                ),
            }
        ),
        label="failed runs and events Lambda dropped",
        period_seconds=ALARM_PERIOD_SECONDS,
        threshold=1,
        comparison="GreaterThanOrEqualToThreshold",
        evaluation_periods=1,
        treat_missing_data="notBreaching",
    )


def trading_calendar_alarm(task: str) -> AlarmPlan:
    return AlarmPlan(
        construct_id=f"{metrics.TRADING_CALENDAR_DAYS_LEFT}Alarm",
        description=(
            f"Kairos task {task}: the trading calendar ends within {CALENDAR_WARNING_DAYS} days of a slot's "
            "trading date (Asia/Shanghai): refresh it (run the task) before the tasks fall back to the weekday rule"
        ),
        metrics=MappingProxyType(
            {
                "days_left": MetricPlan(
                    metrics.NAMESPACE, metrics.TRADING_CALENDAR_DAYS_LEFT, "Minimum", task_dimensions(task)
                )
            }
        ),
        period_seconds=DAY_SECONDS,
        threshold=CALENDAR_WARNING_DAYS,
        comparison="LessThanOrEqualToThreshold",
        evaluation_periods=1,
        # The refresh reports once a month and an alarm looks back at most 7 days (Period x
        # EvaluationPeriods <= 604,800 s, PutMetricAlarm): missing data keeps the last state, so a short
        # calendar alarms until a refresh reports a longer one. docs/adr/0041-trading-calendar-alarm.md
        treat_missing_data="ignore",
    )


DEAD_LETTER_ALARM = AlarmPlan(
    construct_id="MessagesAlarm",
    description="A scheduled delivery could not be completed and is waiting in the dead-letter queue",
    metrics=MappingProxyType(
        {
            "visible": MetricPlan(
                metrics.SQS_NAMESPACE,
                metrics.SQS_MESSAGES_VISIBLE,
                "Maximum",
                MappingProxyType({}),
                resource_dimension="QueueName",
            )
        }
    ),
    period_seconds=ALARM_PERIOD_SECONDS,
    threshold=1,
    comparison="GreaterThanOrEqualToThreshold",
    evaluation_periods=1,
    treat_missing_data="notBreaching",
)
"""The stage's alarm on its dead-letter queue: alarms as soon as one message lands."""

GAUGE_ALARMS: Mapping[str, Callable[[str], AlarmPlan]] = MappingProxyType({"trading_calendar": trading_calendar_alarm})
"""Python task types whose tasks get an alarm on a value they report, beside the failure alarm."""


@dataclass(frozen=True, slots=True)
class TaskPlan:
    name: str
    description: str
    function_description: str
    """The Lambda function's description, as deployed."""
    function_name: str
    """The Lambda function's name, ``kairos_<stage>_<task>`` (:func:`function_name`)."""
    shard: int
    """The shard stack the task lives in, for the stage's life (:func:`shard_of`)."""
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
    partitions: Mapping[TableId, Partitions]
    """Per declared table, the partition-key prefixes its grants are limited to (a table absent: whole)."""
    ssm_parameters: tuple[str, ...]
    """SSM parameters the task reads (an API key, say); the stack grants read on exactly these."""
    environment: Mapping[str, str]
    scheduler_retry_attempts: int
    max_event_age_seconds: int
    async_retry_attempts: int
    table_environment: Mapping[str, TableId]
    """Env vars that carry a table's name, which only the deployment (or the local runner) knows:
    :func:`function_environment` puts the names in."""
    failure_alarm: AlarmPlan
    gauge_alarms: tuple[AlarmPlan, ...] = ()

    @property
    def alarms(self) -> tuple[AlarmPlan, ...]:
        return (self.failure_alarm, *self.gauge_alarms)

    def function_environment(self, table_names: Mapping[TableId, str]) -> dict[str, str]:
        """The function's complete environment, with ``table_names`` (tokens, or local names) filled in."""
        return {
            **self.environment,
            **{env_var: table_names[table] for env_var, table in self.table_environment.items()},
        }

    @property
    def lambda_max_event_age_seconds(self) -> int:
        return lambda_event_age_seconds(timedelta(seconds=self.max_event_age_seconds))

    @property
    def resource_count(self) -> int:
        """The CloudFormation resources this task's constructs declare, wherever its stack is."""
        return RESOURCES_PER_TASK + len(self.gauge_alarms)

    @property
    def template_bytes(self) -> int:
        """An upper estimate of the task's share of its shard's template."""
        written = (
            len(input_json(dict(self.input_template)).encode()) * 2  # JSON in a JSON string: quotes escaped
            + len(self.function_description.encode()) * 2  # the function's and the alarm's
            + sum(len(key) + len(value.encode()) for key, value in self.environment.items())
            + len(self.name) * 40
        )
        return TEMPLATE_BYTES_PER_TASK * (1 + len(self.gauge_alarms)) + written


@dataclass(frozen=True, slots=True)
class ShardPlan:
    """One shard stack of a stage: the tasks whose names hash to it (:func:`shard_of`)."""

    index: int
    stack_name: str
    tasks: tuple[TaskPlan, ...]

    @property
    def layer_count(self) -> int:
        """One layer per (dependency group, runtime, architecture) its Python tasks need beyond the core."""
        return len(
            {
                (task.group, task.runtime, task.architecture)
                for task in self.tasks
                if task.family == "python" and task.group is not DependencyGroup.CORE
            }
        )

    @property
    def resource_count(self) -> int:
        """The CloudFormation resources the shard's stack declares (CDK's metadata aside)."""
        if not self.tasks:
            return EMPTY_SHARD_RESOURCES
        return self.layer_count + sum(task.resource_count for task in self.tasks)

    @property
    def template_bytes(self) -> int:
        """An upper estimate of the shard's template size, which the synth then measures exactly."""
        return TEMPLATE_BYTES_PER_SHARD + sum(task.template_bytes for task in self.tasks)


@dataclass(frozen=True, slots=True)
class StagePlan:
    stage: str
    stack_name: str
    schedule_group_name: str
    retain_data: bool
    log_retention_days: int
    alarm_emails: tuple[str, ...]
    """Addresses subscribed to the stage's own alarm topic."""
    alarm_topic_arn: str | None
    """An existing topic every alarm notifies instead of the stage's own."""
    account: str | None
    region: str | None
    tables: tuple[TableDesign, ...]
    tasks: tuple[TaskPlan, ...]
    shard_count: int = DEFAULT_SHARDS
    dead_letter_alarm: AlarmPlan = DEAD_LETTER_ALARM

    @property
    def alarms(self) -> tuple[AlarmPlan, ...]:
        """Every alarm the stage deploys: the dead-letter queue's, then each task's."""
        return (self.dead_letter_alarm, *(alarm for task in self.tasks for alarm in task.alarms))

    def task(self, name: str) -> TaskPlan:
        for task in self.tasks:
            if task.name == name:
                return task
        raise KeyError(name)

    @property
    def enabled_tasks(self) -> tuple[TaskPlan, ...]:
        return tuple(task for task in self.tasks if task.enabled)

    @property
    def shared_resource_count(self) -> int:
        """The CloudFormation resources the stage declares once, whatever its tasks: the core stack's
        tables, queue, schedule group, Scheduler role and alarm topic."""
        alarm_topic = 0 if self.alarm_topic_arn else OWN_ALARM_TOPIC_RESOURCES + len(self.alarm_emails)
        return STAGE_RESOURCES + len(self.tables) + alarm_topic

    @property
    def function_name_pattern(self) -> str:
        """What the stage's Scheduler role may invoke: every function named for this stage, no other."""
        return FUNCTION_NAME_PREFIX.format(stage=self.stage) + "*"

    def shard_stack_name(self, shard: int) -> str:
        # Capitalised: a stage name is lower case, so no stage's core stack is another's shard.
        return f"{self.stack_name}-Shard{shard}"

    @property
    def shards(self) -> tuple[ShardPlan, ...]:
        """Every shard stack of the stage, empty ones included: each exists for the stage's life."""
        return tuple(
            ShardPlan(
                index=index,
                stack_name=self.shard_stack_name(index),
                tasks=tuple(task for task in self.tasks if task.shard == index),
            )
            for index in range(self.shard_count)
        )

    @property
    def stack_names(self) -> tuple[str, ...]:
        """The core stack, then each shard stack."""
        return (self.stack_name, *(shard.stack_name for shard in self.shards))

    def task_stack_name(self, task: TaskPlan) -> str:
        return self.shard_stack_name(task.shard)

    @property
    def resource_count(self) -> int:
        """The CloudFormation resources of all the stage's stacks (a test keeps each equal to its template)."""
        return self.shared_resource_count + sum(shard.resource_count for shard in self.shards)

    def alarm_warning(self) -> str | None:
        """What ``kairos validate`` and the synth say when a stage that keeps data alarms to nobody yet.

        Its alarms still notify the stage's topic; only who reads it is missing.
        """
        if not self.retain_data or self.alarm_emails or self.alarm_topic_arn:
            return None
        return (
            f"stage {self.stage!r} keeps its data (retain_data: true) but nobody is subscribed to its alarms: "
            f"set alarm_email (one address or a list) or alarm_topic_arn in tasks.yaml, or subscribe to the "
            f"topic of stack {self.stack_name} (output AlarmTopicArn) after deploying"
        )


class PlanError(ValueError):
    pass


def plan_stage(tasks_file: TasksFile, catalog: TaskCatalog, stage: str) -> StagePlan:
    if stage not in tasks_file.stages:
        raise PlanError(f"unknown stage {stage!r}; tasks.yaml defines: {', '.join(tasks_file.stages)}")
    config = tasks_file.stages[stage]
    tasks = tuple(_plan_task(task, catalog, stage, config) for task in tasks_file.resolved_tasks(stage))
    plan = StagePlan(
        stage=stage,
        stack_name=f"kairos-{stage}",
        schedule_group_name=f"kairos-{stage}",
        retain_data=config.retain_data,
        log_retention_days=config.log_retention_days,
        alarm_emails=config.alarm_emails,
        alarm_topic_arn=config.alarm_topic_arn,
        account=config.account,
        region=config.region,
        tables=tuple(TABLE_DESIGNS.values()),
        tasks=tasks,
        shard_count=config.shards,
    )
    check_stack_fits(plan)
    return plan


def check_stack_fits(plan: StagePlan) -> None:
    """Refuse a stage one of whose stacks would use more than 80 % of a CloudFormation limit.

    The message names the stack, the limit and the fix; ``kairos validate`` prints it, and the synth
    stops here rather than in CDK's ``TooManyResourcesInStack`` (docs/adr/0180-stage-shards.md).
    """
    for shard in plan.shards:
        over = []
        if shard.resource_count > MAX_STACK_RESOURCES:
            over.append(
                f"{shard.resource_count} CloudFormation resources (a stack holds {STACK_MAX_RESOURCES}, "
                f"kairos keeps {MAX_STACK_RESOURCES} for headroom)"
            )
        if shard.template_bytes > MAX_TEMPLATE_BYTES:
            over.append(
                f"a template of about {shard.template_bytes:,} bytes (CloudFormation takes {TEMPLATE_MAX_BYTES:,}, "
                f"kairos keeps {MAX_TEMPLATE_BYTES:,} for headroom)"
            )
        if over:
            needed = _shards_needed(plan)
            raise PlanError(
                f"stage {plan.stage!r}: shard stack {shard.stack_name} would hold {len(shard.tasks)} of the "
                f"{len(plan.tasks)} tasks and {' and '.join(over)}. Give the stage more shard stacks "
                f"(shards: {needed} in its stages entry; changing it moves tasks between stacks once, "
                "replacing their functions: docs/adr/0180-stage-shards.md), or move tasks to another tasks file"
            )


def _shards_needed(plan: StagePlan) -> int:
    """The smallest shard count, above the stage's, at which every shard fits (MAX_SHARDS at most)."""
    for count in range(plan.shard_count + 1, MAX_SHARDS + 1):
        tasks = tuple(dataclasses.replace(task, shard=shard_of(task.name, count)) for task in plan.tasks)
        candidate = dataclasses.replace(plan, tasks=tasks, shard_count=count)
        if all(
            shard.resource_count <= MAX_STACK_RESOURCES and shard.template_bytes <= MAX_TEMPLATE_BYTES
            for shard in candidate.shards
        ):
            return count
    return MAX_SHARDS


def shard_of(task: str, shard_count: int) -> int:
    """The shard stack a task lives in: a pure function of its name and the stage's fixed shard count.

    SHA-256, not ``hash()`` (salted per process): the same name lands in the same shard on every
    machine, and adding or removing another task never changes it.
    """
    digest = hashlib.sha256(task.encode()).digest()
    return int.from_bytes(digest[:8], "big") % shard_count


def function_name(stage: str, task: str) -> str:
    """``kairos_<stage>_<task>``; a name past Lambda's 64 characters keeps a prefix and a hash of the rest."""
    name = FUNCTION_NAME_PREFIX.format(stage=stage) + task
    if len(name) <= FUNCTION_NAME_MAX_LENGTH:
        return name
    digest = hashlib.sha256(task.encode()).hexdigest()[:8]
    return name[: FUNCTION_NAME_MAX_LENGTH - len(digest) - 1] + "-" + digest


def function_description(name: str, description: str) -> str:
    return f"Kairos task {name}: {description}"


def task_description(task: ResolvedTask, entry: CatalogEntry) -> str:
    """The task's own description, else its task type's."""
    return task.description or entry.description


def input_template(task: ResolvedTask) -> dict[str, Any]:
    return schedule_input(task=task.name, task_type=task.task_type, params=task.params)


def input_json(template: Mapping[str, Any]) -> str:
    """The schedule's input as CDK writes it into the template (JSON.stringify: compact, UTF-8)."""
    return json.dumps(template, separators=(",", ":"), ensure_ascii=False)


def limit_problems(task: ResolvedTask, entry: CatalogEntry) -> Iterator[tuple[str, str]]:
    """(field, problem) for each deployed value of ``task`` that AWS would refuse."""
    description = function_description(task.name, task_description(task, entry))
    length = utf16_length(description)
    if length > LAMBDA_DESCRIPTION_MAX_LENGTH:
        budget = LAMBDA_DESCRIPTION_MAX_LENGTH - utf16_length(function_description(task.name, ""))
        yield (
            "description",
            f"the function's description would be {length} UTF-16 units (an emoji counts 2) and Lambda accepts "
            f"{LAMBDA_DESCRIPTION_MAX_LENGTH}: shorten the description to {budget} "
            "(the rest is 'Kairos task <name>: ')",
        )
    size = len(input_json(input_template(task)).encode())
    if size > SCHEDULE_INPUT_MAX_BYTES:
        yield (
            "params",
            f"the schedule's input would be {size:,} bytes of JSON, over the {SCHEDULE_INPUT_MAX_BYTES:,} a "
            "schedule may send (see kairos/limits.py): keep large data in a table or an SSM parameter the task reads",
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
        RUN_RECORD_TTL_DAYS_ENV: str(RUN_RECORD_TTL_DAYS),
        MAX_EVENT_AGE_ENV: str(lambda_event_age_seconds(event_age)),
    }
    group = dependency_group(entry.group)
    environment |= dict(group.environment)
    if group.reaches_upstream and config.https_proxy:
        environment[HTTPS_PROXY_ENV] = config.https_proxy
    if task.family == "python":
        environment |= {"POWERTOOLS_SERVICE_NAME": metrics.SERVICE, "POWERTOOLS_METRICS_NAMESPACE": metrics.NAMESPACE}
        if entry.module:
            environment[TASK_MODULE_ENV] = entry.module
    return TaskPlan(
        name=task.name,
        description=task_description(task, entry),
        function_description=function_description(task.name, task_description(task, entry)),
        function_name=function_name(stage, task.name),
        shard=shard_of(task.name, config.shards),
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
        input_template=MappingProxyType(input_template(task)),
        tables=entry.tables,
        partitions=entry.partitions,
        ssm_parameters=ssm_parameters,
        environment=MappingProxyType(environment),
        scheduler_retry_attempts=SCHEDULER_RETRY_ATTEMPTS,
        max_event_age_seconds=int(event_age.total_seconds()),
        async_retry_attempts=LAMBDA_ASYNC_RETRY_ATTEMPTS,
        table_environment=MappingProxyType(
            {TABLE_DESIGNS[table].env_var: table for table in (TableId.TASK_RUNS, *entry.tables)}
        ),
        failure_alarm=failure_alarm(task.name),
        gauge_alarms=(GAUGE_ALARMS[task.task_type](task.name),)
        if task.family == "python" and task.task_type in GAUGE_ALARMS
        else (),
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
