"""Market data fixtures: Eastmoney and CoinGecko served by ``responses`` from JSON files shaped like
their real payloads (``data.diff`` rows keyed by f-codes, ``data.total``, ``data.klines`` strings,
CoinGecko's market objects), so akshare's and pycoingecko's own request and parsing code runs.
Nothing here reaches the network, and no test waits: akshare's page and retry sleeps and our
backoff waits are recorded instead of slept."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import responses
from requests import PreparedRequest
from responses import matchers

from kairos_runtime.runner import TaskRunner
from kairos_runtime.tasks.market import upstream
from kairos_runtime.tasks.market.trading_calendar import CALENDARS

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "market"
MARKET_TABLE = "kairos-test-MarketData"
RUNS_TABLE = "kairos-test-TaskRuns"

STOCK_SPOT_URL = "https://82.push2.eastmoney.com/api/qt/clist/get"
ETF_SPOT_URL = "https://push2delay.eastmoney.com/api/qt/clist/get"
INDEX_MAJOR_URL = "https://33.push2.eastmoney.com/api/qt/clist/get"
INDEX_SERIES_URL = "https://48.push2.eastmoney.com/api/qt/clist/get"
INDEX_CODE_MAP_URL = "https://80.push2.eastmoney.com/api/qt/clist/get"
KLINE_URL = "https://push2his.eastmoney.com/api/qt/stock/kline/get"
COINGECKO_URL = "https://api.coingecko.com/api/v3/coins/markets"
COINGECKO_PRO_URL = "https://pro-api.coingecko.com/api/v3/coins/markets"
SINA_TRADE_DATES_URL = "https://finance.sina.com.cn/realstock/company/klc_td_sh.txt"

MakeRunner = Callable[..., TaskRunner]


def fixture_json(name: str) -> Any:
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every sleep akshare (pages, its own retries) and our retry code asked for, in order."""
    import akshare.index.index_zh_em
    import akshare.utils.func
    import akshare.utils.request

    asked: list[float] = []
    fake_time = SimpleNamespace(sleep=asked.append)
    monkeypatch.setattr(akshare.utils.func, "time", fake_time)
    monkeypatch.setattr(akshare.utils.request, "time", fake_time)
    monkeypatch.setattr(upstream, "sleep", asked.append)
    # akshare caches Eastmoney's index code list for the life of the process; each test starts cold.
    akshare.index.index_zh_em.index_code_id_map_em.cache_clear()
    return asked


@pytest.fixture(autouse=True)
def fresh_calendar_cache() -> Iterator[None]:
    """Each test's containers start cold: no trading calendar cached from another test's table."""
    CALENDARS.clear()
    yield
    CALENDARS.clear()


@pytest.fixture
def http(waits: list[float]) -> Iterator[responses.RequestsMock]:
    """The only HTTP there is: an unregistered URL is a connection error, an unused one a failure."""
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


def add_page(mock: responses.RequestsMock, url: str, fixture: str, *, page: int | None = None, **query: str) -> None:
    """A ``clist`` page; ``page`` matches akshare's ``pn`` parameter, ``query`` any other."""
    wanted = {**query, **({"pn": str(page)} if page is not None else {})}
    mock.add(
        responses.GET,
        url,
        json=fixture_json(fixture),
        match=[matchers.query_param_matcher(wanted, strict_match=False)] if wanted else [],
    )


def add_kline(mock: responses.RequestsMock, secid: str, fixture: str, **query: str) -> None:
    mock.add(
        responses.GET,
        KLINE_URL,
        json=fixture_json(fixture),
        match=[matchers.query_param_matcher({"secid": secid, **query}, strict_match=False)],
    )


def add_session_probe(mock: responses.RequestsMock, *sessions: str) -> None:
    """The Shanghai Composite's daily bars (``stock_zh_index_daily_em``) dated ``sessions``, in
    Eastmoney's kline shape; the stock and index spot tasks ask for them before their lists."""
    klines = [f"{day},3950.10,3975.20,3980.00,3940.30,360234567,421234567890.00,1.01" for day in sessions]
    mock.add(
        responses.GET,
        KLINE_URL,
        json={"rc": 0, "data": {"code": "000001", "market": 1, "name": "上证指数", "klines": klines}},
        match=[matchers.query_param_matcher({"secid": "1.000001", "klt": "101"}, strict_match=False)],
    )


def add_stock_spot(mock: responses.RequestsMock, session: str = "2026-11-27") -> None:
    add_session_probe(mock, "2026-11-26", session)
    add_page(mock, STOCK_SPOT_URL, "stock_spot_page1", page=1)
    add_page(mock, STOCK_SPOT_URL, "stock_spot_page2", page=2)


def sent_kwargs(request: PreparedRequest) -> dict[str, Any]:
    """The keyword arguments the adapter's ``send`` got for ``request`` (``timeout``, ``proxies``):
    ``responses`` keeps them on each request it records, as ``req_kwargs``."""
    kwargs: dict[str, Any] = vars(request)["req_kwargs"]
    return kwargs


def query_params(request: PreparedRequest) -> dict[str, str | list[str]]:
    """``request``'s query string, a list for a repeated name: ``responses`` keeps it on each request
    it records, as ``params``."""
    params: dict[str, str | list[str]] = vars(request)["params"]
    return params


class Throttling:
    """Wraps the table's low-level client: the first ``throttled_calls`` calls hand back ``hold_back``
    items as unprocessed, as DynamoDB does when a partition is throttled."""

    def __init__(self, client: Any, *, hold_back: int, throttled_calls: int = 1) -> None:
        self._send = client.batch_write_item  # the real method, bound before the spy replaces it
        self._hold_back = hold_back
        self._throttled_calls = throttled_calls
        self.batch_sizes: list[int] = []

    def __call__(self, RequestItems: dict[str, list[Any]]) -> dict[str, Any]:  # noqa: N803 - boto3's name
        [(table, requests)] = RequestItems.items()
        self.batch_sizes.append(len(requests))
        if len(self.batch_sizes) <= self._throttled_calls:
            kept, held = requests[: -self._hold_back], requests[-self._hold_back :]
            if kept:
                self._send(RequestItems={table: kept})
            return {"UnprocessedItems": {table: held}}
        return self._send(RequestItems=RequestItems)  # type: ignore[no-any-return]


def market_items(dynamodb: Any) -> dict[tuple[str, str], dict[str, Any]]:
    items = dynamodb.Table(MARKET_TABLE).scan()["Items"]
    return {(item["pk"], item["sk"]): item for item in items}


def run_records(dynamodb: Any, task: str) -> list[dict[str, Any]]:
    return list(
        dynamodb.Table(RUNS_TABLE).query(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :run)",
            ExpressionAttributeValues={":pk": f"TASK#{task}", ":run": "RUN#"},
        )["Items"]
    )


def run_record(dynamodb: Any, task: str) -> dict[str, Any]:
    [record] = run_records(dynamodb, task)
    return record


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # akshare 1.19.5 uses pandas features pandas 3 deprecates (inplace=, to_datetime of numbers with a
    # format); the warnings are about akshare, not about these tests.
    here = Path(__file__).resolve().parent
    for item in items:
        if here in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.filterwarnings("ignore::DeprecationWarning:akshare"))
