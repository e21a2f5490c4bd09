"""``kairos logs``: a task's log group through FilterLogEvents, Powertools JSON lines made readable.

Lines come in three shapes: Powertools' structured records (``level``, ``message``, ``timestamp``,
``function_request_id``, ``correlation_id``, ``exception``), Lambda's own JSON records when the function
logs in JSON format (``time``, ``type``, ``record``; ``requestId``), and anything else, printed as is.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

FOLLOW_INTERVAL_S = 2.0
"""How often ``--follow`` asks for new events: CloudWatch Logs allows 5 FilterLogEvents a second per account."""
MAX_SEEN = 10_000


@dataclass(frozen=True, slots=True)
class LogLine:
    time: str
    level: str
    message: str
    request_id: str
    correlation_id: str
    error: str

    def text(self) -> str:
        ids = " ".join(
            part for part in (self.request_id, self.correlation_id and f"corr={self.correlation_id}") if part
        )
        line = f"{self.time} {self.level:<7} {self.message}"
        line += f"  [{ids}]" if ids else ""
        return line + (f"\n    {self.error}" if self.error else "")


def _time(milliseconds: int) -> str:
    return datetime.fromtimestamp(milliseconds / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def readable(event: dict[str, Any]) -> LogLine:
    """One CloudWatch event (``timestamp``, ``message``) as a line to print."""
    raw = str(event.get("message", "")).rstrip("\n")
    when = _time(int(event.get("timestamp", 0)))
    try:
        record = json.loads(raw)
    except ValueError:
        record = None
    if not isinstance(record, dict):
        # Lambda's plain-text lines ("START RequestId: ...") and anything else a handler printed.
        return LogLine(when, "", raw, "", "", "")
    inner: dict[str, Any] = record["record"] if isinstance(record.get("record"), dict) else {}
    error = ""
    if record.get("exception") or record.get("exception_name"):
        error = f"{record.get('exception_name', 'error')}: {record.get('exception', '')}".strip()
    elif record.get("errorType") or record.get("errorMessage"):
        error = f"{record.get('errorType', 'error')}: {record.get('errorMessage', '')}"
    message = record.get("message")
    if message is None:
        message = json.dumps(inner or record, ensure_ascii=False, default=str)
    return LogLine(
        time=str(record.get("timestamp") or record.get("time") or when),
        level=str(record.get("level") or record.get("type") or ""),
        message=message if isinstance(message, str) else json.dumps(message, ensure_ascii=False, default=str),
        request_id=str(record.get("function_request_id") or record.get("requestId") or inner.get("requestId") or ""),
        correlation_id=str(record.get("correlation_id") or ""),
        error=error,
    )


def log_json(event: dict[str, Any]) -> dict[str, Any]:
    """One CloudWatch event for scripts (``kairos logs --json``, a JSON object a line): the fields
    :func:`readable` prints, the raw message, and the message's own JSON object when it is one."""
    line = readable(event)
    raw = str(event.get("message", "")).rstrip("\n")
    try:
        record = json.loads(raw)
    except ValueError:
        record = None
    return {
        "time": line.time,
        "level": line.level or None,
        "message": line.message,
        "request_id": line.request_id or None,
        "correlation_id": line.correlation_id or None,
        "error": line.error or None,
        "log_stream": event.get("logStreamName"),
        "raw": raw,
        "record": record if isinstance(record, dict) else None,
    }


def request_filter(request_id: str) -> str:
    """A filter pattern matching events that contain the request id (one run's lines)."""
    return f'"{request_id}"'


def task_filter(task: str) -> str:
    """A filter pattern matching a task's JSON lines in a shared function's log group: both runtimes'
    loggers add the ``task`` key once a run starts (docs/adr/0183-shared-functions.md)."""
    return f'{{ $.task = "{task}" }}'


def log_events(
    logs: Any, log_group: str, *, start_ms: int, pattern: str | None, end_ms: int | None = None
) -> Iterator[dict[str, Any]]:
    """Every event of the group from ``start_ms``, oldest first, page after page."""
    request: dict[str, Any] = {"logGroupName": log_group, "startTime": start_ms}
    if end_ms is not None:
        request["endTime"] = end_ms
    if pattern:
        request["filterPattern"] = pattern
    paginator = logs.get_paginator("filter_log_events")
    for page in paginator.paginate(**request):
        yield from page.get("events", [])


def follow(
    logs: Any,
    log_group: str,
    *,
    start_ms: int,
    pattern: str | None,
    emit: Callable[[dict[str, Any]], None],
    keep_going: Callable[[], bool],
    sleep: Callable[[float], None] = time.sleep,
    interval_s: float = FOLLOW_INTERVAL_S,
) -> int:
    """Print new events until ``keep_going`` says stop (Ctrl-C ends it from the CLI); returns how many.

    Each poll starts at the newest timestamp seen, so an event written in the same millisecond as
    the last one printed is not lost; event ids already printed are skipped.
    """
    seen: dict[str, None] = {}
    printed = 0
    since = start_ms
    while True:
        for event in log_events(logs, log_group, start_ms=since, pattern=pattern):
            event_id = str(event.get("eventId", ""))
            if event_id in seen:
                continue
            seen[event_id] = None
            if len(seen) > MAX_SEEN:
                seen.pop(next(iter(seen)))
            since = max(since, int(event.get("timestamp", since)))
            emit(event)
            printed += 1
        if not keep_going():
            return printed
        sleep(interval_s)
