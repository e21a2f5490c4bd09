"""``kairos cost``: the monthly estimate of a stage (:mod:`kairos.operations.cost`), a row per task.

Without ``--stage`` the estimate reads tasks.yaml only (stage dev's settings; every duration is the
task's timeout, marked); ``--stage S`` reads deployed stage S's recorded runs for the durations and
items written (one Query per enabled task).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any

import typer
from rich.text import Text

from kairos.cli import DEFAULT_FILE, FileOption, JsonOption, _plan, _print_json, _print_table, services
from kairos.cli_operations import LOCAL_STAGE, ProfileOption, RegionOption, aws_errors, deployed_stage
from kairos.cli_tables import Cell, Column
from kairos.operations.cost import HIGH_FREQUENCY_FIRES, RECORDED_RUNS, StageCost, load_prices, stage_cost
from kairos.operations.history import latest_runs
from kairos.plan import TaskPlan

COST_COLUMNS = (
    Column(""),
    Column("task"),
    Column("fires/30d"),
    Column("$/month"),
    Column("lambda", movable=True),
    Column("sched", movable=True),
    Column("ddb", movable=True),
    Column("logs", movable=True),
    Column("cw", movable=True),
    Column("notes", folds=True),
)


def _usd(value: float) -> str:
    if value == 0:
        return "0"
    return "<0.01" if value < 0.005 else f"{value:,.2f}"


def _rows(estimate: StageCost) -> list[list[Cell]]:
    rows: list[list[Cell]] = []
    for cost in sorted(estimate.tasks, key=lambda each: -each.total):
        marker = Text("●", style="green") if cost.task.enabled else Text("○", style="dim")
        usd = cost.usd
        notes = list(cost.notes)
        if cost.task.enabled:
            notes.insert(0, f"{cost.task.memory} MB {cost.task.architecture}")
        rows.append(
            [
                marker,
                cost.task.name,
                Text(f"{cost.fires:,}", style="bold red" if cost.fires >= HIGH_FREQUENCY_FIRES else ""),
                _usd(cost.total),
                _usd(usd["lambda"]),
                _usd(usd["scheduler"]),
                _usd(usd["dynamodb"]),
                _usd(usd["logs"]),
                _usd(usd["cloudwatch"]),
                "; ".join(notes),
            ]
        )
    rows.append(
        [
            "",
            "(stage)",
            "",
            _usd(estimate.shared_usd),
            "",
            "",
            "",
            "",
            _usd(estimate.shared_usd),
            "dead-letter alarm, and the alarms of disabled tasks",
        ]
    )
    return rows


def cost(
    file: FileOption = DEFAULT_FILE,
    stage: Annotated[
        str | None,
        typer.Option("--stage", "-s", help="Read this deployed stage's recorded runs (without it: tasks.yaml only)."),
    ] = None,
    profile: ProfileOption = None,
    region: RegionOption = None,
    as_json: JsonOption = False,
) -> None:
    """A monthly estimate: a row per task (fires in the next 30 days, Lambda, Scheduler, DynamoDB,
    logs, CloudWatch) and the total, with every assumption stated."""
    plan = _plan(file, stage or LOCAL_STAGE)
    prices = load_prices(region or plan.region)
    now = services.clock()
    if stage is None:

        def records_of(task: TaskPlan) -> Sequence[Mapping[str, Any]]:
            return ()

        estimate = stage_cost(plan, prices, now=now, records_of=records_of)
        where = "from tasks.yaml"
    else:
        deployed = deployed_stage(plan, profile, region)
        table = deployed.runs_table()
        with aws_errors():
            estimate = stage_cost(
                plan, prices, now=now, records_of=lambda task: latest_runs(table, task.name, limit=RECORDED_RUNS)
            )
        where = f"deployed ({deployed.stack_name}), durations from its recorded runs"
    if as_json:
        _print_json(
            {
                "stage": plan.stage,
                "deployed": stage is not None,
                "currency": prices.currency,
                "priced_region": prices.region,
                "prices_retrieved": prices.retrieved,
                "price_sources": dict(prices.sources),
                "horizon_days": 30,
                "tasks": [each.as_json() for each in estimate.tasks],
                "stage_usd": round(estimate.shared_usd, 4),
                "total_usd": round(estimate.total, 4),
                "assumptions": list(estimate.assumptions),
            }
        )
        return
    _print_table(
        title=f"Kairos cost per month, stage {plan.stage}, {where}",
        columns=COST_COLUMNS,
        rows=_rows(estimate),
        collect_into="notes",
    )
    services.console.print(f"total: {_usd(estimate.total)} {prices.currency} a month", markup=False)
    services.console.print("assumptions:", markup=False)
    for assumption in estimate.assumptions:
        # Wrapped at the console's width (it soft-wraps by default), under its own bullet.
        services.console.print(Text(f"  - {assumption}"), soft_wrap=False)


def register(app: typer.Typer) -> None:
    """Add ``cost`` to the ``kairos`` app."""
    app.command("cost")(cost)
