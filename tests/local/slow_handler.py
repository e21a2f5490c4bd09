"""A handler that takes its time: it sleeps ``SLOW_HANDLER_SLEEP_S`` seconds (from the function's
environment in the template), then runs Kairos's own handler. Tests point a function at it to run
past its timeout, or past its schedule's interval. ``SLOW_HANDLER_STARTED`` names a file it creates
when it starts."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any


def handler(event: dict[str, Any], context: Any) -> Any:
    if os.environ.get("SLOW_HANDLER_STARTED"):
        Path(os.environ["SLOW_HANDLER_STARTED"]).touch()
    time.sleep(float(os.environ["SLOW_HANDLER_SLEEP_S"]))
    from kairos_runtime.handler import handler as kairos_handler

    return kairos_handler(event, context)
