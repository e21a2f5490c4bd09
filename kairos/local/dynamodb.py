"""An embedded DynamoDB (dynalite, from npm) on loopback, with data kept under ``.kairos/``.

``AWS_ENDPOINT_URL_DYNAMODB`` wins when it is set: then nothing is started and that endpoint is used.
Commands share one long-lived server (:mod:`kairos.local.server`); :func:`embedded_dynamodb` is a
private one for the length of a block.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from kairos.catalog import PROJECT_ROOT
from kairos.local.processes import ServerStartError, free_loopback_port, stop_process, wait_for_port

ENDPOINT_ENV = "AWS_ENDPOINT_URL_DYNAMODB"
DYNALITE_CLI = PROJECT_ROOT / "node_modules" / "dynalite" / "cli.js"
DEFAULT_DATA_DIR = PROJECT_ROOT / ".kairos" / "dynamodb"
DATA_DIR_ENV = "KAIROS_LOCAL_DATA_DIR"
"""Where the embedded DynamoDB keeps its data instead of ``.kairos/dynamodb``."""
STARTUP_TIMEOUT_S = 15.0


class EmbeddedDynamoError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class DynamoEndpoint:
    url: str
    embedded: bool


@contextmanager
def exclusive_use(data_dir: Path, *, wait_s: float) -> Iterator[None]:
    """Hold the data directory for this process: dynalite's LevelDB lets one server open it at a time."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with data_dir.with_name(f"{data_dir.name}.lock").open("w") as lock:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise EmbeddedDynamoError(
                        f"another kairos command is using the embedded DynamoDB in {data_dir}; "
                        f"wait for it to finish, or set {ENDPOINT_ENV} to a DynamoDB endpoint"
                    ) from None
                time.sleep(0.1)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@contextmanager
def embedded_dynamodb(data_dir: Path = DEFAULT_DATA_DIR, *, lock_wait_s: float = 30.0) -> Iterator[DynamoEndpoint]:
    """Start dynalite on a free loopback port for the duration of the block."""
    with exclusive_use(data_dir, wait_s=lock_wait_s):
        yield from _run_dynalite(data_dir)


def dynalite_command(data_dir: Path, port: int, *, node: str | None = None) -> list[str]:
    """dynalite on 127.0.0.1:``port`` over ``data_dir``, tables ready at once."""
    return [
        node or shutil.which("node") or "node",
        str(DYNALITE_CLI),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--path",
        str(data_dir),
        "--createTableMs",
        "0",
        "--deleteTableMs",
        "0",
        "--updateTableMs",
        "0",
    ]


def _run_dynalite(data_dir: Path) -> Iterator[DynamoEndpoint]:
    node = shutil.which("node")
    if node is None or not DYNALITE_CLI.exists():
        raise EmbeddedDynamoError(
            "the embedded DynamoDB needs Node.js and `npm ci` (dynalite); run `make setup` "
            f"or set {ENDPOINT_ENV} to a DynamoDB endpoint"
        )
    port = free_loopback_port()
    command = dynalite_command(data_dir, port, node=node)
    # Its output goes to a file beside the data: a pipe nobody reads would eventually block it.
    log_path = data_dir.with_name(f"{data_dir.name}.log")
    with log_path.open("ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
        try:
            try:
                wait_for_port(port, process, name="dynalite", timeout=STARTUP_TIMEOUT_S)
            except ServerStartError as error:
                tail = log_path.read_text(errors="replace")[-2000:].strip()
                raise EmbeddedDynamoError(f"{error}; its log ({log_path}) ends:\n{tail}") from None
            yield DynamoEndpoint(url=f"http://127.0.0.1:{port}", embedded=True)
        finally:
            stop_process(process)


def default_data_dir() -> Path:
    return Path(os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR)


@contextmanager
def dynamodb_endpoint(data_dir: Path | None = None, *, idle_s: float | None = None) -> Iterator[DynamoEndpoint]:
    """``AWS_ENDPOINT_URL_DYNAMODB`` when set, else the shared embedded server (started if none runs)."""
    from kairos.local.server import DEFAULT_IDLE_S, SharedServerError, shared_dynamodb

    configured = os.environ.get(ENDPOINT_ENV)
    if configured:
        yield DynamoEndpoint(url=configured, embedded=False)
        return
    _require_dynalite()
    with ExitStack() as stack:
        try:
            state = stack.enter_context(
                shared_dynamodb(data_dir or default_data_dir(), idle_s=DEFAULT_IDLE_S if idle_s is None else idle_s)
            )
        except SharedServerError as error:
            raise EmbeddedDynamoError(str(error)) from None
        yield DynamoEndpoint(url=state.url, embedded=True)


def _require_dynalite() -> None:
    if shutil.which("node") is None or not DYNALITE_CLI.exists():
        raise EmbeddedDynamoError(
            "the embedded DynamoDB needs Node.js and `npm ci` (dynalite); run `make setup` "
            f"or set {ENDPOINT_ENV} to a DynamoDB endpoint"
        )
