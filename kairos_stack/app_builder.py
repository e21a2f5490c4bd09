"""Builds the CDK app for one stage: tasks.yaml → models → plan → stack, with cdk-nag on every synth."""

from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from kairos.catalog import load_catalog
from kairos.loading import load_tasks_file
from kairos.plan import StagePlan, plan_stage
from kairos_stack.code_assets import CodeAssets
from kairos_stack.stage_stack import KairosStageStack


def stage_plan(tasks_file: Path, stage: str) -> StagePlan:
    catalog = load_catalog()
    return plan_stage(load_tasks_file(tasks_file, catalog), catalog, stage)


# ``-c local_deploy=true``: deploying to a local AWS emulator (moto), whose CloudFormation cannot
# update a stack that carries CDK's bootstrap-version rule and parameter.
LOCAL_DEPLOY_CONTEXT = "local_deploy"


def build_stage(app: cdk.App, plan: StagePlan, *, code_assets: CodeAssets | None = None) -> KairosStageStack:
    env = cdk.Environment(account=plan.account, region=plan.region) if plan.account or plan.region else None
    local_deploy = str(app.node.try_get_context(LOCAL_DEPLOY_CONTEXT)).lower() == "true"
    stack = KairosStageStack(
        app,
        plan.stack_name,
        plan=plan,
        code_assets=code_assets,
        env=env,
        description=f"Kairos scheduled tasks, stage {plan.stage}",
        synthesizer=cdk.DefaultStackSynthesizer(generate_bootstrap_version_rule=False) if local_deploy else None,
    )
    return stack


def add_checks(app: cdk.App) -> None:
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
