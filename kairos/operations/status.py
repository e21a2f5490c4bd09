"""``kairos status``: a row per task of the stage, with its freshness (:mod:`.freshness`).

Requests: one Query per task (its :data:`~.history.LATEST_RUNS` newest records) and, for a deployed
stage, one ListSchedules of the stage's group (a page per 100 schedules), after the two CloudFormation
reads that find the stage. A local stage has no schedules: its states come from tasks.yaml.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from kairos.operations.freshness import Freshness, RunOutcome, Verdict, allowance, judge
from kairos.operations.history import latest_runs
from kairos.plan import StagePlan, TaskPlan
from kairos.schedule import RateSchedule, next_fire_times, parse_schedule
from kairos_runtime.events import iso_seconds, parse_instant

ENABLED, DISABLED = "ENABLED", "DISABLED"


@dataclass(frozen=True, slots=True)
class TaskStatus:
    task: TaskPlan
    deployed_state: str | None
    """ENABLED / DISABLED as deployed; ``None`` for a local stage, MISSING for a schedule not found."""
    latest: dict[str, Any] | None
    last_success: dict[str, Any] | None
    next_fire: datetime | None
    verdict: Verdict

    @property
    def drift(self) -> bool:
        """The deployed schedule's state is not what tasks.yaml says (a pause, a manual change)."""
        if self.deployed_state is None:
            return False
        return self.deployed_state != (ENABLED if self.task.enabled else DISABLED)

    def as_json(self) -> dict[str, Any]:
        latest = self.latest
        return {
            "name": self.task.name,
            "enabled_in_file": self.task.enabled,
            "schedule_state": self.deployed_state,
            "drift": self.drift,
            "schedule": self.task.schedule_expression,
            "timezone": self.task.timezone,
            "last_run": None
            if latest is None
            else {
                "status": latest.get("status"),
                "scheduled_time": latest.get("scheduled_time"),
                "started_at": latest.get("started_at"),
                "duration_ms": _number(latest.get("duration_ms")),
            },
            "last_success": None if self.last_success is None else self.last_success.get("scheduled_time"),
            "next_fire": iso_seconds(self.next_fire) if self.next_fire else None,
            "freshness": self.verdict.freshness.value,
            "due_since": iso_seconds(self.verdict.due_since) if self.verdict.due_since else None,
            "reason": self.verdict.reason,
        }


def _number(value: object) -> int | float | None:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value if isinstance(value, int | float) else None


def task_status(
    task: TaskPlan, records: list[dict[str, Any]], *, deployed_state: str | None, now: datetime
) -> TaskStatus:
    schedule = parse_schedule(task.schedule_expression)
    enabled = task.enabled if deployed_state is None else deployed_state == ENABLED
    outcomes = [
        RunOutcome(str(record.get("status")), parse_instant(str(record["scheduled_time"])))
        for record in records
        if record.get("scheduled_time")
    ]
    verdict = judge(
        schedule,
        timezone=task.timezone,
        enabled=enabled,
        allowed=allowance(timeout_s=task.timeout, async_retry_attempts=task.async_retry_attempts),
        runs=outcomes,
        now=now,
    )
    newest = sorted(records, key=lambda record: str(record.get("scheduled_time", "")), reverse=True)
    anchor = outcomes[0].scheduled_time if outcomes else None
    return TaskStatus(
        task=task,
        deployed_state=deployed_state,
        latest=newest[0] if newest else None,
        last_success=next((record for record in newest if record.get("status") == "SUCCEEDED"), None),
        next_fire=_next_fire(task, anchor, now) if enabled else None,
        verdict=verdict,
    )


def _next_fire(task: TaskPlan, anchor: datetime | None, now: datetime) -> datetime | None:
    schedule = parse_schedule(task.schedule_expression)
    if isinstance(schedule, RateSchedule) and anchor is not None:
        # A rate schedule keeps the phase it was created with, which its recorded slots show.
        return anchor + ((now - anchor) // schedule.interval + 1) * schedule.interval
    times = next_fire_times(schedule, timezone=task.timezone, after=now, count=1)
    return times[0] if times else None


def stage_status(
    plan: StagePlan, runs_table: Any, *, deployed_states: Mapping[str, str] | None, now: datetime
) -> list[TaskStatus]:
    """Every task's status; ``deployed_states`` (schedule name state by task) is ``None`` locally."""
    return [
        task_status(
            task,
            latest_runs(runs_table, task.name),
            deployed_state=None if deployed_states is None else deployed_states.get(task.name, "MISSING"),
            now=now,
        )
        for task in plan.tasks
    ]


def failing(statuses: list[TaskStatus]) -> list[TaskStatus]:
    """The tasks that make ``kairos status`` exit 1: LATE or FAILING (only an enabled schedule is either)."""
    return [status for status in statuses if status.verdict.freshness.fails_check]


__all__ = ["Freshness", "TaskStatus", "failing", "stage_status", "task_status"]
