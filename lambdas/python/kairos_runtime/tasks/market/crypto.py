"""Crypto market snapshots from CoinGecko's ``/coins/markets`` through pycoingecko.

The API key, when there is one, lives in SSM Parameter Store; tasks.yaml names the parameter, never
the key. pycoingecko sends the key as a query parameter, so it appears in any URL an error message
quotes: the key is scrubbed from every message this task logs or records.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import partial
from typing import Annotated, Any

from msgspec import Meta

from kairos_runtime.context import TaskContext
from kairos_runtime.errors import PermanentTaskError
from kairos_runtime.log_levels import quiet_third_party_loggers
from kairos_runtime.registry import Access, DependencyGroup, TaskOutcome, TaskRegistry
from kairos_runtime.tables import TableId
from kairos_runtime.tasks.market.model import (
    AssetClass,
    Provenance,
    QuoteCurrency,
    partition_prefix,
    snapshot_items,
    trading_date_of,
)
from kairos_runtime.tasks.market.normalise import CRYPTO_MARKET, Records, normalise_rows
from kairos_runtime.tasks.market.upstream import (
    CrawlerParams,
    NoValidRows,
    Retrier,
    SourceRejected,
    SourceUnavailable,
    upstream_requests,
)
from kairos_runtime.tasks.market.writer import write_items

registry = TaskRegistry()

SOURCE = "CoinGecko (/coins/markets via pycoingecko)"
DEFAULT_TOP_N = 100
API_KEY_MAX_AGE_SECONDS = 300

CoinId = Annotated[
    str,
    Meta(
        pattern=r"^[a-z0-9][a-z0-9-]{0,99}\Z",
        description="a CoinGecko coin id such as bitcoin (lower-case letters, digits and -)",
    ),
]


class ApiPlan(StrEnum):
    """Which CoinGecko host and key parameter the key belongs to."""

    DEMO = "demo"
    PRO = "pro"


class CryptoMarketsParams(CrawlerParams, frozen=True):
    coin_ids: Annotated[tuple[CoinId, ...], Meta(min_length=1, max_length=250)] | None = None
    top_n: (
        Annotated[
            int, Meta(ge=1, le=250, description=f"the top N by market cap (default {DEFAULT_TOP_N}) when no coin_ids")
        ]
        | None
    ) = None
    vs_currency: QuoteCurrency = "usd"
    api_key_parameter: (
        Annotated[
            str,
            Meta(
                pattern=r"^/[A-Za-z0-9_.\-/]{1,1000}\Z",
                description=(
                    "the name of an SSM SecureString parameter holding the API key, such as "
                    "/kairos/coingecko/api-key (its name, never the key)"
                ),
            ),
        ]
        | None
    ) = None
    api_plan: ApiPlan = ApiPlan.DEMO

    def __post_init__(self) -> None:
        if self.coin_ids and self.top_n is not None:
            raise ValueError("give coin_ids or top_n, not both")

    @property
    def page_size(self) -> int:
        return len(self.coin_ids) if self.coin_ids else self.top_n or DEFAULT_TOP_N


class ApiKeyUnavailable(PermanentTaskError):  # noqa: N818 - named for the run record
    """The API key parameter could not be read (missing, or not granted to this function)."""


def read_api_key(parameter: str) -> str:
    """The key from SSM (decrypted, cached for five minutes across warm invocations)."""
    from aws_lambda_powertools.utilities import parameters

    try:
        value = parameters.get_parameter(parameter, decrypt=True, max_age=API_KEY_MAX_AGE_SECONDS)
    except parameters.exceptions.GetParameterError as error:
        cause = error.__cause__ or error
        raise ApiKeyUnavailable(
            f"the CoinGecko API key parameter {parameter} could not be read: {type(cause).__name__}"
        ) from None
    if not isinstance(value, str) or not value.strip():
        raise ApiKeyUnavailable(f"the CoinGecko API key parameter {parameter} is empty")
    return value.strip()


def fetch_markets(params: CryptoMarketsParams, api_key: str | None) -> Records:
    from pycoingecko import CoinGeckoAPI
    from requests.adapters import HTTPAdapter

    if api_key and params.api_plan is ApiPlan.PRO:
        client = CoinGeckoAPI(api_key=api_key)
    elif api_key:
        client = CoinGeckoAPI(demo_api_key=api_key)
    else:
        client = CoinGeckoAPI()
    client.request_timeout = params.request_timeout_seconds
    # pycoingecko retries 5xx with urllib3 sleeps of its own; the task's Retrier owns retries and
    # their time budget, so the client gets a plain adapter.
    client.session.mount("https://", HTTPAdapter())
    options: dict[str, Any] = {"order": "market_cap_desc", "per_page": params.page_size, "page": 1}
    if params.coin_ids:
        options["ids"] = list(params.coin_ids)
    result = client.get_coins_markets(params.vs_currency, **options)
    if not isinstance(result, list):
        raise TypeError(f"/coins/markets sent a {type(result).__name__}, not a list")
    return [{str(key): value for key, value in row.items()} for row in result if isinstance(row, dict)]


@registry.task(
    "crypto_markets",
    params=CryptoMarketsParams,
    tables={TableId.MARKET_DATA: Access.WRITE},
    partitions={TableId.MARKET_DATA: (partition_prefix(AssetClass.CRYPTO),)},
    group=DependencyGroup.CRAWLER,
    parameters=lambda p: [p.api_key_parameter] if p.api_key_parameter else [],
)
def crypto_markets(params: CryptoMarketsParams, context: TaskContext) -> TaskOutcome:
    """Snapshot CoinGecko market data for some coins (or the top N) in one quote currency."""
    slot = context.event.scheduled_time
    detail: dict[str, Any] = {
        "trading_date": trading_date_of(slot).isoformat(),
        "source": SOURCE,
        "vs_currency": params.vs_currency,
        "selection": list(params.coin_ids) if params.coin_ids else f"top {params.page_size}",
        "api_plan": params.api_plan.value if params.api_key_parameter else "keyless",
    }
    # Read before the upstream block: SSM is an AWS call and must not go through the crawler proxy.
    # botocore would log the decrypted answer at DEBUG: its logger is held at WARNING first.
    quiet_third_party_loggers()
    api_key = read_api_key(params.api_key_parameter) if params.api_key_parameter else None
    retrier = Retrier(
        source=SOURCE,
        max_retry_seconds=params.max_retry_seconds,
        remaining_time_ms=context.remaining_time_ms,
        logger=context.logger,
        secrets=[api_key] if api_key else [],
    )
    try:
        with upstream_requests(proxy=context.settings.https_proxy, timeout=params.request_timeout_seconds):
            rows = retrier.call(partial(fetch_markets, params, api_key), what="market data")
    except (SourceUnavailable, SourceRejected) as failure:
        failure.detail = detail | failure.detail
        raise
    fetched_at = datetime.now(UTC)
    detail |= {"rows_received": len(rows), "retries": retrier.retries}
    batch = normalise_rows(CRYPTO_MARKET, rows)
    detail |= batch.detail()
    if params.coin_ids:
        detail["symbols_missing"] = sorted(set(params.coin_ids) - {quote.symbol for quote in batch.quotes})
    if batch.valid == 0:
        raise NoValidRows(f"{SOURCE} sent {len(rows)} row(s) and none of them had a valid price", detail=detail)
    provenance = Provenance(source=SOURCE, fetched_at=fetched_at)
    ttl = timedelta(days=context.settings.spot_ttl_days)
    items = [
        item
        for quote in batch.quotes
        for item in snapshot_items(
            AssetClass.CRYPTO,
            dataclasses.replace(quote, quote_currency=params.vs_currency),
            slot=slot,
            provenance=provenance,
            ttl=ttl,
        )
    ]
    result = write_items(context.clients.table(TableId.MARKET_DATA), items)
    return TaskOutcome(
        items_written=result.written, items_rejected=len(batch.rejections), detail=detail | result.detail()
    )
