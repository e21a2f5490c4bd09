"""The contract the Node.js runtime reads: this runtime's constants, written as JSON.

Both runtimes write the same run records to the same tables and read the same environment, so the
names and limits they share are defined once, here in Python, and exported to
``lambdas/node/contract.json`` (inside the Node code asset), which ``lambdas/node/src/contract.mjs``
loads. ``tests/runtime/test_runtime_contract.py`` fails when the checked-in file is stale.

Regenerate with ``make contract`` (``python -m kairos_runtime.contract``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import msgspec

from kairos_runtime import bounds, metrics, runs, settings, slots
from kairos_runtime.registry import Access
from kairos_runtime.tables import TABLE_DESIGNS, TASK_RUNS

CONTRACT_FILE = Path(__file__).resolve().parents[3] / "lambdas" / "node" / "contract.json"
REGENERATE_COMMAND = "make contract"

# The settings the Node runtime reads too (it has no spot quotes and no proxy), by Node's name.
_SHARED_SETTINGS = {
    "run_record_ttl_days": settings.RUN_RECORD_TTL_DAYS_ENV,
    "lambda_retry_attempts": settings.LAMBDA_RETRY_ATTEMPTS_ENV,
    "max_event_age_seconds": settings.MAX_EVENT_AGE_ENV,
}


def _setting_bounds() -> dict[str, dict[str, Any]]:
    """Each shared setting's default and bounds, read from RuntimeSettings' own field constraints."""
    info = msgspec.inspect.type_info(settings.RuntimeSettings)
    assert isinstance(info, msgspec.inspect.StructType)
    fields = {field.name: field for field in info.fields}
    bounds: dict[str, dict[str, Any]] = {}
    for name, env_var in _SHARED_SETTINGS.items():
        field = fields[name]
        assert isinstance(field.type, msgspec.inspect.IntType)
        bound: dict[str, Any] = {"env": env_var, "default": field.default, "min": field.type.ge}
        if field.type.le is not None:
            bound["max"] = field.type.le
        bounds[name] = bound
    return bounds


def _late_limit_minimum() -> int:
    """The smallest late-delivery limit RuntimeSettings accepts (its field's own bound)."""
    info = msgspec.inspect.type_info(settings.RuntimeSettings)
    assert isinstance(info, msgspec.inspect.StructType)
    [field] = [field for field in info.fields if field.name == "late_delivery_limit_seconds"]
    assert isinstance(field.type, msgspec.inspect.UnionType)
    [bounded] = [member for member in field.type.types if isinstance(member, msgspec.inspect.IntType)]
    assert bounded.ge is not None
    return bounded.ge


def contract() -> dict[str, Any]:
    """Everything the Node runtime must agree on with this one, as plain JSON values."""
    return {
        "env": {
            "stage": settings.STAGE_ENV,
            "task": settings.TASK_ENV,
            "tasks": settings.TASKS_ENV,
            "task_type": settings.TASK_TYPE_ENV,
            "runtime": settings.RUNTIME_ENV,
            "late_delivery_limit_seconds": settings.LATE_DELIVERY_LIMIT_ENV,
        },
        "past_slot": {"error_type": settings.PAST_SLOT_REFUSED, "min_limit_seconds": _late_limit_minimum()},
        "settings": _setting_bounds(),
        "lambda": {"first_retry_delay_seconds": settings.LAMBDA_FIRST_RETRY_DELAY_SECONDS},
        "access_modes": [access.value for access in Access],
        "tables": {
            design.table_id.value: {
                "partition_key": design.partition_key,
                "sort_key": design.sort_key,
                "indexes": [
                    {"name": index.name, "partition_key": index.partition_key, "sort_key": index.sort_key}
                    for index in design.indexes
                ],
                "ttl_attribute": design.ttl_attribute,
                "env_var": design.env_var,
            }
            for design in TABLE_DESIGNS.values()
        },
        "run_records": {
            "table": TASK_RUNS.table_id.value,
            "statuses": [status.value for status in runs.RunStatus],
            "error_kinds": [kind.value for kind in runs.ErrorKind],
            "max_error_message": bounds.MAX_ERROR_MESSAGE,
            "max_detail_bytes": bounds.MAX_DETAIL_BYTES,
            "max_detail_keys": bounds.MAX_DETAIL_KEYS,
            "previous_outcome_fields": list(runs.PREVIOUS_OUTCOME_FIELDS),
            "restart_attempts": runs.RESTART_ATTEMPTS,
            "cleared_on_redelivery": list(runs.CLEARED_ON_REDELIVERY),
            "restarted_fields": list(runs.RESTARTED_FIELDS),
            "claim_fields": list(runs.CLAIM_FIELDS),
        },
        "slots": {
            "prefix": slots.SLOT_PREFIX,
            "claim_margin_seconds": slots.CLAIM_MARGIN_SECONDS,
            "declined_kept": slots.DECLINED_KEPT,
            "done": sorted(slots.DONE),
            "replaced_fields": list(slots.REPLACED_FIELDS),
            "cleared_on_claim": list(slots.CLEARED_ON_CLAIM),
            "declines": [decline.value for decline in slots.Decline],
        },
        "bounds": {name: value for name, value in vars(bounds).items() if name.isupper()},
        "metrics": {
            "namespace": metrics.NAMESPACE,
            "service": metrics.SERVICE,
            "dimensions": list(metrics.RUN_DIMENSIONS),
            "run_outcomes": {status.value: name for status, name in metrics.RUN_OUTCOMES.items()},
            "runs_retried": metrics.RUNS_RETRIED,
            "runs_superseded": metrics.RUNS_SUPERSEDED,
            "runs_alive": metrics.RUNS_ALIVE,
            "alive_outcomes": sorted(status.value for status in metrics.ALIVE_OUTCOMES),
            "run_duration": metrics.RUN_DURATION,
            "items_written": metrics.ITEMS_WRITTEN,
            "items_rejected": metrics.ITEMS_REJECTED,
        },
    }


def contract_text() -> str:
    """The file's exact content: sorted keys and a fixed indent, so a regeneration diffs cleanly."""
    return json.dumps(contract(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    target = Path(argv[0]) if argv else CONTRACT_FILE
    target.write_text(contract_text(), encoding="utf-8")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
