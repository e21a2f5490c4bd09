"""``kairos local`` runs a fan-out task's state machine as its local fan-out, with the values of the
synthesized definition: its three functions (handler, environment, memory, timeout), the Map's
MaxConcurrency, the batch Task's Retry and the machine's TimeoutSeconds. The kline endpoint is a
loopback HTTP server in Eastmoney's wire shape (the handlers run in child processes, out of reach of
``responses``); the template points the batch function at a handler that sends its requests there."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aws_cdk as cdk
import boto3
import pytest

from kairos.catalog import load_catalog
from kairos.loading import load_tasks_file
from kairos.local.assembly import AssemblyError, read_assembly
from kairos.local.dynamodb import DATA_DIR_ENV, dynamodb_endpoint
from kairos.local.server import running_server, stop_server
from kairos.local.tables import ensure_tables, tables_from_template
from kairos.plan import RetryPlan, plan_stage
from kairos.schedule import next_fire_times, parse_schedule
from kairos_runtime.tasks.market.universe import SPOT_SOURCE
from kairos_stack.app_builder import build_stage
from tests.conftest import CDK_FEATURE_FLAGS, PROJECT_ROOT
from tests.market.synthetic_market import SESSIONS, TRADING_DATE, SyntheticMarket, universe

PARAMS = "{symbols: all, adjust: none, lookback_days: 30, batch_size: 10, max_concurrency: 3, requests_per_second: 500}"
TASKS = f"""
defaults: {{runtime: python3.13, memory: 256, timeout: 60, timezone: UTC}}
stages:
  dev:
    enabled: [all-bars, stuck-bars]
tasks:
  - {{name: all-bars, description: every bar, task_type: stock_daily_all, schedule: "cron(0 16,17 ? * MON-FRI *)",
     timezone: Asia/Shanghai, timeout: 900, params: {PARAMS}}}
  - {{name: stuck-bars, description: past its machine's timeout, task_type: stock_daily_all,
     schedule: "cron(0 16 ? * MON-FRI *)", timezone: Asia/Shanghai, timeout: 900, params: {PARAMS}}}
"""
SYMBOLS = universe(60)
"""Six batches of ten."""
START = datetime(2026, 11, 27, 7, 50, tzinfo=UTC)
"""Friday 15:50 in Shanghai: the fires are 16:00 and 17:00 there (08:00Z and 09:00Z)."""
FOR = timedelta(minutes=80)
SPEED = "240"
"""80 virtual minutes in 20 s: the first run (an interpreter, akshare, six batches) ends before the second fire."""
MAX_CONCURRENCY = 2
"""What the test writes into the definition's Map, below the input's (and the plan's) 3."""
BATCH_RETRY = '"IntervalSeconds":1,"MaxAttempts":1,"BackoffRate":1.5,"MaxDelaySeconds":4'
MACHINE_TIMEOUT = 3
"""stuck-bars's machine, in the template: its batches sleep far longer."""
BATCH_SLEEP_S = {"all-bars": 1.0, "stuck-bars": 60.0}


@pytest.fixture(scope="module")
def kline() -> Iterator[tuple[str, SyntheticMarket]]:
    """Eastmoney's kline endpoint on loopback: every symbol answers the sessions' bars."""
    market = SyntheticMarket()

    class Kline(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, headers, body = market.answer(SimpleNamespace(url=f"http://loopback{self.path}"))
            data = body.encode()
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Kline)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", market
    server.shutdown()
    server.server_close()


def _edit_definition(resource: dict[str, Any], old: str, new: str) -> None:
    parts = resource["Properties"]["DefinitionString"]["Fn::Join"][1]
    assert any(isinstance(part, str) and old in part for part in parts), old
    resource["Properties"]["DefinitionString"]["Fn::Join"][1] = [
        part.replace(old, new) if isinstance(part, str) else part for part in parts
    ]


@pytest.fixture(scope="module")
def assembly(tmp_path_factory: pytest.TempPathFactory, kline: tuple[str, SyntheticMarket]) -> Path:
    """The stage synthesized; then, in the templates only: the batch functions point at the test
    handler (with the loopback URL in their environment), all-bars's Map runs 2 at a time with
    another batch Retry, and stuck-bars's machine times out after 3 s."""
    root = tmp_path_factory.mktemp("fan-out-stage")
    tasks_file = root / "tasks.yaml"
    tasks_file.write_text(TASKS, encoding="utf-8")
    catalog = load_catalog()
    plan = plan_stage(load_tasks_file(tasks_file, catalog), catalog, "dev")
    outdir = root / "cdk.out"
    app = cdk.App(
        outdir=str(outdir),
        context={**CDK_FEATURE_FLAGS, "aws:cdk:bundling-stacks": [], "aws:cdk:enable-path-metadata": True},
    )
    build_stage(app, plan)
    app.synth()
    for stack_name in plan.stack_names:
        template_file = outdir / f"{stack_name}.template.json"
        template = json.loads(template_file.read_text(encoding="utf-8"))
        for resource in template["Resources"].values():
            path = resource.get("Metadata", {}).get("aws:cdk:path", "")
            task = path.split("/")[1] if path.count("/") >= 2 else ""
            if task not in BATCH_SLEEP_S:
                continue
            if resource["Type"] == "AWS::Lambda::Function":
                variables = resource["Properties"]["Environment"]["Variables"]
                variables |= {
                    "KLINE_LOOPBACK_URL": kline[0],
                    "FAN_OUT_BATCH_SLEEP_S": str(BATCH_SLEEP_S[task]),
                    "FAN_OUT_BATCH_LOG": str(root / f"{task}-batches.jsonl"),
                }
                if "/BatchFunction/" in path:
                    resource["Properties"]["Handler"] = "tests.local.fan_out_handlers.batch"
            if resource["Type"] == "AWS::StepFunctions::StateMachine" and task == "all-bars":
                _edit_definition(resource, '"MaxConcurrency":3', f'"MaxConcurrency":{MAX_CONCURRENCY}')
                _edit_definition(
                    resource, '"IntervalSeconds":10,"MaxAttempts":3,"BackoffRate":3,"MaxDelaySeconds":300', BATCH_RETRY
                )
            if resource["Type"] == "AWS::StepFunctions::StateMachine" and task == "stuck-bars":
                _edit_definition(resource, '"TimeoutSeconds":86400', f'"TimeoutSeconds":{MACHINE_TIMEOUT}')
        template_file.write_text(json.dumps(template), encoding="utf-8")
    return outdir


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "dynamodb"
    yield directory
    stop_server(directory, force=True)


def _resource(url: str) -> Any:
    return boto3.resource(
        "dynamodb", endpoint_url=url, region_name="us-east-1", aws_access_key_id="l", aws_secret_access_key="l"
    )


def records(url: str, task: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = (
        _resource(url)
        .Table("kairos-dev-TaskRuns")
        .query(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :run)",
            ExpressionAttributeValues={":pk": f"TASK#{task}", ":run": "RUN#"},
        )["Items"]
    )
    return items


def predicted(assembly: Path, task: str) -> list[str]:
    schedule = read_assembly(assembly, stage="dev").schedule(task)
    times = next_fire_times(parse_schedule(schedule.expression), timezone=schedule.timezone, after=START, count=10)
    return [moment.strftime("%Y-%m-%dT%H:%M:%SZ") for moment in times if moment <= START + FOR]


def seed(assembly: Path, data_dir: Path) -> None:
    """The stage's local tables, and the spot snapshot's LATEST items: the planner's universe."""
    with dynamodb_endpoint(data_dir) as endpoint:
        client = _resource(endpoint.url).meta.client
        for template_file in assembly.glob("*.template.json"):
            ensure_tables(client, tables_from_template("dev", json.loads(template_file.read_text("utf-8"))))
        latest = f"STOCK#LATEST#{TRADING_DATE}"
        with _resource(endpoint.url).Table("kairos-dev-MarketData").batch_writer() as batch:
            for code in SYMBOLS:
                batch.put_item(Item={"pk": f"STOCK#{code}", "sk": "LATEST", "gsi1pk": latest, "gsi1sk": code})


def kairos_local(assembly: Path, data_dir: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(Path(sys.executable).with_name("kairos")), "local", "--assembly", str(assembly), "--json", *args],
        cwd=PROJECT_ROOT,
        env={**os.environ, DATA_DIR_ENV: str(data_dir), "COLUMNS": "80"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def peak_concurrency(log: Path) -> int:
    spans = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    events = sorted([(span["started"], 1) for span in spans] + [(span["finished"], -1) for span in spans])
    running = peak = 0
    for _, change in events:
        running += change
        peak = max(peak, running)
    return peak


def test_the_assembly_gives_the_fan_out_the_definitions_values(assembly: Path) -> None:
    local = read_assembly(assembly, stage="dev")

    schedule = local.schedule("all-bars")
    fan_out = schedule.fan_out
    assert schedule.target_type == "AWS::StepFunctions::StateMachine"
    assert schedule.function is None
    assert fan_out is not None
    assert fan_out.max_concurrency == MAX_CONCURRENCY
    assert fan_out.batch_retry == RetryPlan(
        errors=fan_out.batch_retry.errors, interval_seconds=1, max_attempts=1, backoff_rate=1.5, max_delay_seconds=4
    )
    assert fan_out.batch_retry.errors[0] == "BatchTransientError"
    assert fan_out.timeout == 3600, "as synthesized: an execution ends before the next slot, an hour on"
    assert local.schedule("stuck-bars").fan_out.timeout == MACHINE_TIMEOUT  # type: ignore[union-attr]
    handlers = {step: function.handler for step, function in fan_out.functions.items()}
    assert handlers == {
        "plan": "kairos_runtime.fan_out_handler.plan",
        "batch": "tests.local.fan_out_handlers.batch",
        "summarize": "kairos_runtime.fan_out_handler.summarize",
    }
    assert fan_out.environment["KAIROS_TASK_RUNS_TABLE"] == "kairos-dev-TaskRuns"
    assert fan_out.environment["FAN_OUT_BATCH_SLEEP_S"] == "1.0"
    assert schedule.input_template["params"]["max_concurrency"] == 3, "the input's, which the Map does not use"


def test_a_definition_whose_batch_is_no_function_is_refused_in_one_line(assembly: Path, tmp_path: Path) -> None:
    broken = tmp_path / "cdk.out"
    shutil.copytree(assembly, broken)
    for template_file in broken.glob("*.template.json"):
        template = json.loads(template_file.read_text(encoding="utf-8"))
        for resource in template["Resources"].values():
            if resource["Type"] == "AWS::StepFunctions::StateMachine":
                parts = resource["Properties"]["DefinitionString"]["Fn::Join"][1]
                resource["Properties"]["DefinitionString"]["Fn::Join"][1] = [
                    part if isinstance(part, str) or "BatchFunction" not in json.dumps(part) else "arn:elsewhere"
                    for part in parts
                ]
        template_file.write_text(json.dumps(template), encoding="utf-8")

    with pytest.raises(AssemblyError) as raised:
        read_assembly(broken, stage="dev")

    assert "its batch step invokes 'arn:elsewhere', not a function of the assembly" in str(raised.value)
    assert "\n" not in str(raised.value)


def test_kairos_local_runs_each_fire_of_a_fan_out_with_the_definitions_values(
    assembly: Path, data_dir: Path, kline: tuple[str, SyntheticMarket]
) -> None:
    _, market = kline
    seed(assembly, data_dir)

    process = kairos_local(assembly, data_dir, "--start", START.isoformat(), "--for", "80m", "--speed", SPEED)
    stdout, stderr = process.communicate(timeout=180)

    assert process.returncode == 0, stderr
    assert "does not run" not in stderr
    fires = [json.loads(line) for line in stdout.splitlines()]
    url = running_server(data_dir).url  # type: ignore[union-attr]
    # Every fire at the evaluator's times, one line and one record each.
    assert predicted(assembly, "all-bars") == ["2026-11-27T08:00:00Z", "2026-11-27T09:00:00Z"]
    assert predicted(assembly, "stuck-bars") == ["2026-11-27T08:00:00Z"]
    for task in ("all-bars", "stuck-bars"):
        assert sorted(fire["scheduled_time"] for fire in fires if fire["task"] == task) == predicted(assembly, task)
        assert sorted(record["scheduled_time"] for record in records(url, task)) == predicted(assembly, task)

    # The first fire crawled the universe through the fan-out; its record carries the fan-out's detail.
    runs = sorted(records(url, "all-bars"), key=lambda record: record["scheduled_time"])
    first = runs[0]
    assert first["status"] == "SUCCEEDED", first.get("error_message")
    detail = first["detail"]
    assert detail["fan_out"]["batches"] == 6
    assert detail["universe_source"] == SPOT_SOURCE
    assert detail["coverage"] == {"universe": 60, "with_bar": 60, "missing_count": 0, "missing": []}
    assert first["items_written"] == 60 * len(SESSIONS)
    assert sorted({symbol for symbol, _, _ in market.asked}) == sorted(SYMBOLS)
    # The second slot's run found every symbol up to date (or was skipped behind the first).
    assert runs[1]["status"] in ("SUCCEEDED", "SKIPPED"), runs[1].get("error_message")

    # The Map's MaxConcurrency from the definition (2), not the input's 3: batches ran two at a time.
    assert peak_concurrency(assembly.parent / "all-bars-batches.jsonl") == MAX_CONCURRENCY

    # Past the machine's TimeoutSeconds: the whole run stopped, recorded FAILED (Timeout).
    [stuck] = records(url, "stuck-bars")
    assert (stuck["status"], stuck["error_type"]) == ("FAILED", "Timeout")
    assert f"timed out after {MACHINE_TIMEOUT} s" in stuck["error_message"]
    [stuck_fire] = [fire for fire in fires if fire["task"] == "stuck-bars"]
    assert stuck_fire["status"] == "FAILED"
    assert stuck_fire["finished_at"] - stuck_fire["started_at"] < 30, "stopped at its timeout, not its batches' 60 s"


def test_ctrl_c_lets_the_fan_out_in_flight_finish(
    assembly: Path, data_dir: Path, kline: tuple[str, SyntheticMarket]
) -> None:
    seed(assembly, data_dir)
    log = assembly.parent / "all-bars-batches.jsonl"
    before = len(log.read_text(encoding="utf-8").splitlines()) if log.exists() else 0
    # The fire is 30 virtual seconds in: half a second at 60x.
    process = kairos_local(assembly, data_dir, "--only", "all-bars", "--start", "2026-11-27T07:59:30Z", "--speed", "60")
    deadline = time.monotonic() + 90
    while process.poll() is None and time.monotonic() < deadline:
        if log.exists() and len(log.read_text(encoding="utf-8").splitlines()) > before:
            break  # a batch has run: the fan-out is in flight
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)

    assert process.returncode == 0, stderr
    assert "waiting for 1 run(s) in flight" in stderr
    assert [json.loads(line)["status"] for line in stdout.splitlines()] == ["SUCCEEDED"]
    [record] = records(running_server(data_dir).url, "all-bars")  # type: ignore[union-attr]
    assert (record["status"], record["detail"]["fan_out"]["batches"]) == ("SUCCEEDED", 6)
    assert len(log.read_text(encoding="utf-8").splitlines()) == before + 6, "every batch ran"


def test_an_inline_and_a_distributed_map_run_the_inline_one_and_say_so(
    assembly: Path, data_dir: Path, tmp_path: Path
) -> None:
    both = tmp_path / "cdk.out"
    shutil.copytree(assembly, both)
    for template_file in both.glob("*.template.json"):
        template = json.loads(template_file.read_text(encoding="utf-8"))
        for resource in template["Resources"].values():
            path = resource.get("Metadata", {}).get("aws:cdk:path", "")
            if resource["Type"] != "AWS::StepFunctions::StateMachine" or "/all-bars/" not in path:
                continue
            # A second Map state, DISTRIBUTED, with the same batch function, beside the inline one.
            parts = resource["Properties"]["DefinitionString"]["Fn::Join"][1]
            batch_arn = next(part for part in parts if "BatchFunction" in json.dumps(part))
            at = next(index for index, part in enumerate(parts) if isinstance(part, str) and '"Batches":{' in part)
            head, tail = parts[at].split('"Batches":{', 1)
            distributed = (
                '"Big batches":{"Type":"Map","MaxConcurrency":500,"Next":"Summarize","ItemProcessor":'
                '{"ProcessorConfig":{"Mode":"DISTRIBUTED","ExecutionType":"STANDARD"},"StartAt":"Big batch",'
                '"States":{"Big batch":{"Type":"Task","End":true,"Resource":"'
            )
            parts[at : at + 1] = [head + distributed, batch_arn, '"}}}},"Batches":{' + tail]
        template_file.write_text(json.dumps(template), encoding="utf-8")

    fan_out = read_assembly(both, stage="dev").schedule("all-bars").fan_out
    process = kairos_local(both, data_dir, "--only", "all-bars", "--start", START.isoformat(), "--for", "1m")
    stdout, stderr = process.communicate(timeout=120)

    assert fan_out is not None
    assert fan_out.max_concurrency == MAX_CONCURRENCY
    assert process.returncode == 0, stderr
    assert stdout == "", "nothing fires in the first minute"
    assert (
        "note: all-bars's state machine: it has an INLINE Map (Batches) and a DISTRIBUTED one (Big batches) "
        "with other MaxConcurrency or batch Retry: the INLINE one's run" in " ".join(stderr.split())
    )
