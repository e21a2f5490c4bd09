"""Every CloudWatch metric name Kairos emits or alarms on, in one place.

The handler publishes under these names, the plan builds its alarms from them, and a test checks
that every metric an alarm watches is one that something actually emits: a typo then fails a test
instead of deploying an alarm that never fires.
"""

from __future__ import annotations

from kairos_runtime.runs import RunStatus

NAMESPACE = "Kairos"
SERVICE = "kairos"
"""Powertools adds it as the ``service`` dimension of every metric the handler publishes."""
SERVICE_DIMENSION = "service"
STAGE_DIMENSION = "stage"
"""The stage the run belongs to: stages may share an account and region (the default), and a task
keeps its name in every stage, so without it dev's failures would raise prod's alarms and dev's runs
would keep prod's freshness alarm quiet."""
TASK_DIMENSION = "task"
RUN_DIMENSIONS = (TASK_DIMENSION, SERVICE_DIMENSION, STAGE_DIMENSION)
"""The dimension set of every run metric and gauge, in both runtimes."""

RUNS_SUCCEEDED = "RunsSucceeded"
RUNS_FAILED = "RunsFailed"
RUNS_SKIPPED = "RunsSkipped"
RUNS_RETRIED = "RunsRetried"
"""A transient failure Lambda delivers again: not a failure yet."""
RUNS_SUPERSEDED = "RunsSuperseded"
"""A later delivery of the same event took the run record over."""
RUN_OUTCOMES: dict[RunStatus, str] = {
    RunStatus.SUCCEEDED: RUNS_SUCCEEDED,
    RunStatus.FAILED: RUNS_FAILED,
    RunStatus.SKIPPED: RUNS_SKIPPED,
}
RUNS_ALIVE = "RunsAlive"
"""One more for every run that SUCCEEDED or was SKIPPED (superseded or not): the work of a slot was
done or rightly not needed, so the task is alive. Each task's freshness alarm watches it;
``kairos resume`` publishes one too, so the window starts again there."""
ALIVE_OUTCOMES = frozenset({RunStatus.SUCCEEDED, RunStatus.SKIPPED})
RUN_DURATION = "RunDuration"
ITEMS_WRITTEN = "ItemsWritten"
ITEMS_REJECTED = "ItemsRejected"

TRADING_CALENDAR_DAYS_LEFT = "TradingCalendarDaysLeft"
"""A gauge (:mod:`kairos_runtime.gauges`): days from the slot's trading date (Asia/Shanghai) to the
trading calendar's last known date."""

RUN_METRICS = frozenset(
    {*RUN_OUTCOMES.values(), RUNS_RETRIED, RUNS_SUPERSEDED, RUNS_ALIVE, RUN_DURATION, ITEMS_WRITTEN, ITEMS_REJECTED}
)
"""What the handler publishes for every run, in :data:`NAMESPACE`."""
GAUGE_METRICS = frozenset({TRADING_CALENDAR_DAYS_LEFT})
"""What tasks report as gauges, in :data:`NAMESPACE`."""
EMITTED = RUN_METRICS | GAUGE_METRICS

# Metrics AWS publishes itself, that alarms watch.
LAMBDA_NAMESPACE = "AWS/Lambda"
LAMBDA_ASYNC_EVENTS_DROPPED = "AsyncEventsDropped"
"""Events Lambda gave up on (retries used up or too old), per function (dimension FunctionName)."""
LAMBDA_METRICS = frozenset({LAMBDA_ASYNC_EVENTS_DROPPED})
SQS_NAMESPACE = "AWS/SQS"
SQS_MESSAGES_VISIBLE = "ApproximateNumberOfMessagesVisible"
SQS_METRICS = frozenset({SQS_MESSAGES_VISIBLE})
STATES_NAMESPACE = "AWS/States"
STATES_EXECUTIONS_FAILED = "ExecutionsFailed"
STATES_EXECUTIONS_TIMED_OUT = "ExecutionsTimedOut"
STATES_EXECUTIONS_ABORTED = "ExecutionsAborted"
"""A fan-out task's state machine executions that ended badly, per state machine (dimension StateMachineArn)."""
STATES_METRICS = frozenset({STATES_EXECUTIONS_FAILED, STATES_EXECUTIONS_TIMED_OUT, STATES_EXECUTIONS_ABORTED})

AWS_METRICS: dict[str, frozenset[str]] = {
    LAMBDA_NAMESPACE: LAMBDA_METRICS,
    SQS_NAMESPACE: SQS_METRICS,
    STATES_NAMESPACE: STATES_METRICS,
}
"""Per AWS namespace, the metrics of it that Kairos alarms may watch."""
