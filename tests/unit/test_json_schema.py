"""The JSON Schema editors use for tasks.yaml stays generated from the models and accepts the file."""

from __future__ import annotations

import json

from jsonschema import Draft202012Validator
from ruamel.yaml import YAML

from kairos.json_schema import tasks_file_schema
from tests.conftest import PROJECT_ROOT

SCHEMA_PATH = PROJECT_ROOT / "schemas" / "tasks.schema.json"


def test_the_checked_in_schema_is_the_generated_one() -> None:
    assert json.loads(SCHEMA_PATH.read_text()) == tasks_file_schema(), "run `make schema` and commit the result"


def test_tasks_yaml_points_editors_at_the_schema() -> None:
    first_line = (PROJECT_ROOT / "tasks.yaml").read_text().splitlines()[0]

    assert first_line == "# yaml-language-server: $schema=./schemas/tasks.schema.json"


def test_the_schema_accepts_tasks_yaml_and_rejects_a_typo() -> None:
    validator = Draft202012Validator(tasks_file_schema())
    document = YAML(typ="safe").load((PROJECT_ROOT / "tasks.yaml").read_text())

    assert list(validator.iter_errors(document)) == []
    document["tasks"][0]["shedule"] = "rate(1 hour)"
    assert any("shedule" in error.message for error in validator.iter_errors(document))
