"""Run a fan-out task's steps the way its state machine does, in a fresh interpreter: ``python -m``.

Arguments: EVENT_FILE RESULT_FILE FUNCTION_NAME FAN_OUT_JSON [STARTED_FILE]. FAN_OUT_JSON holds the
functions (each step's memory, timeout and, from a cloud assembly, its handler: the fan-out handler's
own when absent), the Map's concurrency and the batch retry (``kairos.local.invoke``'s
``fan_out_driver_arguments``). STARTED_FILE is created once the handlers are imported (``kairos
local`` counts the machine's timeout from then). The handlers' logs go to stdout; the outcome is
written as JSON to RESULT_FILE.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from functools import partial
from pathlib import Path
from typing import Any

from kairos.local.fan_out import drive
from kairos.local.python_invoke import LocalLambdaContext
from kairos.plan import RetryPlan
from kairos_runtime.fan_out_objects import DirectoryObjects
from kairos_runtime.settings import FAN_OUT_DIR_ENV

STEP_HANDLERS = {step: f"kairos_runtime.fan_out_handler.{step}" for step in ("plan", "batch", "summarize")}


def _handler(path: str) -> Any:
    module, _, attribute = path.rpartition(".")
    return getattr(importlib.import_module(module), attribute)


def main(argv: list[str]) -> int:
    event_file, result_file, function_name, fan_out_json, *started_file = argv
    event = json.loads(Path(event_file).read_text(encoding="utf-8"))
    fan_out = json.loads(fan_out_json)
    # The fan-out bucket's stand-in, beside this run's files (read by the handlers' settings at import).
    objects_dir = os.environ.setdefault(FAN_OUT_DIR_ENV, str(Path(result_file).parent / "fan-out-objects"))
    steps = {step: _handler(fan_out["functions"][step].get("handler", path)) for step, path in STEP_HANDLERS.items()}
    if started_file:
        Path(started_file[0]).touch()

    def context_for(step: str) -> LocalLambdaContext:
        spec = fan_out["functions"][step]
        return LocalLambdaContext(f"{function_name}-{step}", int(spec["memory"]), int(spec["timeout"]))

    retry = fan_out["batch_retry"]
    try:
        result = drive(
            event,
            plan=steps["plan"],
            batch=steps["batch"],
            summarize=steps["summarize"],
            max_concurrency=int(fan_out["max_concurrency"]),
            batch_retry=RetryPlan(
                errors=tuple(retry["errors"]),
                interval_seconds=int(retry["interval_seconds"]),
                max_attempts=int(retry["max_attempts"]),
                backoff_rate=float(retry["backoff_rate"]),
                max_delay_seconds=int(retry["max_delay_seconds"]),
            ),
            contexts={step: partial(context_for, step) for step in ("plan", "batch", "summarize")},
            objects=DirectoryObjects(Path(objects_dir)),
        )
    except Exception as error:
        outcome = {"ok": False, "error_type": type(error).__name__, "message": str(error)}
    else:
        outcome = {
            "ok": True,
            "response": dict(result.response),
            "batches": len(result.results),
            "batches_caught": sum(1 for each in result.results if "error" in each),
            "map": "distributed" if "items" in result.planned else "inline",
        }
    Path(result_file).write_text(json.dumps(outcome, default=str), encoding="utf-8")
    return 0 if outcome["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
