"""The upstream HTTP policy, failure classification, retries with backoff, and key scrubbing."""

from __future__ import annotations

import logging
import os
from types import SimpleNamespace
from typing import Any

import pytest
import requests
import responses

from kairos_runtime.runs import ErrorKind
from kairos_runtime.tasks.market import upstream
from kairos_runtime.tasks.market.upstream import (
    Retrier,
    SourceRejected,
    SourceUnavailable,
    classify,
    scrub,
    upstream_requests,
)
from tests.market.conftest import sent_kwargs

URL = "https://example.invalid/api"


def http_error(status: int) -> requests.HTTPError:
    response = requests.Response()
    response.status_code = status
    response.url = URL
    return requests.HTTPError(f"{status} Error for url: {URL}", response=response)


@pytest.mark.parametrize(
    ("error", "kind", "reason"),
    [
        (http_error(429), ErrorKind.TRANSIENT, "rate limited (HTTP 429)"),
        (http_error(503), ErrorKind.TRANSIENT, "HTTP 503"),
        (http_error(404), ErrorKind.PERMANENT, "HTTP 404"),
        (requests.exceptions.ConnectTimeout("connect timed out"), ErrorKind.TRANSIENT, "timed out"),
        (requests.exceptions.ReadTimeout("read timed out"), ErrorKind.TRANSIENT, "timed out"),
        (
            requests.exceptions.ConnectionError(ConnectionResetError(104, "reset")),
            ErrorKind.TRANSIENT,
            "connection failed",
        ),
        (requests.exceptions.ProxyError("Unable to connect to proxy"), ErrorKind.TRANSIENT, "connection failed"),
        (ConnectionResetError(104, "Connection reset by peer"), ErrorKind.TRANSIENT, "connection failed"),
        (requests.exceptions.ChunkedEncodingError("cut"), ErrorKind.TRANSIENT, "response cut short"),
        (requests.exceptions.RetryError("too many 503"), ErrorKind.TRANSIENT, "server errors (HTTP retries exhausted)"),
        (
            requests.exceptions.JSONDecodeError("Expecting value", "<html>", 0),
            ErrorKind.PERMANENT,
            "unexpected response",
        ),
        (KeyError("diff"), ErrorKind.PERMANENT, "unexpected response"),
    ],
)
def test_failures_are_classified_by_whether_another_try_could_help(
    error: BaseException, kind: ErrorKind, reason: str
) -> None:
    failure = classify(error)

    assert (failure.kind, failure.reason) == (kind, reason)


def test_keys_are_scrubbed_by_value_and_by_query_parameter() -> None:
    message = (
        "429 Client Error for url: https://pro-api.coingecko.com/api/v3/coins/markets?"
        "vs_currency=usd&x_cg_pro_api_key=CG-abc123&page=1 (key CG-abc123)"
    )

    scrubbed = scrub(message, ["CG-abc123"])

    assert "CG-abc123" not in scrubbed
    assert "x_cg_pro_api_key=***&page=1" in scrubbed
    assert scrub("https://x/?x_cg_demo_api_key=unknown-key") == "https://x/?x_cg_demo_api_key=***"


@pytest.fixture
def no_jitter(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Backoff at the top of its jitter range, and waits recorded rather than slept."""
    asked: list[float] = []
    monkeypatch.setattr(upstream, "random", SimpleNamespace(uniform=lambda low, high: high))
    monkeypatch.setattr(upstream, "sleep", asked.append)
    return asked


def retrier(budget: float = 10, remaining_ms: int = 60_000) -> Retrier:
    return Retrier(
        source="Test source",
        max_retry_seconds=budget,
        remaining_time_ms=lambda: remaining_ms,
        logger=logging.getLogger("test"),
        secrets=["s3cret"],
    )


def failing(errors: list[BaseException], result: str = "ok") -> tuple[list[int], object]:
    calls: list[int] = []

    def fetch() -> str:
        calls.append(1)
        if errors:
            raise errors.pop(0)
        return result

    return calls, fetch


def test_a_transient_failure_is_retried_with_exponential_backoff(no_jitter: list[float]) -> None:
    calls, fetch = failing([requests.exceptions.ReadTimeout("slow"), requests.exceptions.ConnectionError("reset")])
    subject = retrier()

    assert subject.call(fetch, what="quotes") == "ok"  # type: ignore[arg-type]
    assert len(calls) == 3
    assert no_jitter == [1.0, 2.0]
    assert subject.retries == 2


def test_retries_stop_when_the_next_one_would_not_fit_the_budget(no_jitter: list[float]) -> None:
    calls, fetch = failing([requests.exceptions.ConnectTimeout("down")] * 10)

    with pytest.raises(SourceUnavailable) as raised:
        retrier(budget=10).call(fetch, what="quotes")  # type: ignore[arg-type]

    # Waits of 1, 2 and 4 s fit in 10 s; the next (8 s) would not.
    assert no_jitter == [1.0, 2.0, 4.0]
    assert len(calls) == 4
    assert str(raised.value).startswith("Test source could not be reached for quotes: timed out after 4 attempt(s)")
    assert raised.value.detail == {"attempts": 4, "reason": "timed out"}
    assert raised.value.kind is ErrorKind.TRANSIENT


def test_no_retry_is_started_that_the_lambda_time_left_cannot_hold(no_jitter: list[float]) -> None:
    calls, fetch = failing([http_error(503)] * 3)

    with pytest.raises(SourceUnavailable, match="HTTP 503 after 1 attempt"):
        retrier(budget=600, remaining_ms=15_500).call(fetch, what="quotes")  # type: ignore[arg-type]

    assert (len(calls), no_jitter) == (1, [])


def test_a_permanent_failure_is_not_retried_and_its_message_is_scrubbed(no_jitter: list[float]) -> None:
    error = http_error(401)
    error.args = ("401 Client Error for url: https://api.example/x?api_key=s3cret",)
    calls, fetch = failing([error])

    with pytest.raises(SourceRejected) as raised:
        retrier().call(fetch, what="quotes")  # type: ignore[arg-type]

    assert len(calls) == 1
    assert "s3cret" not in str(raised.value)
    assert "HTTP 401" in str(raised.value)
    assert "api_key=***" in str(raised.value)
    assert raised.value.kind is ErrorKind.PERMANENT
    assert raised.value.__suppress_context__, "the unscrubbed original must not appear in a logged traceback"


@responses.activate
def test_the_policy_caps_timeouts_raises_http_errors_and_sets_the_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://before:1")
    monkeypatch.delenv("HTTPS_PROXY", raising=False)
    responses.get(URL, json={"ok": True})
    responses.get(URL + "/broken", status=502, body="<html>bad gateway</html>")
    seen: dict[str, str | None] = {}

    with upstream_requests(proxy="http://127.0.0.1:9", timeout=5):
        seen = {name: os.environ.get(name) for name in upstream.PROXY_VARIABLES}
        requests.get(URL, timeout=60)
        requests.Session().get(URL)
        with pytest.raises(requests.HTTPError, match="502"):
            requests.get(URL + "/broken", timeout=5)

    assert set(seen.values()) == {"http://127.0.0.1:9"}
    assert [sent_kwargs(call.request)["timeout"] for call in responses.calls[:2]] == [5, 5]
    assert os.environ.get("HTTP_PROXY") == "http://before:1"
    assert "HTTPS_PROXY" not in os.environ
    assert requests.get(URL + "/broken", timeout=5).status_code == 502, "outside the block requests behaves as usual"


@responses.activate
def test_a_shorter_timeout_given_by_the_caller_is_kept() -> None:
    responses.get(URL, json={})

    with upstream_requests(proxy=None, timeout=15):
        requests.get(URL, timeout=3)
        requests.get(URL, timeout=(2, 30))

    assert [sent_kwargs(call.request)["timeout"] for call in responses.calls] == [3, (2, 15)]


@responses.activate
def test_requests_calls_in_a_block_reuse_the_threads_session_and_carry_no_cookies(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """akshare calls ``requests.get``, a new session (and TCP connection) per call: in a block the
    thread's kept-alive session sends them, so a batch's symbols share one connection to the source."""
    responses.get(URL, json={}, headers={"Set-Cookie": "qgqp_b_id=abc; Path=/"})
    adapters: list[requests.adapters.HTTPAdapter] = []  # held, so no id is reused
    send = requests.adapters.HTTPAdapter.send

    def spy(
        adapter: requests.adapters.HTTPAdapter, request: requests.PreparedRequest, **kwargs: Any
    ) -> requests.Response:
        adapters.append(adapter)
        assert "Cookie" not in request.headers, "a cookie from an earlier answer was sent"
        return send(adapter, request, **kwargs)

    # Undone inside the test, before @responses.activate restores the real send: a monkeypatch undone
    # at teardown would put responses' send back for every later test of the process.
    with monkeypatch.context() as patched:
        patched.setattr(requests.adapters.HTTPAdapter, "send", spy)
        with upstream_requests(proxy=None, timeout=5):
            for _ in range(3):
                requests.get(URL, timeout=5)
        with upstream_requests(proxy=None, timeout=5):
            requests.get(URL, timeout=5)
        requests.get(URL, timeout=5)
        requests.get(URL, timeout=5)

    inside, outside = [id(each) for each in adapters[:4]], [id(each) for each in adapters[4:]]
    assert len(set(inside)) == 1, "one adapter (one connection pool) for every call of the thread"
    assert len(set(outside)) == 2, "outside a block each call makes its own session, as requests does"
    assert inside[0] not in outside
