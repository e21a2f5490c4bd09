"""Runtime settings, read once from the environment the ScheduledTask construct sets.

The environment variable names live here and nowhere else: the construct imports them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache
from typing import Annotated

import msgspec
from msgspec import Meta, field

from kairos_runtime.tables import TABLE_DESIGNS, TableId
from kairos_runtime.validation import InvalidInputError, Model, parse

STAGE_ENV = "KAIROS_STAGE"
TASK_ENV = "KAIROS_TASK"
"""The one task a function runs: its run records go under this name, the only one IAM lets it write."""
TASKS_ENV = "KAIROS_TASKS"
"""A shared function's tasks, as a JSON array of names (docs/adr/0183-shared-functions.md): an event
naming any other is recorded as InvalidEvent under the first of them, and not run. Set instead of
``KAIROS_TASK``."""
TASK_TYPE_ENV = "KAIROS_TASK_TYPE"
"""The one task type a function runs: an event naming another is recorded as InvalidEvent, not run."""
SSM_PARAMETERS_ENV = "KAIROS_SSM_PARAMETERS"
"""The SSM parameters a function may read, as a JSON array of names (the ones the stack grants):
params that name any other are recorded as InvalidEvent, not run."""
RUNTIME_ENV = "KAIROS_RUNTIME"
RUN_RECORD_TTL_DAYS_ENV = "KAIROS_RUN_RECORD_TTL_DAYS"
HTTPS_PROXY_ENV = "KAIROS_HTTPS_PROXY"
SPOT_TTL_DAYS_ENV = "KAIROS_SPOT_TTL_DAYS"
TASK_MODULE_ENV = "KAIROS_TASK_MODULE"
"""The module that registers the function's task type: the handler imports only that one."""
SDK_TRACING_ENV = "KAIROS_SDK_TRACING"
"""``true`` where the stage turns SDK tracing on: the Python handler then builds the Powertools Tracer."""
LAMBDA_RETRY_ATTEMPTS_ENV = "KAIROS_LAMBDA_RETRY_ATTEMPTS"
"""How often Lambda delivers a rejected event again: a transient failure Lambda will retry is counted
as RunsRetried, not RunsFailed."""
MAX_EVENT_AGE_ENV = "KAIROS_MAX_EVENT_AGE_SECONDS"
"""How old an event Lambda still retries; an older one it drops (to the dead-letter queue)."""
LATE_DELIVERY_LIMIT_ENV = "KAIROS_LATE_DELIVERY_LIMIT_SECONDS"
"""How late (seconds after its scheduled_time) a delivery may still arrive for a task type that
cannot run for a past slot; a later one is recorded SKIPPED (PastSlotRefused). Unset: no limit."""
FAN_OUT_BUCKET_ENV = "KAIROS_FAN_OUT_BUCKET"
"""The stage's fan-out bucket, set on a fan-out task's plan and summary functions: where a plan past
an inline Map's limits keeps its batches (docs/adr/0164)."""
FAN_OUT_DIR_ENV = "KAIROS_FAN_OUT_DIR"
"""``kairos run``'s stand-in for the bucket: a directory (:class:`kairos_runtime.fan_out_objects.DirectoryObjects`)."""
PAST_SLOT_REFUSED = "PastSlotRefused"
"""The error type of the SKIPPED record of a past slot a non-backfillable task type refused."""
LAMBDA_FIRST_RETRY_DELAY_SECONDS = 60
"""Lambda waits about a minute before its first retry of a failed asynchronous invocation, and about
two before its second."""


class MissingTableError(LookupError):
    pass


class RuntimeSettings(Model, frozen=True):
    stage: str = "local"
    task: str | None = None
    tasks: Annotated[tuple[Annotated[str, Meta(min_length=1)], ...], Meta(min_length=1)] | None = None
    """A shared function's tasks (pinned by the plan); None: one task (``task``), or any (a test's runner)."""
    task_type: str | None = None
    """Pinned by the plan; None (a test's runner) runs whatever type the event names."""
    ssm_parameters: frozenset[str] | None = None
    """Pinned by the plan; None (a test's runner) lets params name any parameter."""
    runtime: str = "python"
    run_record_ttl_days: Annotated[int, Meta(ge=1)] = 90
    spot_ttl_days: Annotated[int, Meta(ge=1)] = 7
    https_proxy: str | None = None
    lambda_retry_attempts: Annotated[int, Meta(ge=0, le=2)] = 0
    max_event_age_seconds: Annotated[int, Meta(ge=60, le=6 * 3600)] = 6 * 3600
    late_delivery_limit_seconds: Annotated[int, Meta(ge=60)] | None = None
    """Set by the plan: how late a delivery may arrive for a task type that cannot be backfilled."""
    table_names: Mapping[TableId, str] = field(default_factory=dict)
    fan_out_bucket: str | None = None
    fan_out_dir: str | None = None

    @property
    def recording_task(self) -> str | None:
        """The task a delivery that cannot be trusted is recorded under: the function's own, or its
        first when it is shared (the partitions IAM lets it write are its tasks')."""
        if self.task is not None:
            return self.task
        return self.tasks[0] if self.tasks else None

    def refusal(self, task: str) -> str | None:
        """Why this function may not run ``task``, or None when it may."""
        if self.task is not None and task != self.task:
            return f"this function runs task {self.task!r}; the event names {task!r}"
        if self.tasks is not None and task not in self.tasks:
            return f"this shared function runs tasks {_listed(self.tasks)}; the event names {task!r}"
        return None

    def lambda_retries(self, *, attempt: int, event_age_seconds: float) -> bool:
        """Whether Lambda invokes again after this failed attempt: it has attempts left, and the event
        is still young enough once the retry's delay has passed (an older one it drops instead)."""
        if attempt > self.lambda_retry_attempts:
            return False
        return event_age_seconds + LAMBDA_FIRST_RETRY_DELAY_SECONDS * attempt < self.max_event_age_seconds

    def refuses_past_slot(self, *, backfill: bool, lateness_seconds: float) -> bool:
        """Whether a delivery this late is a past slot the task type may not run (it cannot be backfilled)."""
        limit = self.late_delivery_limit_seconds
        return not backfill and limit is not None and lateness_seconds > limit

    def table_name(self, table_id: TableId) -> str:
        try:
            return self.table_names[table_id]
        except KeyError:
            env_var = TABLE_DESIGNS[table_id].env_var
            raise MissingTableError(f"table {table_id.value!r} is not configured (set {env_var})") from None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> RuntimeSettings:
        optional = {
            "stage": environ.get(STAGE_ENV),
            "task": environ.get(TASK_ENV) or None,
            "tasks": _json_list(environ, TASKS_ENV),
            "task_type": environ.get(TASK_TYPE_ENV) or None,
            "ssm_parameters": _json_list(environ, SSM_PARAMETERS_ENV),
            "runtime": environ.get(RUNTIME_ENV),
            "run_record_ttl_days": environ.get(RUN_RECORD_TTL_DAYS_ENV),
            "spot_ttl_days": environ.get(SPOT_TTL_DAYS_ENV),
            "https_proxy": environ.get(HTTPS_PROXY_ENV) or None,
            "lambda_retry_attempts": environ.get(LAMBDA_RETRY_ATTEMPTS_ENV) or None,
            "max_event_age_seconds": environ.get(MAX_EVENT_AGE_ENV) or None,
            "late_delivery_limit_seconds": environ.get(LATE_DELIVERY_LIMIT_ENV) or None,
            "fan_out_bucket": environ.get(FAN_OUT_BUCKET_ENV) or None,
            "fan_out_dir": environ.get(FAN_OUT_DIR_ENV) or None,
        }
        tables = {
            design.table_id: environ[design.env_var] for design in TABLE_DESIGNS.values() if environ.get(design.env_var)
        }
        values = {**{k: v for k, v in optional.items() if v is not None}, "table_names": tables}
        return parse(values, cls, lax=True)


def _listed(names: tuple[str, ...], most: int = 5) -> str:
    shown = ", ".join(repr(name) for name in names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def _json_list(environ: Mapping[str, str], name: str) -> list[str] | None:
    """A variable holding a JSON array of strings; a malformed one fails the cold start, as any
    setting does, rather than pinning nothing."""
    text = environ.get(name)
    if not text:
        return None
    try:
        return msgspec.json.decode(text, type=list[str])
    except msgspec.MsgspecError as malformed:
        raise InvalidInputError((name,), f"must be a JSON array of strings: {malformed}") from None


@lru_cache(maxsize=1)
def settings_from_environment() -> RuntimeSettings:
    return RuntimeSettings.from_environ(os.environ)
