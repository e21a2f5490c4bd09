"""cdk.json decides every CDK feature flag (docs/adr/0110-cdk-feature-flags.md): each at the value a new
CDK app gets, so no synth prints "N feature flags are not configured", and the one flag that changes
what a deploy does (explicit stack tags) keeps the stack's tag on the CloudFormation stack."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest

from kairos.catalog import load_catalog
from kairos.loading import load_tasks_file
from kairos.plan import plan_stage
from kairos_stack.app_builder import build_stage
from tests.conftest import CDK_FEATURE_FLAGS, PROJECT_ROOT

FLAG_REPORT = "aws-cdk-lib/feature-flag-report"
"""The cloud-assembly artifact in which aws-cdk-lib reports each flag; ``cdk flags`` reads it."""


def synthesize(stage: str, outdir: Path, flags: dict[str, object]) -> dict[str, Any]:
    catalog = load_catalog()
    plan = plan_stage(load_tasks_file(PROJECT_ROOT / "tasks.yaml", catalog), catalog, stage)
    app = cdk.App(outdir=str(outdir), context={**flags, "aws:cdk:bundling-stacks": []})
    build_stage(app, plan)
    app.synth()
    manifest: dict[str, Any] = json.loads((outdir / "manifest.json").read_text(encoding="utf-8"))
    return manifest


def flags_needing_attention(manifest: dict[str, Any]) -> list[str]:
    """The flags the CDK CLI counts in "N feature flags are not configured": unset by the app, and
    behaving unset unlike the recommended value (``FlagOperations.filterNeedsAttention`` in aws-cdk)."""
    report = manifest["artifacts"][FLAG_REPORT]["properties"]["flags"]
    return sorted(
        name
        for name, flag in report.items()
        if "userValue" not in flag
        and flag.get("unconfiguredBehavesLike", {}).get("v2", False) != flag.get("recommendedValue")
    )


@pytest.fixture(scope="module")
def dev_manifest(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return synthesize("dev", tmp_path_factory.mktemp("flags"), CDK_FEATURE_FLAGS)


def test_cdk_json_leaves_no_feature_flag_unconfigured(
    dev_manifest: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> None:
    assert flags_needing_attention(dev_manifest) == []
    # The check itself sees unconfigured flags: without cdk.json's flags there are dozens.
    bare = synthesize("dev", tmp_path_factory.mktemp("bare"), {})
    assert len(flags_needing_attention(bare)) > 50


def test_every_flag_cdk_json_sets_is_the_recommended_value(dev_manifest: dict[str, Any]) -> None:
    report = dev_manifest["artifacts"][FLAG_REPORT]["properties"]["flags"]
    unknown = sorted(set(CDK_FEATURE_FLAGS) - set(report))
    assert unknown == [], "cdk.json sets flags this aws-cdk-lib does not know"
    differing = {
        name: (value, report[name].get("recommendedValue"))
        for name, value in CDK_FEATURE_FLAGS.items()
        if value != report[name].get("recommendedValue")
    }
    assert differing == {}


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_the_cloudformation_stack_keeps_its_stage_tag(stage: str, tmp_path: Path) -> None:
    # Under @aws-cdk/core:explicitStackTags, Tags.of(stack) no longer reaches the stack: a deploy would
    # drop the tag from the stack unless the stack is given it explicitly.
    assert CDK_FEATURE_FLAGS["@aws-cdk/core:explicitStackTags"] is True
    manifest = synthesize(stage, tmp_path, CDK_FEATURE_FLAGS)
    stacks = [artifact for artifact in manifest["artifacts"].values() if artifact["type"] == "aws:cloudformation:stack"]
    # The core stack and every shard stack.
    assert (
        len(stacks)
        == 1
        + plan_stage(load_tasks_file(PROJECT_ROOT / "tasks.yaml", load_catalog()), load_catalog(), stage).shard_count
    )
    tagged = []
    for stack in stacks:
        assert stack["properties"]["tags"] == {"kairos:stage": stage}
        template = json.loads((tmp_path / stack["properties"]["templateFile"]).read_text(encoding="utf-8"))
        tagged += [
            resource
            for resource in template["Resources"].values()
            if resource["Type"] in {"AWS::DynamoDB::Table", "AWS::Lambda::Function"}
        ]
    assert {resource["Type"] for resource in tagged} == {"AWS::DynamoDB::Table", "AWS::Lambda::Function"}
    for resource in tagged:
        assert {"Key": "kairos:stage", "Value": stage} in resource["Properties"]["Tags"]
