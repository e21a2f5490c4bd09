"""The JSON Schema of tasks.yaml, generated from the models so editors complete and check it."""

from __future__ import annotations

from typing import Any

from kairos.config import TasksFile

SCHEMA_ID = "https://kairos.invalid/schemas/tasks.schema.json"


def tasks_file_schema() -> dict[str, Any]:
    schema = TasksFile.model_json_schema(mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "Kairos tasks.yaml",
        **schema,
    }
