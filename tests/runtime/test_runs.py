"""Run records under duplicate and racing deliveries of one event: every delivery counts, the
record's final status is its owner's, and no outcome is lost."""

from __future__ import annotations

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
    """The TaskRuns table, with other deliveries restarting the record right after this one reads it
    (what two Lambda instances running the same event at once can do)."""

    def __init__(self, dynamodb: Any, competitors: int) -> None:
        self._table = dynamodb.Table(RUNS_TABLE)
        self._dynamodb = dynamodb
        self.competitors = competitors
        self.competed = 0

    def get_item(self, **kwargs: Any) -> Any:
        snapshot = self._table.get_item(**kwargs)
        if self.competed < self.competitors:
            self.competed += 1
            start(recorder(self._dynamodb), f"competitor-{self.competed}", 10 + self.competed)
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

    with pytest.raises(RunRecordContentionError, match="restarted the run record"):
        late.start(EVENT, runtime="python3.13", request_id="request-z", started_at=SCHEDULED + timedelta(seconds=30))

    final = record(dynamodb, key)
    assert final["deliveries"] == Decimal(1 + RESTART_ATTEMPTS), "every competitor still counted"
    assert final["request_id"] == f"competitor-{RESTART_ATTEMPTS}"
