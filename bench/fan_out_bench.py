"""Full-market fan-out benchmark: a daily crawl of N synthetic A-shares through the local fan-out.

``.venv/bin/python bench/fan_out_bench.py [--symbols 5400] [--latency-ms 50] [--concurrency 8]
[--rate 200] [--batch-size 50]``

A loopback HTTP server answers Eastmoney's kline requests (``stock_zh_a_hist``) for every symbol
with one bar of the slot's trading date after a fixed latency; akshare's own request and parsing
code runs (its ``push2his.eastmoney.com`` URLs are sent to the server instead). DynamoDB is moto's
server on loopback. The crawl is ``kairos run``'s path: the planner (universe from stored LATEST items),
the batches on a thread pool of ``--concurrency`` (the Map's MaxConcurrency), each paced at
``rate / concurrency``, then the summary. Printed:

* wall time against ``symbols x latency / concurrency`` (the latency-bound limit; target <= 1.3),
* the highest request rate the server saw in any 1 s window against the configured limit,
* BatchWriteItem calls against ceil(items / 25) (1.00 without throttling; each batch writes its
  own items, so a batch whose items are not a multiple of 25 adds a partial request),
* the process's peak RSS (every batch, moto and akshare together: an upper bound on one batch
  worker's) against the batch function's memory setting.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import resource
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "lambdas" / "python")]

SLOT = "2026-11-27T08:00:00Z"
DAY = "2026-11-27"
WORKER_MEMORY_MB = 1024


def codes(count: int) -> list[str]:
    return [f"{600000 + index // 2:06d}" if index % 2 == 0 else f"{1 + index // 2:06d}" for index in range(count)]


class Kline(BaseHTTPRequestHandler):
    latency = 0.05
    times: ClassVar[list[float]] = []
    lock = threading.Lock()

    def do_GET(self) -> None:
        with self.lock:
            self.times.append(time.monotonic())
        time.sleep(self.latency)
        query = {key: values[0] for key, values in parse_qs(urlsplit(self.path).query).items()}
        symbol = query.get("secid", "0.000001").split(".", 1)[1]
        row = f"{DAY},10.00,10.10,10.20,9.90,12345,12468450.00,3.00,1.00,0.10,0.50"
        body = json.dumps(
            {"rc": 0, "data": {"code": symbol, "market": 1 if symbol.startswith("6") else 0, "klines": [row]}}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return None


def peak(times: list[float], window: float = 1.0) -> int:
    ordered = sorted(times)
    most = start = 0
    for end, moment in enumerate(ordered):
        while moment - ordered[start] >= window:
            start += 1
        most = max(most, end - start + 1)
    return most


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=5400)
    parser.add_argument("--latency-ms", type=float, default=50)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rate", type=float, default=200, help="requests_per_second for the whole task")
    parser.add_argument("--batch-size", type=int, default=50)
    args = parser.parse_args()

    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    os.environ.update({"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "TQDM_DISABLE": "1"})
    logging.disable(logging.CRITICAL)
    import boto3
    import requests.adapters
    from moto.server import ThreadedMotoServer

    from kairos.local.fan_out import drive
    from kairos.local.python_invoke import LocalLambdaContext
    from kairos.local.tables import ensure_tables, tables_from_designs
    from kairos.plan import BATCH_RETRY
    from kairos_runtime.context import Clients
    from kairos_runtime.fan_out_runner import FanOutRunner
    from kairos_runtime.settings import RuntimeSettings
    from kairos_runtime.tasks import default_registry
    from kairos_runtime.validation import parse

    Kline.latency = args.latency_ms / 1000
    server = ThreadingHTTPServer(("127.0.0.1", 0), Kline)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    local = f"http://127.0.0.1:{server.server_address[1]}"
    send = requests.adapters.HTTPAdapter.send

    def to_loopback(self: Any, request: Any, *rest: Any, **kwargs: Any) -> Any:
        if request.url.startswith("https://push2his.eastmoney.com"):
            request.url = local + request.url.removeprefix("https://push2his.eastmoney.com")
        return send(self, request, *rest, **kwargs)

    requests.adapters.HTTPAdapter.send = to_loopback  # type: ignore[method-assign]

    universe = codes(args.symbols)
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    endpoint = f"http://127.0.0.1:{moto._server.server_port}"
    try:
        dynamodb = boto3.resource("dynamodb", region_name="us-east-1", endpoint_url=endpoint)
        tables = tables_from_designs("bench")
        ensure_tables(dynamodb.meta.client, tables)
        names = {table.table_id: table.name for table in tables}
        market = dynamodb.Table(names[next(iter(t for t in names if t.value == "market_data"))])
        with market.batch_writer() as batch:
            for code in universe:
                batch.put_item(
                    Item={"pk": f"STOCK#{code}", "sk": "LATEST", "gsi1pk": f"STOCK#LATEST#{DAY}", "gsi1sk": code}
                )
        writes = {"calls": 0}

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
        started = time.monotonic()
        result = drive(
            event,
            plan=runner.plan,
            batch=runner.batch,
            summarize=runner.summarize,
            max_concurrency=args.concurrency,
            batch_retry=BATCH_RETRY,
            contexts={
                step: (lambda: LocalLambdaContext("bench", WORKER_MEMORY_MB, 900))
                for step in ("plan", "batch", "summarize")
            },
        )
        wall = time.monotonic() - started
    finally:
        moto.stop()
    server.shutdown()
    response = result.response
    items = int(response["items_written"])
    bound = args.symbols * Kline.latency / args.concurrency
    seen = peak(Kline.times)
    expected_writes = math.ceil(items / 25)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows = [
        ("wall time", f"{wall:.1f} s", f"symbols x latency / concurrency = {bound:.1f} s", f"{wall / bound:.2f}"),
        ("peak request rate (1 s)", f"{seen}/s", f"limit {args.rate:g}/s", f"{seen / args.rate:.2f}"),
        (
            "BatchWriteItem calls",
            f"{writes['calls']}",
            f"ceil({items} / 25) = {expected_writes}",
            f"{writes['calls'] / max(expected_writes, 1):.2f}",
        ),
        (
            "peak RSS (whole process)",
            f"{rss_mb:.0f} MB",
            f"batch memory {WORKER_MEMORY_MB} MB",
            f"{rss_mb / WORKER_MEMORY_MB:.2f}",
        ),
    ]
    print(
        f"fan-out bench: {args.symbols} symbols, latency {args.latency_ms:g} ms, concurrency {args.concurrency}, "
        f"batch {args.batch_size}, limit {args.rate:g}/s; run {response['status']}, {items} bars, "
        f"{len(result.results)} batches"
    )
    print(f"{'measure':<26}{'observed':>12}  {'against':<40}{'ratio':>6}")
    for name, observed, against, ratio in rows:
        print(f"{name:<26}{observed:>12}  {against:<40}{ratio:>6}")
    return 0 if response["status"] == "SUCCEEDED" else 1


if __name__ == "__main__":
    raise SystemExit(main())
