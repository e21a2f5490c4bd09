"""The deployed schedules' states, and ``kairos pause`` / ``resume`` through the Scheduler API."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kairos.operations.deployed import DeployedStage
from kairos.plan import TaskPlan

# UpdateSchedule replaces the whole schedule: a field left out is reset (to no description, no
# start date, no dead-letter queue...), so every field GetSchedule returns that UpdateSchedule takes
# is sent back unchanged ("UpdateSchedule", EventBridge Scheduler API Reference).
UPDATABLE_FIELDS = (
    "Name",
    "GroupName",
    "ScheduleExpression",
    "ScheduleExpressionTimezone",
    "StartDate",
    "EndDate",
    "Description",
    "State",
    "KmsKeyArn",
    "Target",
    "FlexibleTimeWindow",
    "ActionAfterCompletion",
)


def schedule_states(stage: DeployedStage) -> dict[str, str]:
    """Task name to its schedule's State, from ListSchedules of the stage's group (100 a page)."""
    by_schedule = {task.schedule_name: name for name, task in stage.tasks.items()}
    states = {}
    paginator = stage.client("scheduler").get_paginator("list_schedules")
    for page in paginator.paginate(GroupName=stage.schedule_group_name):
        for summary in page.get("Schedules", []):
            if summary.get("Name") in by_schedule:
                states[by_schedule[summary["Name"]]] = str(summary.get("State"))
    return states


@dataclass(frozen=True, slots=True)
class StateChange:
    task: str
    schedule: str
    before: str
    after: str


def set_schedule_state(stage: DeployedStage, task: str, *, enabled: bool) -> StateChange:
    """Get the task's schedule, then update it with only its State changed."""
    scheduler = stage.client("scheduler")
    name = stage.task(task).schedule_name
    current: dict[str, Any] = scheduler.get_schedule(Name=name, GroupName=stage.schedule_group_name)
    wanted = "ENABLED" if enabled else "DISABLED"
    before = str(current.get("State"))
    if before != wanted:
        update = {field: current[field] for field in UPDATABLE_FIELDS if current.get(field) is not None}
        update["State"] = wanted
        scheduler.update_schedule(**update)
    return StateChange(task, name, before, wanted)


@dataclass(frozen=True, slots=True)
class AlarmChange:
    alarm: str
    found: bool
    """Whether the stage has the alarm deployed (one deployed before freshness alarms has not)."""


def set_freshness_actions(stage: DeployedStage, task: TaskPlan, *, enabled: bool) -> AlarmChange | None:
    """Turn a paused task's freshness alarm's actions off, or a resumed one's on again; ``None``
    when the task has no freshness alarm.

    A paused schedule runs nothing, which is exactly what the alarm pages about. On resume the task
    is also marked alive now (one ``RunsAlive``, as a run would publish it): its window starts again
    from the resume, where an alarm muted in ALARM would otherwise stay there without notifying
    (actions run on a state change), or a window that passed during the pause would page at once.
    The same mark serves a task just deployed whose first slot is days away.
    """
    freshness = task.freshness.alarm
    if freshness is None:
        return None
    cloudwatch = stage.client("cloudwatch")
    if not cloudwatch.describe_alarms(AlarmNames=[freshness.alarm_name]).get("MetricAlarms"):
        return AlarmChange(freshness.alarm_name, found=False)
    if enabled:
        _publish_alive(cloudwatch, task)
        cloudwatch.enable_alarm_actions(AlarmNames=[freshness.alarm_name])
    else:
        cloudwatch.disable_alarm_actions(AlarmNames=[freshness.alarm_name])
    return AlarmChange(freshness.alarm_name, found=True)


def _publish_alive(cloudwatch: Any, task: TaskPlan) -> None:
    """One ``RunsAlive`` for ``task``, with the dimensions its freshness alarm reads, as a run publishes it."""
    assert task.freshness.alarm is not None
    alive = task.freshness.alarm.only_metric
    cloudwatch.put_metric_data(
        Namespace=alive.namespace,
        MetricData=[
            {
                "MetricName": alive.metric_name,
                "Dimensions": [{"Name": name, "Value": value} for name, value in alive.dimensions.items()],
                "Value": 1,
                "Unit": "Count",
            }
        ],
    )


@dataclass(frozen=True, slots=True)
class AliveMark:
    task: str
    outcome: str
    """``marked`` (its window starts now), ``paused`` (its schedule is DISABLED: left alone, so the
    alarm still says it is not running), ``missing`` (the stage has no schedule for it), ``no alarm``
    (none planned: ``reason`` says why), ``not deployed`` (the stage has no such alarm yet) or
    ``outdated`` (the deployed alarm reads other dimensions than tasks.yaml's plan: deploy first,
    or the mark would go where the alarm does not look)."""
    alarm: str | None
    reason: str = ""


def mark_alive(stage: DeployedStage, tasks: list[TaskPlan]) -> list[AliveMark]:
    """Start each task's freshness window now, as ``kairos resume`` does, without touching its
    schedule: for a stage just deployed, or just upgraded to new metric streams, whose alarms would
    otherwise page until each task's first success or skip. A task whose deployed schedule is not
    ENABLED is left alone: nothing runs it, which is what its alarm is there to say."""
    states = schedule_states(stage)
    cloudwatch = stage.client("cloudwatch")
    marks = []
    for task in tasks:
        freshness = task.freshness.alarm
        if freshness is None:
            marks.append(AliveMark(task.name, "no alarm", None, task.freshness.note))
            continue
        state = states.get(task.name)
        if state is None:
            marks.append(AliveMark(task.name, "missing", freshness.alarm_name, "no deployed schedule"))
            continue
        if state != "ENABLED":
            marks.append(AliveMark(task.name, "paused", freshness.alarm_name, f"schedule {state}"))
            continue
        deployed = cloudwatch.describe_alarms(AlarmNames=[freshness.alarm_name]).get("MetricAlarms") or []
        if not deployed:
            marks.append(AliveMark(task.name, "not deployed", freshness.alarm_name))
            continue
        alive = freshness.only_metric
        reads = {(str(d.get("Name")), str(d.get("Value"))) for d in deployed[0].get("Dimensions") or []}
        if reads != set(alive.dimensions.items()):
            shown = ", ".join(f"{name}={value}" for name, value in sorted(reads)) or "none"
            marks.append(AliveMark(task.name, "outdated", freshness.alarm_name, f"it reads {shown}"))
            continue
        _publish_alive(cloudwatch, task)
        marks.append(AliveMark(task.name, "marked", freshness.alarm_name))
    return marks
