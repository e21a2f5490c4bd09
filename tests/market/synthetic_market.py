"""A synthetic A-share universe in Eastmoney's wire shape, served by ``responses``, for the fan-out.

Every symbol answers the kline endpoint with the bars of the requested range (``beg``..``end``)
among five sessions; some symbols fail transiently first (HTTP 503), one is refused (HTTP 404), one
has no data (``"data": null``). Request times are recorded, so tests can read the rate observed.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from urllib.parse import parse_qs, urlsplit

import responses

from kairos_runtime.fan_out_runner import FanOutRunner
from tests.market.conftest import KLINE_URL, MARKET_TABLE

SESSIONS = ("2026-11-23", "2026-11-24", "2026-11-25", "2026-11-26", "2026-11-27")
SLOT = "2026-11-27T08:00:00Z"
"""Friday 16:00 in Shanghai, after the close."""
TRADING_DATE = "2026-11-27"


def universe(count: int) -> list[str]:
    """``count`` codes: Shanghai 600000.. and Shenzhen 000001.. alternately."""
    codes = []
    for index in range(count):
        codes.append(f"{600000 + index // 2:06d}" if index % 2 == 0 else f"{1 + index // 2:06d}")
    return codes


def kline_row(day: str, seed: int) -> str:
    close = 10 + (seed % 500) / 100
    volume = 1000 + seed
    prices = f"{close - 0.1:.2f},{close:.2f},{close + 0.2:.2f},{close - 0.3:.2f}"
    return f"{day},{prices},{volume},{volume * close * 100:.2f},1.00,0.50,0.05,0.30"


@dataclass
class SyntheticMarket:
    """The kline endpoint's behaviour per symbol, and what it saw."""

    transient: dict[str, int] = field(default_factory=dict)
    """Symbol: how many 503s it answers before its bars."""
    refused: set[str] = field(default_factory=set)
    without_data: set[str] = field(default_factory=set)
    sessions: tuple[str, ...] = SESSIONS
    times: list[float] = field(default_factory=list)
    asked: list[tuple[str, str, str]] = field(default_factory=list)
    """(symbol, beg, end) of every request."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, request: Any) -> tuple[int, dict[str, str], str]:
        query = {key: values[0] for key, values in parse_qs(urlsplit(request.url).query).items()}
        symbol = query["secid"].split(".", 1)[1]
        beg, end = query["beg"], query["end"]
        with self.lock:
            self.times.append(time.monotonic())
            self.asked.append((symbol, beg, end))
            left = self.transient.get(symbol, 0)
            if left:
                self.transient[symbol] = left - 1
                return 503, {}, "busy"
        if symbol in self.refused:
            return 404, {}, "not found"
        if symbol in self.without_data:
            return 200, {"Content-Type": "application/json"}, json.dumps({"rc": 0, "data": None})
        low, high = date(int(beg[:4]), int(beg[4:6]), int(beg[6:])), date(int(end[:4]), int(end[4:6]), int(end[6:]))
        days = [day for day in self.sessions if low <= date.fromisoformat(day) <= high]
        market = 1 if symbol.startswith("6") else 0
        body = {
            "rc": 0,
            "data": {
                "code": symbol,
                "market": market,
                "name": f"S{symbol}",
                "klines": [kline_row(day, int(symbol)) for day in days],
            },
        }
        return 200, {"Content-Type": "application/json"}, json.dumps(body)

    def requests_per_symbol(self) -> Counter[str]:
        return Counter(symbol for symbol, _, _ in self.asked)

    def peak_rate(self, window: float) -> int:
        """The most requests that arrived within any ``window`` seconds."""
        times = sorted(self.times)
        most = start = 0
        for end, moment in enumerate(times):
            while moment - times[start] >= window:
                start += 1
            most = max(most, end - start + 1)
        return most


def serve(http: responses.RequestsMock) -> SyntheticMarket:
    """The synthetic kline endpoint on ``http`` (the market tests' ``responses`` mock)."""
    http.assert_all_requests_are_fired = False
    synthetic = SyntheticMarket()
    http.add_callback(responses.GET, KLINE_URL, callback=synthetic.answer)
    return synthetic


def runner_factory(dynamodb: Any) -> Callable[..., FanOutRunner]:
    from kairos.local.tables import tables_from_designs
    from kairos_runtime.context import Clients
    from kairos_runtime.settings import RuntimeSettings
    from kairos_runtime.tasks import default_registry
    from kairos_runtime.validation import parse

    def build(**settings: object) -> FanOutRunner:
        runtime_settings = parse(
            {
                "stage": "test",
                "runtime": "python3.13",
                "table_names": {table.table_id: table.name for table in tables_from_designs("test")},
                **settings,
            },
            RuntimeSettings,
        )
        return FanOutRunner(
            registry=default_registry(),
            settings=runtime_settings,
            clients=Clients(runtime_settings, resource_factory=lambda: dynamodb),
            logger=logging.getLogger("kairos.test"),
        )

    return build


def store_spot_universe(dynamodb: Any, codes: list[str], day: str = TRADING_DATE) -> None:
    """LATEST items as the spot task leaves them (only the keys the universe reads)."""
    with dynamodb.Table(MARKET_TABLE).batch_writer() as batch:
        for code in codes:
            batch.put_item(
                Item={"pk": f"STOCK#{code}", "sk": "LATEST", "gsi1pk": f"STOCK#LATEST#{day}", "gsi1sk": code}
            )
