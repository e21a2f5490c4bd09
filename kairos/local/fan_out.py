"""A fan-out task on this machine: plan, then the batches on a thread pool, then the summary, through
the real handler functions, as the state machine would run them (``kairos_stack/fan_out_task.py``).

The pool has ``max_concurrency`` threads (the Map's MaxConcurrency); each batch paces itself at its
share of the rate, as in AWS. A batch failing with ``BatchTransientError`` is retried as the
machine's Retry says (the plan's attempts, backoff and full jitter); any other failure, or the last
transient one, is caught as the machine's Catch does: ``{"index", "error"}``, and the others go on.

A plan past an inline Map's limits answers with its batches' object instead of the batches
(docs/adr/0164): the driver reads them from the same store the planner wrote them to (``objects``, a
directory for ``kairos run``), and writes the batches' results there as the Distributed Map's
ResultWriter does (a manifest and a result file), so the summary reads them as in AWS.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from kairos.plan import RetryPlan
from kairos_runtime.fan_out_objects import ObjectStore, checked_key, write_map_results

Step = Callable[[dict[str, Any], Any], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class LocalFanOutResult:
    planned: Mapping[str, Any]
    """The plan step's answer."""
    results: tuple[Mapping[str, Any], ...]
    """Each batch's report, or ``{"index", "error"}``, in batch order."""
    response: Mapping[str, Any]
    """The summary's answer (or the plan's, when the run ended there)."""
    attempts: Mapping[int, int]
    """Attempts per batch index."""


def _retried(
    step: Step, payload: dict[str, Any], context: Callable[[], Any], retry: RetryPlan, sleep: Callable[[float], None]
) -> tuple[dict[str, Any], int]:
    attempt = 0
    while True:
        attempt += 1
        try:
            return step(payload, context()), attempt
        except Exception as error:
            name = type(error).__name__
            if name not in retry.errors or attempt > retry.max_attempts:
                return {"index": payload["batch"]["index"], "error": name}, attempt
            ceiling = min(retry.max_delay_seconds, retry.interval_seconds * retry.backoff_rate ** (attempt - 1))
            sleep(random.uniform(0, ceiling))  # noqa: S311 - full jitter, as Step Functions' JitterStrategy FULL


def drive(
    event: dict[str, Any],
    *,
    plan: Step,
    batch: Step,
    summarize: Step,
    max_concurrency: int,
    batch_retry: RetryPlan,
    contexts: Mapping[str, Callable[[], Any]],
    objects: ObjectStore | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> LocalFanOutResult:
    """Run the three steps as the state machine does; ``contexts`` builds each step's Lambda context."""
    planned = plan(event, contexts["plan"]())
    if not planned.get("planned"):
        return LocalFanOutResult(planned, (), planned.get("response") or {}, {})
    distributed = "items" in planned
    if distributed:
        if objects is None:
            raise ValueError("a distributed plan needs the fan-out object store its planner wrote to")
        items = objects.get_json(checked_key(objects, planned["items"], str(event["task"])))
    else:
        items = planned["batches"]
    payloads = [
        {"event": event, "batch": item, "shared": planned["shared"], "rate_per_batch": planned["rate_per_batch"]}
        for item in items
    ]
    with ThreadPoolExecutor(max_workers=max_concurrency, thread_name_prefix="batch") as pool:
        outcomes = list(
            pool.map(lambda payload: _retried(batch, payload, contexts["batch"], batch_retry, sleep), payloads)
        )
    results = tuple(result for result, _ in outcomes)
    attempts = {payload["batch"]["index"]: tries for payload, (_, tries) in zip(payloads, outcomes, strict=True)}
    map_results: Any = list(results)
    if objects is not None and distributed:
        run = str(planned["items"]["key"]).rsplit("/", 1)[-1].removesuffix(".json")
        map_results = {"ResultWriterDetails": write_map_results(objects, str(event["task"]), run, payloads, results)}
    response = summarize({"event": event, "plan": planned, "results": map_results}, contexts["summarize"]())
    return LocalFanOutResult(planned, results, response, attempts)
