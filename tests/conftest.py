"""Shared fixtures. Network: pytest-socket (see pyproject addopts) allows loopback only, so any test
that reaches beyond this machine fails; AWS is moto in-process or a server on 127.0.0.1."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

# Before anything imports boto3 or jsii: no real credentials, no real endpoints, quiet jsii.
os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SECURITY_TOKEN": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "POWERTOOLS_TRACE_DISABLED": "1",
        "POWERTOOLS_METRICS_NAMESPACE": "Kairos",
        "TQDM_DISABLE": "1",
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20,22",
        "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "20,22",
    }
)
for _variable in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB"):
    os.environ.pop(_variable, None)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import DynamoDBServiceResource

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _serialise_moto_dynamodb() -> None:
    """One DynamoDB request at a time through in-process moto, as DynamoDB applies each atomically.

    moto keeps a table's items in plain dicts: a Query iterating them while another thread's
    BatchWriteItem inserts raises ``RuntimeError: dictionary changed size during iteration``. The
    fan-out's batches (moto's Map workers, the local thread pool) are such threads, so without this
    a batch fails at random on a test artefact. Other services are left concurrent: Step Functions
    invokes Lambda, whose answer calls DynamoDB, on the same thread.
    """
    import threading

    from moto.core.botocore_stubber import BotocoreStubber

    if getattr(BotocoreStubber.process_request, "serialised_dynamodb", False):
        return
    original = BotocoreStubber.process_request
    lock = threading.Lock()

    def process_request(self: BotocoreStubber, request: Any) -> Any:
        if "//dynamodb." not in request.url:
            return original(self, request)
        with lock:
            return original(self, request)

    process_request.serialised_dynamodb = True  # type: ignore[attr-defined]
    BotocoreStubber.process_request = process_request  # type: ignore[method-assign]


_serialise_moto_dynamodb()
EVENTS_DIR = Path(__file__).resolve().parent / "events"
CDK_FEATURE_FLAGS: dict[str, object] = {
    key: value
    for key, value in json.loads((PROJECT_ROOT / "cdk.json").read_text(encoding="utf-8"))["context"].items()
    if key.startswith("@aws-cdk")
}
"""cdk.json's feature flags: the CLI hands them to ``app.py``; an app a test builds needs them passed."""


@pytest.fixture
def dynamodb() -> Iterator[DynamoDBServiceResource]:
    """moto's DynamoDB with the project's tables (named like the local ones, stage "test")."""
    import boto3
    from moto import mock_aws

    from kairos.local.tables import ensure_tables, tables_from_designs

    with mock_aws():
        resource = boto3.resource("dynamodb", region_name="us-east-1")
        ensure_tables(resource.meta.client, tables_from_designs("test"))
        yield resource


@pytest.fixture
def table_names() -> dict[str, str]:
    """Environment variables that point the runtime at the tables of the ``dynamodb`` fixture."""
    from kairos.local.tables import tables_from_designs
    from kairos_runtime.tables import TABLE_DESIGNS

    return {TABLE_DESIGNS[table.table_id].env_var: table.name for table in tables_from_designs("test")}


class FakeLambdaContext:
    """The parts of Lambda's context object the runtime reads."""

    function_name = "kairos-test"
    function_version = "$LATEST"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:kairos-test"
    aws_request_id = "request-1"
    log_group_name = "/aws/lambda/kairos-test"
    log_stream_name = "test"

    def __init__(self, remaining_ms: int = 60_000) -> None:
        self._remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self._remaining_ms


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()


def scheduled_event(
    task: str, task_type: str, params: dict[str, object] | None = None, **overrides: object
) -> dict[str, object]:
    """An event exactly as Scheduler delivers it: context attributes substituted as strings."""
    event: dict[str, object] = {
        "task": task,
        "task_type": task_type,
        "params": params or {},
        "scheduled_time": "2026-11-27T07:15:00Z",
        "execution_id": "exec-1",
        "attempt": "1",
    }
    event.update(overrides)
    return event


@pytest.fixture
def make_runner(dynamodb: DynamoDBServiceResource) -> object:
    """Build a TaskRunner over the moto tables: ``make_runner(registry, clock=..., observer=..., **settings)``."""
    import logging

    from kairos.local.tables import tables_from_designs
    from kairos_runtime.context import Clients
    from kairos_runtime.runner import TaskRunner
    from kairos_runtime.settings import RuntimeSettings
    from kairos_runtime.tasks import default_registry
    from kairos_runtime.validation import parse

    def build(
        registry: object = None, *, clock: object = None, observer: object = None, **settings: object
    ) -> TaskRunner:
        runtime_settings = parse(
            {
                "stage": "test",
                "runtime": "python3.13",
                "table_names": {table.table_id: table.name for table in tables_from_designs("test")},
                **settings,
            },
            RuntimeSettings,
        )
        return TaskRunner(
            registry=registry or default_registry(),  # type: ignore[arg-type]
            settings=runtime_settings,
            clients=Clients(runtime_settings, resource_factory=lambda: dynamodb),
            logger=logging.getLogger("kairos.test"),
            **({"clock": clock} if clock is not None else {}),  # type: ignore[arg-type]
            **({"observer": observer} if observer is not None else {}),  # type: ignore[arg-type]
        )

    return build


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """moto's server on a free loopback port, for code that runs in another process."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def local_dynamodb(moto_endpoint: str) -> Iterator[str]:
    """A DynamoDB endpoint for another process, emptied after each test."""
    import boto3

    yield moto_endpoint
    client = boto3.client("dynamodb", endpoint_url=moto_endpoint, region_name="us-east-1")
    for name in client.list_tables()["TableNames"]:
        client.delete_table(TableName=name)


def run_in_fresh_interpreter(code: str, **environment: str) -> str:
    """Run ``code`` in a new Python with a bare environment (what a cold start pays for); its stdout."""
    import subprocess
    import sys

    completed = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=False,
        cwd=PROJECT_ROOT,
        env={
            "PATH": "/usr/bin:/bin",
            "AWS_DEFAULT_REGION": "us-east-1",
            "POWERTOOLS_TRACE_DISABLED": "1",
            **environment,
        },
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


@pytest.fixture(autouse=True)
def requests_transport_restored() -> Iterator[None]:
    """Every test leaves requests' transport as it found it: a mock (``responses``) or a spy left on
    ``HTTPAdapter.send`` would answer, or refuse, the HTTP of every later test in the process."""
    import requests.adapters

    before = requests.adapters.HTTPAdapter.send
    yield
    assert requests.adapters.HTTPAdapter.send is before, "the test left requests.adapters.HTTPAdapter.send patched"
