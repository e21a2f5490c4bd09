"""``kairos cost``: a monthly estimate per task and for the stage, from the plan, the schedule
evaluator and (for a deployed stage) the recorded runs. Prices come from ``kairos/data/prices.json``
(list prices with their source pages and the date they were read); every figure that is not
measured is marked as an assumption. docs/adr/0132-cost-estimate.md says what is counted and what is not.

Per enabled task, over the next 30 days (fires counted with the evaluator, in the task's timezone):

* Lambda: a request per fire, and GB-seconds = fires x duration x memory / 1024, at the task's
  architecture's price; the duration is the median of its recorded runs, or its timeout when none
  is recorded (marked).
* Scheduler: an invocation per fire.
* DynamoDB: the run record's writes per fire, plus the median items written per run (recorded, else
  0, marked), at on-demand write prices.
* Logs: ingestion at an assumed volume per run (run records do not measure it).
* CloudWatch: the task's alarms (per metric each reads) and the custom metrics its runs publish.

A disabled task fires nothing and costs nothing (marked); its alarms, deployed all the same, go to the
stage's own line with the dead-letter queue's alarm.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from importlib import resources
from typing import Any

from kairos.plan import AlarmPlan, StagePlan, TaskPlan
from kairos.schedule import next_fire_times, parse_schedule

HORIZON = timedelta(days=30)
FIRES_BATCH = 10_000
RECORDED_RUNS = 50
"""Newest records per task whose durations and items the estimate takes the median of (one Query)."""
FINAL = frozenset({"SUCCEEDED", "FAILED", "SKIPPED"})
GB = 1024**3
HIGH_FREQUENCY_FIRES = 10_000
"""Fires a month from which a task's row says so (a rate(1 minute) task fires 43,200 times)."""
DISABLED_NOTE = "disabled: costs nothing (its alarms: the stage line)"


@dataclass(frozen=True, slots=True)
class Prices:
    region: str
    """The region whose prices apply (the default one when the stage's is not in the table)."""
    assumed_region: bool
    retrieved: str
    currency: str
    figures: Mapping[str, Any]
    assumptions: Mapping[str, float]
    notes: Mapping[str, str]
    sources: Mapping[str, str]


def load_prices(region: str | None, text: str | None = None) -> Prices:
    """The price table (package data, or ``text``) for ``region`` (None: the table's default region)."""
    table = json.loads(text if text is not None else resources.files("kairos").joinpath("data/prices.json").read_text())
    default = str(table["default_region"])
    chosen = region if region is not None and region in table["regions"] else default
    return Prices(
        region=chosen,
        assumed_region=region != chosen,
        retrieved=str(table["retrieved"]),
        currency=str(table["currency"]),
        figures=table["regions"][chosen],
        assumptions=table["assumptions"],
        notes=table["assumption_notes"],
        sources=table["sources"],
    )


@dataclass(frozen=True, slots=True)
class TaskCost:
    task: TaskPlan
    fires: int
    duration_ms: float
    duration_recorded: bool
    items_per_run: float
    items_recorded: bool
    usd: Mapping[str, float]
    """By part: lambda, scheduler, dynamodb, logs, cloudwatch."""
    notes: tuple[str, ...] = ()

    @property
    def total(self) -> float:
        return sum(self.usd.values())

    @property
    def gb_seconds(self) -> float:
        return self.fires * self.duration_ms / 1000 * self.task.memory / 1024

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.task.name,
            "enabled": self.task.enabled,
            "schedule": self.task.schedule_expression,
            "timezone": self.task.timezone,
            "architecture": self.task.architecture,
            "memory_mb": self.task.memory,
            "fires_30d": self.fires,
            "duration_ms": round(self.duration_ms, 1),
            "duration_source": "recorded" if self.duration_recorded else "timeout (assumed)",
            "items_per_run": round(self.items_per_run, 1),
            "items_source": "recorded" if self.items_recorded else "none recorded (assumed 0)",
            "gb_seconds": round(self.gb_seconds, 3),
            **{f"{part}_usd": round(value, 4) for part, value in self.usd.items()},
            "total_usd": round(self.total, 4),
            "notes": list(self.notes),
        }


@dataclass(frozen=True, slots=True)
class StageCost:
    plan: StagePlan
    prices: Prices
    tasks: tuple[TaskCost, ...]
    shared_usd: float
    """What the stage pays whatever runs: the dead-letter alarm and the alarms of disabled tasks."""
    assumptions: tuple[str, ...] = field(default=())

    @property
    def total(self) -> float:
        return self.shared_usd + sum(task.total for task in self.tasks)


def fires_within(task: TaskPlan, *, now: datetime, horizon: timedelta = HORIZON) -> int:
    """How often the task's schedule fires in the ``horizon`` after ``now`` (its timezone, DST included)."""
    schedule = parse_schedule(task.schedule_expression)
    end = now + horizon
    count, after = 0, now
    while True:
        batch = next_fire_times(schedule, timezone=task.timezone, after=after, count=FIRES_BATCH)
        within = [moment for moment in batch if moment <= end]
        count += len(within)
        if len(within) < FIRES_BATCH:
            return count
        after = batch[-1]


def _median(records: Sequence[Mapping[str, Any]], name: str) -> float | None:
    values = [
        float(record[name]) for record in records if record.get("status") in FINAL and record.get(name) is not None
    ]
    return statistics.median(values) if values else None


def _alarm_metrics(alarms: Sequence[AlarmPlan]) -> int:
    return sum(len(alarm.metrics) for alarm in alarms)


def task_cost(task: TaskPlan, prices: Prices, *, now: datetime, records: Sequence[Mapping[str, Any]]) -> TaskCost:
    """One task's month, from its plan, its schedule and its recorded runs (``records``; may be empty)."""
    if not task.enabled:
        zero = dict.fromkeys(("lambda", "scheduler", "dynamodb", "logs", "cloudwatch"), 0.0)
        return TaskCost(task, 0, 0.0, False, 0.0, False, zero, (DISABLED_NOTE,))
    figures, assumed = prices.figures, prices.assumptions
    fires = fires_within(task, now=now)
    recorded_duration, recorded_items = _median(records, "duration_ms"), _median(records, "items_written")
    duration_ms = recorded_duration if recorded_duration is not None else task.timeout * 1000.0
    items = recorded_items if recorded_items is not None else 0.0
    gb_seconds = fires * duration_ms / 1000 * task.memory / 1024
    writes = fires * (assumed["run_record_write_units"] + items * assumed["item_write_units"])
    usd = {
        "lambda": fires * figures["lambda_request_per_million"] / 1e6
        + gb_seconds * figures["lambda_gb_second"][task.architecture],
        "scheduler": fires * figures["scheduler_invocation_per_million"] / 1e6,
        "dynamodb": writes * figures["dynamodb_write_request_unit_per_million"] / 1e6,
        "logs": fires * assumed["log_bytes_per_run"] / GB * figures["logs_ingestion_per_gb"],
        "cloudwatch": _alarm_metrics(task.alarms) * figures["alarm_metric_per_month"]
        + assumed["custom_metrics_per_task"] * figures["custom_metric_per_month"],
    }
    notes = []
    if recorded_duration is None:
        notes.append(f"duration: its timeout, {task.timeout} s (assumed: no run recorded)")
    if recorded_items is None:
        notes.append("items written: 0 (assumed)")
    if fires >= HIGH_FREQUENCY_FIRES:
        notes.append(f"HIGH FREQUENCY: {fires:,} fires a month")
    return TaskCost(
        task, fires, duration_ms, recorded_duration is not None, items, recorded_items is not None, usd, tuple(notes)
    )


def stage_cost(
    plan: StagePlan,
    prices: Prices,
    *,
    now: datetime,
    records_of: Callable[[TaskPlan], Sequence[Mapping[str, Any]]],
) -> StageCost:
    """Every task's month and the stage's own line; ``records_of`` reads a task's recorded runs."""
    tasks = tuple(
        task_cost(task, prices, now=now, records=records_of(task) if task.enabled else ()) for task in plan.tasks
    )
    disabled_alarms = _alarm_metrics([alarm for task in plan.tasks if not task.enabled for alarm in task.alarms])
    shared = (_alarm_metrics([plan.dead_letter_alarm]) + disabled_alarms) * prices.figures["alarm_metric_per_month"]
    assumptions = [
        f"prices: {prices.region} list prices read {prices.retrieved} ({prices.currency}), free tiers not deducted",
        *(f"{prices.notes[name]}: {value:g}" for name, value in prices.assumptions.items()),
    ]
    if prices.assumed_region:
        region = plan.region or "unset"
        assumptions.insert(0, f"stage region {region} is not in the price table: priced as {prices.region}")
    return StageCost(plan, prices, tasks, shared, tuple(assumptions))
