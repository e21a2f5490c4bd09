"""Create a stage's tables on a local DynamoDB endpoint, from the designs or a synthesized template."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kairos_runtime.tables import TABLE_DESIGNS, TableDesign, TableId

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient


@dataclass(frozen=True, slots=True)
class LocalTable:
    table_id: TableId
    name: str
    definition: Mapping[str, Any]
    """Keyword arguments of CreateTable, without TableName."""
    ttl_attribute: str | None


def local_table_name(stage: str, design: TableDesign) -> str:
    return f"kairos-{stage}-{design.construct_id}"


def tables_from_designs(stage: str) -> list[LocalTable]:
    tables = []
    for design in TABLE_DESIGNS.values():
        attributes = {design.partition_key, design.sort_key}
        for index in design.indexes:
            attributes |= {index.partition_key, index.sort_key}
        definition = {
            "KeySchema": [
                {"AttributeName": design.partition_key, "KeyType": "HASH"},
                {"AttributeName": design.sort_key, "KeyType": "RANGE"},
            ],
            "AttributeDefinitions": [{"AttributeName": name, "AttributeType": "S"} for name in sorted(attributes)],
            "GlobalSecondaryIndexes": [
                {
                    "IndexName": index.name,
                    "KeySchema": [
                        {"AttributeName": index.partition_key, "KeyType": "HASH"},
                        {"AttributeName": index.sort_key, "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "ALL"},
                }
                for index in design.indexes
            ],
            "BillingMode": "PAY_PER_REQUEST",
        }
        tables.append(LocalTable(design.table_id, local_table_name(stage, design), definition, design.ttl_attribute))
    return tables


def tables_from_template(stage: str, template: Mapping[str, Any]) -> list[LocalTable]:
    """The ``AWS::DynamoDB::Table`` resources a synthesized template declares, as CreateTable calls.

    Each is matched to its design through the construct path CDK records in the resource metadata,
    which gives it the same local name ``kairos run`` uses.
    """
    tables = []
    for logical_id, design in template_tables(template):
        resource = template["Resources"][logical_id]
        properties = resource["Properties"]
        definition = {
            key: properties[key]
            for key in ("KeySchema", "AttributeDefinitions", "GlobalSecondaryIndexes", "BillingMode")
            if key in properties
        }
        ttl = properties.get("TimeToLiveSpecification", {})
        tables.append(
            LocalTable(
                design.table_id,
                local_table_name(stage, design),
                definition,
                ttl.get("AttributeName") if ttl.get("Enabled") else None,
            )
        )
    return tables


def template_tables(template: Mapping[str, Any]) -> Iterator[tuple[str, TableDesign]]:
    """Each ``AWS::DynamoDB::Table`` of the template (logical id) with the design it is built from."""
    by_construct_id = {design.construct_id: design for design in TABLE_DESIGNS.values()}
    for logical_id, resource in template.get("Resources", {}).items():
        if resource.get("Type") != "AWS::DynamoDB::Table":
            continue
        path = str(resource.get("Metadata", {}).get("aws:cdk:path", ""))
        design = next((by_construct_id[part] for part in path.split("/") if part in by_construct_id), None)
        if design is None:
            raise ValueError(f"table {logical_id} ({path or 'no construct path'}) matches no known table design")
        yield logical_id, design


class TableDesignChangedError(RuntimeError):
    """A local table was created from an older design; it is left alone rather than dropped."""


def ensure_tables(client: DynamoDBClient, tables: Iterable[LocalTable]) -> list[str]:
    """Create the tables that do not exist yet; returns the names it created.

    An existing table whose keys or indexes differ from the design raises instead of being
    silently reused (or dropped with its data). Commands share the embedded DynamoDB, so another one
    may create a table between the listing and the create: that table is waited for and checked
    like any existing one.
    """
    existing = set(client.list_tables().get("TableNames", []))
    created = []
    for table in tables:
        if table.name in existing:
            _check_design(client, table)
            continue
        try:
            client.create_table(TableName=table.name, **table.definition)
        except client.exceptions.ResourceInUseException:
            client.get_waiter("table_exists").wait(TableName=table.name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
            _check_design(client, table)
            continue
        client.get_waiter("table_exists").wait(TableName=table.name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
        if table.ttl_attribute:
            _enable_ttl(client, table)
        created.append(table.name)
    return created


def _shape(key_schema: Iterable[Any]) -> list[tuple[str, str]]:
    return [(str(key["AttributeName"]), str(key["KeyType"])) for key in key_schema]


def _check_design(client: DynamoDBClient, table: LocalTable) -> None:
    described = client.describe_table(TableName=table.name)["Table"]
    wanted_indexes = {
        index["IndexName"]: _shape(index["KeySchema"]) for index in table.definition.get("GlobalSecondaryIndexes", [])
    }
    actual_indexes = {
        index["IndexName"]: _shape(index["KeySchema"]) for index in described.get("GlobalSecondaryIndexes", [])
    }
    if _shape(described["KeySchema"]) != _shape(table.definition["KeySchema"]) or actual_indexes != wanted_indexes:
        raise TableDesignChangedError(
            f"local table {table.name} has an older key or index design; delete it (for the embedded "
            "DynamoDB: remove .kairos/dynamodb) to have it created again"
        )


def _enable_ttl(client: DynamoDBClient, table: LocalTable) -> None:
    from botocore.exceptions import ClientError

    try:
        client.update_time_to_live(
            TableName=table.name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": str(table.ttl_attribute)},
        )
    except ClientError as error:
        # dynalite does not implement TTL; items keep their expires_at attribute all the same.
        if error.response.get("Error", {}).get("Code") not in (
            "UnknownOperationException",
            "UnrecognizedClientException",
        ):
            raise
