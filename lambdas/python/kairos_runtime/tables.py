"""The DynamoDB table designs, shared by the CDK constructs, the local runner and the task code.

One definition of each table's keys, indexes and TTL attribute keeps the deployed tables, the
embedded ones created by ``kairos run`` and the key builders used at run time from drifting apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class TableId(StrEnum):
    """The logical tables a task type may ask to be granted."""

    TASK_RUNS = "task_runs"
    MARKET_DATA = "market_data"


@dataclass(frozen=True, slots=True)
class IndexDesign:
    name: str
    partition_key: str
    sort_key: str


@dataclass(frozen=True, slots=True)
class TableDesign:
    table_id: TableId
    construct_id: str
    partition_key: str
    sort_key: str
    indexes: tuple[IndexDesign, ...]
    ttl_attribute: str
    env_var: str
    """Environment variable through which functions learn the deployed table name."""


TASK_RUNS = TableDesign(
    table_id=TableId.TASK_RUNS,
    construct_id="TaskRuns",
    partition_key="pk",
    sort_key="sk",
    indexes=(IndexDesign(name="by_date", partition_key="gsi1pk", sort_key="gsi1sk"),),
    ttl_attribute="expires_at",
    env_var="KAIROS_TASK_RUNS_TABLE",
)

MARKET_DATA = TableDesign(
    table_id=TableId.MARKET_DATA,
    construct_id="MarketData",
    partition_key="pk",
    sort_key="sk",
    indexes=(IndexDesign(name="by_class_date", partition_key="gsi1pk", sort_key="gsi1sk"),),
    ttl_attribute="expires_at",
    env_var="KAIROS_MARKET_DATA_TABLE",
)

TABLE_DESIGNS: dict[TableId, TableDesign] = {design.table_id: design for design in (TASK_RUNS, MARKET_DATA)}
