"""The scheduled-event forms the Python and Node runtimes both accept or both refuse.

The cases live in ``tests/contract/scheduled_events.json``; ``lambdas/node/test/events.test.mjs``
runs the same file against the Node runtime.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from kairos_runtime.events import ScheduledEvent
from kairos_runtime.validation import InvalidInputError
from tests.conftest import PROJECT_ROOT


def expanded(value: Any) -> Any:
    """A case's value with ``{"$repeat": text, "times": n}`` and ``{"$nest": n}`` written out (see
    the file's ``about``)."""
    if isinstance(value, dict) and "$repeat" in value:
        return value["$repeat"] * value["times"]
    if isinstance(value, dict) and "$nest" in value:
        nested: dict[str, Any] = {}
        for _level in range(value["$nest"] - 1):
            nested = {"a": nested}
        return nested
    if isinstance(value, dict):
        return {key: expanded(member) for key, member in value.items()}
    return value


CASES = json.loads((PROJECT_ROOT / "tests" / "contract" / "scheduled_events.json").read_text(encoding="utf-8"))
DELIVERED: dict[str, Any] = CASES["delivered"]


@pytest.mark.parametrize("case", CASES["accepted"], ids=lambda case: json.dumps(case["change"])[:80])
def test_an_accepted_form_reads_as_the_node_runtime_reads_it(case: dict[str, Any]) -> None:
    event = ScheduledEvent.parse(DELIVERED | expanded(case["change"]))

    written = event.as_json()
    assert (written["scheduled_time"], written["attempt"]) == (case["scheduled_time"], case["attempt"])
    assert type(written["attempt"]) is int
    assert event.rerun is case.get("rerun", False)
    assert written.get("rerun") is (True if event.rerun else None), "only a rerun is written with it"


@pytest.mark.parametrize("case", CASES["refused"], ids=lambda case: json.dumps(case["change"])[:80])
def test_a_refused_form_names_its_field_as_the_node_runtime_does(case: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError) as invalid:
        ScheduledEvent.parse(DELIVERED | expanded(case["change"]))

    assert invalid.value.location == case["field"]


@pytest.mark.parametrize("case", CASES["past_slot"]["cases"], ids=json.dumps)
def test_a_late_delivery_runs_or_is_refused_as_the_node_runtime_decides(case: dict[str, Any]) -> None:
    from kairos_runtime.settings import LATE_DELIVERY_LIMIT_ENV, RuntimeSettings

    limit = case["limit_seconds"]
    settings = RuntimeSettings.from_environ({} if limit is None else {LATE_DELIVERY_LIMIT_ENV: str(limit)})

    refused = settings.refuses_past_slot(backfill=case["backfill"], lateness_seconds=case["lateness_seconds"])

    assert refused is not case["runs"]


@pytest.mark.parametrize("case", CASES["task_pinning"]["cases"], ids=json.dumps)
def test_a_function_runs_only_its_own_tasks_as_the_node_runtime_decides(case: dict[str, Any]) -> None:
    from kairos_runtime.settings import RuntimeSettings

    # Given the environment the plan gives a function (one task, or a shared function's list)
    settings = RuntimeSettings.from_environ(case["env"])

    # When an event names a task, Then it runs or is refused, and is recorded under the same task
    assert settings.refusal(case["task"]) == case["message"]
    assert settings.recording_task == case["recorded_under"]


@pytest.mark.parametrize("text", CASES["task_pinning"]["malformed"])
def test_a_malformed_task_list_fails_the_cold_start(text: str) -> None:
    from kairos_runtime.settings import TASKS_ENV, RuntimeSettings
    from kairos_runtime.validation import InvalidInputError

    with pytest.raises(InvalidInputError):
        RuntimeSettings.from_environ({TASKS_ENV: text})
