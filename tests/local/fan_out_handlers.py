"""A fan-out's batch handler for ``kairos local`` tests: it sends Eastmoney's kline requests to the
loopback server named by ``KLINE_LOOPBACK_URL`` (the child process is out of reach of the test's
``responses``), sleeps ``FAN_OUT_BATCH_SLEEP_S`` seconds, and appends when each batch ran to
``FAN_OUT_BATCH_LOG`` (one JSON line a batch), so a test sees how many ran at once. Then it runs
Kairos's own batch handler. These variables come from the functions' environment in the template.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

EASTMONEY = "https://push2his.eastmoney.com"
_lock = threading.Lock()
_patched: list[bool] = []


def _to_loopback() -> None:
    import requests.adapters

    with _lock:
        if _patched:
            return
        send = requests.adapters.HTTPAdapter.send
        local = os.environ["KLINE_LOOPBACK_URL"]

        def to_loopback(self: Any, request: Any, *rest: Any, **kwargs: Any) -> Any:
            if request.url.startswith(EASTMONEY):
                request.url = local + request.url.removeprefix(EASTMONEY)
            return send(self, request, *rest, **kwargs)

        requests.adapters.HTTPAdapter.send = to_loopback  # type: ignore[method-assign]
        _patched.append(True)


def batch(event: dict[str, Any], context: Any) -> Any:
    from kairos_runtime import fan_out_handler

    _to_loopback()
    started = time.time()
    time.sleep(float(os.environ.get("FAN_OUT_BATCH_SLEEP_S", "0")))
    try:
        return fan_out_handler.batch(event, context)
    finally:
        line = json.dumps({"index": event["batch"]["index"], "started": started, "finished": time.time()})
        with _lock, Path(os.environ["FAN_OUT_BATCH_LOG"]).open("a", encoding="utf-8") as log:
            log.write(line + "\n")
