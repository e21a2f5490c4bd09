"""Run one task through its real handler, with the exact event its schedule would send."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from kairos.catalog import PROJECT_ROOT
from kairos.operations.invoke import scheduled_event
from kairos.plan import FanOutPlan, RetryPlan, TaskPlan
from kairos_runtime.settings import LAMBDA_RETRY_ATTEMPTS_ENV, LATE_DELIVERY_LIMIT_ENV
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
    return lambda_environment(
        task.function_environment(table_names), function_name=task.name, endpoint_url=endpoint_url, region=region
    )


def lambda_environment(
    function_environment: Mapping[str, str], *, function_name: str, endpoint_url: str, region: str = "us-east-1"
) -> dict[str, str]:
    """A function's environment on top of this process's, plus what points it at the local endpoint."""
    environment = dict(os.environ)
    environment |= function_environment
    environment |= {
        "AWS_ENDPOINT_URL_DYNAMODB": endpoint_url,
        "AWS_REGION": environment.get("AWS_REGION") or region,
        "AWS_DEFAULT_REGION": environment.get("AWS_DEFAULT_REGION") or region,
        "POWERTOOLS_TRACE_DISABLED": "1",
        "POWERTOOLS_DEV": environment.get("POWERTOOLS_DEV", "false"),
        "AWS_LAMBDA_FUNCTION_NAME": function_name,
        # A local run is delivered once: its transient failure is final, not one Lambda retries.
        LAMBDA_RETRY_ATTEMPTS_ENV: "0",
    }
    # `kairos run --scheduled-time` names its slot on purpose (to see a task at 09:00, say): a local
    # run is no late delivery, so the past-slot refusal is the deployed function's alone, and
    # `kairos backfill` refuses a task that cannot be backfilled before anything runs.
    environment.pop(LATE_DELIVERY_LIMIT_ENV, None)
    credentials = loopback_credentials(endpoint_url)
    if credentials:
        environment |= {key.upper(): value for key, value in credentials.items()}
        environment.pop("AWS_SESSION_TOKEN", None)
        environment.pop("AWS_PROFILE", None)
    return environment


def fan_out_arguments(fan_out: FanOutPlan) -> dict[str, Any]:
    """What the local fan-out driver needs of the plan (``kairos/local/fan_out_invoke.py``)."""
    return fan_out_driver_arguments(
        {step: (None, function.memory, function.timeout) for step, function in fan_out.functions.items()},
        max_concurrency=fan_out.max_concurrency,
        batch_retry=fan_out.batch_retry,
    )


def fan_out_driver_arguments(
    functions: Mapping[str, tuple[str | None, int, int]], *, max_concurrency: int, batch_retry: RetryPlan
) -> dict[str, Any]:
    """The local fan-out driver's arguments: by step, its (handler, memory, timeout), a None handler
    being the fan-out handler's own; the Map's concurrency; the batch Task's Retry."""
    return {
        "functions": {
            step: {"memory": memory, "timeout": timeout} | ({"handler": handler} if handler else {})
            for step, (handler, memory, timeout) in functions.items()
        },
        "max_concurrency": max_concurrency,
        "batch_retry": {
            "errors": list(batch_retry.errors),
            "interval_seconds": batch_retry.interval_seconds,
            "max_attempts": batch_retry.max_attempts,
            "backoff_rate": batch_retry.backoff_rate,
            "max_delay_seconds": batch_retry.max_delay_seconds,
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
    event: Mapping[str, Any] | None = None,
    rerun: bool = False,
) -> LocalInvocation:
    """Run the task's handler once; ``event`` (already rendered) is sent as it is, when given."""
    if event is None:
        event = scheduled_event(
            task, scheduled_time=scheduled_time, execution_id=execution_id or f"local-{uuid.uuid4()}", rerun=rerun
        )
    environment = local_environment(task, endpoint_url=endpoint_url, table_names=table_names)
    with tempfile.TemporaryDirectory(prefix="kairos-run-") as workdir:
        event_file, result_file = Path(workdir, "event.json"), Path(workdir, "result.json")
        event_file.write_text(json.dumps(dict(event)), encoding="utf-8")
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


INIT_LIMIT_S = PROCESS_GRACE_S
"""How long a handler may take to import before it counts as failed (Lambda's own init limit is 10 s;
a loaded machine starting an interpreter needs more)."""
TIMED_OUT = "Timeout"


@dataclass(frozen=True, slots=True)
class FunctionCall:
    """One invocation of a function of the cloud assembly, by its handler and runtime."""

    name: str
    family: str
    handler: str
    code_dir: Path
    memory: int
    timeout: int
    environment: Mapping[str, str]

    def command(self, event_file: Path, result_file: Path, started_file: Path) -> list[str]:
        arguments = [str(event_file), str(result_file), self.name, str(self.memory), str(self.timeout)]
        module, _, attribute = self.handler.rpartition(".")
        if self.family == "python":
            return [sys.executable, "-m", "kairos.local.python_invoke", *arguments, self.handler, str(started_file)]
        node = shutil.which("node") or "node"
        module_file = Path(self.code_dir, module + ".mjs")
        return [node, str(NODE_INVOKER), *arguments, str(module_file), attribute, str(started_file)]


@dataclass(frozen=True, slots=True)
class FanOutCall:
    """One execution of a fan-out's state machine: its three steps in one process, the local driver
    (``kairos/local/fan_out_invoke.py``); ``timeout`` is the machine's, for the whole run."""

    name: str
    task: str
    """The task, which names each step's function in the logs (``<task>-batch``)."""
    timeout: int
    environment: Mapping[str, str]
    arguments: Mapping[str, Any]
    """:func:`fan_out_driver_arguments`."""

    def command(self, event_file: Path, result_file: Path, started_file: Path) -> list[str]:
        return [
            sys.executable,
            "-m",
            "kairos.local.fan_out_invoke",
            str(event_file),
            str(result_file),
            self.task,
            json.dumps(dict(self.arguments)),
            str(started_file),
        ]


def call_function(
    call: FunctionCall | FanOutCall, event: Mapping[str, Any], *, poll_s: float = 0.02
) -> LocalInvocation:
    """Run the handler (or a fan-out's driver) in a child process; one still running ``timeout``
    seconds after its handler started is killed, and the invocation is a ``Timeout``.

    The child has its own session: a Ctrl-C meant for ``kairos local`` does not cut a run short.
    """
    with tempfile.TemporaryDirectory(prefix="kairos-run-") as workdir:
        event_file, result_file = Path(workdir, "event.json"), Path(workdir, "result.json")
        started_file, output_file = Path(workdir, "started"), Path(workdir, "output.log")
        event_file.write_text(json.dumps(event), encoding="utf-8")
        command = call.command(event_file, result_file, started_file)
        with output_file.open("wb") as output:
            process = subprocess.Popen(  # noqa: S603 - fixed interpreter and our own scripts
                command,
                env=dict(call.environment),
                cwd=PROJECT_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            error = _wait(process, started_file, timeout=call.timeout, poll_s=poll_s)
        log = output_file.read_text(encoding="utf-8", errors="replace")
        if error is not None:
            return LocalInvocation(call.name, event, False, None, error, log)
        if not result_file.exists():
            return LocalInvocation(call.name, event, False, None, f"handler crashed (exit {process.returncode})", log)
        outcome = json.loads(result_file.read_text(encoding="utf-8"))
    if outcome["ok"]:
        return LocalInvocation(call.name, event, True, outcome["response"], None, log)
    return LocalInvocation(call.name, event, False, None, f"{outcome['error_type']}: {outcome['message']}", log)


def _wait(process: subprocess.Popen[bytes], started_file: Path, *, timeout: int, poll_s: float) -> str | None:
    """None when the process exits in time; else why it was killed."""
    launched = time.monotonic()
    handler_started: float | None = None
    while process.poll() is None:
        now = time.monotonic()
        if handler_started is None and started_file.exists():
            handler_started = now
        if handler_started is None and now - launched > INIT_LIMIT_S:
            _kill(process)
            return f"{TIMED_OUT}: the handler did not start within {INIT_LIMIT_S} s"
        if handler_started is not None and now - handler_started > timeout:
            _kill(process)
            return f"{TIMED_OUT}: timed out after {timeout} s"
        time.sleep(poll_s)
    return None


def _kill(process: subprocess.Popen[bytes]) -> None:
    """Kill the handler and whatever it started (its session's process group), as Lambda ends a
    timed-out sandbox."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
