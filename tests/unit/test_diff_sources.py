"""Reading the two sides of ``kairos diff`` (kairos/diff_sources.py) without synthesizing anything."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kairos.diff_sources import (
    ASSET_FILES,
    DiffSourceError,
    read_assembly,
    stack_artifacts,
    synth_context,
)


def write_assembly(folder: Path, stacks: dict[str, str]) -> None:
    """A cloud assembly with one stack per (name → stage tag), each with an empty template."""
    artifacts = {}
    for name, stage in stacks.items():
        (folder / f"{name}.template.json").write_text(json.dumps({"Resources": {}}))
        artifacts[name] = {
            "type": "aws:cloudformation:stack",
            "properties": {"templateFile": f"{name}.template.json", "tags": {"kairos:stage": stage}},
        }
    artifacts["Tree"] = {"type": "cdk:tree", "properties": {"file": "tree.json"}}
    (folder / "manifest.json").write_text(json.dumps({"version": "55.0.0", "artifacts": artifacts}))


def test_every_stack_of_the_stage_is_read_and_other_stages_are_left_out(tmp_path: Path) -> None:
    write_assembly(tmp_path, {"kairos-dev": "dev", "kairos-dev-shard-1": "dev", "kairos-prod": "prod"})

    assert [name for name, _ in stack_artifacts(tmp_path, "dev")] == ["kairos-dev", "kairos-dev-shard-1"]
    with pytest.raises(DiffSourceError, match="no stack of stage 'test' \\(found kairos-dev"):
        stack_artifacts(tmp_path, "test")


def test_an_assembly_reads_its_recorded_asset_files_and_a_template_file_reads_alone(tmp_path: Path) -> None:
    write_assembly(tmp_path, {"kairos-dev": "dev"})
    (tmp_path / ASSET_FILES).write_text(json.dumps({"abc": {"kairos_runtime/x.py": "1"}}))

    assembly = read_assembly(tmp_path, "dev", "base")
    single = read_assembly(tmp_path / "kairos-dev.template.json", "dev", "saved")

    assert [stack.name for stack in assembly.stacks] == ["kairos-dev"]
    assert assembly.asset_files == {"abc": {"kairos_runtime/x.py": "1"}}
    assert [stack.name for stack in single.stacks] == ["kairos-dev"]
    assert single.asset_files == {}


@pytest.mark.parametrize(
    ("write", "message"),
    [
        (lambda path: path.write_text("{not json"), "not a readable JSON file"),
        (lambda path: path.write_text("[1, 2]"), "not a CloudFormation template"),
    ],
)
def test_a_bad_saved_template_is_one_line(tmp_path: Path, write: object, message: str) -> None:
    path = tmp_path / "saved.json"
    write(path)  # type: ignore[operator]
    with pytest.raises(DiffSourceError, match=message):
        read_assembly(path, "dev", "saved")


def test_a_folder_without_a_manifest_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DiffSourceError, match="not a cloud assembly"):
        read_assembly(tmp_path, "dev", "saved")


def test_the_synth_context_is_the_tree_s_cdk_json_plus_the_stage_and_no_build(tmp_path: Path) -> None:
    (tmp_path / "cdk.json").write_text(json.dumps({"context": {"@aws-cdk/core:flag": True, "stage": "dev"}}))
    (tmp_path / "kairos").mkdir()
    (tmp_path / "kairos" / "diff_sources.py").write_text('SOURCES_ONLY_CONTEXT = "kairos:sources-only"\n')

    context = synth_context(tmp_path, "prod", "other.yaml")

    assert context["@aws-cdk/core:flag"] is True
    assert (context["stage"], context["tasks_file"]) == ("prod", "other.yaml")
    assert context["kairos:sources-only"] is True
    assert "aws:cdk:bundling-stacks" not in context
    # A tree from before sources-only bundling is synthesized without bundling instead.
    (tmp_path / "kairos" / "diff_sources.py").unlink()
    assert synth_context(tmp_path, "prod", "other.yaml")["aws:cdk:bundling-stacks"] == []
