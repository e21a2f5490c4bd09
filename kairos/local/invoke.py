"""Run one task through its real handler, with the exact event its schedule would send."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from kairos.plan import FanOutPlan, TaskPlan
from kairos_runtime.events import render_schedule_input
from kairos_runtime.settings import LAMBDA_RETRY_ATTEMPTS_ENV
from kairos_runtime.tables import TableId

NODE_INVOKER = Path(__file__).with_name("node_invoke.mjs")
# Extra time the invoker process gets beyond the task's own timeout (interpreter start, imports).
PROCESS_GRACE_S = 30
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


@dataclass(frozen=True, slots=True)
class LocalInvocation:
    task: str
    event: Mapping[str, Any]
    ok: bool
    response: Mapping[str, Any] | None
    error: str | None
    output: str
    """What the handler logged, as CloudWatch would have received it."""


def local_environment(
    task: TaskPlan, *, endpoint_url: str, table_names: Mapping[TableId, str], region: str = "us-east-1"
) -> dict[str, str]:
    """The deployed function's environment (the plan's, local table names in place of the stack's) on
    top of this process's, plus what points the handler at the local endpoint."""
    environment = dict(os.environ)
    environment |= task.function_environment(table_names)
    environment |= {
        "AWS_ENDPOINT_URL_DYNAMODB": endpoint_url,
        "AWS_REGION": environment.get("AWS_REGION") or region,
        "AWS_DEFAULT_REGION": environment.get("AWS_DEFAULT_REGION") or region,
        "POWERTOOLS_TRACE_DISABLED": "1",
        "POWERTOOLS_DEV": environment.get("POWERTOOLS_DEV", "false"),
        "AWS_LAMBDA_FUNCTION_NAME": task.name,
        # A local run is delivered once: its transient failure is final, not one Lambda retries.
        LAMBDA_RETRY_ATTEMPTS_ENV: "0",
    }
    credentials = loopback_credentials(endpoint_url)
    if credentials:
        environment |= {key.upper(): value for key, value in credentials.items()}
        environment.pop("AWS_SESSION_TOKEN", None)
        environment.pop("AWS_PROFILE", None)
    return environment


def fan_out_arguments(fan_out: FanOutPlan) -> dict[str, Any]:
    """What the local fan-out driver needs of the plan (``kairos/local/fan_out_invoke.py``)."""
    return {
        "functions": {
            step: {"memory": function.memory, "timeout": function.timeout}
            for step, function in fan_out.functions.items()
        },
        "max_concurrency": fan_out.max_concurrency,
        "batch_retry": {
            "errors": list(fan_out.batch_retry.errors),
            "interval_seconds": fan_out.batch_retry.interval_seconds,
            "max_attempts": fan_out.batch_retry.max_attempts,
            "backoff_rate": fan_out.batch_retry.backoff_rate,
            "max_delay_seconds": fan_out.batch_retry.max_delay_seconds,
        },
    }


def loopback_credentials(endpoint_url: str) -> dict[str, str]:
    """Dummy credentials for a loopback endpoint, which accepts any: real ones are never handed to it."""
    if urlsplit(endpoint_url).hostname in LOOPBACK_HOSTS:
        return {"aws_access_key_id": "local", "aws_secret_access_key": "local"}
    return {}


def invoke_locally(
    task: TaskPlan,
    *,
    endpoint_url: str,
    table_names: Mapping[TableId, str],
    scheduled_time: datetime,
    execution_id: str | None = None,
) -> LocalInvocation:
    event = render_schedule_input(
        dict(task.input_template),
        scheduled_time=scheduled_time,
        execution_id=execution_id or f"local-{uuid.uuid4()}",
    )
    environment = local_environment(task, endpoint_url=endpoint_url, table_names=table_names)
    with tempfile.TemporaryDirectory(prefix="kairos-run-") as workdir:
        event_file, result_file = Path(workdir, "event.json"), Path(workdir, "result.json")
        event_file.write_text(json.dumps(event), encoding="utf-8")
        arguments = [str(event_file), str(result_file), task.name, str(task.memory), str(task.timeout)]
        timeout = task.timeout
        if task.fan_out is not None:
            # The state machine's three steps in one process: plan, batches on a thread pool, summary.
            command = [
                sys.executable,
                "-m",
                "kairos.local.fan_out_invoke",
                str(event_file),
                str(result_file),
                task.name,
                json.dumps(fan_out_arguments(task.fan_out)),
            ]
            timeout = task.fan_out.execution_timeout_seconds
        elif task.family == "python":
            command = [sys.executable, "-m", "kairos.local.python_invoke", *arguments]
        else:
            node = shutil.which("node") or "node"
            handler_module = Path(task.code_dir, task.handler.rsplit(".", 1)[0] + ".mjs")
            command = [node, str(NODE_INVOKER), *arguments, str(handler_module)]
        try:
            completed = subprocess.run(  # noqa: S603 - fixed interpreter and our own scripts
                command,
                env=environment,
                capture_output=True,
                text=True,
                timeout=timeout + PROCESS_GRACE_S,
                check=False,
            )
        except subprocess.TimeoutExpired as expired:
            # The partial output arrives as bytes even with text=True.
            partial = expired.stdout or b""
            output = partial.decode(errors="replace") if isinstance(partial, bytes) else partial
            return LocalInvocation(task.name, event, False, None, f"timed out after {timeout} s", output)
        output = completed.stdout + completed.stderr
        if not result_file.exists():
            return LocalInvocation(
                task.name, event, False, None, f"handler crashed (exit {completed.returncode})", output
            )
        outcome = json.loads(result_file.read_text(encoding="utf-8"))
    if outcome["ok"]:
        return LocalInvocation(task.name, event, True, outcome["response"], None, output)
    return LocalInvocation(task.name, event, False, None, f"{outcome['error_type']}: {outcome['message']}", output)
