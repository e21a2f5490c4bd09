"""A pure plan of what one stage deploys, derived from the models and the catalog.

Everything the CDK constructs need is decided here, so it is unit-tested without CDK, and the CLI
(``kairos run``, ``kairos list``) reads the same decisions the stack deploys.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, Literal, TypeVar

from kairos.catalog import PROJECT_ROOT, CatalogEntry, TaskCatalog, dependency_group
from kairos.config import DEFAULT_SHARDS, MAX_SHARDS, ResolvedTask, StageConfig, TasksFile
from kairos.dashboard_body import dashboard_body
from kairos.limits import (
    ALARM_DESCRIPTION_MAX_LENGTH,
    ALARM_NAME_MAX_LENGTH,
    ALARM_PERIOD_MAX_SECONDS,
    ALARM_RANGE_MAX_SECONDS,
    ALARM_SHORT_PERIOD_RANGE_MAX_SECONDS,
    ALARM_SHORT_PERIOD_SECONDS,
    DASHBOARD_MAX_METRICS,
    DASHBOARD_MAX_WIDGETS,
    DASHBOARD_WIDGET_MAX_METRICS,
    IAM_ROLE_INLINE_POLICIES_MAX_CHARS,
    LAMBDA_DESCRIPTION_MAX_LENGTH,
    LAMBDA_ENVIRONMENT_MAX_BYTES,
    SCHEDULE_INPUT_MAX_BYTES,
    STACK_MAX_RESOURCES,
    TEMPLATE_MAX_BYTES,
    utf16_length,
)
from kairos.operations.freshness import alive_window, allowance
from kairos.schedule import AtSchedule, RateSchedule, Schedule, next_fire_times
from kairos_runtime import metrics
from kairos_runtime.events import schedule_input
from kairos_runtime.fan_out import BATCH_RETRY_ATTEMPTS, MAX_INLINE_BATCHES, FanOut, FanOutSettings, max_inline_items
from kairos_runtime.registry import Access, DependencyGroup, Partitions
from kairos_runtime.settings import (
    FAN_OUT_BUCKET_ENV,
    HTTPS_PROXY_ENV,
    LAMBDA_RETRY_ATTEMPTS_ENV,
    LATE_DELIVERY_LIMIT_ENV,
    MAX_EVENT_AGE_ENV,
    RUN_RECORD_TTL_DAYS_ENV,
    RUNTIME_ENV,
    SDK_TRACING_ENV,
    SSM_PARAMETERS_ENV,
    STAGE_ENV,
    TASK_ENV,
    TASK_MODULE_ENV,
    TASK_TYPE_ENV,
    TASKS_ENV,
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
STAGE_TAG = "kairos:stage"
"""Every resource of a stage's stacks, and the stacks themselves: which stage they belong to."""
TASK_TAG = "kairos:task"
"""A task's own resources: which task (``kairos diff`` groups a stage's resources by it)."""
SHARED_FUNCTION_TAG = "kairos:shared-function"
"""A shared function's resources: its function name (``kairos diff`` reports them apart)."""

SCHEDULER_RETRY_ATTEMPTS = 3
LAMBDA_ASYNC_RETRY_ATTEMPTS = 2
MIN_EVENT_AGE = timedelta(seconds=60)
LAMBDA_MAX_EVENT_AGE = timedelta(hours=6)
"""The longest a queued asynchronous invocation may wait (Lambda's own limit)."""
MAX_EVENT_AGE = timedelta(hours=24)
# What the stacks declare (kairos_stack; docs/adr/0180-stage-shards.md). The core stack, per stage:
# a table per design, the dead-letter queue with its policy and alarm, the schedule group, the one
# Scheduler execution role with its policy, the stage's own alarm topic (key, topic, policy) with
# a subscription per e-mail, unless an existing topic is named, and a dashboard per page of tasks.
# Each shard stack, per task: the function with its role, policy, event invoke config and log group,
# the schedule and the failure alarm, plus an alarm per gauge the plan watches and, for an enabled
# task with a steady rhythm, its freshness alarm; per shard, one layer per crawler platform its
# tasks use, or a placeholder when it holds no task (a stack needs one resource).
STAGE_RESOURCES = 6
"""Beside the tables: the queue, its policy and alarm, the schedule group, the Scheduler role and its policy."""
RESOURCES_PER_TASK = 7
"""Every task's own resources; its gauge and freshness alarms come on top (:attr:`TaskPlan.resource_count`)."""
ALARM_TEMPLATE_BYTES = 3_000
"""A freshness alarm's share of its shard's template (its description names the commands to run)."""
RESOURCES_PER_FAN_OUT_TASK = 21
"""A fan-out task's own resources (in its shard stack): three functions with a role, policy and log
group each; the state machine with its role, policy, Distributed Map policy and log group; the
schedule with its own Scheduler role and policy (it may start this state machine only: docs/adr/0162);
the failure alarm."""
FAN_OUT_BUCKET_RESOURCES = 2
"""The stage's fan-out bucket and its policy (SSL only), in the core stack of a stage with a fan-out
task (docs/adr/0164)."""
FAN_OUT_OBJECT_EXPIRY_DAYS = 3
"""A fan-out object (a plan's batches, a Map run's results) is read within its execution (a day at
most); the bucket expires it after this many days."""
RESOURCES_PER_SHARED_TASK = 1
"""A task on a shared function declares its schedule only, and its alarms (:attr:`TaskPlan.alarms`)."""
RESOURCES_PER_SHARED_FUNCTION = 6
"""A shared function, its role, policy, event invoke config and log group, and its alarm on events
Lambda dropped (docs/adr/0183-shared-functions.md)."""
SHARED_TASK_TEMPLATE_BYTES = 3_000
"""A task on a shared function: its schedule and failure alarm, beyond its input and descriptions."""
TABLE_NAME_BYTES = 100
"""What a deployed table's name may add to a function's environment (CloudFormation's generated names
are shorter): the plan sees a token, the environment limit counts the name."""
RUN_RECORD_POLICY_CHARS = 2_000
"""A shared function's role policy beyond its tasks' run-record partitions (logs, X-Ray, declared
tables, parameters), rounded up from the synthesized template."""
OWN_ALARM_TOPIC_RESOURCES = 3
CORE_TEMPLATE_BYTES = 20_000
"""The core stack's template without its dashboard pages: tables, queue, topic, roles, bucket and
outputs came to 12.7-15.5 KB as the CLI writes them (indent 1, path metadata)."""
DASHBOARD_RESOURCE_BYTES = 1_000
"""A dashboard page's resource beyond its body: name, tags, metadata (about 520 bytes synthesized)."""
DASHBOARD_RESOURCE_DIMENSIONS = ("QueueName",)
"""The deployed names a page's metrics take from the core stack (the dead-letter queue's)."""
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
FAN_OUT_TEMPLATE_BYTES = 40_000
"""A fan-out task's two more functions, roles and log groups, its state machine's definition and role
beyond a plain task's share (rounded up from the synthesized template)."""
FUNCTION_NAME_MAX_LENGTH = 64
"""Lambda's ``FunctionName``: at most 64 characters (Lambda API reference, CreateFunction)."""
FUNCTION_NAME_PREFIX = "kairos_{stage}_"
SHARED_FUNCTION_NAME = FUNCTION_NAME_PREFIX + "shared_{key}_{shard}"
"""A shared function's name: under the stage's prefix (its Scheduler role reaches it), with an underscore
no task name has (no task's function is named so), the hash of what its tasks have in common (stable
as tasks come and go) and its shard (docs/adr/0183-shared-functions.md)."""
SHARED_KEY_LENGTH = 10
"""Every function of a stage is named ``kairos_<stage>_<task>``: neither a stage nor a task name has an
underscore, so the Scheduler role's ``kairos_<stage>_*`` matches this stage's functions and no other's."""
# A fixed reference instant keeps the derived event age (and so the template) deterministic.
_GAP_REFERENCE = datetime(2026, 1, 5, tzinfo=UTC)


RUN_RECORD_TTL_DAYS = 90
"""How long DynamoDB keeps a run record (its TTL attribute), unless a stage's environment says otherwise."""
ALARM_PERIOD_SECONDS = 300
"""The failure and dead-letter alarms look at 5-minute windows: a failure notifies within minutes."""
DAY_SECONDS = 86_400

Comparison = Literal["GreaterThanOrEqualToThreshold", "LessThanOrEqualToThreshold", "LessThanThreshold"]
MissingData = Literal["notBreaching", "ignore", "breaching"]
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
    alarm_name: str
    """What an on-call engineer reads first in the notification: ``kairos-<stage>-<task>-<kind>``."""
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


def task_dimensions(stage: str, task: str) -> Mapping[str, str]:
    """The dimensions the handler publishes a task's own metrics with (:data:`metrics.RUN_DIMENSIONS`)."""
    return MappingProxyType(
        {metrics.SERVICE_DIMENSION: metrics.SERVICE, metrics.STAGE_DIMENSION: stage, metrics.TASK_DIMENSION: task}
    )


def alarm_name(stage: str, kind: str, task: str | None = None) -> str:
    """``kairos-<stage>-<task>-<kind>`` (or ``kairos-<stage>-<kind>`` for the stage's own): unique per
    region and account, and it says where to look before the description is read."""
    name = "-".join(part for part in ("kairos", stage, task, kind) if part)
    if len(name) > ALARM_NAME_MAX_LENGTH:
        raise PlanError(f"alarm name {name!r} is longer than the {ALARM_NAME_MAX_LENGTH} characters CloudWatch allows")
    return name


def next_steps(stage: str, task: str | None = None) -> str:
    """The commands an alarm's description ends with."""
    steps = [f"kairos status --stage {stage}"]
    if task is not None:
        steps += [f"kairos runs {task} --stage {stage}", f"kairos logs {task} --stage {stage}"]
    return "Next: " + "; ".join(steps)


def _description(stage: str, task: str | None, what: str) -> str:
    subject = f"Kairos stage {stage}, task {task}" if task else f"Kairos stage {stage}"
    text = f"{subject}: {what}. {next_steps(stage, task)}"
    if len(text) > ALARM_DESCRIPTION_MAX_LENGTH:
        raise PlanError(
            f"the description of an alarm of {subject} is {len(text)} characters; CloudWatch allows "
            f"{ALARM_DESCRIPTION_MAX_LENGTH}"
        )
    return text


def dropped_events_metric() -> MetricPlan:
    """Events Lambda gave up on (retries used up, too old, or a timeout or crash on the last attempt),
    of the function the alarm watches."""
    return MetricPlan(
        metrics.LAMBDA_NAMESPACE,
        metrics.LAMBDA_ASYNC_EVENTS_DROPPED,
        "Sum",
        MappingProxyType({}),
        resource_dimension="FunctionName",
    )


def any_event_alarm(
    *,
    construct_id: str,
    alarm_name: str,
    description: str,
    metrics: Mapping[str, MetricPlan],
    expression: str | None = None,
    label: str | None = None,
) -> AlarmPlan:
    """An alarm on any event: one or more in a period of :data:`ALARM_PERIOD_SECONDS`; a period
    without data is not one (the failure, dropped-event and dead-letter alarms)."""
    return AlarmPlan(
        construct_id=construct_id,
        alarm_name=alarm_name,
        description=description,
        metrics=metrics,
        expression=expression,
        label=label,
        period_seconds=ALARM_PERIOD_SECONDS,
        threshold=1,
        comparison="GreaterThanOrEqualToThreshold",
        evaluation_periods=1,
        treat_missing_data="notBreaching",
    )


def failure_alarm(stage: str, task: str) -> AlarmPlan:
    return any_event_alarm(
        construct_id="FailureAlarm",
        alarm_name=alarm_name(stage, "failed", task),
        description=_description(
            stage,
            task,
            "a run was recorded FAILED, or Lambda gave up on one of its events (retries used up or too old; "
            "the event is in the stage's dead-letter queue)",
        ),
        # Both count final outcomes only: a blip that Lambda's retry absorbs is in neither, a
        # timeout or crash on the last attempt is in the second (no run record could say so).
        expression="FILL(failed, 0) + FILL(dropped, 0)",
        metrics=MappingProxyType(
            {
                "failed": MetricPlan(metrics.NAMESPACE, metrics.RUNS_FAILED, "Sum", task_dimensions(stage, task)),
                "dropped": dropped_events_metric(),
            }
        ),
        label="failed runs and events Lambda dropped",
    )


def shared_task_failure_alarm(stage: str, task: str, function_name: str) -> AlarmPlan:
    """A task on a shared function: a FAILED run record. What Lambda drops it cannot tell apart by task,
    so that alarm is the shared function's (:func:`dropped_events_alarm`)."""
    return any_event_alarm(
        construct_id="FailureAlarm",
        alarm_name=alarm_name(stage, "failed", task),
        description=_description(
            stage,
            task,
            f"a run was recorded FAILED (an event Lambda gave up on alarms on the shared function {function_name})",
        ),
        metrics=MappingProxyType(
            {"failed": MetricPlan(metrics.NAMESPACE, metrics.RUNS_FAILED, "Sum", task_dimensions(stage, task))}
        ),
    )


def dropped_events_alarm(stage: str, function_name: str, *, key: str, shard: int, tasks: int) -> AlarmPlan:
    """A shared function's alarm: Lambda gave up on one of its events (retries used up, too old, or a
    timeout or crash on the last attempt), whichever of its tasks it was for."""
    subject = f"Kairos stage {stage}, shared function {function_name} ({tasks} tasks)"
    return any_event_alarm(
        construct_id="DroppedAlarm",
        alarm_name=alarm_name(stage, "dropped", f"shared-{key}-{shard}"),
        description=(
            f"{subject}: Lambda gave up on an event (retries used up, too old, or a timeout or crash on the "
            "last attempt); the event, naming its task, is in the stage's dead-letter queue. "
            f"Next: kairos status --stage {stage}; kairos redrive --stage {stage}"
        )[:ALARM_DESCRIPTION_MAX_LENGTH],
        metrics=MappingProxyType({"dropped": dropped_events_metric()}),
    )


def trading_calendar_alarm(stage: str, task: str) -> AlarmPlan:
    return AlarmPlan(
        construct_id=f"{metrics.TRADING_CALENDAR_DAYS_LEFT}Alarm",
        alarm_name=alarm_name(stage, "calendar-ending", task),
        description=_description(
            stage,
            task,
            f"the trading calendar ends within {CALENDAR_WARNING_DAYS} days of a slot's trading date "
            "(Asia/Shanghai): refresh it (run the task) before the tasks fall back to the weekday rule",
        ),
        metrics=MappingProxyType(
            {
                "days_left": MetricPlan(
                    metrics.NAMESPACE, metrics.TRADING_CALENDAR_DAYS_LEFT, "Minimum", task_dimensions(stage, task)
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


def fan_out_failure_alarm(stage: str, task: str) -> AlarmPlan:
    """A fan-out task's alarm: a FAILED run record (the summary's PartialFailure, a failed plan) or an
    execution of its state machine that failed, timed out or was aborted (no record could say so)."""
    return any_event_alarm(
        construct_id="FailureAlarm",
        alarm_name=alarm_name(stage, "failed", task),
        description=_description(
            stage,
            task,
            "a run was recorded FAILED (a batch or symbol failed: PartialFailure), or an execution of its "
            "state machine failed, timed out or was aborted",
        ),
        expression="FILL(failed, 0) + FILL(executions, 0) + FILL(timed_out, 0) + FILL(aborted, 0)",
        metrics=MappingProxyType(
            {
                "failed": MetricPlan(metrics.NAMESPACE, metrics.RUNS_FAILED, "Sum", task_dimensions(stage, task)),
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
    )


def dead_letter_alarm(stage: str) -> AlarmPlan:
    """The stage's alarm on its dead-letter queue: alarms as soon as one message lands."""
    return any_event_alarm(
        construct_id="MessagesAlarm",
        alarm_name=alarm_name(stage, "dead-letters"),
        description=_description(
            stage,
            None,
            "a scheduled delivery could not be completed and is waiting in the stage's dead-letter queue "
            "(its message names the task and slot; the task's own failure alarm names it too)",
        ),
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
    )


FRESHNESS_PERIODS = (60, 300, 900, ALARM_SHORT_PERIOD_SECONDS)
"""The periods a freshness alarm may use, finest first."""
FRESHNESS_READABLE_PERIODS = 48
"""A finer period is taken while it needs at most this many evaluation periods; past that, hours."""


def _range_fits(period: int, count: int) -> bool:
    limit = ALARM_SHORT_PERIOD_RANGE_MAX_SECONDS if period < ALARM_SHORT_PERIOD_SECONDS else ALARM_RANGE_MAX_SECONDS
    return period <= ALARM_PERIOD_MAX_SECONDS and period * count <= limit


def freshness_periods(window: timedelta) -> tuple[int, int] | None:
    """(period, evaluation periods) for "nothing alive in every one of N periods", or ``None``.

    The newest period may have only just begun, so N periods cover at least ``(N - 1) x period`` of
    quiet: ``N = ceil(window / period) + 1`` never alarms within the window, and alarms at most
    ``2 x period`` after it.
    """
    seconds = window.total_seconds()
    for period in FRESHNESS_PERIODS:
        count = math.ceil(seconds / period) + 1
        if count <= FRESHNESS_READABLE_PERIODS and _range_fits(period, count):
            return period, count
    period = FRESHNESS_PERIODS[-1]
    count = math.ceil(seconds / period) + 1
    return (period, count) if _range_fits(period, count) else None


@dataclass(frozen=True, slots=True)
class FreshnessPlan:
    """A task's freshness alarm, or why it has none (``kairos show`` says which)."""

    window_seconds: int | None
    """How long the task may go without a SUCCEEDED or SKIPPED run; ``None``: no steady rhythm."""
    alarm: AlarmPlan | None
    note: str


def human_duration(seconds: float) -> str:
    """``3 d 4 h``, ``2 h 28 min``, ``45 min``: a window as people say it (rounded up to minutes)."""
    minutes = math.ceil(seconds / 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    parts = [f"{days} d" if days else "", f"{hours} h" if hours else "", f"{minutes} min" if minutes else ""]
    return " ".join(part for part in parts if part) or "0 min"


def freshness_plan(
    stage: str, task: str, *, schedule: Schedule, timezone: str, enabled: bool, timeout_s: int, async_retries: int
) -> FreshnessPlan:
    """The freshness alarm of ``task``: no run SUCCEEDED or SKIPPED within its alive window.

    Counted on ``RunsAlive`` (every success and skip, in both runtimes), missing data breaching: a
    task whose schedule stops firing, whose deliveries fail before the handler runs, or whose
    function never finishes publishes nothing, and that is what the alarm is for.
    """
    if not enabled:
        return FreshnessPlan(None, None, f"none: the task is disabled in stage {stage}")
    window = alive_window(
        schedule, timezone=timezone, allowed=allowance(timeout_s=timeout_s, async_retry_attempts=async_retries)
    )
    status = f"kairos status --stage {stage} judges it"
    if window is None:
        return FreshnessPlan(None, None, f"none: the schedule has no steady rhythm to miss; {status}")
    seconds = int(window.total_seconds())
    periods = freshness_periods(window)
    if periods is None:
        return FreshnessPlan(
            seconds,
            None,
            f"none: its window ({human_duration(seconds)}) is longer than a CloudWatch alarm looks back "
            f"(a day per period, {ALARM_RANGE_MAX_SECONDS // DAY_SECONDS} days in all); {status}",
        )
    period, count = periods
    alarm = AlarmPlan(
        construct_id="FreshnessAlarm",
        alarm_name=alarm_name(stage, "late", task),
        description=_description(
            stage,
            task,
            f"no run SUCCEEDED or was SKIPPED for {human_duration(period * (count - 1))} (its window: the longest "
            "two gaps between its slots, every attempt's timeout, Lambda's retry waits and the metric's delay). "
            "The schedule may have been disabled or deleted, its deliveries may be failing, or the function "
            "may never finish",
        ),
        metrics=MappingProxyType(
            {"alive": MetricPlan(metrics.NAMESPACE, metrics.RUNS_ALIVE, "Sum", task_dimensions(stage, task))}
        ),
        period_seconds=period,
        threshold=1,
        comparison="LessThanThreshold",
        evaluation_periods=count,
        datapoints_to_alarm=count,
        treat_missing_data="breaching",
    )
    return FreshnessPlan(
        seconds,
        alarm,
        f"{alarm.alarm_name}: no success or skip for {human_duration(seconds)} "
        f"({count} periods of {human_duration(period)})",
    )


GAUGE_ALARMS: Mapping[str, Callable[[str, str], AlarmPlan]] = MappingProxyType(
    {"trading_calendar": trading_calendar_alarm}
)
"""Python task types whose tasks get an alarm on a value they report, beside the failure alarm."""


T = TypeVar("T")
TASKS_PER_DASHBOARD = 100
"""Tasks on one dashboard page: a graph then has a line per task (100 stays legible) and a page uses
``5 x 100 + 1`` metrics of the 2,500 a dashboard may hold; more tasks make more pages."""
ALARMS_PER_STATUS_WIDGET = 100
"""Alarms one alarm status widget lists; a page with more gets more widgets."""
DASHBOARD_PERIOD_SECONDS = 300


@dataclass(frozen=True, slots=True)
class GraphPlan:
    """One graph of a dashboard: a line per metric, labelled (the task's name)."""

    title: str
    lines: tuple[tuple[str, MetricPlan], ...]
    period_seconds: int = DASHBOARD_PERIOD_SECONDS


@dataclass(frozen=True, slots=True)
class DashboardPlan:
    """One page of a stage's CloudWatch dashboard; ``kairos_stack.stage_dashboard`` builds it."""

    construct_id: str
    name: str
    """The dashboard's name before its region: dashboards are global to an account, so the construct
    appends the stack's region."""
    header: str
    """Markdown at the top: the stage, the page, the commands to run."""
    graphs: tuple[GraphPlan, ...]
    alarm_names: tuple[tuple[str, ...], ...]
    """Per alarm status widget, the alarms it shows (the page's tasks' and the stage's own)."""

    @property
    def metric_count(self) -> int:
        return sum(len(graph.lines) for graph in self.graphs)

    @property
    def widget_count(self) -> int:
        return 1 + len(self.graphs) + len(self.alarm_names)


def _chunks(items: tuple[T, ...], size: int) -> tuple[tuple[T, ...], ...]:
    return tuple(items[start : start + size] for start in range(0, len(items), size))


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
    max_attempts=BATCH_RETRY_ATTEMPTS,  # one fact: the inline Map's history bound counts them
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
    """The most symbols this batch size carries in an inline Map's payload; past it (or past
    :attr:`max_inline_batches`) the planner switches to the Distributed Map (docs/adr/0164)."""
    max_inline_batches: int
    """The most batches an inline Map runs within one execution's history."""
    batch_retry: RetryPlan
    plan_retry: RetryPlan
    summary_retry: RetryPlan
    execution_timeout_seconds: int
    """An execution still running at the next slot is stopped (it would overlap the next one's work)."""
    bucket_steps: tuple[str, ...] = ("plan", "summarize")
    """The steps that reach the stage's fan-out bucket: the planner writes a distributed plan's batches,
    the summary reads them and the results (docs/adr/0164)."""

    def step_environment(self, step: str, bucket_name: str) -> dict[str, str]:
        """What a step's function has beside the task's environment: the bucket's name, where it needs it."""
        return {FAN_OUT_BUCKET_ENV: bucket_name} if step in self.bucket_steps else {}


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
    freshness: FreshnessPlan
    gauge_alarms: tuple[AlarmPlan, ...] = ()
    fan_out: FanOutPlan | None = None
    """Set for a fan-out task type: the schedule starts this state machine, not ``handler``."""
    backfill: bool = False
    """Whether the task type can run for a past slot: ``kairos backfill`` refuses one that cannot, and
    its handler records a delivery later than :attr:`late_delivery_limit_seconds` as PastSlotRefused."""
    shares_function: bool = False
    """``shared_function`` resolved for the stage (never for a fan-out task): its schedule targets a
    :class:`SharedFunctionPlan` instead of a function of its own."""
    shared_function: str | None = None
    """The name of the shared function it runs on, once grouped (:func:`group_shared_functions`);
    :attr:`function_name` is then that function's too."""

    @property
    def alarms(self) -> tuple[AlarmPlan, ...]:
        freshness = (self.freshness.alarm,) if self.freshness.alarm is not None else ()
        return (self.failure_alarm, *freshness, *self.gauge_alarms)

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
    def late_delivery_limit_seconds(self) -> int:
        """How late a delivery may still arrive and run when the task cannot be backfilled.

        The latest a slot's own delivery can legitimately come: Scheduler keeps trying for the
        schedule's maximum event age, then Lambda keeps the event (and its retries) for its own.
        """
        return late_delivery_limit_seconds(self.max_event_age_seconds)

    @property
    def resource_count(self) -> int:
        """The CloudFormation resources this task's constructs declare, wherever its stack is (a
        shared function's own are :attr:`SharedFunctionPlan.resource_count`)."""
        if self.shared_function is not None:
            return RESOURCES_PER_SHARED_TASK + len(self.alarms)
        own = RESOURCES_PER_FAN_OUT_TASK if self.fan_out is not None else RESOURCES_PER_TASK
        return own + len(self.alarms) - 1

    def sharing_key(self) -> str:
        """What the tasks sharing a function have in common, hashed: everything its configuration and
        environment hold but the task's name (docs/adr/0183-shared-functions.md)."""
        common = {
            "family": self.family,
            "runtime": self.runtime,
            "group": self.group.value,
            "architecture": self.architecture,
            "handler": self.handler,
            "memory": self.memory,
            "timeout": self.timeout,
            "tables": {table.value: access.value for table, access in sorted(self.tables.items())},
            "partitions": {table.value: repr(parts) for table, parts in sorted(self.partitions.items())},
            "ssm_parameters": list(self.ssm_parameters),
            "environment": {key: value for key, value in sorted(self.environment.items()) if key != TASK_ENV},
            "async_retry_attempts": self.async_retry_attempts,
        }
        text = json.dumps(common, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:SHARED_KEY_LENGTH]

    @property
    def template_bytes(self) -> int:
        """An upper estimate of the task's share of its shard's template."""
        written = (
            len(input_json(dict(self.input_template)).encode()) * 2  # JSON in a JSON string: quotes escaped
            + len(self.function_description.encode()) * 2  # the function's and the alarm's
            + sum(len(key) + len(value.encode()) for key, value in self.environment.items())
            + len(self.name) * 40
        )
        freshness = ALARM_TEMPLATE_BYTES if self.freshness.alarm is not None else 0
        if self.shared_function is not None:
            # Its schedule's input, its alarms' names and descriptions: no function, role or environment.
            own = len(input_json(dict(self.input_template)).encode()) * 2 + len(self.name) * 20
            return SHARED_TASK_TEMPLATE_BYTES + TEMPLATE_BYTES_PER_TASK * len(self.gauge_alarms) + freshness + own
        fan_out = FAN_OUT_TEMPLATE_BYTES if self.fan_out is not None else 0
        return TEMPLATE_BYTES_PER_TASK * (1 + len(self.gauge_alarms)) + freshness + fan_out + written


@dataclass(frozen=True, slots=True)
class SharedFunctionPlan:
    """One function the tasks of a shard with the same :meth:`TaskPlan.sharing_key` run on
    (``kairos_stack/shared_function.py``); each keeps its schedule, run records, metrics and alarms."""

    key: str
    shard: int
    function_name: str
    tasks: tuple[str, ...]
    """Its tasks' names, in the file's order: the function's ``KAIROS_TASKS``."""
    description: str
    family: Literal["python", "nodejs"]
    runtime: str
    group: DependencyGroup
    architecture: Literal["arm64", "x86_64"]
    code_dir: str
    handler: str
    memory: int
    timeout: int
    tables: Mapping[TableId, Access]
    partitions: Mapping[TableId, Partitions]
    ssm_parameters: tuple[str, ...]
    environment: Mapping[str, str]
    """Its tasks' common environment, with ``KAIROS_TASKS`` for ``KAIROS_TASK``."""
    table_environment: Mapping[str, TableId]
    async_retry_attempts: int
    lambda_max_event_age_seconds: int
    dropped_alarm: AlarmPlan

    @property
    def construct_id(self) -> str:
        """Capitalised, so it is no task's construct id (a task name is lower case)."""
        return f"SharedFunction{self.key}"

    @property
    def alarms(self) -> tuple[AlarmPlan, ...]:
        return (self.dropped_alarm,)

    def function_environment(self, table_names: Mapping[TableId, str]) -> dict[str, str]:
        return {
            **self.environment,
            **{env_var: table_names[table] for env_var, table in self.table_environment.items()},
        }

    @property
    def environment_bytes(self) -> int:
        """An upper estimate of the deployed environment's size (the table names are tokens here)."""
        own = sum(len(key.encode()) + len(value.encode()) for key, value in self.environment.items())
        return own + sum(len(key) + TABLE_NAME_BYTES for key in self.table_environment)

    @property
    def policy_chars(self) -> int:
        """An upper estimate of its role's policy: a run-record partition per task, and the rest."""
        return RUN_RECORD_POLICY_CHARS + sum(len(task) + 10 for task in self.tasks)

    @property
    def resource_count(self) -> int:
        return RESOURCES_PER_SHARED_FUNCTION - 1 + len(self.alarms)

    @property
    def template_bytes(self) -> int:
        return TEMPLATE_BYTES_PER_TASK + self.environment_bytes + self.policy_chars + len(self.description) * 2


@dataclass(frozen=True, slots=True)
class ShardPlan:
    """One shard stack of a stage: the tasks whose names hash to it (:func:`shard_of`)."""

    index: int
    stack_name: str
    tasks: tuple[TaskPlan, ...]
    shared_functions: tuple[SharedFunctionPlan, ...] = ()

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
        shared = sum(function.resource_count for function in self.shared_functions)
        return self.layer_count + shared + sum(task.resource_count for task in self.tasks)

    @property
    def function_count(self) -> int:
        """Lambda functions in the shard: a task's own (three for a fan-out task), and each shared one."""
        own = sum(3 if task.fan_out is not None else 1 for task in self.tasks if task.shared_function is None)
        return own + len(self.shared_functions)

    @property
    def template_bytes(self) -> int:
        """An upper estimate of the shard's template size, which the synth then measures exactly."""
        shared = sum(function.template_bytes for function in self.shared_functions)
        return TEMPLATE_BYTES_PER_SHARD + shared + sum(task.template_bytes for task in self.tasks)


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
    dead_letter_alarm: AlarmPlan
    shard_count: int = DEFAULT_SHARDS
    shared_functions: tuple[SharedFunctionPlan, ...] = ()
    """The functions tasks with ``shared_function`` run on (docs/adr/0183-shared-functions.md)."""

    @property
    def alarms(self) -> tuple[AlarmPlan, ...]:
        """Every alarm the stage deploys: the dead-letter queue's, then each task's, then each shared
        function's."""
        shared = (alarm for function in self.shared_functions for alarm in function.alarms)
        return (self.dead_letter_alarm, *(alarm for task in self.tasks for alarm in task.alarms), *shared)

    def shared_function(self, name: str) -> SharedFunctionPlan:
        for function in self.shared_functions:
            if function.function_name == name:
                return function
        raise KeyError(name)

    @property
    def function_count(self) -> int:
        return sum(shard.function_count for shard in self.shards)

    def task(self, name: str) -> TaskPlan:
        for task in self.tasks:
            if task.name == name:
                return task
        raise KeyError(name)

    @property
    def enabled_tasks(self) -> tuple[TaskPlan, ...]:
        return tuple(task for task in self.tasks if task.enabled)

    @property
    def dashboards(self) -> tuple[DashboardPlan, ...]:
        """The stage's dashboard, a page per :data:`TASKS_PER_DASHBOARD` tasks (enabled or not)."""
        pages = _chunks(self.tasks, TASKS_PER_DASHBOARD) or ((),)
        return tuple(self._dashboard(index, len(pages), page) for index, page in enumerate(pages, start=1))

    def _dashboard(self, number: int, pages: int, tasks: tuple[TaskPlan, ...]) -> DashboardPlan:
        def per_task(metric_name: str, statistic: str) -> tuple[tuple[str, MetricPlan], ...]:
            return tuple(
                (
                    task.name,
                    MetricPlan(metrics.NAMESPACE, metric_name, statistic, task_dimensions(self.stage, task.name)),
                )
                for task in tasks
            )

        [queue_depth] = self.dead_letter_alarm.metrics.values()
        # A shared function is graphed, and its alarm shown, on the page of its first task.
        on_page = {task.name for task in tasks}
        functions = tuple(function for function in self.shared_functions if function.tasks[0] in on_page)
        dropped = tuple(
            (
                function.function_name,
                # The planned name, not the function's token: the dashboard is in the core stack.
                MetricPlan(
                    metrics.LAMBDA_NAMESPACE,
                    metrics.LAMBDA_ASYNC_EVENTS_DROPPED,
                    "Sum",
                    MappingProxyType({"FunctionName": function.function_name}),
                ),
            )
            for function in functions
        )
        graphs = (
            GraphPlan("Succeeded runs", per_task(metrics.RUNS_SUCCEEDED, "Sum")),
            GraphPlan("Failed runs", per_task(metrics.RUNS_FAILED, "Sum")),
            GraphPlan("Skipped runs", per_task(metrics.RUNS_SKIPPED, "Sum")),
            GraphPlan("Run duration p95 (ms)", per_task(metrics.RUN_DURATION, "p95")),
            GraphPlan("Items written", per_task(metrics.ITEMS_WRITTEN, "Sum")),
            GraphPlan("Dead-letter queue: messages waiting", (("dead letters", queue_depth),)),
            *((GraphPlan("Shared functions: events dropped", dropped),) if dropped else ()),
        )
        alarms = (
            self.dead_letter_alarm.alarm_name,
            *(alarm.alarm_name for task in tasks for alarm in task.alarms),
            *(alarm.alarm_name for function in functions for alarm in function.alarms),
        )
        page = f", page {number} of {pages}" if pages > 1 else ""
        names = f": {tasks[0].name} to {tasks[-1].name}" if pages > 1 and tasks else ""
        header = (
            f"## Kairos stage {self.stage}{page}{names}\n"
            f"Freshness and last runs: `kairos status --stage {self.stage}`; history: `kairos runs NAME --stage "
            f"{self.stage}`; logs: `kairos logs NAME --stage {self.stage}`. Deployed from tasks.yaml by "
            f"stack {self.stack_name}: edits made here are lost at the next deploy."
        )
        return DashboardPlan(
            construct_id="Dashboard" if number == 1 else f"Dashboard{number}",
            name=f"kairos-{self.stage}" if number == 1 else f"kairos-{self.stage}-{number}",
            header=header,
            graphs=graphs,
            alarm_names=_chunks(alarms, ALARMS_PER_STATUS_WIDGET),
        )

    @property
    def shared_resource_count(self) -> int:
        """The CloudFormation resources the stage declares once, whatever its tasks: the core stack's
        tables, queue, schedule group, Scheduler role, alarm topic and dashboard pages."""
        alarm_topic = 0 if self.alarm_topic_arn else OWN_ALARM_TOPIC_RESOURCES + len(self.alarm_emails)
        fan_out_bucket = FAN_OUT_BUCKET_RESOURCES if self.has_fan_out else 0
        return STAGE_RESOURCES + len(self.tables) + alarm_topic + len(self.dashboards) + fan_out_bucket

    @property
    def core_template_bytes(self) -> int:
        """An upper estimate of the core stack's template: its fixed resources, and each dashboard
        page's body exactly as it is deployed (most of the core at scale: docs/adr/0186)."""
        pages = sum(
            len(json.dumps(dashboard_body(page, DASHBOARD_RESOURCE_DIMENSIONS))) + DASHBOARD_RESOURCE_BYTES
            for page in self.dashboards
        )
        return CORE_TEMPLATE_BYTES + pages

    @property
    def has_fan_out(self) -> bool:
        """Whether the stage has a fan-out task, and so its core stack the fan-out bucket."""
        return any(task.fan_out is not None for task in self.tasks)

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
                shared_functions=tuple(function for function in self.shared_functions if function.shard == index),
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
    tasks, shared = group_shared_functions(
        tuple(_plan_task(task, catalog, stage, config) for task in tasks_file.resolved_tasks(stage)), stage
    )
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
        dead_letter_alarm=dead_letter_alarm(stage),
        shard_count=config.shards,
        shared_functions=shared,
    )
    check_shared_functions_fit(plan)
    check_stack_fits(plan)
    check_dashboards_fit(plan)
    return plan


def group_shared_functions(
    tasks: tuple[TaskPlan, ...], stage: str
) -> tuple[tuple[TaskPlan, ...], tuple[SharedFunctionPlan, ...]]:
    """The tasks that share, grouped per shard by :meth:`TaskPlan.sharing_key` onto shared functions.

    A function's name is its key and shard: adding or removing a task never renames another's function,
    and a task stays in its own shard (its schedule and function in one stack).
    """
    groups: dict[tuple[str, int], list[TaskPlan]] = {}
    for task in tasks:
        if task.shares_function:
            groups.setdefault((task.sharing_key(), task.shard), []).append(task)
    names = {group: SHARED_FUNCTION_NAME.format(stage=stage, key=group[0], shard=group[1]) for group in sorted(groups)}
    functions = tuple(_shared_function(stage, names[group], group, groups[group]) for group in sorted(groups))
    by_task = {task.name: names[group] for group, members in groups.items() for task in members}
    grouped = tuple(
        dataclasses.replace(
            task,
            shared_function=by_task[task.name],
            function_name=by_task[task.name],
            failure_alarm=shared_task_failure_alarm(stage, task.name, by_task[task.name]),
        )
        if task.name in by_task
        else task
        for task in tasks
    )
    return grouped, functions


def _shared_function(stage: str, name: str, group: tuple[str, int], members: list[TaskPlan]) -> SharedFunctionPlan:
    first = members[0]
    names = tuple(task.name for task in members)
    environment = {key: value for key, value in first.environment.items() if key != TASK_ENV}
    environment[TASKS_ENV] = json.dumps(names, separators=(",", ":"))
    key, shard = group
    return SharedFunctionPlan(
        key=key,
        shard=shard,
        function_name=name,
        tasks=names,
        description=f"Kairos shared function of stage {stage}: {len(names)} tasks of type {first.task_type}",
        family=first.family,
        runtime=first.runtime,
        group=first.group,
        architecture=first.architecture,
        code_dir=first.code_dir,
        handler=first.handler,
        memory=first.memory,
        timeout=first.timeout,
        tables=first.tables,
        partitions=first.partitions,
        ssm_parameters=first.ssm_parameters,
        environment=MappingProxyType(environment),
        table_environment=first.table_environment,
        async_retry_attempts=first.async_retry_attempts,
        lambda_max_event_age_seconds=first.lambda_max_event_age_seconds,
        dropped_alarm=dropped_events_alarm(stage, name, key=key, shard=shard, tasks=len(names)),
    )


def check_shared_functions_fit(plan: StagePlan) -> None:
    """Refuse a shared function whose task list would not fit Lambda's environment or IAM's policy size."""
    for function in plan.shared_functions:
        over = []
        if function.environment_bytes > LAMBDA_ENVIRONMENT_MAX_BYTES:
            over.append(
                f"an environment of about {function.environment_bytes:,} bytes (Lambda allows "
                f"{LAMBDA_ENVIRONMENT_MAX_BYTES:,})"
            )
        if function.policy_chars > IAM_ROLE_INLINE_POLICIES_MAX_CHARS:
            over.append(
                f"a role policy of about {function.policy_chars:,} characters (IAM allows "
                f"{IAM_ROLE_INLINE_POLICIES_MAX_CHARS:,})"
            )
        if over:
            raise PlanError(
                f"stage {plan.stage!r}: shared function {function.function_name} in shard stack "
                f"{plan.shard_stack_name(function.shard)} would run {len(function.tasks)} tasks and need "
                f"{' and '.join(over)}: give the stage more shard stacks (shards: in its stages entry), "
                "or set shared_function: false on some of them"
            )


def check_dashboards_fit(plan: StagePlan) -> None:
    """Each dashboard page within CloudWatch's limits (widgets, metrics per widget and per dashboard)."""
    for page in plan.dashboards:
        widest = max(len(graph.lines) for graph in page.graphs)
        if (
            page.widget_count > DASHBOARD_MAX_WIDGETS
            or page.metric_count > DASHBOARD_MAX_METRICS
            or widest > DASHBOARD_WIDGET_MAX_METRICS
        ):
            raise PlanError(
                f"stage {plan.stage!r}: dashboard {page.name} would have {page.widget_count} widgets and "
                f"{page.metric_count} metrics (at most {widest} in a widget); CloudWatch allows "
                f"{DASHBOARD_MAX_WIDGETS}, {DASHBOARD_MAX_METRICS} and {DASHBOARD_WIDGET_MAX_METRICS}"
            )


def check_stack_fits(plan: StagePlan) -> None:
    """Refuse a stage one of whose stacks would use more than 80 % of a CloudFormation limit.

    The message names the stack, the limit and the fix; ``kairos validate`` prints it, and the synth
    stops here rather than in CDK's ``TooManyResourcesInStack`` (docs/adr/0180-stage-shards.md).
    """
    if plan.core_template_bytes > MAX_TEMPLATE_BYTES:
        raise PlanError(
            f"stage {plan.stage!r}: core stack {plan.stack_name} would be a template of about "
            f"{plan.core_template_bytes:,} bytes, mostly its {len(plan.dashboards)} dashboard page(s) of "
            f"{len(plan.tasks)} tasks (CloudFormation takes {TEMPLATE_MAX_BYTES:,}, kairos keeps "
            f"{MAX_TEMPLATE_BYTES:,} for headroom). Move tasks to another tasks file (its own stages and stacks)"
        )
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
        moved = tuple(dataclasses.replace(task, shard=shard_of(task.name, count)) for task in plan.tasks)
        tasks, shared = group_shared_functions(moved, plan.stage)
        candidate = dataclasses.replace(plan, tasks=tasks, shard_count=count, shared_functions=shared)
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
    if task.shared_function and entry.fan_out is not None:
        yield (
            "shared_function",
            f"task_type {task.task_type!r} fans out on Step Functions with three functions of its own; "
            "it cannot share one: drop shared_function (a default of true leaves it its own)",
        )
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
        LATE_DELIVERY_LIMIT_ENV: str(late_delivery_limit_seconds(int(event_age.total_seconds()))),
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
        if config.sdk_tracing:  # the Python handler builds the X-Ray SDK's Tracer only then
            environment[SDK_TRACING_ENV] = "true"
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
        failure_alarm=fan_out_failure_alarm(stage, task.name) if fan_out else failure_alarm(stage, task.name),
        fan_out=fan_out,
        freshness=freshness_plan(
            stage,
            task.name,
            schedule=task.parsed_schedule,
            timezone=task.timezone,
            enabled=task.enabled,
            timeout_s=task.timeout,
            async_retries=LAMBDA_ASYNC_RETRY_ATTEMPTS,
        ),
        gauge_alarms=(GAUGE_ALARMS[task.task_type](stage, task.name),)
        if task.family == "python" and task.task_type in GAUGE_ALARMS
        else (),
        backfill=entry.backfill,
        shares_function=fan_out is None
        and (task.shared_function if task.shared_function is not None else task.shared_function_default),
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
        max_inline_batches=MAX_INLINE_BATCHES,
        batch_retry=BATCH_RETRY,
        plan_retry=PLAN_RETRY,
        summary_retry=SUMMARY_RETRY,
        execution_timeout_seconds=int(event_age.total_seconds()),
    )


def lambda_event_age_seconds(max_age: timedelta) -> int:
    """How long Lambda keeps an event for its own retries: the schedule's limit, within Lambda's."""
    return int(min(max_age, LAMBDA_MAX_EVENT_AGE).total_seconds())


def late_delivery_limit_seconds(max_event_age_seconds: int) -> int:
    """The schedule's maximum event age (Scheduler's retries) plus Lambda's (its own retries)."""
    return max_event_age_seconds + lambda_event_age_seconds(timedelta(seconds=max_event_age_seconds))


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
