"""Run records under duplicate and racing deliveries of one event: every delivery counts, the
record's final status is its owner's, and no outcome is lost."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from kairos_runtime.events import ScheduledEvent
from kairos_runtime.runs import RESTART_ATTEMPTS, RunKey, RunRecordContentionError, RunRecorder, RunStatus
from kairos_runtime.tables import TASK_RUNS

RUNS_TABLE = "kairos-test-TaskRuns"
SCHEDULED = datetime(2026, 11, 27, 1, 30, tzinfo=UTC)
EVENT = ScheduledEvent(task="probe", task_type="probe", scheduled_time=SCHEDULED, execution_id="exec-1")


def recorder(dynamodb: Any) -> RunRecorder:
    return RunRecorder(dynamodb.Table(RUNS_TABLE), ttl_days=90)


def start(recorder_: RunRecorder, request_id: str, seconds: int) -> RunKey:
    started = SCHEDULED + timedelta(seconds=seconds)
    return recorder_.start(EVENT, runtime="python3.13", request_id=request_id, started_at=started)


def finish(recorder_: RunRecorder, key: RunKey, status: RunStatus, seconds: int) -> None:
    recorder_.finish(key, status=status, finished_at=SCHEDULED + timedelta(seconds=seconds), duration_ms=1000)


def record(dynamodb: Any, key: RunKey) -> dict[str, Any]:
    item: dict[str, Any] = dynamodb.Table(RUNS_TABLE).get_item(
        Key={TASK_RUNS.partition_key: key.pk, TASK_RUNS.sort_key: key.sk}
    )["Item"]
    return item


def test_a_delivery_that_finishes_after_a_redelivery_took_over_keeps_its_outcome_but_not_the_status(
    dynamodb: Any,
) -> None:
    first, second = recorder(dynamodb), recorder(dynamodb)
    key = start(first, "request-a", 1)
    start(second, "request-b", 2)  # a duplicate delivery while the first still runs

    finish(first, key, RunStatus.SUCCEEDED, 3)

    racing = record(dynamodb, key)
    assert (racing["status"], racing["request_id"], racing["deliveries"]) == ("STARTED", "request-b", Decimal(2))
    [seen_at_restart, late] = racing["previous_outcomes"]
    assert (seen_at_restart["status"], seen_at_restart["request_id"]) == ("STARTED", "request-a")
    assert late == {
        "status": "SUCCEEDED",
        "request_id": "request-a",
        "started_at": "2026-11-27T01:30:01.000Z",
        "finished_at": "2026-11-27T01:30:03.000Z",
        "finished_after_redelivery": True,
    }

    finish(second, key, RunStatus.FAILED, 4)

    final = record(dynamodb, key)
    assert (final["status"], final["request_id"], final["finished_at"]) == (
        "FAILED",
        "request-b",
        "2026-11-27T01:30:04.000Z",
    )
    assert len(final["previous_outcomes"]) == 2


def test_lambdas_own_retry_keeps_the_request_id_and_is_told_apart_by_its_start(dynamodb: Any) -> None:
    original, retry = recorder(dynamodb), recorder(dynamodb)
    key = start(original, "request-a", 1)
    start(retry, "request-a", 60)

    finish(original, key, RunStatus.FAILED, 61)
    assert record(dynamodb, key)["status"] == "STARTED", "the stale attempt must not close the retry's record"
    finish(retry, key, RunStatus.SUCCEEDED, 62)

    final = record(dynamodb, key)
    assert (final["status"], final["started_at"]) == ("SUCCEEDED", "2026-11-27T01:31:00.000Z")


def test_a_redelivery_extends_the_records_expiry(dynamodb: Any) -> None:
    key = start(recorder(dynamodb), "request-a", 1)
    first_expiry = record(dynamodb, key)[TASK_RUNS.ttl_attribute]

    start(recorder(dynamodb), "request-b", 3600)

    assert record(dynamodb, key)[TASK_RUNS.ttl_attribute] == first_expiry + 3599


class InterleavingTable:
    """The TaskRuns table, with something happening to the record right after this delivery reads it
    (what another Lambda instance running the same event can do): by default another delivery
    restarts it, ``competitors`` times."""

    def __init__(self, dynamodb: Any, competitors: int, meanwhile: Callable[[int], None] | None = None) -> None:
        self._table = dynamodb.Table(RUNS_TABLE)
        self._dynamodb = dynamodb
        self.competitors = competitors
        self.competed = 0
        self._meanwhile = meanwhile or self._competitor_restarts

    def _competitor_restarts(self, number: int) -> None:
        start(recorder(self._dynamodb), f"competitor-{number}", 10 + number)

    def get_item(self, **kwargs: Any) -> Any:
        snapshot = self._table.get_item(**kwargs)
        if self.competed < self.competitors:
            self.competed += 1
            self._meanwhile(self.competed)
        return snapshot

    def __getattr__(self, name: str) -> Any:
        return getattr(self._table, name)


def test_racing_redeliveries_each_count_and_each_earlier_outcome_is_kept(dynamodb: Any) -> None:
    key = start(recorder(dynamodb), "request-a", 1)
    interleaved = InterleavingTable(dynamodb, competitors=1)
    late = RunRecorder(interleaved, ttl_days=90)  # type: ignore[arg-type]

    late.start(EVENT, runtime="python3.13", request_id="request-c", started_at=SCHEDULED + timedelta(seconds=20))

    final = record(dynamodb, key)
    assert final["deliveries"] == Decimal(3)
    assert final["request_id"] == "request-c"
    assert [outcome["request_id"] for outcome in final["previous_outcomes"]] == ["request-a", "competitor-1"]


def test_a_delivery_that_never_gets_a_quiet_moment_gives_up_with_a_clear_error(dynamodb: Any) -> None:
    key = start(recorder(dynamodb), "request-a", 1)
    interleaved = InterleavingTable(dynamodb, competitors=RESTART_ATTEMPTS)
    late = RunRecorder(interleaved, ttl_days=90)  # type: ignore[arg-type]

    with pytest.raises(RunRecordContentionError, match="changed the run record"):
        late.start(EVENT, runtime="python3.13", request_id="request-z", started_at=SCHEDULED + timedelta(seconds=30))

    final = record(dynamodb, key)
    assert final["deliveries"] == Decimal(1 + RESTART_ATTEMPTS), "every competitor still counted"
    assert final["request_id"] == f"competitor-{RESTART_ATTEMPTS}"


def test_an_owner_finishing_between_a_redeliverys_read_and_write_keeps_its_outcome(dynamodb: Any) -> None:
    owner = recorder(dynamodb)
    key = start(owner, "request-a", 1)
    interleaved = InterleavingTable(
        dynamodb, competitors=1, meanwhile=lambda _number: finish(owner, key, RunStatus.SUCCEEDED, 5)
    )
    redelivery = RunRecorder(interleaved, ttl_days=90)  # type: ignore[arg-type]

    redelivery.start(EVENT, runtime="python3.13", request_id="request-b", started_at=SCHEDULED + timedelta(seconds=6))

    final = record(dynamodb, key)
    assert (final["status"], final["request_id"], final["deliveries"]) == ("STARTED", "request-b", Decimal(2))
    [kept] = final["previous_outcomes"]
    assert (kept["status"], kept["request_id"], kept["finished_at"]) == (
        "SUCCEEDED",
        "request-a",
        "2026-11-27T01:30:05.000Z",
    ), "the outcome moved aside is the owner's final one, not the STARTED state read before it"


def test_a_record_that_vanishes_after_a_failed_put_is_put_afresh_not_half_restarted(dynamodb: Any) -> None:
    key = start(recorder(dynamodb), "request-a", 1)
    table_key = {TASK_RUNS.partition_key: key.pk, TASK_RUNS.sort_key: key.sk}
    runs = dynamodb.Table(RUNS_TABLE)

    class ExpiringTable(InterleavingTable):
        def get_item(self, **kwargs: Any) -> Any:
            runs.delete_item(Key=table_key)  # TTL deletion, say, between the failed put and this read
            return runs.get_item(**kwargs)

    fresh = RunRecorder(ExpiringTable(dynamodb, competitors=0), ttl_days=90)  # type: ignore[arg-type]
    fresh.start(EVENT, runtime="python3.13", request_id="request-b", started_at=SCHEDULED + timedelta(seconds=2))

    final = record(dynamodb, key)
    assert (final["request_id"], final["deliveries"], final["task"], final["runtime"]) == (
        "request-b",
        Decimal(1),
        "probe",
        "python3.13",
    )
    assert fresh.lambda_attempt(key) == 1


def test_finishing_a_run_this_recorder_did_not_start_says_so(dynamodb: Any) -> None:
    with pytest.raises(LookupError, match="was not started by this recorder"):
        finish(recorder(dynamodb), RunKey("TASK#probe", "RUN#x"), RunStatus.SUCCEEDED, 1)
