"""A stage on this machine: its tables on a local DynamoDB, its tasks run through their handlers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from kairos.local.dynamodb import DynamoEndpoint
from kairos.local.invoke import LocalInvocation, invoke_locally, loopback_credentials
from kairos.local.tables import LocalTable, ensure_tables, tables_from_designs, tables_from_template
from kairos.operations.invoke import run_record
from kairos.plan import TaskPlan
from kairos_runtime.runs import RunHistory
from kairos_runtime.tables import TableId

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table


@dataclass(frozen=True, slots=True)
class LocalRunResult:
    invocation: LocalInvocation
    record: dict[str, Any] | None
    """The run record the handler wrote, read back from the table: the source of truth."""


class LocalStage:
    def __init__(self, *, stage: str, endpoint: DynamoEndpoint, region: str = "us-east-1") -> None:
        self.stage = stage
        self.endpoint = endpoint
        self._region = region
        self._tables: list[LocalTable] = tables_from_designs(stage)

    @property
    def table_names(self) -> Mapping[TableId, str]:
        return {table.table_id: table.name for table in self._tables}

    def _resource(self) -> Any:
        import boto3

        credentials = loopback_credentials(self.endpoint.url)
        return boto3.resource(
            "dynamodb",
            endpoint_url=self.endpoint.url,
            region_name=self._region,
            aws_access_key_id=credentials.get("aws_access_key_id"),
            aws_secret_access_key=credentials.get("aws_secret_access_key"),
        )

    def prepare_tables(self, *, template: Mapping[str, Any] | None = None) -> list[str]:
        if template is not None:
            self._tables = tables_from_template(self.stage, template)
        return ensure_tables(self._resource().meta.client, self._tables)

    def run(
        self,
        task: TaskPlan,
        *,
        scheduled_time: datetime,
        event: Mapping[str, Any] | None = None,
        rerun: bool = False,
    ) -> LocalRunResult:
        """Run the task for the slot (to the minute); ``event``, when given, is sent instead of one
        rendered here (``kairos backfill`` builds its events in one place)."""
        invocation = invoke_locally(
            task,
            endpoint_url=self.endpoint.url,
            table_names=self.table_names,
            scheduled_time=scheduled_time.replace(second=0, microsecond=0),
            event=event,
            rerun=rerun,
        )
        # The delivery's own record, or (declined: the slot is done or in progress) the slot's run.
        return LocalRunResult(invocation, run_record(self.runs_table(), dict(invocation.event)))

    def history(self, *, task: str | None, limit: int, now: datetime) -> list[dict[str, Any]]:
        history = RunHistory(self.runs_table())
        if task is not None:
            return history.for_task(task, limit=limit)
        return history.recent(limit=limit, today=now)

    def table(self, table_id: TableId) -> Table:
        """One of the stage's tables as a boto3 resource."""
        return self._resource().Table(self.table_names[table_id])  # type: ignore[no-any-return]

    def runs_table(self) -> Table:
        return self._resource().Table(self.table_names[TableId.TASK_RUNS])  # type: ignore[no-any-return]
