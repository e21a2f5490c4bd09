"""One claim per scheduled slot: the item that makes a slot's effect happen once.

Scheduler and Lambda deliver at least once, and a run record is per delivery
(``RUN#<slot>#<execution_id>#<attempt>``, :mod:`kairos_runtime.runs`): a duplicate with another
execution id, or an operator's ``kairos invoke``, would be a second record and a second run. Every
valid delivery therefore first claims its slot in the same TaskRuns partition::

  pk  TASK#<task>                 (the function's IAM grant: LeadingKeys TASK#<task>)
  sk  SLOT#<scheduled_time>       (no gsi1pk: the item is not in the by_date index, and no
                                   RUN# prefix: no query for runs reads it)

with a conditional write, and only the delivery that holds the claim runs the task:

* no claim yet, or the slot's last run FAILED: this delivery claims it and runs;
* the slot SUCCEEDED or was SKIPPED: not run again; the delivery is counted and listed in
  ``declined`` and answers with the earlier run's result (``"declined": "done"``), unless the event
  says ``rerun: true``, which claims the slot again and says which outcome it replaced;
* a run holds the claim and its lease has not passed (the owner's Lambda deadline, from
  ``get_remaining_time_in_millis``, plus ``CLAIM_MARGIN_SECONDS``): not started twice; the
  delivery is counted and listed and answers ``"declined": "in_progress"``. A rerun waits for it too;
* the lease has passed and the slot is still STARTED: its owner crashed or timed out, and this
  delivery recovers the slot.

Every claim or decline is conditional on the claim read being still the slot's (its ``status`` and
``claimed_at``), so exactly one of racing deliveries claims and each decline answers from the state
it was counted under; ``deliveries`` is added to, so racing declines do not contend with each other.
``docs/adr/0140-exactly-once-per-slot.md`` says why this is not Powertools Idempotency, and why an
in-progress decline fails only for the owner's own invocation.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import msgspec

from kairos_runtime.events import ScheduledEvent, iso_seconds
from kairos_runtime.runs import RESTART_ATTEMPTS, RunRecordContentionError, RunStatus, iso_utc
from kairos_runtime.tables import TASK_RUNS

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

SLOT_PREFIX = "SLOT#"
CLAIM_MARGIN_SECONDS = 10
"""Added to the owner's Lambda deadline before its claim may be recovered: clock skew between
instances and the writes of a run finishing at its deadline. Below Lambda's one-minute wait before a
retry, so the retry of a timed-out invocation finds the lease passed."""
DECLINED_KEPT = 100
"""How many declined deliveries a slot lists (the first ones, about 150 bytes each: the item stays far
below 400 KB); ``deliveries`` counts them all."""
DONE = frozenset({RunStatus.SUCCEEDED.value, RunStatus.SKIPPED.value})
"""A slot with one of these outcomes is not run again without ``rerun``."""
REPLACED_FIELDS = ("status", "run_id", "request_id", "claimed_at", "finished_at")
"""What a new claim keeps of the one it replaced (on the slot and on its run record)."""
CLEARED_ON_CLAIM = ("result", "finished_at", "rerun", "replaced")
"""The earlier claim's outcome, removed by a new claim until its own settle sets them."""


class SlotInProgressError(RuntimeError):
    """This invocation's own earlier attempt still holds the slot's claim (Lambda retried it, or
    delivered it twice, before the lease passed): the delivery fails, so Lambda retries it later."""


class Decline(StrEnum):
    """Why a delivery did not run."""

    DONE = "done"
    """The slot already SUCCEEDED or was SKIPPED."""
    IN_PROGRESS = "in_progress"
    """Another delivery holds the claim, and its lease has not passed."""


def slot_key(event: ScheduledEvent) -> dict[str, str]:
    return {
        TASK_RUNS.partition_key: f"TASK#{event.task}",
        TASK_RUNS.sort_key: f"{SLOT_PREFIX}{iso_seconds(event.scheduled_time)}",
    }


class Claimed(msgspec.Struct, frozen=True):
    """This delivery holds the slot: it runs, then :meth:`SlotLedger.settle` records the outcome."""

    key: Mapping[str, str]
    request_id: str
    claimed_at: str
    rerun: bool
    replaced: Mapping[str, Any] | None
    """The earlier claim this one took over (a FAILED run, a crashed one, or with ``rerun`` a done one)."""

    def run_fields(self) -> dict[str, Any]:
        """What the run record says about the claim: ``rerun`` and the outcome it ``replaced``."""
        fields: dict[str, Any] = {}
        if self.rerun:
            fields["rerun"] = True
        if self.replaced is not None:
            fields["replaced"] = dict(self.replaced)
        return fields


class Declined(msgspec.Struct, frozen=True):
    """This delivery does not run: the slot is done, or in progress."""

    reason: Decline
    slot: Mapping[str, Any]
    """The slot item as read before this delivery was counted (left out of the repr)."""
    own_invocation: bool
    """The claim is held by this very invocation (same request id): Lambda retried it, or delivered
    it twice, while the lease holds."""

    def __repr__(self) -> str:
        return f"Declined(reason={self.reason!r}, own_invocation={self.own_invocation!r})"

    def response(self, task: str) -> dict[str, Any]:
        """The answer: the earlier run's result when the slot is done, else the run in progress."""
        if self.reason is Decline.DONE and isinstance(self.slot.get("result"), Mapping):
            answer = _plain(self.slot["result"])
        else:
            answer = {"task": task, "status": str(self.slot.get("status")), "run_id": str(self.slot.get("run_id"))}
        return {**answer, "declined": self.reason.value}


class SlotLedger:
    """Claims, declines and settles slots in the TaskRuns table (one instance per delivery)."""

    def __init__(self, table: Table, *, ttl_days: int) -> None:
        self._table = table
        self._ttl = timedelta(days=ttl_days)

    def claim(
        self,
        event: ScheduledEvent,
        *,
        run_id: str,
        request_id: str,
        execution_id: str,
        now: datetime,
        lease: timedelta,
    ) -> Claimed | Declined:
        """Claims the event's slot for this delivery, or records why it does not run.

        ``lease`` is how long this delivery may still run (Lambda's remaining time); ``run_id`` the
        sort key of the run record it will write.
        """
        from botocore.exceptions import ClientError

        key = slot_key(event)
        claimed_at = iso_utc(now)
        owner: dict[str, Any] = {
            "status": RunStatus.STARTED.value,
            "run_id": run_id,
            "request_id": request_id,
            "claimed_at": claimed_at,
            "lease_expires_at": iso_utc(now + lease + timedelta(seconds=CLAIM_MARGIN_SECONDS)),
            TASK_RUNS.ttl_attribute: int((now + self._ttl).timestamp()),
        }
        if event.rerun:
            owner["rerun"] = True
        for _attempt in range(RESTART_ATTEMPTS):
            try:
                self._table.put_item(
                    Item={
                        **key,
                        "task": event.task,
                        "scheduled_time": iso_seconds(event.scheduled_time),
                        **owner,
                        "deliveries": 1,
                    },
                    ConditionExpression="attribute_not_exists(#pk)",
                    ExpressionAttributeNames={"#pk": TASK_RUNS.partition_key},
                )
                return Claimed(key, request_id, claimed_at, event.rerun, None)
            except ClientError as error:
                if not _condition_failed(error):
                    raise
            earlier = self._table.get_item(Key=key, ConsistentRead=True).get("Item")
            if earlier is None:
                continue  # expired since the put failed: put it afresh
            reason = _decline_reason(earlier, rerun=event.rerun, now=now)
            try:
                if reason is None:
                    replaced = {name: earlier[name] for name in REPLACED_FIELDS if name in earlier}
                    self._take_over(key, earlier, {**owner, "replaced": replaced})
                    return Claimed(key, request_id, claimed_at, event.rerun, replaced)
                declined = {
                    "request_id": request_id,
                    "execution_id": execution_id,
                    "attempt": event.attempt,
                    "at": claimed_at,
                    "reason": reason.value,
                }
                self._count_declined(key, earlier, declined)
                return Declined(reason, earlier, own_invocation=earlier.get("request_id") == request_id)
            except ClientError as error:
                if not _condition_failed(error):
                    raise
        raise RunRecordContentionError(
            f"{key[TASK_RUNS.partition_key]} {key[TASK_RUNS.sort_key]}: {RESTART_ATTEMPTS} other deliveries "
            "changed the slot while this one tried"
        )

    def _take_over(self, key: Mapping[str, str], earlier: Mapping[str, Any], owner: Mapping[str, Any]) -> None:
        cleared = [name for name in CLEARED_ON_CLAIM if name not in owner]
        self._table.update_item(
            Key=key,
            UpdateExpression=(
                "SET "
                + ", ".join(f"#{name} = :{name}" for name in owner)
                + (" REMOVE " + ", ".join(f"#{name}" for name in cleared) if cleared else "")
                + " ADD #deliveries :one"
            ),
            **_unchanged(
                earlier,
                names={f"#{name}": name for name in (*owner, *cleared)},
                values={f":{name}": value for name, value in owner.items()},
            ),
        )

    def _count_declined(self, key: Mapping[str, str], earlier: Mapping[str, Any], declined: Mapping[str, Any]) -> None:
        listed = len(earlier.get("declined", []))
        self._table.update_item(
            Key=key,
            UpdateExpression=(
                "SET #declined = list_append(if_not_exists(#declined, :empty), :declined) ADD #deliveries :one"
                if listed < DECLINED_KEPT
                else "ADD #deliveries :one"
            ),
            **_unchanged(
                earlier,
                names={"#declined": "declined"} if listed < DECLINED_KEPT else {},
                values={":empty": [], ":declined": [dict(declined)]} if listed < DECLINED_KEPT else {},
            ),
        )

    def settle(self, claimed: Claimed, *, status: RunStatus, result: Mapping[str, Any], finished_at: datetime) -> bool:
        """Records the run's outcome on the slot it claimed; False when a later delivery took the slot
        over meanwhile (its lease had passed), which then decides."""
        from botocore.exceptions import ClientError

        try:
            self._table.update_item(
                Key=claimed.key,
                UpdateExpression="SET #status = :status, #result = :result, #finished_at = :finished_at",
                ConditionExpression="#request_id = :request_id AND #claimed_at = :claimed_at",
                ExpressionAttributeNames={
                    "#status": "status",
                    "#result": "result",
                    "#finished_at": "finished_at",
                    "#request_id": "request_id",
                    "#claimed_at": "claimed_at",
                },
                ExpressionAttributeValues={
                    ":status": status.value,
                    ":result": dict(result),
                    ":finished_at": iso_utc(finished_at),
                    ":request_id": claimed.request_id,
                    ":claimed_at": claimed.claimed_at,
                },
            )
            return True
        except ClientError as error:
            if not _condition_failed(error):
                raise
        return False


def _unchanged(earlier: Mapping[str, Any], *, names: dict[str, str], values: dict[str, Any]) -> dict[str, Any]:
    """An update's condition that the slot still holds the claim read (``status`` and ``claimed_at``),
    with ``names`` and ``values`` and what the condition and ``ADD #deliveries :one`` need."""
    return {
        "ConditionExpression": "#status = :seen_status AND #claimed_at = :seen_claimed_at",
        "ExpressionAttributeNames": {
            **names,
            "#status": "status",
            "#claimed_at": "claimed_at",
            "#deliveries": "deliveries",
        },
        "ExpressionAttributeValues": {
            **values,
            ":seen_status": earlier.get("status"),
            ":seen_claimed_at": earlier.get("claimed_at"),
            ":one": 1,
        },
    }


def _decline_reason(slot: Mapping[str, Any], *, rerun: bool, now: datetime) -> Decline | None:
    """Why a delivery at ``now`` may not claim ``slot``; None when it may."""
    status = slot.get("status")
    if status == RunStatus.STARTED.value:
        try:
            lease = datetime.fromisoformat(str(slot.get("lease_expires_at")))
        except ValueError:
            return None  # no lease to keep
        return Decline.IN_PROGRESS if now < lease else None
    if status in DONE and not rerun:
        return Decline.DONE
    return None


def _plain(value: Any) -> Any:
    """An item value as JSON: DynamoDB's numbers (``Decimal``) as ints or floats."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, Mapping):
        return {str(name): _plain(member) for name, member in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(member) for member in value]
    return value


def _condition_failed(error: Any) -> bool:
    return bool(error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException")
