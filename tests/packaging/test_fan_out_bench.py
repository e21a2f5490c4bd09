"""The fan-out benchmark's own arithmetic and plumbing, on tiny inputs (no timings asserted)."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import subprocess
import sys
import urllib.request
from types import ModuleType
from typing import Any

import pytest
import requests

from tests.conftest import PROJECT_ROOT

BENCH = PROJECT_ROOT / "bench" / "fan_out_bench.py"


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """bench/ is scripts, not a package: load the module from its file."""
    spec = importlib.util.spec_from_file_location("fan_out_bench", BENCH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_the_synthetic_universe_is_distinct_six_digit_codes_of_both_exchanges(bench: ModuleType) -> None:
    universe = bench.codes(5400)

    assert len(set(universe)) == 5400
    assert all(len(code) == 6 and code.isdigit() for code in universe)
    assert sum(code.startswith("6") for code in universe) == 2700
    assert universe[:4] == ["600000", "000001", "600001", "000002"]


@pytest.mark.parametrize(
    ("times", "most"),
    [
        ([], 0),
        ([0.0], 1),
        ([0.0, 0.5, 0.99, 1.0, 1.5], 3),  # [0, 1) holds three; 1.0 starts a new window
        ([3.0, 0.1, 0.2, 2.9, 2.95], 3),  # unsorted input
        ([0.0, 2.0, 4.0], 1),
    ],
)
def test_the_peak_rate_is_the_most_requests_in_any_one_second_window(
    bench: ModuleType, times: list[float], most: int
) -> None:
    assert bench.peak(times) == most


def measured_run(bench: ModuleType) -> Any:
    """A run's figures, made up so that each ratio is easy to check by hand."""
    return bench.Measured(
        symbols=800,
        latency_s=0.05,
        concurrency=8,
        rate=200.0,
        wall_s=10.0,
        request_times=[index / 100 for index in range(100)],  # 100 requests in one second
        items=60,
        write_calls=3,
        rss_mb=256.0,
        crawler_cpu_s=8.0,
        dynamodb_cpu_s=2.0,
        cores=2,
    )


def test_every_ratio_is_its_observed_figure_over_what_it_is_held_against(bench: ModuleType) -> None:
    measured = measured_run(bench)

    rows = {name: (observed, against, ratio) for name, observed, against, ratio in bench.rows(measured)}

    assert rows["wall time"] == ("10.0 s", "symbols x latency / concurrency = 5.0 s", "2.00")
    assert rows["CPU floor"] == ("5.0 s", "12.5 ms/symbol x 800 / 2 cores", "1.00")
    assert rows["GIL floor"] == ("8.0 s", "crawler 10.0 ms/symbol, 1 interpreter", "1.60")
    assert rows["peak rate (1 s)"] == ("100/s", "limit 200/s", "0.50")
    assert rows["BatchWriteItem calls"] == ("3", "ceil(60 / 25) = 3", "1.00")
    assert rows["peak RSS, crawler"] == ("256 MB", "batch memory 1024 MB", "0.25")
    assert all(len(line) <= 80 for line in bench.table(measured))

    # At latency 0 there is no wall-time limit to hold anything against: no ratio, no crash.
    instant = {name: ratio for name, _, _, ratio in bench.rows(dataclasses.replace(measured, latency_s=0.0))}
    assert (instant["wall time"], instant["CPU floor"], instant["GIL floor"]) == ("-", "-", "-")
    assert instant["BatchWriteItem calls"] == "1.00"


def test_the_kline_server_answers_each_secid_with_one_bar_and_reports_every_request(bench: ModuleType) -> None:
    server = subprocess.Popen(
        ["node", str(bench.KLINE_SERVER), "0", bench.DAY],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    port = int(server.stdout.readline())
    answers = []
    for secid in ("1.600519", "0.000001"):
        with urllib.request.urlopen(
            f"http://127.0.0.1:{port}/api/qt/stock/kline/get?secid={secid}&klt=101", timeout=10
        ) as response:
            answers.append(json.loads(response.read()))
    output, _ = server.communicate("", timeout=10)

    assert [answer["data"]["code"] for answer in answers] == ["600519", "000001"]
    assert [answer["data"]["market"] for answer in answers] == [1, 0]
    assert all(answer["data"]["klines"][0].startswith(f"{bench.DAY},") for answer in answers)
    assert answers[0]["data"]["klines"][0].split(",")[1:3] == ["10.00", "10.10"]
    times = json.loads(output.strip().splitlines()[-1])
    assert len(times) == 2
    assert times == sorted(times)


def test_the_kline_server_refuses_arguments_it_cannot_serve(bench: ModuleType) -> None:
    for arguments in (["fast", bench.DAY], ["0.05", "yesterday"], []):
        run = subprocess.run(
            ["node", str(bench.KLINE_SERVER), *arguments], capture_output=True, text=True, timeout=30, check=False
        )
        assert run.returncode == 2
        assert "usage:" in run.stderr


def test_the_akshare_alone_row_is_held_against_the_same_limit_and_absent_when_skipped(bench: ModuleType) -> None:
    measured = measured_run(bench)

    assert "akshare alone" not in {name for name, *_ in bench.rows(measured)}
    with_floor = {name: rest for name, *rest in bench.rows(dataclasses.replace(measured, akshare_alone_s=6.0))}
    assert with_floor["akshare alone"] == ["6.0 s", "the same limit, 5.0 s", "1.20"]
    assert all(len(line) <= 80 for line in bench.table(dataclasses.replace(measured, akshare_alone_s=6.0)))


def test_akshare_alone_asks_the_server_once_per_symbol_through_akshare(bench: ModuleType) -> None:
    server, url = bench._kline_server(0.0)
    undo = bench.route_upstream({"url": url})
    try:
        wall = bench.akshare_alone(bench.codes(12), 3, timeout_s=10)
    finally:
        undo()
    output, _ = server.communicate("", timeout=10)

    assert wall > 0
    assert len(json.loads(output.strip().splitlines()[-1])) == 12


def test_akshare_alone_raises_a_failed_request_instead_of_timing_fewer(bench: ModuleType) -> None:
    server, url = bench._kline_server(0.0)
    server.communicate("", timeout=10)  # stopped: every request is refused
    undo = bench.route_upstream({"url": url})
    try:
        with pytest.raises(requests.ConnectionError):
            bench.akshare_alone(bench.codes(4), 2, timeout_s=5)
    finally:
        undo()
