"""Calling the market data sources: HTTP policy, failure classification, retries and scrubbing.

akshare and pycoingecko call ``requests`` themselves, so the policy is applied around their calls:

* a proxy: akshare passes no ``proxies`` argument, but requests reads ``HTTPS_PROXY``/``HTTP_PROXY``
  from the environment on every request, so :func:`upstream_requests` sets them for the duration of
  the call and restores them after the last block of the process ends (a Lambda invocation runs one
  task at a time, so the process-wide environment is ours for that long; AWS calls are made outside
  the block and never see the proxy; a local fan-out's batches share the one task's proxy);
* a timeout: every request is capped at the task's ``request_timeout_seconds``, including the akshare
  calls that pass none (``index_zh_a_hist`` and the major-index quote list would otherwise wait
  forever on a stalled connection);
* HTTP errors: a 4xx/5xx response raises ``HTTPError`` at once, so an error page is never parsed as
  data and a 5xx or 429 is recognised as worth another try.
* pacing: a fan-out batch passes its rate limiter (``gate``), which every HTTP request waits for and
  which hears each answer's status, so 429 and 5xx slow the batch down (:mod:`kairos_runtime.rate_limit`);
* one connection per thread: akshare's ``requests.get`` makes a new session, so a new TCP (and TLS)
  connection, per call; inside a block those calls go through the thread's kept-alive session
  instead (cookies cleared each time, as on a fresh session), so a batch's symbols share one;
* quiet loggers: the HTTP libraries' loggers are held at WARNING whatever ``LOG_LEVEL`` says, since
  urllib3 logs URLs with their query strings, API keys included (:mod:`kairos_runtime.log_levels`).

Nothing here imports requests at module import time: the handler's cold start for other tasks
stays free of it.
"""

from __future__ import annotations

import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Any, Protocol, TypeVar

from msgspec import Meta

from kairos_runtime.errors import PermanentTaskError, TransientTaskError
from kairos_runtime.log_levels import quiet_third_party_loggers
from kairos_runtime.registry import TaskParams
from kairos_runtime.runs import ErrorKind

T = TypeVar("T")

PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy")
# Time kept back from the Lambda budget for writing the results and the run record.
WRITE_RESERVE_SECONDS = 15.0
MAX_MESSAGE = 300
_KEY_IN_URL = re.compile(r"((?:x_cg_(?:pro|demo)_api_key|api_key|apikey|token)=)[^&\s'\"]+", re.IGNORECASE)

sleep: Callable[[float], None] = time.sleep
"""Backoff waits go through here, so tests can skip them."""


class CrawlerParams(TaskParams, frozen=True):
    """Settings every task that calls a market data source shares."""

    request_timeout_seconds: Annotated[
        float, Meta(gt=0, le=120, description="cap on each HTTP request's connect and read time")
    ] = 15
    max_retry_seconds: Annotated[
        float,
        Meta(
            ge=0,
            le=600,
            description=(
                "a failing call is retried only while its attempts and waits fit in this many seconds; "
                "longer outages are left to Lambda's own retry of the delivery"
            ),
        ),
    ] = 10


class SourceUnavailable(TransientTaskError):  # noqa: N818 - named for the run record
    """The source could not be reached, timed out, throttled or failed on its side, after retries."""

    def __init__(self, message: str, *, detail: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.detail = detail or {}


class SourceRejected(PermanentTaskError):  # noqa: N818 - named for the run record
    """The source answered with an error that another try would not change, or with unparseable data."""

    def __init__(self, message: str, *, detail: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.detail = detail or {}


class NoValidRows(PermanentTaskError):  # noqa: N818 - named for the run record
    """The source answered, but nothing it sent could be stored."""

    def __init__(self, message: str, *, detail: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.detail = detail or {}


@dataclass(frozen=True, slots=True)
class Failure:
    kind: ErrorKind
    reason: str
    """Short and free of secrets: ``timed out``, ``HTTP 503``, ``connection failed``."""


def scrub(text: str, secrets: Sequence[str] = ()) -> str:
    """Remove API keys from a message: the given values, and any key-like query parameter."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return _KEY_IN_URL.sub(r"\1***", text)


def describe(error: BaseException, secrets: Sequence[str] = ()) -> str:
    text = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    return scrub(text, secrets)[:MAX_MESSAGE]


def classify(error: BaseException) -> Failure:
    """Whether another attempt could succeed. Unknown errors are permanent: retrying a bug helps no one."""
    import requests

    if isinstance(error, requests.exceptions.HTTPError) and error.response is not None:
        status = error.response.status_code
        if status == 429:
            return Failure(ErrorKind.TRANSIENT, "rate limited (HTTP 429)")
        if status >= 500:
            return Failure(ErrorKind.TRANSIENT, f"HTTP {status}")
        return Failure(ErrorKind.PERMANENT, f"HTTP {status}")
    if isinstance(error, requests.exceptions.Timeout):
        return Failure(ErrorKind.TRANSIENT, "timed out")
    if isinstance(error, requests.exceptions.ConnectionError | ConnectionError):
        return Failure(ErrorKind.TRANSIENT, "connection failed")
    if isinstance(error, requests.exceptions.ChunkedEncodingError):
        return Failure(ErrorKind.TRANSIENT, "response cut short")
    if isinstance(error, requests.exceptions.RetryError):
        return Failure(ErrorKind.TRANSIENT, "server errors (HTTP retries exhausted)")
    if isinstance(error, TimeoutError):
        return Failure(ErrorKind.TRANSIENT, "timed out")
    return Failure(ErrorKind.PERMANENT, "unexpected response")


class RequestGate(Protocol):
    """What paces a thread's HTTP requests (a fan-out batch's rate limiter, :mod:`kairos_runtime.rate_limit`)."""

    def acquire(self) -> None: ...

    def record(self, status: int | None) -> None:
        """The answer's HTTP status (None: no answer): 429 and 5xx slow the sender down."""


@dataclass(frozen=True, slots=True)
class _Policy:
    timeout: float
    gate: RequestGate | None


# The policy is per thread, the patch of requests.Session.request process-wide: the first block to
# enter installs it and the last to leave restores the original, so the batches of a local fan-out
# (threads of one process) each keep their own timeout and rate limiter.
_POLICY = threading.local()
_PATCH_LOCK = threading.Lock()
_patch_state: dict[str, Any] = {"users": 0, "original": None, "original_api": None, "saved_env": {}}


def _policy() -> _Policy | None:
    stack: list[_Policy] | None = getattr(_POLICY, "stack", None)
    return stack[-1] if stack else None


def _policed(original: Callable[..., Any]) -> Callable[..., Any]:
    """``requests.Session.request`` under the calling thread's policy (untouched outside a block)."""

    def request(self: Any, method: str, url: str, **kwargs: Any) -> Any:
        policy = _policy()
        if policy is None:  # another thread, outside any block
            return original(self, method, url, **kwargs)
        given = kwargs.get("timeout")
        kwargs["timeout"] = policy.timeout if given is None else _capped(given, policy.timeout)
        gate = policy.gate
        if gate is not None:
            gate.acquire()
        try:
            response = original(self, method, url, **kwargs)
        except Exception:
            if gate is not None:
                gate.record(None)
            raise
        if gate is not None:
            gate.record(response.status_code)
        response.raise_for_status()
        return response

    return request


def _thread_session() -> Any:
    """This thread's kept-alive session: one per thread, so the connection to a source is reused
    from one symbol to the next instead of a TCP (and TLS) handshake per request."""
    session = getattr(_POLICY, "session", None)
    if session is None:
        import requests

        session = _POLICY.session = requests.Session()
    return session


def _pooled(original: Callable[..., Any]) -> Callable[..., Any]:
    """``requests.api.request`` (behind ``requests.get`` and friends, which akshare calls, each on a
    new session) on this thread's kept-alive session inside a block. A fresh session keeps no
    cookies, so neither does this one between requests; a library's own session is left alone."""

    def request(method: str, url: str, **kwargs: Any) -> Any:
        if _policy() is None:
            return original(method, url, **kwargs)
        session = _thread_session()
        session.cookies.clear()
        return session.request(method=method, url=url, **kwargs)

    return request


def _enter(proxy: str | None) -> None:
    import requests
    import requests.api

    with _PATCH_LOCK:
        if _patch_state["users"] == 0:
            _patch_state["original"] = requests.Session.request
            _patch_state["original_api"] = requests.api.request
            _patch_state["saved_env"] = {name: os.environ.get(name) for name in PROXY_VARIABLES}
            requests.Session.request = _policed(requests.Session.request)  # type: ignore[method-assign]
            requests.api.request = _pooled(requests.api.request)
            if proxy:
                os.environ.update(dict.fromkeys(PROXY_VARIABLES, proxy))
        _patch_state["users"] += 1


def _leave() -> None:
    import requests
    import requests.api

    with _PATCH_LOCK:
        _patch_state["users"] -= 1
        if _patch_state["users"]:
            return
        requests.Session.request = _patch_state["original"]  # type: ignore[method-assign]
        requests.api.request = _patch_state["original_api"]
        for name, value in _patch_state["saved_env"].items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextmanager
def upstream_requests(*, proxy: str | None, timeout: float, gate: RequestGate | None = None) -> Iterator[None]:
    """Apply the HTTP policy (proxy, timeout cap, errors raised, and ``gate`` pacing each request)
    to requests made inside the block by this thread."""
    quiet_third_party_loggers()
    _enter(proxy)
    stack: list[_Policy] = getattr(_POLICY, "stack", None) or []
    _POLICY.stack = stack
    stack.append(_Policy(timeout=timeout, gate=gate))
    try:
        yield
    finally:
        stack.pop()
        _leave()


def _capped(given: object, cap: float) -> object:
    if isinstance(given, tuple):
        return tuple(cap if part is None else min(float(part), cap) for part in given)
    if isinstance(given, int | float):
        return min(float(given), cap)
    return given


class Retrier:
    """Calls a source with exponential backoff and jitter, within a time budget.

    A failed call is tried again only while the next wait plus another attempt as long as the last
    one fits in ``max_retry_seconds`` (counted from the call's start) and in the Lambda time left
    after :data:`WRITE_RESERVE_SECONDS`. Permanent failures are raised at once.
    """

    def __init__(
        self,
        *,
        source: str,
        max_retry_seconds: float,
        remaining_time_ms: Callable[[], int],
        logger: Any,
        secrets: Sequence[str] = (),
        base_delay: float = 1.0,
        max_delay: float = 8.0,
        max_attempts: int = 5,
    ) -> None:
        self.source = source
        self._budget = max_retry_seconds
        self._remaining_time_ms = remaining_time_ms
        self._logger = logger
        self._secrets = tuple(secrets)
        self._base_delay = base_delay
        self._max_delay = max_delay
        self._max_attempts = max_attempts
        self.retries = 0
        """Retries made across every call, for the run record."""

    def call(self, fetch: Callable[[], T], *, what: str) -> T:
        spent = 0.0
        attempt = 1
        while True:
            started = time.monotonic()
            try:
                return fetch()
            except (SourceUnavailable, SourceRejected, NoValidRows):
                raise
            except Exception as error:
                duration = time.monotonic() - started
                spent += duration
                failure = classify(error)
                message = describe(error, self._secrets)
                if failure.kind is ErrorKind.PERMANENT:
                    raise SourceRejected(f"{self.source} {what}: {failure.reason}: {message}") from None
                delay = self._delay(attempt)
                if not self._may_retry(attempt, next_try=delay + duration, spent=spent):
                    raise SourceUnavailable(
                        f"{self.source} could not be reached for {what}: {failure.reason} "
                        f"after {attempt} attempt(s) in {spent:.1f} s: {message}",
                        detail={"attempts": attempt, "reason": failure.reason},
                    ) from None
                self._logger.warning(
                    "retrying after a transient failure",
                    extra={
                        "source": self.source,
                        "what": what,
                        "attempt": attempt,
                        "delay_s": round(delay, 2),
                        "reason": failure.reason,
                        "error": message,
                    },
                )
                sleep(delay)
                spent += delay
                attempt += 1
                self.retries += 1

    def _delay(self, attempt: int) -> float:
        ceiling = min(self._max_delay, self._base_delay * 2.0 ** (attempt - 1))
        # Half fixed, half random ("equal jitter"): spreads retries without waiting for nothing.
        return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - jitter, not cryptography

    def _may_retry(self, attempt: int, *, next_try: float, spent: float) -> bool:
        """``next_try``: the wait plus another attempt as long as the last one."""
        if attempt >= self._max_attempts or spent + next_try > self._budget:
            return False
        return next_try < self._remaining_time_ms() / 1000 - WRITE_RESERVE_SECONDS
