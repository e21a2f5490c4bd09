"""Full-market fan-out benchmark: a daily crawl of N synthetic A-shares through the local fan-out.

``.venv/bin/python bench/fan_out_bench.py [--symbols 5400] [--latency-ms 50] [--concurrency 8]
[--rate 200] [--batch-size 50] [--profile FILE]``

A loopback HTTP server (``bench/kline_server.mjs``, a Node process: it stands for Eastmoney, so it
must neither share the crawler's GIL nor spend much of the machine's cores) answers Eastmoney's
kline requests (``stock_zh_a_hist``) for every symbol with one bar of the slot's trading date after
a fixed latency; akshare's own request and parsing code runs (its ``push2his.eastmoney.com`` URLs
are sent to the server instead). DynamoDB is the embedded one
``kairos run`` uses (dynalite, a Node process, on a fresh data directory). The crawl is ``kairos
run``'s path: the planner (universe from stored LATEST items), the batches on a thread pool of
``--concurrency`` (the Map's MaxConcurrency), each paced at ``rate / concurrency``, then the
summary. Printed:

* wall time against ``symbols x latency / concurrency`` (the latency-bound limit; target <= 1.3),
  and beside it the CPU floor of the same run: the CPU seconds the crawler and DynamoDB spent per
  symbol x symbols / cores (no schedule on this machine can finish faster),
* the GIL floor: the crawler's own CPU seconds, which one interpreter runs on one core at a time
  (the thread pool shares one GIL),
* the highest request rate the server saw in any 1 s window against the configured limit,
* BatchWriteItem calls against ceil(items / 25) (1.00 without throttling; each batch writes its
  own items, so a batch whose items are not a multiple of 25 adds a partial request),
* the crawler process's peak RSS (every batch and akshare together: an upper bound on one batch
  worker's) against the batch function's memory setting,
* and, after the crawl, akshare alone: the same symbols and concurrency, each thread calling
  ``stock_zh_a_hist`` on its kept-alive session (Kairos's HTTP policy) against a fresh server, and
  nothing else (no DynamoDB, no pacing, no normalising, no writes). Its wall time over the same
  limit is the floor of any in-process thread pool that runs akshare's own parsing, measured beside
  the crawl: what the crawl adds is the gap between the two (``--no-akshare-floor`` skips it).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "lambdas" / "python")]

SLOT = "2026-11-27T08:00:00Z"
DAY = "2026-11-27"
WORKER_MEMORY_MB = 1024
UPSTREAM = "https://push2his.eastmoney.com"
KLINE_SERVER = Path(__file__).with_name("kline_server.mjs")


def codes(count: int) -> list[str]:
    """``count`` distinct six-digit codes, Shanghai (6xxxxx) and Shenzhen (00xxxx) alternating."""
    return [f"{600000 + index // 2:06d}" if index % 2 == 0 else f"{1 + index // 2:06d}" for index in range(count)]


def peak(times: Sequence[float], window: float = 1.0) -> int:
    """The most events inside any half-open window of ``window`` seconds."""
    ordered = sorted(times)
    most = start = 0
    for end, moment in enumerate(ordered):
        while moment - ordered[start] >= window:
            start += 1
        most = max(most, end - start + 1)
    return most


@dataclass(frozen=True, slots=True)
class Measured:
    symbols: int
    latency_s: float
    concurrency: int
    rate: float
    wall_s: float
    request_times: Sequence[float]
    items: int
    write_calls: int
    rss_mb: float
    crawler_cpu_s: float
    dynamodb_cpu_s: float
    cores: int
    akshare_alone_s: float | None = None
    """Wall time of akshare alone over the same symbols and concurrency (None: not measured)."""


def _ratio(value: float, bound: float) -> str:
    """``value / bound``, or ``-`` for a bound of zero (a run at latency 0 has no wall-time limit)."""
    return f"{value / bound:.2f}" if bound > 0 else "-"


def rows(measured: Measured) -> list[tuple[str, str, str, str]]:
    """The table: each figure, what it is held against, and the ratio of the two."""
    bound = measured.symbols * measured.latency_s / measured.concurrency
    cpu_s = measured.crawler_cpu_s + measured.dynamodb_cpu_s
    per_symbol_ms = 1000 * cpu_s / max(measured.symbols, 1)
    floor = cpu_s / measured.cores
    crawler_ms = 1000 * measured.crawler_cpu_s / max(measured.symbols, 1)
    seen = peak(measured.request_times)
    expected = math.ceil(measured.items / 25)
    return [
        (
            "wall time",
            f"{measured.wall_s:.1f} s",
            f"symbols x latency / concurrency = {bound:.1f} s",
            _ratio(measured.wall_s, bound),
        ),
        (
            "CPU floor",
            f"{floor:.1f} s",
            f"{per_symbol_ms:.1f} ms/symbol x {measured.symbols} / {measured.cores} cores",
            _ratio(floor, bound),
        ),
        (
            "GIL floor",
            f"{measured.crawler_cpu_s:.1f} s",
            f"crawler {crawler_ms:.1f} ms/symbol, 1 interpreter",
            _ratio(measured.crawler_cpu_s, bound),
        ),
        ("peak rate (1 s)", f"{seen}/s", f"limit {measured.rate:g}/s", f"{seen / measured.rate:.2f}"),
        (
            "BatchWriteItem calls",
            f"{measured.write_calls}",
            f"ceil({measured.items} / 25) = {expected}",
            f"{measured.write_calls / max(expected, 1):.2f}",
        ),
        (
            "peak RSS, crawler",
            f"{measured.rss_mb:.0f} MB",
            f"batch memory {WORKER_MEMORY_MB} MB",
            f"{measured.rss_mb / WORKER_MEMORY_MB:.2f}",
        ),
        *(
            []
            if measured.akshare_alone_s is None
            else [
                (
                    "akshare alone",
                    f"{measured.akshare_alone_s:.1f} s",
                    f"the same limit, {bound:.1f} s",
                    _ratio(measured.akshare_alone_s, bound),
                )
            ]
        ),
    ]


def table(measured: Measured) -> list[str]:
    lines = [f"{'measure':<20}{'observed':>9}  {'against':<43}{'ratio':>6}"]
    lines += [f"{name:<20}{seen:>9}  {against:<43}{ratio:>6}" for name, seen, against, ratio in rows(measured)]
    return lines


def cpu_seconds(usage: resource.struct_rusage) -> float:
    return usage.ru_utime + usage.ru_stime


def _profiled(step: Any, profiles: list[Any]) -> Any:
    """``step`` under its own cProfile (a profiler sees only the thread that enabled it)."""
    import cProfile

    def run(payload: dict[str, Any], context: Any) -> Any:
        profile = cProfile.Profile()
        profiles.append(profile)
        return profile.runcall(step, payload, context)

    return run


def _pid_cpu(proc: Path) -> float:
    """The CPU seconds so far (user and system) of the process ``/proc/<pid>`` describes."""
    fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _process_cpu(endpoint_url: str) -> float:
    """The CPU seconds so far of the dynalite process listening on the endpoint's port."""
    port = str(urlsplit(endpoint_url).port)
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            if any(b"dynalite" in part for part in argv) and port.encode() in argv:
                return _pid_cpu(proc)
        except OSError:
            continue
    raise RuntimeError(f"no dynalite process listens on port {port}")


def route_upstream(target: dict[str, str]) -> Callable[[], None]:
    """Send every request for :data:`UPSTREAM` to ``target["url"]`` instead (read at each request,
    so the target can change); returns the function that undoes it."""
    import requests.adapters

    send = requests.adapters.HTTPAdapter.send

    def to_loopback(self: Any, request: Any, *rest: Any, **kwargs: Any) -> Any:
        if request.url.startswith(UPSTREAM):
            request.url = target["url"] + request.url.removeprefix(UPSTREAM)
        return send(self, request, *rest, **kwargs)

    requests.adapters.HTTPAdapter.send = to_loopback  # type: ignore[method-assign]

    def undo() -> None:
        requests.adapters.HTTPAdapter.send = send  # type: ignore[method-assign]

    return undo


def _kline_server(latency_s: float) -> tuple[subprocess.Popen[str], str]:
    """``bench/kline_server.mjs`` started, and its base URL."""
    server = subprocess.Popen(
        ["node", str(KLINE_SERVER), str(latency_s), DAY], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert server.stdout is not None
    return server, f"http://127.0.0.1:{server.stdout.readline().strip()}"


def akshare_alone(universe: Sequence[str], concurrency: int, timeout_s: float) -> float:
    """Wall seconds for ``concurrency`` threads to fetch every symbol's bar of :data:`DAY` through
    akshare's ``stock_zh_a_hist`` and nothing else, each thread on its kept-alive session. A failed
    request is raised: a floor measured with fewer requests than symbols would be wrong."""
    from concurrent.futures import ThreadPoolExecutor

    import akshare

    from kairos_runtime.tasks.market.upstream import upstream_requests

    def fetch(codes: Sequence[str]) -> None:
        with upstream_requests(proxy=None, timeout=timeout_s):
            for code in codes:
                akshare.stock_zh_a_hist(
                    symbol=code, period="daily", start_date=DAY.replace("-", ""), end_date=DAY.replace("-", ""),
                    adjust="qfq", timeout=timeout_s,
                )  # fmt: skip

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        lanes = [pool.submit(fetch, universe[lane::concurrency]) for lane in range(concurrency)]
        for lane in lanes:
            lane.result()
    return time.monotonic() - started


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--symbols", type=int, default=5400)
    parser.add_argument("--latency-ms", type=float, default=50)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rate", type=float, default=200, help="requests_per_second for the whole task")
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--profile", type=Path, help="write the crawl's cProfile stats here")
    parser.add_argument("--no-akshare-floor", action="store_true", help="skip the akshare-alone pass after the crawl")
    args = parser.parse_args(argv)

    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    os.environ.update({"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "TQDM_DISABLE": "1"})
    logging.disable(logging.CRITICAL)
    import boto3

    from kairos.local.dynamodb import embedded_dynamodb
    from kairos.local.fan_out import drive
    from kairos.local.python_invoke import LocalLambdaContext
    from kairos.local.tables import ensure_tables, tables_from_designs
    from kairos.plan import BATCH_RETRY
    from kairos_runtime.context import Clients
    from kairos_runtime.fan_out_runner import FanOutRunner
    from kairos_runtime.settings import RuntimeSettings
    from kairos_runtime.tables import TableId
    from kairos_runtime.tasks import default_registry
    from kairos_runtime.validation import parse

    kline, local = _kline_server(args.latency_ms / 1000)
    target = {"url": local}
    route_upstream(target)

    universe = codes(args.symbols)
    writes = {"calls": 0}
    with (
        tempfile.TemporaryDirectory(prefix="fan-out-bench-") as scratch,
        embedded_dynamodb(Path(scratch) / "dynamodb") as endpoint,
    ):
        dynamodb = boto3.resource("dynamodb", region_name="us-east-1", endpoint_url=endpoint.url)
        tables = tables_from_designs("bench")
        ensure_tables(dynamodb.meta.client, tables)
        names = {each.table_id: each.name for each in tables}
        market = dynamodb.Table(names[TableId.MARKET_DATA])
        with market.batch_writer() as batch:
            for code in universe:
                batch.put_item(
                    Item={"pk": f"STOCK#{code}", "sk": "LATEST", "gsi1pk": f"STOCK#LATEST#{DAY}", "gsi1sk": code}
                )

        def count(**kwargs: Any) -> None:
            writes["calls"] += 1

        dynamodb.meta.client.meta.events.register("before-call.dynamodb.BatchWriteItem", count)
        settings = parse({"stage": "bench", "runtime": "python3.13", "table_names": names}, RuntimeSettings)
        runner = FanOutRunner(
            registry=default_registry(),
            settings=settings,
            clients=Clients(settings, resource_factory=lambda: dynamodb),
            logger=logging.getLogger("bench"),
        )
        event = {
            "task": "stock-daily-all",
            "task_type": "stock_daily_all",
            "params": {
                "batch_size": args.batch_size,
                "max_concurrency": args.concurrency,
                "requests_per_second": args.rate,
                "lookback_days": 1,
            },
            "scheduled_time": SLOT,
            "execution_id": "bench",
            "attempt": "1",
        }
        profiles: list[Any] = []
        steps = {"plan": runner.plan, "batch": runner.batch, "summarize": runner.summarize}
        if args.profile:
            steps = {name: _profiled(step, profiles) for name, step in steps.items()}
        crawler_before = cpu_seconds(resource.getrusage(resource.RUSAGE_SELF))
        dynamodb_before = _process_cpu(endpoint.url)
        server_before = _pid_cpu(Path(f"/proc/{kline.pid}"))
        started = time.monotonic()
        result = drive(
            event,
            plan=steps["plan"],
            batch=steps["batch"],
            summarize=steps["summarize"],
            max_concurrency=args.concurrency,
            batch_retry=BATCH_RETRY,
            contexts={
                step: (lambda: LocalLambdaContext("bench", WORKER_MEMORY_MB, 900))
                for step in ("plan", "batch", "summarize")
            },
        )
        wall = time.monotonic() - started
        if profiles:
            import pstats

            pstats.Stats(*profiles).dump_stats(args.profile)
        crawler_cpu = cpu_seconds(resource.getrusage(resource.RUSAGE_SELF)) - crawler_before
        dynamodb_cpu = _process_cpu(endpoint.url) - dynamodb_before
    server_cpu = _pid_cpu(Path(f"/proc/{kline.pid}")) - server_before
    output, _ = kline.communicate("")
    times = json.loads(output.strip().splitlines()[-1])
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    floor_s = None
    if not args.no_akshare_floor:
        alone, target["url"] = _kline_server(args.latency_ms / 1000)
        floor_s = akshare_alone(universe, args.concurrency, timeout_s=30)
        alone.communicate("")
    response = result.response
    measured = Measured(
        symbols=args.symbols,
        latency_s=args.latency_ms / 1000,
        concurrency=args.concurrency,
        rate=args.rate,
        wall_s=wall,
        request_times=times,
        items=int(response["items_written"]),
        write_calls=writes["calls"],
        rss_mb=rss_mb,
        crawler_cpu_s=crawler_cpu,
        dynamodb_cpu_s=dynamodb_cpu,
        cores=os.cpu_count() or 1,
        akshare_alone_s=floor_s,
    )
    print(
        f"fan-out bench: {args.symbols} symbols, latency {args.latency_ms:g} ms, concurrency {args.concurrency}, "
        f"batch {args.batch_size}, limit {args.rate:g}/s; run {response['status']}, {measured.items} bars, "
        f"{len(result.results)} batches; load average {os.getloadavg()[0]:.1f}; "
        f"CPU used {crawler_cpu + dynamodb_cpu:.1f} s (crawler {crawler_cpu:.1f}, dynalite {dynamodb_cpu:.1f}; "
        f"besides, the kline server {server_cpu:.1f})"
    )
    print("\n".join(table(measured)))
    return 0 if response["status"] == "SUCCEEDED" else 1


if __name__ == "__main__":
    raise SystemExit(main())
