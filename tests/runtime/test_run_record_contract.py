"""The run-record scenarios both runtimes replay, against moto here.

The scenarios live in ``tests/contract/run_records.json`` (``scenarios``: the run record alone;
``slot_scenarios``: deliveries claiming the slot, then starting their run record);
``lambdas/node/test/run-records.test.mjs`` replays the same file against the Node runtime on
dynalite, asserting the same stored records.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from kairos_runtime.events import ScheduledEvent
from kairos_runtime.runs import (
    ErrorKind,
    RunError,
    RunKey,
    RunRecordContentionError,
    RunRecorder,
    RunStatus,
    run_key,
)
from kairos_runtime.slots import Claimed, Declined, SlotLedger
from kairos_runtime.tables import TASK_RUNS
from tests.conftest import PROJECT_ROOT

SCENARIOS = json.loads((PROJECT_ROOT / "tests" / "contract" / "run_records.json").read_text(encoding="utf-8"))
RUNS_TABLE = "kairos-test-TaskRuns"
EVENT = ScheduledEvent.parse(SCENARIOS["event"])
SCHEDULED = datetime.fromisoformat(SCENARIOS["event"]["scheduled_time"])


def at(seconds: int) -> datetime:
    return SCHEDULED + timedelta(seconds=seconds)


class RivalsBetweenReadAndWrite:
    """The TaskRuns table, where after each of this delivery's reads one rival delivery restarts the
    record before this delivery's conditional write (what another Lambda instance can do)."""

    def __init__(self, dynamodb: Any, rivals: list[dict[str, Any]]) -> None:
        self._dynamodb = dynamodb
        self._table = dynamodb.Table(RUNS_TABLE)
        self._rivals = list(rivals)

    def get_item(self, **kwargs: Any) -> Any:
        snapshot = self._table.get_item(**kwargs)
        if self._rivals:
            rival = self._rivals.pop(0)
            RunRecorder(self._dynamodb.Table(RUNS_TABLE), ttl_days=SCENARIOS["ttl_days"]).start(
                EVENT, runtime=SCENARIOS["runtime"], request_id=rival["request_id"], started_at=at(rival["at"])
            )
        return snapshot

    def __getattr__(self, name: str) -> Any:
        return getattr(self._table, name)


def plain(value: Any) -> Any:
    """A stored item as JSON values: boto3's Decimals become ints (every stored number is whole)."""
    if isinstance(value, Decimal):
        return int(value)
    if isinstance(value, dict):
        return {name: plain(member) for name, member in value.items()}
    if isinstance(value, list):
        return [plain(member) for member in value]
    return value


def replay(dynamodb: Any, steps: list[dict[str, Any]]) -> None:
    deliveries: dict[str, tuple[RunRecorder, RunKey]] = {}
    key = RunKey(pk=SCENARIOS["record_base"]["pk"], sk=SCENARIOS["record_base"]["sk"])
    for number, step in enumerate(steps, start=1):
        where = f"step {number}: {json.dumps(step)}"
        if "start" in step:
            recorder = RunRecorder(
                RivalsBetweenReadAndWrite(dynamodb, step.get("rivals", [])),  # type: ignore[arg-type]
                ttl_days=SCENARIOS["ttl_days"],
            )
            started = {"runtime": SCENARIOS["runtime"], "request_id": step["request_id"], "started_at": at(step["at"])}
            if step.get("error") == "contention":
                with pytest.raises(RunRecordContentionError):
                    recorder.start(EVENT, **started)
                continue
            deliveries[step["start"]] = (recorder, recorder.start(EVENT, **started))
            assert recorder.lambda_attempt(deliveries[step["start"]][1]) == step["lambda_attempt"], where
        elif "finish" in step:
            recorder, delivery_key = deliveries[step["finish"]]
            error = step.get("error")
            finished = recorder.finish(
                delivery_key,
                status=RunStatus(step["status"]),
                finished_at=at(step["at"]),
                duration_ms=1000,
                items_written=step.get("items_written", 0),
                detail=step.get("detail"),
                error=None if error is None else RunError(error["type"], error["message"], ErrorKind(error["kind"])),
            )
            assert finished.owned is step["owned"], where
            assert finished.fallback is None, f"{where}: the outcome was recorded, not a fallback"
        else:
            stored = dynamodb.Table(RUNS_TABLE).get_item(
                Key={TASK_RUNS.partition_key: key.pk, TASK_RUNS.sort_key: key.sk}, ConsistentRead=True
            )["Item"]
            assert plain(stored) == SCENARIOS["record_base"] | step["expect_record"], where


@pytest.mark.parametrize("scenario", SCENARIOS["scenarios"], ids=lambda scenario: scenario["name"])
def test_the_python_recorder_stores_the_records_the_scenario_expects(dynamodb: Any, scenario: dict[str, Any]) -> None:
    replay(dynamodb, scenario["steps"])


SLOT_KEY = {TASK_RUNS.partition_key: SCENARIOS["slot_base"]["pk"], TASK_RUNS.sort_key: SCENARIOS["slot_base"]["sk"]}


def delivered(step: dict[str, Any]) -> ScheduledEvent:
    """The scenario's event as this step delivers it: its own execution id, and rerun when it says so."""
    return ScheduledEvent.parse(
        SCENARIOS["event"] | {"execution_id": step["execution_id"], "rerun": step.get("rerun", False)}
    )


def replay_slots(dynamodb: Any, steps: list[dict[str, Any]]) -> None:
    table = dynamodb.Table(RUNS_TABLE)
    claims: dict[str, tuple[Claimed, RunRecorder, RunKey]] = {}
    for number, step in enumerate(steps, start=1):
        where = f"step {number}: {json.dumps(step)}"
        if "deliver" in step:
            event = delivered(step)
            key = run_key(event)
            claim = SlotLedger(table, ttl_days=SCENARIOS["ttl_days"]).claim(
                event,
                run_id=key.sk,
                request_id=step["request_id"],
                execution_id=event.execution_id,
                now=at(step["at"]),
                lease=timedelta(seconds=step.get("lease_s", SCENARIOS["lease_s"])),
            )
            if step["expect"] == "claimed":
                assert isinstance(claim, Claimed), where
                assert plain(claim.replaced) == step.get("replaced"), where
                recorder = RunRecorder(table, ttl_days=SCENARIOS["ttl_days"])
                recorder.start(
                    event,
                    runtime=SCENARIOS["runtime"],
                    request_id=step["request_id"],
                    started_at=at(step["at"]),
                    claim_fields=claim.run_fields(),
                )
                claims[step["deliver"]] = (claim, recorder, key)
            else:
                assert isinstance(claim, Declined), where
                assert claim.reason.value == step["expect"], where
                assert claim.own_invocation is step.get("own_invocation", False), where
                assert claim.response(SCENARIOS["event"]["task"]) == step["expect_response"], where
        elif "settle" in step:
            claim, recorder, key = claims[step["settle"]]
            error = step.get("error")
            run_error = None if error is None else RunError(error["type"], error["message"], ErrorKind(error["kind"]))
            status = RunStatus(step["status"])
            recorder.finish(key, status=status, finished_at=at(step["at"]), duration_ms=1000, error=run_error)
            result: dict[str, Any] = {
                "task": SCENARIOS["event"]["task"],
                "status": status.value,
                "run_id": key.sk,
                "duration_ms": 1000,
                "items_written": 0,
                "items_rejected": 0,
            }
            if error is not None:
                result["error"] = {"type": error["type"], "message": error["message"]}
            assert SlotLedger(table, ttl_days=SCENARIOS["ttl_days"]).settle(
                claim, status=status, result=result, finished_at=at(step["at"])
            ), where
        elif "expect_slot" in step:
            stored = table.get_item(Key=SLOT_KEY, ConsistentRead=True)["Item"]
            assert plain(stored) == SCENARIOS["slot_base"] | step["expect_slot"], where
        else:
            expected = SCENARIOS["record_base"] | step["expect_record"]
            stored = table.get_item(
                Key={TASK_RUNS.partition_key: expected["pk"], TASK_RUNS.sort_key: expected["sk"]}, ConsistentRead=True
            )["Item"]
            assert plain(stored) == expected, where


@pytest.mark.parametrize("scenario", SCENARIOS["slot_scenarios"], ids=lambda scenario: scenario["name"])
def test_the_python_slot_ledger_stores_the_claims_the_scenario_expects(dynamodb: Any, scenario: dict[str, Any]) -> None:
    replay_slots(dynamodb, scenario["steps"])
