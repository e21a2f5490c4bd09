"""Reading run records from a TaskRuns table, deployed or local (the keys are in kairos_runtime.runs)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from kairos_runtime.events import iso_seconds
from kairos_runtime.runs import RunHistory, RunStatus
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
