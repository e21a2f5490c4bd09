"""A pure plan of what one stage deploys, derived from the models and the catalog.

Everything the CDK constructs need is decided here, so it is unit-tested without CDK, and the CLI
(``kairos run``, ``kairos list``) reads the same decisions the stack deploys.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, Literal

from kairos.catalog import PROJECT_ROOT, CatalogEntry, TaskCatalog, dependency_group
from kairos.config import ResolvedTask, StageConfig, TasksFile
from kairos.limits import (
    LAMBDA_DESCRIPTION_MAX_LENGTH,
    SCHEDULE_INPUT_MAX_BYTES,
    STACK_MAX_RESOURCES,
    utf16_length,
)
from kairos.schedule import AtSchedule, RateSchedule, next_fire_times
from kairos_runtime import metrics
from kairos_runtime.events import schedule_input
from kairos_runtime.fan_out import FanOut, FanOutSettings, max_inline_items
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
FAN_OUT_HANDLERS = {
    "plan": "kairos_runtime.fan_out_handler.plan",
    "batch": "kairos_runtime.fan_out_handler.batch",
    "summarize": "kairos_runtime.fan_out_handler.summarize",
}
"""The entry point of each of a fan-out task's three functions (``kairos_runtime/fan_out_handler.py``)."""
NODE_HANDLER = "src/index.handler"

# Scheduler retries a delivery it could not make (throttling, a missing permission); a function that
# ran and failed is retried by Lambda's own asynchronous retries instead.
SCHEDULER_RETRY_ATTEMPTS = 3
LAMBDA_ASYNC_RETRY_ATTEMPTS = 2
MIN_EVENT_AGE = timedelta(seconds=60)
LAMBDA_MAX_EVENT_AGE = timedelta(hours=6)
"""The longest a queued asynchronous invocation may wait (Lambda's own limit)."""
MAX_EVENT_AGE = timedelta(hours=24)
# What the stack declares (kairos_stack): per stage, a table per design, the dead-letter queue with its policy
# and alarm, and the schedule group; per task, the function with its role, policy, event invoke
# config and log group, the schedule with the role and policy Scheduler invokes it with, and the
# failure alarm, plus an alarm per gauge the plan watches; the stage's own alarm topic (key, topic,
# policy) and a subscription per e-mail, unless an existing topic is named; one layer per crawler
# platform.
STAGE_RESOURCES = 4
"""Beside the tables: the queue, its policy and alarm, and the schedule group."""
RESOURCES_PER_TASK = 9
RESOURCES_PER_FAN_OUT_TASK = 20
"""A fan-out task: three functions with a role, policy and log group each; the state machine with its
role, policy and log group; the schedule with Scheduler's role and policy; the failure alarm."""
OWN_ALARM_TOPIC_RESOURCES = 3
# CDK adds its own AWS::CDK::Metadata resource to a stack synthesized with version reporting on.
CDK_METADATA_RESOURCES = 1
# A fixed reference instant keeps the derived event age (and so the template) deterministic.
_GAP_REFERENCE = datetime(2026, 1, 5, tzinfo=UTC)


RUN_RECORD_TTL_DAYS = 90
"""How long DynamoDB keeps a run record (its TTL attribute), unless a stage's environment says otherwise."""
ALARM_PERIOD_SECONDS = 300
"""The failure and dead-letter alarms look at 5-minute windows: a failure notifies within minutes."""
DAY_SECONDS = 86_400

Comparison = Literal["GreaterThanOrEqualToThreshold", "LessThanOrEqualToThreshold"]
MissingData = Literal["notBreaching", "ignore"]
ResourceDimension = Literal["FunctionName", "QueueName", "StateMachineArn"]


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


def fan_out_failure_alarm(task: str) -> AlarmPlan:
    """A fan-out task's alarm: a FAILED run record (the summary's PartialFailure, a failed plan) or an
    execution of its state machine that failed, timed out or was aborted (no record could say so)."""
    return AlarmPlan(
        construct_id="FailureAlarm",
        description=(
            f"Kairos task {task} recorded a FAILED run (a batch or symbol failed: PartialFailure), or an "
            "execution of its state machine failed, timed out or was aborted"
        ),
        expression="FILL(failed, 0) + FILL(executions, 0) + FILL(timed_out, 0) + FILL(aborted, 0)",
        metrics=MappingProxyType(
            {
                "failed": MetricPlan(metrics.NAMESPACE, metrics.RUNS_FAILED, "Sum", task_dimensions(task)),
                **{
                    metric_id: MetricPlan(
                        metrics.STATES_NAMESPACE,
                        name,
                        "Sum",
                        MappingProxyType({}),
                        resource_dimension="StateMachineArn",
                    )
                    for metric_id, name in (
                        ("executions", metrics.STATES_EXECUTIONS_FAILED),
                        ("timed_out", metrics.STATES_EXECUTIONS_TIMED_OUT),
                        ("aborted", metrics.STATES_EXECUTIONS_ABORTED),
                    )
                },
            }
        ),
        label="failed runs and failed executions",
        period_seconds=ALARM_PERIOD_SECONDS,
        threshold=1,
        comparison="GreaterThanOrEqualToThreshold",
        evaluation_periods=1,
        treat_missing_data="notBreaching",
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
class FunctionPlan:
    """One of a fan-out task's three functions."""

    step: Literal["plan", "batch", "summarize"]
    handler: str
    memory: int
    timeout: int


@dataclass(frozen=True, slots=True)
class RetryPlan:
    """A Retry of the state machine (Step Functions' ``Retry`` field): backoff with full jitter."""

    errors: tuple[str, ...]
    interval_seconds: int
    max_attempts: int
    backoff_rate: float
    max_delay_seconds: int


LAMBDA_SERVICE_ERRORS = (
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
)
"""Lambda's own transient errors, as AWS's Step Functions guide names them for a Lambda task's Retry."""
BATCH_RETRY = RetryPlan(
    errors=("BatchTransientError", *LAMBDA_SERVICE_ERRORS),
    interval_seconds=10,
    max_attempts=3,
    backoff_rate=3.0,
    max_delay_seconds=300,
)
"""A batch that failed transiently (the source unreachable after the worker's own retries) waits
10 s, 30 s, 90 s (each with full jitter) before its next attempts; each attempt starts its symbols
after what the last one stored."""
PLAN_RETRY = RetryPlan(
    errors=("TaskRunFailed", *LAMBDA_SERVICE_ERRORS),
    interval_seconds=30,
    max_attempts=2,
    backoff_rate=2.0,
    max_delay_seconds=120,
)
SUMMARY_RETRY = RetryPlan(
    errors=LAMBDA_SERVICE_ERRORS, interval_seconds=5, max_attempts=3, backoff_rate=2.0, max_delay_seconds=60
)


@dataclass(frozen=True, slots=True)
class FanOutPlan:
    """What a fan-out task's state machine is built from (``kairos_stack/fan_out_task.py``)."""

    state_machine_name: str
    functions: Mapping[str, FunctionPlan]
    """By step: plan, batch, summarize."""
    batch_size: int
    max_concurrency: int
    """The Map's MaxConcurrency."""
    requests_per_second: float
    """The task's total; each batch paces itself at ``rate_per_batch``."""
    rate_per_batch: float
    max_inline_items: int
    """The most symbols this batch size carries in an inline Map: where a Distributed Map would begin."""
    batch_retry: RetryPlan
    plan_retry: RetryPlan
    summary_retry: RetryPlan
    execution_timeout_seconds: int
    """An execution still running at the next slot is stopped (it would overlap the next one's work)."""


@dataclass(frozen=True, slots=True)
class TaskPlan:
    name: str
    description: str
    function_description: str
    """The Lambda function's description, as deployed."""
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
    fan_out: FanOutPlan | None = None
    """Set for a fan-out task type: the schedule starts this state machine, not ``handler``."""

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
        if self.fan_out is not None:
            return RESOURCES_PER_FAN_OUT_TASK + len(self.gauge_alarms)
        return RESOURCES_PER_TASK + len(self.gauge_alarms)


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
        """The CloudFormation resources the stage declares once, whatever its tasks: tables, queue,
        schedule group, alarm topic and the dependency layers its tasks share."""
        layers = {
            (task.group, task.runtime, task.architecture)
            for task in self.tasks
            if task.family == "python" and task.group is not DependencyGroup.CORE
        }
        alarm_topic = 0 if self.alarm_topic_arn else OWN_ALARM_TOPIC_RESOURCES + len(self.alarm_emails)
        return STAGE_RESOURCES + len(self.tables) + alarm_topic + len(layers)

    @property
    def resource_count(self) -> int:
        """The CloudFormation resources the stage's stack declares (a test keeps this equal to the template)."""
        return self.shared_resource_count + sum(task.resource_count for task in self.tasks)

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
    )
    check_stack_fits(plan)
    return plan


def check_stack_fits(plan: StagePlan) -> None:
    """Refuse a stage whose one stack would exceed CloudFormation's resource limit.

    One stack per stage is today's design; a change that shards a stage across stacks replaces this
    check with its own (how many tasks each shard takes).
    """
    available = STACK_MAX_RESOURCES - CDK_METADATA_RESOURCES
    if plan.resource_count <= available:
        return
    fan_outs = [task for task in plan.tasks if task.fan_out is not None]
    fit = (
        len(fan_outs)
        + (available - plan.shared_resource_count - sum(task.resource_count for task in fan_outs)) // RESOURCES_PER_TASK
    )
    raise PlanError(
        f"stage {plan.stage!r}: {len(plan.tasks)} tasks make {plan.resource_count} CloudFormation resources "
        f"({RESOURCES_PER_TASK} per task, {RESOURCES_PER_FAN_OUT_TASK} per fan-out task), and a stack holds at most "
        f"{STACK_MAX_RESOURCES}: at most {fit} tasks "
        "fit in one stage. Every task of the file is deployed in every stage (disabled ones too), so move "
        "tasks to another tasks file (-c tasks_file=...) with stages of their own"
    )


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


FAN_OUT_TIME_RESERVE_SECONDS = 60
"""Of a batch worker's timeout, kept for its DynamoDB reads and writes and the slowest answers."""


def fan_out_settings(task: ResolvedTask, entry: CatalogEntry) -> FanOutSettings | None:
    if entry.fan_out is None or entry.parse_params is None:
        return None
    return entry.fan_out.settings(entry.parse_params(task.params))


def fan_out_problems(task: ResolvedTask, entry: CatalogEntry) -> Iterator[tuple[str, str]]:
    """A batch that could not make its requests at its share of the rate within the worker's timeout."""
    try:
        settings = fan_out_settings(task, entry)
    except Exception:  # params that do not fit are reported by their own check
        return
    if settings is None:
        return
    needed = settings.batch_size / settings.rate_per_batch
    if needed > task.timeout - FAN_OUT_TIME_RESERVE_SECONDS:
        yield (
            "params.batch_size",
            f"a batch of {settings.batch_size} symbols at {settings.rate_per_batch:g} requests/s (requests_per_second "
            f"{settings.requests_per_second:g} shared by max_concurrency {settings.max_concurrency}) needs "
            f"{needed:.0f} s, over the batch worker's timeout of {task.timeout} s less "
            f"{FAN_OUT_TIME_RESERVE_SECONDS} s: lower batch_size or max_concurrency, "
            "or raise requests_per_second or timeout",
        )


def limit_problems(task: ResolvedTask, entry: CatalogEntry) -> Iterator[tuple[str, str]]:
    """(field, problem) for each deployed value of ``task`` that AWS would refuse."""
    yield from fan_out_problems(task, entry)
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
    fan_out = _plan_fan_out(task, entry, stage, event_age)
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
        failure_alarm=fan_out_failure_alarm(task.name) if fan_out else failure_alarm(task.name),
        fan_out=fan_out,
        gauge_alarms=(GAUGE_ALARMS[task.task_type](task.name),)
        if task.family == "python" and task.task_type in GAUGE_ALARMS
        else (),
    )


def _plan_fan_out(task: ResolvedTask, entry: CatalogEntry, stage: str, event_age: timedelta) -> FanOutPlan | None:
    settings = fan_out_settings(task, entry)
    declaration: FanOut[Any] | None = entry.fan_out
    if settings is None or declaration is None:
        return None
    return FanOutPlan(
        state_machine_name=f"kairos-{stage}-{task.name}",
        functions=MappingProxyType(
            {
                "plan": FunctionPlan(
                    "plan", FAN_OUT_HANDLERS["plan"], declaration.planner_memory, declaration.planner_timeout
                ),
                # The worker does the work: the task's own memory and timeout in tasks.yaml are its.
                "batch": FunctionPlan("batch", FAN_OUT_HANDLERS["batch"], task.memory, task.timeout),
                "summarize": FunctionPlan(
                    "summarize",
                    FAN_OUT_HANDLERS["summarize"],
                    declaration.summarize_memory,
                    declaration.summarize_timeout,
                ),
            }
        ),
        batch_size=settings.batch_size,
        max_concurrency=settings.max_concurrency,
        requests_per_second=settings.requests_per_second,
        rate_per_batch=settings.rate_per_batch,
        max_inline_items=max_inline_items(settings.batch_size, fixed_bytes=SCHEDULE_INPUT_MAX_BYTES + 4096),
        batch_retry=BATCH_RETRY,
        plan_retry=PLAN_RETRY,
        summary_retry=SUMMARY_RETRY,
        execution_timeout_seconds=int(event_age.total_seconds()),
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
