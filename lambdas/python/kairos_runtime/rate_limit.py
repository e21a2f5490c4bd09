"""Pacing a fan-out's requests: a task's ``requests_per_second`` shared among its concurrent batches.

Each batch worker gets ``requests_per_second / max_concurrency`` and paces itself with a token bucket
holding one token (so it never bursts: its requests are at least ``1 / rate`` apart, and the batches
together never exceed the task's rate). The rate adapts: an answer of HTTP 429 or 5xx, or none at all,
halves it (down to a floor of 1/16 of the share), and each success wins back a tenth of the share
(additive increase, multiplicative decrease, as TCP does), so a source that pushes back is asked less
often rather than only retried.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

SLOWDOWN_FACTOR = 0.5
RECOVERY_SHARE = 0.1
"""Of the ceiling, won back per successful answer."""
FLOOR_SHARE = 1 / 16
"""The lowest rate a limiter slows down to, as a share of its ceiling."""


def per_batch_rate(requests_per_second: float, max_concurrency: int) -> float:
    """One batch's share of the task's rate: the total divided among the batches that run at once."""
    if requests_per_second <= 0 or max_concurrency < 1:
        raise ValueError(f"need a positive rate and concurrency (got {requests_per_second}, {max_concurrency})")
    return requests_per_second / max_concurrency


def pushes_back(status: int | None) -> bool:
    """An answer that asks the sender to slow down: throttled, failing on its side, or none at all."""
    return status is None or status == 429 or status >= 500


@dataclass
class LimiterStats:
    requests: int = 0
    slowdowns: int = 0
    waited_seconds: float = 0.0
    lowest_rate: float = 0.0


class AdaptiveRateLimiter:
    """A one-token bucket refilled at ``rate`` per second, which 429/5xx answers slow down.

    Thread-safe; ``clock`` and ``sleep`` are injectable so tests need not wait.
    """

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"a rate limit must be positive (got {rate})")
        self.ceiling = rate
        self.rate = rate
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next_token = clock()
        self.stats = LimiterStats(lowest_rate=rate)

    def acquire(self) -> None:
        """Wait for the token: a request may start at most once per ``1 / rate`` seconds."""
        with self._lock:
            now = self._clock()
            start = max(now, self._next_token)
            self._next_token = start + 1 / self.rate
            self.stats.requests += 1
            wait = start - now
            self.stats.waited_seconds += wait
        if wait > 0:
            self._sleep(wait)

    def record(self, status: int | None) -> None:
        with self._lock:
            if pushes_back(status):
                self.rate = max(self.ceiling * FLOOR_SHARE, self.rate * SLOWDOWN_FACTOR)
                self.stats.slowdowns += 1
                self.stats.lowest_rate = min(self.stats.lowest_rate, self.rate)
            else:
                self.rate = min(self.ceiling, self.rate + self.ceiling * RECOVERY_SHARE)


EASTMONEY_REQUESTS_PER_SECOND = 3.0
"""The default total for an Eastmoney fan-out: about 11,000 kline requests an hour, far below a
browser session's pace, since Eastmoney refuses clients it finds too busy."""
COINGECKO_REQUESTS_PER_SECOND = 0.5
"""30 calls a minute: the bottom of CoinGecko's published free (demo) plan range, 30-100 calls/min,
which keyless calls share per IP."""
