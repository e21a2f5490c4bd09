"""The records kairos local writes where a run cannot: a killed run's STARTED record closed as
FAILED Timeout (not counted as another delivery), and a record for a fire that never started."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from kairos.local.scheduler import LocalRuns
from kairos_runtime.events import ScheduledEvent
from kairos_runtime.runs import ErrorKind, RunError, RunRecorder, RunStatus

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import DynamoDBServiceResource

EVENT = {
    "task": "stuck",
    "task_type": "simple_task_1",
    "params": {},
    "scheduled_time": "2026-03-08T06:15:00Z",
    "execution_id": "local-1",
    "attempt": "1",
}
TIMEOUT = RunError("Timeout", "timed out after 1 s", ErrorKind.TRANSIENT)


def test_a_killed_runs_started_record_is_closed_as_a_timeout(dynamodb: DynamoDBServiceResource) -> None:
    table = dynamodb.Table("kairos-test-TaskRuns")
    started = datetime(2026, 3, 8, 6, 15, 1, tzinfo=UTC)
    RunRecorder(table, ttl_days=1).start(
        ScheduledEvent.parse(EVENT), runtime="python3.13", request_id="r1", started_at=started
    )

    record = LocalRuns(table).record_final(
        EVENT, runtime="python3.13", status=RunStatus.FAILED, started=started, error=TIMEOUT
    )

    assert record is not None
    assert (record["status"], record["error_type"], record["error_kind"]) == ("FAILED", "Timeout", "transient")
    assert record["request_id"] == "r1"
    assert record["deliveries"] == 1
    assert "finished_at" in record


def test_a_fire_without_a_record_gets_one(dynamodb: DynamoDBServiceResource) -> None:
    table = dynamodb.Table("kairos-test-TaskRuns")
    runs = LocalRuns(table)

    record = runs.record_final(
        EVENT, runtime="nodejs22.x", status=RunStatus.SKIPPED, started=datetime.now(UTC), detail={"skipped": "why"}
    )

    assert record is not None
    assert (record["status"], record["runtime"], record["scheduled_time"]) == (
        "SKIPPED",
        "nodejs22.x",
        "2026-03-08T06:15:00Z",
    )
    assert record["detail"] == {"skipped": "why"}
    assert runs.record_of(EVENT) == record
