"""The shared embedded DynamoDB: commands at once share one server, two starters start one, a stale
or foreign pid file is replaced, data survives a restart, an idle server stops, and stopping it
while a command uses it is refused unless forced."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from typer.testing import CliRunner

from kairos import cli
from kairos.local.dynamodb import dynamodb_endpoint
from kairos.local.server import (
    ServerState,
    SharedServerError,
    running_server,
    shared_dynamodb,
    state_file,
    stop_server,
)


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "dynamodb"
    yield directory
    stop_server(directory, force=True)


def client(url: str) -> object:
    return boto3.client(
        "dynamodb", endpoint_url=url, region_name="us-east-1", aws_access_key_id="l", aws_secret_access_key="l"
    )


def make_table(url: str, name: str) -> None:
    client(url).create_table(  # type: ignore[attr-defined]
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


def tables(url: str) -> list[str]:
    return list(client(url).list_tables()["TableNames"])  # type: ignore[attr-defined]


def test_two_commands_at_once_share_one_server(data_dir: Path) -> None:
    with dynamodb_endpoint(data_dir) as first, dynamodb_endpoint(data_dir) as second:
        assert first.url == second.url
        make_table(first.url, "shared")
        assert tables(second.url) == ["shared"]


def test_two_starters_racing_start_one_server(data_dir: Path) -> None:
    states: list[ServerState] = []
    ready = threading.Barrier(2)

    def start() -> None:
        ready.wait()
        with shared_dynamodb(data_dir) as state:
            states.append(state)

    threads = [threading.Thread(target=start) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(states) == 2
    assert states[0] == states[1]


def test_a_stale_or_foreign_pid_file_is_replaced_and_the_data_kept(data_dir: Path) -> None:
    with shared_dynamodb(data_dir) as state:
        make_table(state.url, "kept")
    stop_server(data_dir)
    assert running_server(data_dir) is None
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    # A pid file naming a process that is gone, then one naming a live process that is not ours.
    for pid in (dead.pid, os.getpid()):
        state_file(data_dir).write_text(
            json.dumps(
                {
                    "keeper_pid": pid,
                    "dynalite_pid": pid,
                    "port": state.port,
                    "data_dir": str(data_dir.resolve()),
                    "idle_s": 60,
                    "started_at": 0,
                }
            )
        )
        with shared_dynamodb(data_dir) as fresh:
            assert fresh.keeper_pid not in (dead.pid, os.getpid())
            assert tables(fresh.url) == ["kept"]
        stop_server(data_dir)


def test_an_idle_server_stops_by_itself(data_dir: Path) -> None:
    with shared_dynamodb(data_dir, idle_s=1) as state:
        time.sleep(2)  # in use: not idle
        assert running_server(data_dir) == state
    # The keeper stops dynalite first, then removes its state file: wait for both.
    deadline = time.monotonic() + 15
    while (running_server(data_dir) is not None or state_file(data_dir).exists()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert running_server(data_dir) is None
    assert not state_file(data_dir).exists()


def test_stop_is_refused_while_a_command_uses_the_server(data_dir: Path) -> None:
    runner = CliRunner()
    with shared_dynamodb(data_dir):
        with pytest.raises(SharedServerError, match="is using the embedded DynamoDB"):
            stop_server(data_dir)
        refused = runner.invoke(cli.app, ["local", "stop", "--data-dir", str(data_dir)])
        assert refused.exit_code == 1
        assert "--force" in refused.output
        shown = runner.invoke(cli.app, ["local", "server", "--data-dir", str(data_dir), "--json"])
        assert json.loads(shown.output)["running"] is True
        forced = runner.invoke(cli.app, ["local", "stop", "--data-dir", str(data_dir), "--force"])
        assert forced.exit_code == 0, forced.output
        assert "stopped the embedded DynamoDB" in forced.output
    assert running_server(data_dir) is None
    again = runner.invoke(cli.app, ["local", "stop", "--data-dir", str(data_dir)])
    assert "not running" in again.output
