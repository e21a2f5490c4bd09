"""Run records in the TaskRuns table: one item per delivery, STARTED then a final status.

Keys (see the README's data model):
  pk      TASK#<task>
  sk      RUN#<scheduled_time>#<execution_id>#<attempt>   (newest scheduled slot sorts last)
  gsi1pk  RUNDATE#<UTC date the run started>              (index ``by_date``: every task's runs of a day)
  gsi1sk  <started_at>#<task>

Deliveries of one event share a record. The delivery that last (re)started it owns it (its
``request_id`` and ``started_at``; Lambda's own retries keep the request id, so the start time tells
them apart): only the owner's finish sets the final status; a delivery that finishes after another
took over adds its outcome to ``previous_outcomes`` instead (marked ``finished_after_redelivery``).
Restarts use optimistic concurrency on ``deliveries``, so racing deliveries each count.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import msgspec

from kairos_runtime.bounds import MAX_DETAIL_BYTES, MAX_DETAIL_DEPTH, MAX_DETAIL_KEYS, MAX_ERROR_MESSAGE
from kairos_runtime.events import ScheduledEvent, iso_seconds
from kairos_runtime.tables import TASK_RUNS, query_index

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

PREVIOUS_OUTCOME_FIELDS = ("status", "request_id", "started_at", "finished_at", "error_type", "error_message")
# How often a delivery re-reads and retries when other deliveries of the same event keep restarting
# the record between its read and its write.
RESTART_ATTEMPTS = 5
CLEARED_ON_REDELIVERY = (
    "finished_at",
    "duration_ms",
    "items_written",
    "items_rejected",
    "detail",
    "error_type",
    "error_message",
    "error_kind",
)
RESTARTED_FIELDS = ("status", "request_id", "started_at", "gsi1pk", "gsi1sk", TASK_RUNS.ttl_attribute)
"""Set again by a redelivery, from the new delivery."""
CLAIM_FIELDS = ("rerun", "replaced")
"""What a delivery's slot claim adds to its record (:mod:`kairos_runtime.slots`): set by the delivery
that has them, removed by a redelivery that has not."""


class RunStatus(StrEnum):
    STARTED = "STARTED"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"


class ErrorKind(StrEnum):
    """Why a run failed, which decides whether another delivery could help."""

    TRANSIENT = "transient"
    PERMANENT = "permanent"


class RunError(msgspec.Struct, frozen=True):
    error_type: str
    message: str
    kind: ErrorKind


class RunKey(msgspec.Struct, frozen=True):
    pk: str
    sk: str


RECORD_WRITE_FAILED = "RecordWriteFailed"
"""The error type of the minimal FAILED record written when a run's outcome could not be stored."""


class Finished(msgspec.Struct, frozen=True):
    """How :meth:`RunRecorder.finish` left the record."""

    owned: bool
    """False when a later delivery had taken the record over: this outcome went into its
    ``previous_outcomes`` and the status is the new owner's."""
    fallback: RunError | None = None
    """Why the outcome could not be stored, when the minimal FAILED record was written instead."""


class _Claim(msgspec.Struct, frozen=True):
    """What a recorder wrote as a record's owner, and which of Lambda's attempts that delivery is."""

    request_id: str
    started_at: str
    lambda_attempt: int


class RunRecordContentionError(RuntimeError):
    """Other deliveries of the same event kept restarting its record; this one gives up (and fails,
    so Lambda's retry comes back later)."""


def iso_utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def run_key(event: ScheduledEvent) -> RunKey:
    slot = iso_seconds(event.scheduled_time)
    return RunKey(pk=f"TASK#{event.task}", sk=f"RUN#{slot}#{event.execution_id}#{event.attempt}")


class _UnmeasurableError(ValueError):
    """A detail too deep, or with too many values, to encode: its note says which."""


def bounded_detail(detail: Mapping[str, Any] | None) -> Any:
    """The run's detail as an item value, or a note when it cannot be stored whole.

    JSON-shaped (mappings with text keys, lists, text, numbers as ``Decimal``; NaN and infinity,
    which DynamoDB does not store, as null; anything else as its text), with lone surrogates as
    U+FFFD, since no UTF-8 encoder takes them. The note, ``{"truncated": true, ...}`` with the first
    ``MAX_DETAIL_KEYS`` top-level keys, replaces a detail over ``MAX_DETAIL_BYTES`` as compact JSON
    (saying its ``bytes``) or one nested deeper than ``MAX_DETAIL_DEPTH`` or holding more values than
    ``MAX_DETAIL_BYTES`` (saying the ``reason``: a cycle or a shared list is one of these). Total
    over any value: the walk is iterative and bounded, so no detail can make the final write fail
    or exhaust the stack.
    """
    value: Mapping[str, Any] = detail if isinstance(detail, Mapping) else {}
    keys = sorted(_scrubbed(str(key)) for key in value)[:MAX_DETAIL_KEYS]
    try:
        plain = _plain(value)
    except _UnmeasurableError as unmeasurable:
        return {"truncated": True, "reason": str(unmeasurable), "keys": keys}
    encoded = json.dumps(plain, ensure_ascii=False, separators=(",", ":"), default=_json_default)
    size = len(encoded.encode())
    if size > MAX_DETAIL_BYTES:
        return {"truncated": True, "bytes": size, "keys": keys}
    return json.loads(encoded, parse_float=Decimal, parse_constant=lambda _: None)


def _plain(value: object) -> Any:
    """``value`` as JSON-shaped data (see :func:`bounded_detail`), built without recursion."""
    root: list[Any] = [None]
    pending: list[tuple[object, Any, Any, int]] = [(value, root, 0, 1)]
    visited = 0
    while pending:
        source, container, slot, depth = pending.pop()
        visited += 1
        if visited > MAX_DETAIL_BYTES:
            raise _UnmeasurableError(f"more than {MAX_DETAIL_BYTES} values")
        if isinstance(source, Mapping | list | tuple):
            if depth > MAX_DETAIL_DEPTH:
                raise _UnmeasurableError(f"nested deeper than {MAX_DETAIL_DEPTH} levels")
            if visited + len(pending) + len(source) > MAX_DETAIL_BYTES:
                raise _UnmeasurableError(f"more than {MAX_DETAIL_BYTES} values")
            target: Any
            if isinstance(source, Mapping):
                target = {}
                for key, member in source.items():
                    name = _scrubbed(key if isinstance(key, str) else str(key))
                    target[name] = None
                    pending.append((member, target, name, depth + 1))
            else:
                target = [None] * len(source)
                pending.extend((member, target, index, depth + 1) for index, member in enumerate(source))
            container[slot] = target
        elif isinstance(source, str):
            container[slot] = _scrubbed(source)
        elif source is None or isinstance(source, bool | int | float | Decimal):
            container[slot] = source
        else:
            container[slot] = _scrubbed(str(source))
    return root[0]


_LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")


def _scrubbed(text: str) -> str:
    """``text`` with each lone surrogate as U+FFFD (a Python str holds no surrogate pairs, so any
    surrogate in it is a lone one), as JavaScript's ``toWellFormed`` does in the Node runtime."""
    return _LONE_SURROGATE.sub("\ufffd", text)


def _json_default(value: object) -> object:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return str(value)


class RunRecorder:
    def __init__(self, table: Table, *, ttl_days: int) -> None:
        self._table = table
        self._ttl = timedelta(days=ttl_days)
        self._claims: dict[RunKey, _Claim] = {}

    def start(
        self,
        event: ScheduledEvent,
        *,
        runtime: str,
        request_id: str,
        started_at: datetime,
        claim_fields: Mapping[str, Any] | None = None,
    ) -> RunKey:
        """Record a delivery as STARTED.

        The same event delivered again (Lambda's asynchronous retry, or a duplicate delivery) has the
        same key: the record then counts the delivery and keeps the earlier outcome in
        ``previous_outcomes`` instead of silently overwriting it; this delivery becomes its owner.
        ``claim_fields`` are the slot claim's (:data:`CLAIM_FIELDS`: ``rerun``, ``replaced``).
        """
        key = run_key(event)
        started = iso_utc(started_at)
        item: dict[str, Any] = {
            TASK_RUNS.partition_key: key.pk,
            TASK_RUNS.sort_key: key.sk,
            "gsi1pk": f"RUNDATE#{started[:10]}",
            "gsi1sk": f"{started}#{event.task}",
            "task": event.task,
            "task_type": event.task_type,
            "runtime": runtime,
            "status": RunStatus.STARTED.value,
            "scheduled_time": iso_seconds(event.scheduled_time),
            "execution_id": event.execution_id,
            "attempt": event.attempt,
            "deliveries": 1,
            "request_id": request_id,
            "started_at": started,
            TASK_RUNS.ttl_attribute: int((started_at + self._ttl).timestamp()),
            **{name: value for name, value in (claim_fields or {}).items() if name in CLAIM_FIELDS},
        }
        self._claims[key] = _Claim(request_id, started, self._claim(key, item))
        return key

    def adopt(self, key: RunKey, *, request_id: str, started_at: str) -> None:
        """Take over the claim another invocation made with :meth:`start`: a fan-out's summary
        finishes the record its planner started (its request id and start time travel in the
        machine's state), so a planner retried meanwhile still owns the record it restarted."""
        self._claims[key] = _Claim(request_id, started_at, 1)

    def claim_of(self, key: RunKey) -> tuple[str, str]:
        """The request id and start time this recorder's claim on ``key`` holds (for :meth:`adopt`)."""
        claim = self._claim_of(key)
        return claim.request_id, claim.started_at

    def note(self, key: RunKey, detail: Mapping[str, Any]) -> None:
        """Set a STARTED record's ``detail`` (a fan-out's planned totals) while its owner still runs."""
        from botocore.exceptions import ClientError

        claim = self._claim_of(key)
        try:
            self._table.update_item(
                Key={TASK_RUNS.partition_key: key.pk, TASK_RUNS.sort_key: key.sk},
                UpdateExpression="SET #detail = :detail",
                ConditionExpression="#request_id = :request_id AND #started_at = :started_at",
                ExpressionAttributeNames={
                    "#detail": "detail",
                    "#request_id": "request_id",
                    "#started_at": "started_at",
                },
                ExpressionAttributeValues={
                    ":detail": bounded_detail(detail),
                    ":request_id": claim.request_id,
                    ":started_at": claim.started_at,
                },
            )
        except ClientError as error:
            if not _condition_failed(error):
                raise

    def lambda_attempt(self, key: RunKey) -> int:
        """Which of Lambda's attempts at its invocation this run is: 1, 2 after one retry, and so on.

        Lambda's retries keep the request id; a duplicate delivery of the event has its own and
        starts again at 1, so duplicates do not use up the retries of another invocation.
        """
        return self._claim_of(key).lambda_attempt

    def _claim(self, key: RunKey, item: Mapping[str, Any]) -> int:
        """Puts the STARTED record, or restarts the one an earlier delivery left; returns this
        delivery's Lambda attempt (see :meth:`lambda_attempt`)."""
        from botocore.exceptions import ClientError

        table_key = {TASK_RUNS.partition_key: key.pk, TASK_RUNS.sort_key: key.sk}
        for _attempt in range(RESTART_ATTEMPTS):
            try:
                self._table.put_item(
                    Item=item,
                    ConditionExpression="attribute_not_exists(#pk)",
                    ExpressionAttributeNames={"#pk": TASK_RUNS.partition_key},
                )
                return 1
            except ClientError as error:
                if not _condition_failed(error):
                    raise
            earlier = self._table.get_item(Key=table_key, ConsistentRead=True).get("Item")
            if earlier is None:
                continue  # expired or deleted since the put failed: put it afresh
            try:
                return self._restart(table_key, item, earlier)
            except ClientError as error:
                if not _condition_failed(error):
                    raise
        raise RunRecordContentionError(
            f"{key.pk} {key.sk}: {RESTART_ATTEMPTS} other deliveries changed the run record while this one tried"
        )

    def _restart(self, table_key: Mapping[str, str], item: Mapping[str, Any], earlier: Mapping[str, Any]) -> int:
        seen = int(Decimal(str(earlier.get("deliveries", 0))))
        # Earlier attempts of this invocation: the current owner and the outcomes moved aside before,
        # except the late outcomes appended by deliveries that had already been moved aside once.
        earlier_attempts = [
            outcome
            for outcome in (*earlier.get("previous_outcomes", []), earlier)
            if not outcome.get("finished_after_redelivery")
        ]
        attempt = 1 + sum(1 for outcome in earlier_attempts if outcome.get("request_id") == item["request_id"])
        outcome = {name: earlier[name] for name in PREVIOUS_OUTCOME_FIELDS if name in earlier}
        restarted = {name: item[name] for name in (*RESTARTED_FIELDS, *CLAIM_FIELDS) if name in item}
        cleared = (*CLEARED_ON_REDELIVERY, *(name for name in CLAIM_FIELDS if name not in item))
        # The record must still be the one read: no other delivery restarted it (deliveries) and its
        # owner did not finish meanwhile (status), else the outcome moved would be a stale one.
        watched = ("deliveries", "status")
        unchanged = " AND ".join(
            f"#{name} = :seen_{name}" if name in earlier else f"attribute_not_exists(#{name})" for name in watched
        )
        self._table.update_item(
            Key=table_key,
            UpdateExpression=(
                "SET "
                + ", ".join(f"#{name} = :{name}" for name in restarted)
                + ", #previous = list_append(if_not_exists(#previous, :empty), :outcome)"
                + ", #deliveries = :next"
                + " REMOVE "
                + ", ".join(f"#{name}" for name in cleared)
            ),
            ConditionExpression=f"attribute_exists(#pk) AND {unchanged}",
            ExpressionAttributeNames={
                **{f"#{name}": name for name in (*restarted, *cleared)},
                "#pk": TASK_RUNS.partition_key,
                "#previous": "previous_outcomes",
                "#deliveries": "deliveries",
            },
            ExpressionAttributeValues={
                **{f":{name}": value for name, value in restarted.items()},
                **{f":seen_{name}": earlier[name] for name in watched if name in earlier},
                ":empty": [],
                ":outcome": [outcome],
                ":next": seen + 1,
            },
        )
        return attempt

    def _claim_of(self, key: RunKey) -> _Claim:
        try:
            return self._claims[key]
        except KeyError:
            raise LookupError(f"{key.pk} {key.sk} was not started by this recorder") from None

    def finish(
        self,
        key: RunKey,
        *,
        status: RunStatus,
        finished_at: datetime,
        duration_ms: int,
        items_written: int = 0,
        items_rejected: int = 0,
        detail: Mapping[str, Any] | None = None,
        error: RunError | None = None,
    ) -> Finished:
        """Sets the final status and outcome.

        When that write fails for any reason but a lost ownership race (an item DynamoDB refuses,
        text no encoder takes), a minimal FAILED record (``RecordWriteFailed``, saying what the
        outcome was and why it could not be stored) is written instead, so the delivery still ends
        with a final record; only when that fails too does the error propagate (and Lambda retries).
        """
        values: dict[str, Any] = {
            "status": status.value,
            "finished_at": iso_utc(finished_at),
            "duration_ms": duration_ms,
            "items_written": items_written,
            "items_rejected": items_rejected,
            "detail": bounded_detail(detail),
        }
        if error is not None:
            values |= _error_values(error)
        claim = self._claim_of(key)
        del self._claims[key]
        try:
            return Finished(owned=self._write_final(key, claim, values))
        except Exception as failure:  # any failure but a lost race (handled in _write_final)
            outcome = f"{status.value} {error.error_type}" if error is not None else status.value
            fallback = RunError(
                RECORD_WRITE_FAILED,
                f"the run's outcome ({outcome}) could not be recorded: {type(failure).__name__}: {failure}",
                ErrorKind.PERMANENT,
            )
        minimal = {
            "status": RunStatus.FAILED.value,
            "finished_at": values["finished_at"],
            "duration_ms": duration_ms,
            **_error_values(fallback),
        }
        return Finished(owned=self._write_final(key, claim, minimal), fallback=fallback)

    def _write_final(self, key: RunKey, claim: _Claim, values: Mapping[str, Any]) -> bool:
        """Sets ``values`` on the record this delivery owns; False when a later delivery had taken
        it over, and the outcome went into its ``previous_outcomes`` instead."""
        from botocore.exceptions import ClientError

        table_key = {TASK_RUNS.partition_key: key.pk, TASK_RUNS.sort_key: key.sk}
        names = {f"#{name}": name for name in values}
        try:
            self._table.update_item(
                Key=table_key,
                UpdateExpression="SET " + ", ".join(f"#{name} = :{name}" for name in values),
                ConditionExpression="#request_id = :request_id AND #started_at = :started_at",
                ExpressionAttributeNames={**names, "#request_id": "request_id", "#started_at": "started_at"},
                ExpressionAttributeValues={
                    **{f":{name}": value for name, value in values.items()},
                    ":request_id": claim.request_id,
                    ":started_at": claim.started_at,
                },
            )
            return True
        except ClientError as failure:
            if not _condition_failed(failure):
                raise
        # A later delivery restarted the record while this one ran: its status stays, this
        # delivery's outcome joins the earlier ones.
        late = {name: values[name] for name in PREVIOUS_OUTCOME_FIELDS if name in values}
        late |= {"request_id": claim.request_id, "started_at": claim.started_at, "finished_after_redelivery": True}
        self._table.update_item(
            Key=table_key,
            UpdateExpression="SET #previous = list_append(if_not_exists(#previous, :empty), :outcome)",
            ExpressionAttributeNames={"#previous": "previous_outcomes"},
            ExpressionAttributeValues={":empty": [], ":outcome": [late]},
        )
        return False


def _error_values(error: RunError) -> dict[str, str]:
    return {
        "error_type": _scrubbed(error.error_type)[:MAX_ERROR_MESSAGE],
        "error_message": _scrubbed(error.message)[:MAX_ERROR_MESSAGE],
        "error_kind": error.kind.value,
    }


def _condition_failed(error: Any) -> bool:
    return bool(error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException")


class RunHistory:
    """Reads run records back, newest first (for ``kairos runs`` and the daily summary)."""

    def __init__(self, table: Table) -> None:
        self._table = table

    def for_task(self, task: str, *, limit: int) -> list[dict[str, Any]]:
        response = self._table.query(
            KeyConditionExpression="#pk = :pk AND begins_with(#sk, :run)",
            ExpressionAttributeNames={"#pk": TASK_RUNS.partition_key, "#sk": TASK_RUNS.sort_key},
            ExpressionAttributeValues={":pk": f"TASK#{task}", ":run": "RUN#"},
            ScanIndexForward=False,
            Limit=limit,
        )
        return list(response.get("Items", []))

    def on_date(self, day: str) -> Iterator[dict[str, Any]]:
        """Every run started on ``day`` (UTC, YYYY-MM-DD), newest first."""
        return query_index(self._table, TASK_RUNS.indexes[0], f"RUNDATE#{day}", newest_first=True)

    def recent(self, *, limit: int, today: datetime, days: int = 7) -> list[dict[str, Any]]:
        runs: list[dict[str, Any]] = []
        for offset in range(days):
            day = (today - timedelta(days=offset)).astimezone(UTC).strftime("%Y-%m-%d")
            for item in self.on_date(day):
                runs.append(item)
                if len(runs) >= limit:
                    return runs
        return runs
