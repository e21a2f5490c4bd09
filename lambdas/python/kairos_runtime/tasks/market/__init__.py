"""Market data task types: A-share, ETF and index quotes and fund NAVs (akshare), crypto (pycoingecko), daily summary,
and the trading calendar they consult (refreshed from Sina through akshare).

Importing this package is cheap: the modules declare params models and functions, and import
akshare, pandas, pycoingecko and requests inside the functions that call a source. See
:mod:`kairos_runtime.tasks.market.model` for the table's items and access patterns.
"""

from __future__ import annotations

from kairos_runtime.registry import TaskRegistry
from kairos_runtime.tasks.market import a_shares, calendar_refresh, crypto, fan_out_daily, funds, summary

registry = TaskRegistry()
registry.include(a_shares.registry)
registry.include(calendar_refresh.registry)
registry.include(crypto.registry)
registry.include(fan_out_daily.registry)
registry.include(funds.registry)
registry.include(summary.registry)

CALENDAR_TASK_TYPES = (
    frozenset(a_shares.registry.names())
    | frozenset(fan_out_daily.registry.names())
    | frozenset(funds.registry.names())
    | frozenset(calendar_refresh.registry.names())
)
"""Task types that consult (or keep) the exchanges' trading calendar."""

__all__ = ["CALENDAR_TASK_TYPES", "registry"]
