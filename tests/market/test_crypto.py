"""crypto_markets end to end: CoinGecko's JSON through pycoingecko, the key from SSM (moto), and the
key kept out of run records and logs whatever CoinGecko answers."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import requests
import responses
from responses import matchers

from kairos.catalog import load_catalog
from kairos_runtime.runner import TaskRunFailed
from kairos_runtime.tasks.market.crypto import CryptoMarketsParams
from kairos_runtime.validation import InvalidInputError, parse
from tests.conftest import FakeLambdaContext, scheduled_event
from tests.market.conftest import (
    COINGECKO_PRO_URL,
    COINGECKO_URL,
    MakeRunner,
    fixture_json,
    market_items,
    run_record,
    sent_kwargs,
)

KEY = "CG-t0pSecretKey42"
KEY_PARAMETER = "/kairos/coingecko/api-key"
SPOT_SK = "SPOT#2026-11-27T07:15:00Z#USD"


@pytest.fixture
def api_key(dynamodb: Any) -> Iterator[str]:
    """The key as a SecureString in (moto's) Parameter Store; Powertools' caches start and end empty."""
    import boto3

    boto3.client("ssm", region_name="us-east-1").put_parameter(Name=KEY_PARAMETER, Value=KEY, Type="SecureString")
    clear_parameter_caches()
    yield KEY
    clear_parameter_caches()


def clear_parameter_caches() -> None:
    """Empty Powertools' parameter caches (``parameters.clear_caches``, which has no annotations)."""
    from aws_lambda_powertools.utilities import parameters

    clear_caches: Callable[[], None] = parameters.clear_caches
    clear_caches()


def crypto_event(**params: object) -> dict[str, object]:
    return scheduled_event("crypto-markets", "crypto_markets", dict(params))


def test_the_top_coins_are_stored_per_quote_currency(
    make_runner: MakeRunner, dynamodb: Any, lambda_context: FakeLambdaContext, http: responses.RequestsMock
) -> None:
    wanted = {"vs_currency": "usd", "order": "market_cap_desc", "per_page": "50", "page": "1"}
    http.add(
        responses.GET,
        COINGECKO_URL,
        json=fixture_json("coingecko_markets"),
        match=[matchers.query_param_matcher(wanted)],
    )

    response = make_runner(spot_ttl_days=2).dispatch(crypto_event(top_n=50), lambda_context)

    assert response["status"] == "SUCCEEDED"
    items = market_items(dynamodb)
    assert set(items) == {(f"CRYPTO#{coin}", sk) for coin in ("bitcoin", "ethereum") for sk in (SPOT_SK, "LATEST#USD")}
    bitcoin = items[("CRYPTO#bitcoin", "LATEST#USD")]
    assert (bitcoin["gsi1pk"], bitcoin["gsi1sk"]) == ("CRYPTO#LATEST#2026-11-27", "bitcoin#USD")
    assert (bitcoin["price"], bitcoin["volume_24h"], bitcoin["change_pct_24h"]) == (
        Decimal("98123.45"),
        Decimal("45123456789.12"),
        Decimal("1.27"),
    )
    assert (bitcoin["quote_currency"], bitcoin["ticker"], bitcoin["name"]) == ("USD", "btc", "Bitcoin")
    assert bitcoin["market_cap_rank"] == Decimal(1)
    assert "exchange" not in bitcoin
    assert "currency" not in bitcoin
    assert "max_supply" not in items[("CRYPTO#ethereum", SPOT_SK)], "null stays absent, not a number"
    slot = datetime(2026, 11, 27, 7, 15, tzinfo=UTC)
    ethereum = items[("CRYPTO#ethereum", SPOT_SK)]
    written = max(slot, datetime.fromisoformat(ethereum["fetched_at"]))
    assert ethereum["expires_at"] == int((written + timedelta(days=2)).timestamp())
    record = run_record(dynamodb, "crypto-markets")
    assert (record["items_written"], record["items_rejected"]) == (4, 1)
    assert record["detail"]["rejected_examples"] == [{"symbol": "ghost-coin", "reason": "missing_price"}]
    assert record["detail"]["api_plan"] == "keyless"


@pytest.mark.parametrize(
    ("plan", "url", "key_name"),
    [("demo", COINGECKO_URL, "x_cg_demo_api_key"), ("pro", COINGECKO_PRO_URL, "x_cg_pro_api_key")],
)
def test_the_key_comes_from_parameter_store_and_picks_the_host(
    make_runner: MakeRunner,
    dynamodb: Any,
    lambda_context: FakeLambdaContext,
    http: responses.RequestsMock,
    api_key: str,
    plan: str,
    url: str,
    key_name: str,
) -> None:
    wanted = {"vs_currency": "usd", "ids": "bitcoin,ethereum,solana", "per_page": "3", key_name: api_key}
    http.add(
        responses.GET,
        url,
        json=fixture_json("coingecko_markets"),
        match=[matchers.query_param_matcher(wanted, strict_match=False)],
    )
    event = crypto_event(coin_ids=["bitcoin", "ethereum", "solana"], api_key_parameter=KEY_PARAMETER, api_plan=plan)

    make_runner().dispatch(event, lambda_context)

    record = run_record(dynamodb, "crypto-markets")
    assert record["status"] == "SUCCEEDED"
    assert record["detail"]["symbols_missing"] == ["solana"]
    assert api_key not in repr(record)


def test_a_429_is_retried_then_recorded_as_transient_without_the_key(
    make_runner: MakeRunner,
    dynamodb: Any,
    lambda_context: FakeLambdaContext,
    http: responses.RequestsMock,
    api_key: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="kairos.test")  # the task's logger; botocore's wire log is off in Lambda
    http.add(responses.GET, COINGECKO_URL, status=429, json=fixture_json("coingecko_429"))

    with pytest.raises(TaskRunFailed) as raised:
        make_runner().dispatch(crypto_event(api_key_parameter=KEY_PARAMETER), lambda_context)

    record = run_record(dynamodb, "crypto-markets")
    assert (record["status"], record["error_type"], record["error_kind"]) == (
        "FAILED",
        "SourceUnavailable",
        "transient",
    )
    assert "rate limited (HTTP 429)" in record["error_message"]
    assert "x_cg_demo_api_key=***" in record["error_message"], "the URL is kept, its key is not"
    assert int(record["detail"]["attempts"]) == len(http.calls) >= 2
    url = http.calls[0].request.url
    assert url is not None
    assert api_key in url, "the key really was sent, so the scrubbing is tested"
    assert api_key not in repr(record)
    assert api_key not in str(raised.value)
    assert api_key not in caplog.text
    assert all(api_key not in repr(log.__dict__) for log in caplog.records)


def test_an_http_error_without_json_is_permanent_and_scrubbed(
    make_runner: MakeRunner,
    dynamodb: Any,
    lambda_context: FakeLambdaContext,
    http: responses.RequestsMock,
    api_key: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    http.add(responses.GET, COINGECKO_PRO_URL, status=401, body="<html>Unauthorized</html>")

    response = make_runner().dispatch(crypto_event(api_key_parameter=KEY_PARAMETER, api_plan="pro"), lambda_context)

    assert response["status"] == "FAILED"
    record = run_record(dynamodb, "crypto-markets")
    assert (record["error_type"], record["error_kind"]) == ("SourceRejected", "permanent")
    assert "HTTP 401" in record["error_message"]
    assert "x_cg_pro_api_key=***" in record["error_message"]
    assert len(http.calls) == 1
    assert api_key not in repr(record)
    assert api_key not in caplog.text


def test_a_read_timeout_is_transient(
    make_runner: MakeRunner, dynamodb: Any, lambda_context: FakeLambdaContext, http: responses.RequestsMock
) -> None:
    http.add(responses.GET, COINGECKO_URL, body=requests.exceptions.ReadTimeout("read timed out"))

    with pytest.raises(TaskRunFailed):
        make_runner().dispatch(crypto_event(max_retry_seconds=0, request_timeout_seconds=7), lambda_context)

    record = run_record(dynamodb, "crypto-markets")
    assert (record["error_kind"], record["detail"]["attempts"]) == ("transient", 1)
    assert sent_kwargs(http.calls[0].request)["timeout"] == 7


def test_a_missing_key_parameter_fails_before_calling_coingecko(
    make_runner: MakeRunner, dynamodb: Any, lambda_context: FakeLambdaContext, http: responses.RequestsMock
) -> None:
    clear_parameter_caches()

    response = make_runner().dispatch(crypto_event(api_key_parameter="/kairos/missing"), lambda_context)

    assert response["status"] == "FAILED"
    record = run_record(dynamodb, "crypto-markets")
    assert (record["error_type"], record["error_kind"]) == ("ApiKeyUnavailable", "permanent")
    assert "/kairos/missing could not be read" in record["error_message"]
    assert len(http.calls) == 0


def test_the_stack_is_told_to_grant_exactly_the_key_parameter() -> None:
    entry = load_catalog().lookup("python", "crypto_markets")
    assert entry is not None

    assert entry.parameters_for({"api_key_parameter": KEY_PARAMETER}) == [KEY_PARAMETER]
    assert entry.parameters_for({"top_n": 10}) == []


@pytest.mark.parametrize(
    ("params", "location"),
    [
        ({"coin_ids": ["bitcoin"], "top_n": 5}, ""),
        ({"api_key_parameter": "kairos/no-leading-slash"}, "api_key_parameter"),
        ({"api_plan": "enterprise"}, "api_plan"),
        ({"vs_currency": "US Dollar"}, "vs_currency"),
        ({"coin_ids": ["Bitcoin"]}, "coin_ids.0"),
    ],
)
def test_params_that_cannot_work_are_refused(params: dict[str, object], location: str) -> None:
    with pytest.raises(InvalidInputError) as invalid:
        parse(params, CryptoMarketsParams)

    assert invalid.value.location == location


def test_an_empty_answer_fails_the_run(
    make_runner: MakeRunner, dynamodb: Any, lambda_context: FakeLambdaContext, http: responses.RequestsMock
) -> None:
    http.add(responses.GET, COINGECKO_URL, json=[])

    response = make_runner().dispatch(crypto_event(coin_ids=["bitcoin"]), lambda_context)

    assert response["status"] == "FAILED"
    record = run_record(dynamodb, "crypto-markets")
    assert (record["error_type"], record["error_kind"]) == ("NoValidRows", "permanent")
    assert record["detail"]["symbols_missing"] == ["bitcoin"]
    assert market_items(dynamodb) == {}


@pytest.fixture
def debug_logging(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every logger at DEBUG, as ``LOG_LEVEL=DEBUG`` leaves a function, and the third-party loggers
    as a fresh process has them (no level of their own), whatever earlier tests did."""
    from kairos_runtime.log_levels import QUIET_LOGGERS

    monkeypatch.setenv("LOG_LEVEL", "DEBUG")
    for name in QUIET_LOGGERS:
        monkeypatch.setattr(logging.getLogger(name), "level", logging.NOTSET)
    # Effective levels are cached per logger. (typeshed leaves out the private Manager._clear_cache.)
    logging.getLogger().manager._clear_cache()  # type: ignore[attr-defined]
    caplog.set_level(logging.DEBUG)
    return caplog


def test_at_debug_a_keyed_coingecko_run_puts_the_key_in_no_log_output(
    make_runner: MakeRunner,
    dynamodb: Any,
    lambda_context: FakeLambdaContext,
    http: responses.RequestsMock,
    api_key: str,
    debug_logging: pytest.LogCaptureFixture,
) -> None:
    http.add(responses.GET, COINGECKO_URL, json=fixture_json("coingecko_markets"))

    response = make_runner().dispatch(crypto_event(api_key_parameter=KEY_PARAMETER), lambda_context)

    assert response["status"] == "SUCCEEDED"
    url = http.calls[0].request.url
    assert url is not None
    assert api_key in url, "the key really was sent"
    assert debug_logging.records, "DEBUG output was captured"
    assert api_key not in debug_logging.text
    assert all(api_key not in repr(log.__dict__) for log in debug_logging.records)
    for name in ("urllib3", "requests", "charset_normalizer", "botocore"):
        assert logging.getLogger(name).getEffectiveLevel() == logging.WARNING


def test_at_debug_urllib3_never_logs_a_request_line_with_the_key(debug_logging: pytest.LogCaptureFixture) -> None:
    """Over a real loopback connection, where urllib3 itself runs and would log ``GET /...?key``."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from pycoingecko import CoinGeckoAPI

    from kairos_runtime.tasks.market.upstream import upstream_requests

    class CoinGecko(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"[]"
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = HTTPServer(("127.0.0.1", 0), CoinGecko)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        client = CoinGeckoAPI(demo_api_key=KEY)
        client.api_base_url = f"http://127.0.0.1:{server.server_port}/api/v3/"
        with upstream_requests(proxy=None, timeout=5):
            assert client.get_coins_markets("usd") == []
    finally:
        server.shutdown()
        thread.join()

    assert KEY not in debug_logging.text
    assert all(KEY not in repr(log.__dict__) for log in debug_logging.records)
