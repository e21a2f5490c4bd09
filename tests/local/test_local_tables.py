"""The local tables: created once, checked against their design, and shared by commands that race."""

from __future__ import annotations

from typing import Any

import boto3

from kairos.local.tables import ensure_tables, tables_from_designs


def client_for(endpoint: str) -> Any:
    return boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )


def test_a_table_another_command_creates_meanwhile_is_taken_as_existing(local_dynamodb: str) -> None:
    # Given another command that created the tables after this one listed them (as two commands
    # starting at once on the shared embedded DynamoDB do)
    tables = tables_from_designs("dev")
    other = client_for(local_dynamodb)
    assert ensure_tables(other, tables) == [table.name for table in tables]
    late = client_for(local_dynamodb)
    late.meta.events.register("after-call.dynamodb.ListTables", _as_if_empty)
    creates: list[str] = []
    late.meta.events.register(
        "before-parameter-build.dynamodb.CreateTable", lambda params, **_: creates.append(params["TableName"])
    )

    # When this one creates them, Then it finds them there, checks them, and creates nothing
    assert ensure_tables(late, tables) == []
    assert creates == [table.name for table in tables], "each create was tried, and found the table made"
    assert sorted(other.list_tables()["TableNames"]) == sorted(table.name for table in tables)


def _as_if_empty(parsed: dict[str, Any], **_: Any) -> None:
    """ListTables answered before the other command's CreateTable: no table yet."""
    parsed["TableNames"] = []
