"""The contract the Node runtime reads is exactly what the Python runtime's definitions produce."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kairos_runtime import contract, runs, settings
from kairos_runtime.tables import TABLE_DESIGNS, TableId


def test_the_checked_in_contract_is_what_the_runtime_generates() -> None:
    checked_in = contract.CONTRACT_FILE.read_text(encoding="utf-8")
    assert checked_in == contract.contract_text(), (
        f"{contract.CONTRACT_FILE} is stale: regenerate it with `{contract.REGENERATE_COMMAND}` and commit it"
    )


def test_the_contract_file_is_inside_the_node_code_asset() -> None:
    from kairos.plan import NODE_CODE_DIR

    assert contract.CONTRACT_FILE.parent == Path(NODE_CODE_DIR).resolve()


def test_the_settings_bounds_come_from_the_settings_model_itself() -> None:
    bounds = contract.contract()["settings"]
    assert bounds["lambda_retry_attempts"] == {
        "env": settings.LAMBDA_RETRY_ATTEMPTS_ENV,
        "default": 0,
        "min": 0,
        "max": 2,
    }
    assert bounds["max_event_age_seconds"] == {
        "env": settings.MAX_EVENT_AGE_ENV,
        "default": 6 * 3600,
        "min": 60,
        "max": 6 * 3600,
    }
    assert bounds["run_record_ttl_days"] == {"env": settings.RUN_RECORD_TTL_DAYS_ENV, "default": 90, "min": 1}


def test_a_changed_constant_changes_the_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    before = json.loads(contract.contract_text())
    monkeypatch.setattr(runs, "RESTART_ATTEMPTS", runs.RESTART_ATTEMPTS + 1)
    after = json.loads(contract.contract_text())
    assert after["run_records"]["restart_attempts"] == before["run_records"]["restart_attempts"] + 1


def test_every_table_design_is_exported() -> None:
    tables = contract.contract()["tables"]
    assert set(tables) == {table_id.value for table_id in TableId}
    task_runs = TABLE_DESIGNS[TableId.TASK_RUNS]
    assert tables["task_runs"]["env_var"] == task_runs.env_var
    assert tables["task_runs"]["indexes"] == [{"name": "by_date", "partition_key": "gsi1pk", "sort_key": "gsi1sk"}]


def test_writing_the_contract_writes_the_generated_text(tmp_path: Path) -> None:
    target = tmp_path / "contract.json"
    assert contract.main([str(target)]) == 0
    assert target.read_text(encoding="utf-8") == contract.contract_text()
