"""Errors a task raises to say how it failed; the runner records the kind and decides on retries."""

from __future__ import annotations

from kairos_runtime.runs import ErrorKind


class TaskError(Exception):
    kind: ErrorKind = ErrorKind.PERMANENT


class TransientTaskError(TaskError):
    """Another delivery may succeed (the source timed out, throttled or reset the connection)."""

    kind = ErrorKind.TRANSIENT


class PermanentTaskError(TaskError):
    """Another delivery would fail the same way (bad params, the source said no, no valid rows)."""

    kind = ErrorKind.PERMANENT


def error_kind(error: BaseException) -> ErrorKind:
    if isinstance(error, TaskError):
        return error.kind
    # Builtin network failures are worth another try; anything unknown is treated as a bug.
    if isinstance(error, ConnectionError | TimeoutError):
        return ErrorKind.TRANSIENT
    return ErrorKind.PERMANENT
