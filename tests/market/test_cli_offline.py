"""`kairos run stock-spot` with no network: the real handler in its own process, against moto's
DynamoDB server, ends in a clean FAILED run record that says the source could not be reached.

The handler process is not guarded by pytest-socket, so it is pointed at a closed loopback port as
its HTTPS proxy (through the stage setting's variable, KAIROS_HTTPS_PROXY, and HTTPS_PROXY itself):
its attempt to reach Eastmoney is refused on this machine and never leaves it."""

from __future__ import annotations

from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from kairos import cli
from kairos.local.tables import local_table_name
from kairos_runtime.tables import TASK_RUNS
from tests.conftest import PROJECT_ROOT

CLOSED_PORT_PROXY = "http://127.0.0.1:9"


@pytest.mark.slow
def test_kairos_run_stock_spot_offline_is_recorded_as_a_failed_run(
    local_dynamodb: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A wide console, so the record's message is printed on one line.
    monkeypatch.setattr(cli.services, "console", Console(width=400, highlight=False, soft_wrap=True))
    environment = {
        "AWS_ENDPOINT_URL_DYNAMODB": local_dynamodb,
        "KAIROS_HTTPS_PROXY": CLOSED_PORT_PROXY,
        "HTTPS_PROXY": CLOSED_PORT_PROXY,
        "HTTP_PROXY": CLOSED_PORT_PROXY,
        "NO_PROXY": "127.0.0.1,localhost",
    }
    result = CliRunner().invoke(
        cli.app,
        [
            "run",
            "stock-spot",
            "--file",
            str(PROJECT_ROOT / "tasks.yaml"),
            "--stage",
            "dev",
            "--scheduled-time",
            "2026-11-27T02:00:00Z",
        ],
        env=environment,
        catch_exceptions=False,
    )

    assert result.exit_code == 1, "a FAILED run makes `kairos run` fail"
    assert "FAILED" in result.output
    # The first request is the session probe (the Shanghai Composite's daily bars), before the list.
    assert "SourceUnavailable: Eastmoney (akshare.stock_zh_index_daily_em) could not be reached" in result.output
    record = _only_run_record(local_dynamodb)
    assert (record["status"], record["error_kind"], record["scheduled_time"]) == (
        "FAILED", "transient", "2026-11-27T02:00:00Z"
    )  # fmt: skip
    assert "connection failed" in record["error_message"]
    assert "ProxyError" in record["error_message"], "the closed proxy refused it: nothing left this machine"


def _only_run_record(endpoint: str) -> dict[str, Any]:
    import boto3

    table = boto3.resource(
        "dynamodb", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="local",
        aws_secret_access_key="local",
    ).Table(local_table_name("dev", TASK_RUNS))  # fmt: skip
    [record] = table.query(
        KeyConditionExpression="pk = :pk AND begins_with(sk, :run)",
        ExpressionAttributeValues={":pk": "TASK#stock-spot", ":run": "RUN#"},
    )["Items"]
    return dict(record)
