"""fund_nav end to end: Eastmoney's fund payloads (the daily list's ``var db={...}`` literal, a fund's
``pingzhongdata/<code>.js``) through akshare's own decoding, the runner and moto."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
import requests
import responses
from responses import matchers

from kairos_runtime.runner import TaskRunFailed
from kairos_runtime.tasks.market.funds import FundNavParams, daily_list_rows, history_rows, nav_dates
from kairos_runtime.validation import InvalidInputError, parse
from tests.conftest import FakeLambdaContext, scheduled_event
from tests.market.conftest import FIXTURES, MARKET_TABLE, MakeRunner, market_items, run_record, run_records

FUND_LIST_URL = "https://fund.eastmoney.com/Data/Fund_JJJZ_Data.aspx"
PINGZHONG_URL = "https://fund.eastmoney.com/pingzhongdata/{code}.js"
SLOT = "2026-11-27T13:30:00Z"  # Friday 21:30 in Shanghai: the evening the funds publish


def fixture_text(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def add_fund_list(mock: responses.RequestsMock) -> None:
    mock.add(
        responses.GET,
        FUND_LIST_URL,
        body=fixture_text("fund_open_fund_daily.js"),
        content_type="text/plain; charset=utf-8",
        match=[matchers.query_param_matcher({"t": "1", "lx": "1", "page": "1,50000"}, strict_match=False)],
    )


def add_history(mock: responses.RequestsMock, code: str, *, status: int = 200) -> None:
    mock.add(
        responses.GET,
        PINGZHONG_URL.format(code=code),
        body=fixture_text(f"fund_pingzhongdata_{code}.js") if status == 200 else "<html>not found</html>",
        status=status,
        content_type="application/javascript; charset=utf-8",
    )


def fund_event(**params: Any) -> dict[str, object]:
    return scheduled_event("fund-nav", "fund_nav", params, scheduled_time=SLOT)


def stored_nav(dynamodb: Any, code: str, day: str, **attributes: Any) -> None:
    """A NAV an earlier run stored (with the daily list's growth and statuses)."""
    dynamodb.Table(MARKET_TABLE).put_item(
        Item={
            "pk": f"FUND#{code}",
            "sk": f"NAV#{day}",
            "gsi1pk": f"FUND#NAV#{day}",
            "gsi1sk": code,
            "record_type": "nav",
            "symbol": code,
            "nav_date": day,
            **attributes,
        }
    )


def test_the_daily_list_stores_each_fund_at_its_own_nav_date(
    make_runner: MakeRunner, dynamodb: Any, lambda_context: FakeLambdaContext, http: responses.RequestsMock
) -> None:
    add_fund_list(http)
    # 161226's NAV of the 25th was stored by the run of the 25th, with its growth: it is kept.
    stored_nav(dynamodb, "161226", "2026-11-25", unit_nav=Decimal("0.987"), change_pct=Decimal("-1.2"))

    response = make_runner().dispatch(fund_event(), lambda_context)

    assert response["status"] == "SUCCEEDED"
    items = market_items(dynamodb)
    assert set(items) == {
        ("FUND#000001", "NAV#2026-11-26"),
        ("FUND#110022", "NAV#2026-11-26"),
        ("FUND#000041", "NAV#2026-11-25"),
        ("FUND#161226", "NAV#2026-11-25"),
    }
    growth = items[("FUND#000001", "NAV#2026-11-26")]
    assert (growth["unit_nav"], growth["accumulated_nav"]) == (Decimal("1.234"), Decimal("3.656"))
    assert (growth["change"], growth["change_pct"]) == (Decimal("0.013"), Decimal("1.06"))
    assert (growth["subscription_status"], growth["redemption_status"], growth["purchase_fee"]) == (
        "开放申购",
        "开放赎回",
        "0.15%",
    )
    assert (growth["nav_date"], growth["trading_date"], growth["name"]) == ("2026-11-26", "2026-11-26", "华夏成长混合")
    assert (growth["gsi1pk"], growth["gsi1sk"], growth["record_type"]) == ("FUND#NAV#2026-11-26", "000001", "nav")
    assert growth["source"] == "Eastmoney (akshare.fund_open_fund_daily_em)"
    assert growth["currency"] == "CNY"
    assert {"exchange", "status", "expires_at"}.isdisjoint(growth)
    assert items[("FUND#110022", "NAV#2026-11-26")]["subscription_status"] == "限大额"
    # A fund a day behind (QDII) is stored at its own, older date, without the list's growth.
    qdii = items[("FUND#000041", "NAV#2026-11-25")]
    assert (qdii["unit_nav"], qdii["accumulated_nav"]) == (Decimal("1.052"), Decimal("1.102"))
    assert {"change_pct", "change"}.isdisjoint(qdii)
    assert items[("FUND#161226", "NAV#2026-11-25")]["change_pct"] == Decimal("-1.2"), "the stored NAV is kept"
    numbers = [value for item in items.values() for value in item.values() if not isinstance(value, str)]
    assert all(isinstance(value, Decimal) for value in numbers)

    record = run_record(dynamodb, "fund-nav")
    assert (record["items_written"], record["items_rejected"]) == (3, 2)
    detail = record["detail"]
    assert (detail["nav_date"], detail["previous_nav_date"], detail["rows_received"]) == (
        "2026-11-26",
        "2026-11-25",
        6,
    )
    assert detail["rejected"] == {"missing_price": 1, "non_positive_price": 1}
    assert {example["symbol"] for example in detail["rejected_examples"]} == {"003003", "519999"}
    assert (detail["lagging"], detail["lagging_already_stored"]) == (2, 1)
    assert detail["trading_date"] == "2026-11-27"


def test_a_symbol_list_keeps_only_those_funds(
    make_runner: MakeRunner, dynamodb: Any, lambda_context: FakeLambdaContext, http: responses.RequestsMock
) -> None:
    add_fund_list(http)

    make_runner().dispatch(fund_event(symbols=["000001", "000041", "999999"]), lambda_context)

    assert set(market_items(dynamodb)) == {("FUND#000001", "NAV#2026-11-26"), ("FUND#000041", "NAV#2026-11-25")}
    detail = run_record(dynamodb, "fund-nav")["detail"]
    assert (detail["symbols_missing"], detail["symbols_missing_count"]) == (["999999"], 1)


def test_the_history_fills_only_the_dates_not_stored_in_the_window(
    make_runner: MakeRunner, dynamodb: Any, lambda_context: FakeLambdaContext, http: responses.RequestsMock
) -> None:
    add_history(http, "000041")
    stored_nav(dynamodb, "000041", "2026-11-18", subscription_status="开放申购", unit_nav=Decimal("1.033"))

    response = make_runner().dispatch(
        fund_event(source="history", symbols=["000041"], lookback_days=10), lambda_context
    )

    assert response["status"] == "SUCCEEDED"
    items = market_items(dynamodb)
    # The window is 11-17..11-27: 11-16 is older; 11-18 is stored (kept with its status); 11-20 has no NAV.
    assert sorted(sk for pk, sk in items if pk == "FUND#000041") == [
        "NAV#2026-11-17",
        "NAV#2026-11-18",
        "NAV#2026-11-19",
        "NAV#2026-11-23",
        "NAV#2026-11-24",
        "NAV#2026-11-25",
    ]
    point = items[("FUND#000041", "NAV#2026-11-23")]
    assert (point["unit_nav"], point["accumulated_nav"], point["change_pct"]) == (
        Decimal("1.048"),
        Decimal("1.098"),
        Decimal("0.77"),
    )
    assert point["source"] == "Eastmoney (akshare.fund_open_fund_info_em)"
    assert point["gsi1pk"] == "FUND#NAV#2026-11-23"
    assert items[("FUND#000041", "NAV#2026-11-18")]["subscription_status"] == "开放申购"
    record = run_record(dynamodb, "fund-nav")
    assert (record["items_written"], record["items_rejected"]) == (5, 1)
    assert record["detail"]["already_stored"] == 1
    assert record["detail"]["rejected"] == {"missing_price": 1}
    assert record["detail"]["window"] == "2026-11-17..2026-11-27"


def test_a_history_rerun_writes_nothing_new_and_a_missing_fund_is_noted(
    make_runner: MakeRunner, dynamodb: Any, lambda_context: FakeLambdaContext, http: responses.RequestsMock
) -> None:
    add_history(http, "000041")
    add_history(http, "000099", status=404)
    runner = make_runner()
    event = fund_event(source="history", symbols=["000041", "000099"], lookback_days=10)

    runner.dispatch(event, lambda_context)
    before = market_items(dynamodb)
    # A rerun of the slot (a second delivery of a done slot would be declined, docs/adr/0140).
    response = runner.dispatch({**event, "execution_id": "again", "rerun": True}, lambda_context)

    assert response["status"] == "SUCCEEDED"
    assert market_items(dynamodb) == before
    [again] = [record for record in run_records(dynamodb, "fund-nav") if record["execution_id"] == "again"]
    assert again["items_written"] == 0
    assert again["detail"]["already_stored"] == 6
    assert "HTTP 404" in again["detail"]["symbol_errors"]["000099"]


def test_history_without_symbols_is_refused_when_the_params_are_read() -> None:
    with pytest.raises(InvalidInputError, match="source history needs symbols"):
        parse({"source": "history"}, FundNavParams)


def test_the_daily_list_takes_its_nav_dates_from_its_column_names() -> None:
    columns = ["基金代码", "2026-11-26-单位净值", "2026-11-26-累计净值", "2026-11-25-单位净值", "2026-11-25-累计净值"]
    record: dict[str, object] = {
        "基金代码": "000001",
        "2026-11-26-单位净值": "",
        "2026-11-26-累计净值": "",
        "2026-11-25-单位净值": "1.0100",
        "2026-11-25-累计净值": "2.0200",
        "日增长率": "0.5",
    }

    listing = daily_list_rows([record], columns)

    assert [day.isoformat() for day in nav_dates(columns)] == ["2026-11-26", "2026-11-25"]
    [row] = listing.rows
    assert (row["净值日期"], row["单位净值"], row["累计净值"]) == ("2026-11-25", "1.0100", "2.0200")
    assert "日增长率" not in row, "the list's growth compares the two dates: it is not the older date's"


def test_history_points_merge_by_date() -> None:
    from datetime import date

    rows = history_rows(
        [{"净值日期": date(2026, 11, 24), "单位净值": 1.05, "日增长率": 0.19}],
        [{"净值日期": date(2026, 11, 24), "累计净值": 1.1}, {"净值日期": date(2026, 11, 23), "累计净值": 1.09}],
    )

    assert rows == [{"净值日期": date(2026, 11, 24), "单位净值": 1.05, "日增长率": 0.19, "累计净值": 1.1}]


def test_an_unreachable_fund_list_fails_as_transient_and_a_history_keeps_what_it_fetched(
    make_runner: MakeRunner, dynamodb: Any, lambda_context: FakeLambdaContext, http: responses.RequestsMock
) -> None:
    reset = requests.exceptions.ConnectionError(ConnectionResetError(104, "Connection reset by peer"))
    http.add(responses.GET, FUND_LIST_URL, body=reset)
    add_history(http, "000041")
    http.add(responses.GET, PINGZHONG_URL.format(code="000099"), body=reset)
    runner = make_runner()

    with pytest.raises(TaskRunFailed):
        runner.dispatch(fund_event(), lambda_context)
    with pytest.raises(TaskRunFailed):
        runner.dispatch(
            {**fund_event(source="history", symbols=["000041", "000099"], lookback_days=10), "execution_id": "h"},
            lambda_context,
        )

    by_execution = {record["execution_id"]: record for record in run_records(dynamodb, "fund-nav")}
    latest, history = by_execution["exec-1"], by_execution["h"]
    assert (latest["error_type"], latest["error_kind"]) == ("SourceUnavailable", "transient")
    assert "fund_open_fund_daily_em) could not be reached for open-end fund NAVs" in latest["error_message"]
    assert (history["error_type"], history["error_kind"]) == ("SourceUnavailable", "transient")
    assert "the NAV history of 000099" in history["error_message"]
    assert history["detail"]["items_written"] == 6, "000041's NAVs, fetched before the outage, are kept"
    assert len([pk for pk, _ in market_items(dynamodb) if pk == "FUND#000041"]) == 6


def test_a_list_without_any_unit_nav_fails_the_run(
    make_runner: MakeRunner, dynamodb: Any, lambda_context: FakeLambdaContext, http: responses.RequestsMock
) -> None:
    add_fund_list(http)

    response = make_runner().dispatch(fund_event(symbols=["003003"]), lambda_context)

    assert response["status"] == "FAILED"
    record = run_record(dynamodb, "fund-nav")
    assert (record["error_type"], record["error_kind"]) == ("NoValidRows", "permanent")
    assert "none of the requested funds had a unit NAV" in record["error_message"]
    assert market_items(dynamodb) == {}


def test_a_holiday_is_skipped_without_a_request(
    make_runner: MakeRunner, dynamodb: Any, lambda_context: FakeLambdaContext, http: responses.RequestsMock
) -> None:
    event = scheduled_event("fund-nav", "fund_nav", {}, scheduled_time="2026-10-01T13:30:00Z")

    response = make_runner().dispatch(event, lambda_context)

    assert response["status"] == "SKIPPED"
    assert len(http.calls) == 0
