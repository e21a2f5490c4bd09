"""Reading run records from a TaskRuns table, deployed or local (the keys are in kairos_runtime.runs)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from kairos_runtime.events import iso_seconds
from kairos_runtime.runs import RunHistory, RunStatus
from kairos_runtime.slots import DECLINED_KEPT, SLOT_PREFIX
from kairos_runtime.tables import TASK_RUNS

LATEST_RUNS = 10
"""Records ``kairos status`` reads per task, in one Query: enough to find the last success behind a
few failures; a task with more failures in a row is FAILING whatever came before."""
PAGE_LIMIT = 100
_DURATION = re.compile(r"^([0-9]{1,6})([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(text: str) -> timedelta:
    """``90s``, ``30m``, ``24h``, ``7d``; else ``ValueError`` with the forms accepted."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise ValueError(f"not a duration: {text!r} (use a number and s, m, h or d, e.g. 24h)")
    return timedelta(**{_UNITS[match[2]]: int(match[1])})


def latest_runs(table: Any, task: str, *, limit: int = LATEST_RUNS) -> list[dict[str, Any]]:
    """The task's newest records by slot, newest first: one Query."""
    return RunHistory(table).for_task(task, limit=limit)


def _filtered_pages(
    table: Any, request: dict[str, Any], *, status: RunStatus | None, limit: int
) -> list[dict[str, Any]]:
    if status is not None:
        request["FilterExpression"] = "#status = :status"
        request["ExpressionAttributeNames"]["#status"] = "status"
        request["ExpressionAttributeValues"][":status"] = status.value
    items: list[dict[str, Any]] = []
    while len(items) < limit:
        response = table.query(**request, ScanIndexForward=False, Limit=PAGE_LIMIT)
        items += response.get("Items", [])
        if "LastEvaluatedKey" not in response:
            break
        request["ExclusiveStartKey"] = response["LastEvaluatedKey"]
    return items[:limit]


def task_runs(
    table: Any, task: str, *, since: datetime | None, status: RunStatus | None, limit: int
) -> list[dict[str, Any]]:
    """A task's runs whose slot is at or after ``since``, newest first (a status filter reads on)."""
    lower = f"RUN#{iso_seconds(since)}" if since else "RUN#"
    request = {
        "KeyConditionExpression": "#pk = :pk AND #sk BETWEEN :lower AND :upper",
        "ExpressionAttributeNames": {"#pk": TASK_RUNS.partition_key, "#sk": TASK_RUNS.sort_key},
        "ExpressionAttributeValues": {":pk": f"TASK#{task}", ":lower": lower, ":upper": "RUN$"},
    }
    return _filtered_pages(table, request, status=status, limit=limit)


@dataclass(frozen=True, slots=True)
class SlotDeliveries:
    """What a slot's claim item (``kairos_runtime.slots``) counts: every delivery of the slot, and the
    declined ones (ADR 0140: a second delivery of a done or in-progress slot, which writes no run record)."""

    deliveries: int
    declined: int
    """Declined deliveries listed on the claim: exact up to :data:`DECLINED_KEPT`, a floor at it."""
    declined_reasons: dict[str, int]

    @property
    def declined_at_least(self) -> bool:
        """The claim lists only the first :data:`DECLINED_KEPT`: there may be more."""
        return self.declined >= DECLINED_KEPT

    def as_json(self) -> dict[str, Any]:
        return {
            "deliveries": self.deliveries,
            "declined": self.declined,
            "declined_at_least": self.declined_at_least,
            "declined_reasons": self.declined_reasons,
        }


def slot_deliveries(table: Any, task: str, slots: Iterable[str]) -> dict[str, SlotDeliveries]:
    """The claim items of ``slots`` (``scheduled_time`` strings) of ``task``, by slot: one Query of the
    task's partition over the slots' span, paged (a slot with no claim item is absent)."""
    wanted = set(slots)
    if not wanted:
        return {}
    request: dict[str, Any] = {
        "KeyConditionExpression": "#pk = :pk AND #sk BETWEEN :lower AND :upper",
        "ExpressionAttributeNames": {"#pk": TASK_RUNS.partition_key, "#sk": TASK_RUNS.sort_key},
        "ExpressionAttributeValues": {
            ":pk": f"TASK#{task}",
            ":lower": f"{SLOT_PREFIX}{min(wanted)}",
            ":upper": f"{SLOT_PREFIX}{max(wanted)}",
        },
    }
    found: dict[str, SlotDeliveries] = {}
    while True:
        response = table.query(**request)
        for item in response.get("Items", []):
            slot = str(item[TASK_RUNS.sort_key]).removeprefix(SLOT_PREFIX)
            if slot not in wanted:
                continue
            declined = list(item.get("declined", []))
            found[slot] = SlotDeliveries(
                deliveries=int(item.get("deliveries", 0)),
                declined=len(declined),
                declined_reasons=dict(Counter(str(each.get("reason", "?")) for each in declined)),
            )
        if "LastEvaluatedKey" not in response:
            return found
        request["ExclusiveStartKey"] = response["LastEvaluatedKey"]


def stage_runs(
    table: Any, *, since: datetime, now: datetime, status: RunStatus | None, limit: int
) -> list[dict[str, Any]]:
    """Every task's runs started at or after ``since``, newest first: the ``by_date`` index, a day a Query."""
    index = TASK_RUNS.indexes[0]
    items: list[dict[str, Any]] = []
    day = now.astimezone(UTC).date()
    while day >= since.astimezone(UTC).date() and len(items) < limit:
        request = {
            "IndexName": index.name,
            "KeyConditionExpression": "#pk = :pk AND #sk >= :since",
            "ExpressionAttributeNames": {"#pk": index.partition_key, "#sk": index.sort_key},
            "ExpressionAttributeValues": {":pk": f"RUNDATE#{day.isoformat()}", ":since": _started(since)},
        }
        items += _filtered_pages(table, request, status=status, limit=limit - len(items))
        day -= timedelta(days=1)
    return items[:limit]


def _started(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def find_run(table: Any, task: str, run_id: str) -> dict[str, Any] | None:
    """The task's record whose ``execution_id`` or ``request_id`` is ``run_id`` (newest slots first)."""
    request = {
        "KeyConditionExpression": "#pk = :pk AND begins_with(#sk, :run)",
        "FilterExpression": "#execution_id = :id OR #request_id = :id",
        "ExpressionAttributeNames": {
            "#pk": TASK_RUNS.partition_key,
            "#sk": TASK_RUNS.sort_key,
            "#execution_id": "execution_id",
            "#request_id": "request_id",
        },
        "ExpressionAttributeValues": {":pk": f"TASK#{task}", ":run": "RUN#", ":id": run_id},
    }
    found = _filtered_pages(table, request, status=None, limit=1)
    return found[0] if found else None
