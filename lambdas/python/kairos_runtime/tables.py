"""The DynamoDB table designs, shared by the CDK constructs, the local runner and the task code.

One definition of each table's keys, indexes and TTL attribute keeps the deployed tables, the
embedded ones created by ``kairos run`` and the key builders used at run time from drifting apart.
"""

from __future__ import annotations

from collections.abc import Iterator
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import msgspec

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table


class TableId(StrEnum):
    """The logical tables a task type may ask to be granted."""

    TASK_RUNS = "task_runs"
    MARKET_DATA = "market_data"


class IndexDesign(msgspec.Struct, frozen=True):
    name: str
    partition_key: str
    sort_key: str


class TableDesign(msgspec.Struct, frozen=True):
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


def query_index(
    table: Table, index: IndexDesign, partition: str, *, newest_first: bool = False
) -> Iterator[dict[str, Any]]:
    """Every item of one partition of an index, following DynamoDB's pages."""
    query: dict[str, Any] = {
        "IndexName": index.name,
        "KeyConditionExpression": "#pk = :pk",
        "ExpressionAttributeNames": {"#pk": index.partition_key},
        "ExpressionAttributeValues": {":pk": partition},
        "ScanIndexForward": not newest_first,
    }
    while True:
        response = table.query(**query)
        yield from response.get("Items", [])
        if "LastEvaluatedKey" not in response:
            return
        query["ExclusiveStartKey"] = response["LastEvaluatedKey"]
