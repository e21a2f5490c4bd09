"""Invoke the Python handler the way Lambda does, in a fresh interpreter: ``python -m`` this module.

Arguments: EVENT_FILE RESULT_FILE FUNCTION_NAME MEMORY_MB TIMEOUT_S [HANDLER [STARTED_FILE]]. HANDLER
is the function's ``module.function`` (default: Kairos's own handler); STARTED_FILE is created once
the handler is imported, when its timeout starts counting. The handler's logs go to the process's
stdout as they would to CloudWatch; the outcome is written as JSON to RESULT_FILE.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
import uuid
from pathlib import Path


class LocalLambdaContext:
    def __init__(self, function_name: str, memory_mb: int, timeout_s: int) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = memory_mb
        self.invoked_function_arn = f"arn:aws:lambda:local:000000000000:function:{function_name}"
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/local/{function_name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def main(argv: list[str]) -> int:
    event_file, result_file, function_name, memory_mb, timeout_s, *rest = argv
    handler_path = rest[0] if rest else "kairos_runtime.handler.handler"
    event = json.loads(Path(event_file).read_text(encoding="utf-8"))
    module_name, _, attribute = handler_path.rpartition(".")
    handler = getattr(importlib.import_module(module_name), attribute)
    context = LocalLambdaContext(function_name, int(memory_mb), int(timeout_s))
    if len(rest) > 1:
        Path(rest[1]).touch()

    try:
        response = handler(event, context)
    except Exception as error:
        outcome = {"ok": False, "error_type": type(error).__name__, "message": str(error)}
    else:
        outcome = {"ok": True, "response": response}
    Path(result_file).write_text(json.dumps(outcome, default=str), encoding="utf-8")
    return 0 if outcome["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
