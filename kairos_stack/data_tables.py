"""The stage's DynamoDB tables, built from the designs in ``kairos_runtime.tables``."""

from __future__ import annotations

from collections.abc import Iterable

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

from kairos_runtime.tables import TableDesign, TableId


class DataTables(Construct):
    """On-demand tables with TTL; where the stage keeps its data: retained, deletion-protected and with
    point-in-time recovery."""

    def __init__(
        self, scope: Construct, construct_id: str, *, designs: Iterable[TableDesign], retain_data: bool
    ) -> None:
        super().__init__(scope, construct_id)
        self._tables: dict[TableId, dynamodb.Table] = {}
        for design in designs:
            table = dynamodb.Table(
                self,
                design.construct_id,
                partition_key=dynamodb.Attribute(name=design.partition_key, type=dynamodb.AttributeType.STRING),
                sort_key=dynamodb.Attribute(name=design.sort_key, type=dynamodb.AttributeType.STRING),
                billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
                time_to_live_attribute=design.ttl_attribute,
                encryption=dynamodb.TableEncryption.AWS_MANAGED,
                point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                    point_in_time_recovery_enabled=retain_data
                ),
                removal_policy=cdk.RemovalPolicy.RETAIN if retain_data else cdk.RemovalPolicy.DESTROY,
                # Retained data is also protected from a DeleteTable by hand until someone turns this off.
                deletion_protection=retain_data,
            )
            for index in design.indexes:
                table.add_global_secondary_index(
                    index_name=index.name,
                    partition_key=dynamodb.Attribute(name=index.partition_key, type=dynamodb.AttributeType.STRING),
                    sort_key=dynamodb.Attribute(name=index.sort_key, type=dynamodb.AttributeType.STRING),
                    projection_type=dynamodb.ProjectionType.ALL,
                )
            self._tables[design.table_id] = table

    def table(self, table_id: TableId) -> dynamodb.Table:
        return self._tables[table_id]

    def items(self) -> Iterable[tuple[TableId, dynamodb.Table]]:
        return self._tables.items()
