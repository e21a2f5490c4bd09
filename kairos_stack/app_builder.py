"""Builds the CDK app for one stage: tasks.yaml → models → plan → stack, with cdk-nag on every synth."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from kairos.catalog import load_catalog
from kairos.loading import load_tasks_file
from kairos.plan import StagePlan, plan_stage
from kairos_stack.code_assets import CodeAssets
from kairos_stack.scheduled_task import ScheduledTask
from kairos_stack.shard_stack import KairosShardStack
from kairos_stack.stage_stack import KairosStageStack


def stage_plan(tasks_file: Path, stage: str) -> StagePlan:
    catalog = load_catalog()
    return plan_stage(load_tasks_file(tasks_file, catalog), catalog, stage)


# ``-c local_deploy=true``: deploying to a local AWS emulator (moto), whose CloudFormation cannot
# update a stack that carries CDK's bootstrap-version rule and parameter.
LOCAL_DEPLOY_CONTEXT = "local_deploy"


@dataclass(frozen=True)
class StageStacks:
    """A stage as synthesized: its core stack and every shard stack (docs/adr/0180-stage-shards.md)."""

    core: KairosStageStack
    shards: tuple[KairosShardStack, ...]

    @property
    def stacks(self) -> tuple[cdk.Stack, ...]:
        return (self.core, *self.shards)

    def task(self, name: str) -> ScheduledTask:
        task = self.core.plan.task(name)
        return self.shards[task.shard].tasks[name]

    def stack_of(self, name: str) -> KairosShardStack:
        return self.shards[self.core.plan.task(name).shard]


def build_stage(app: cdk.App, plan: StagePlan, *, code_assets: CodeAssets | None = None) -> StageStacks:
    env = cdk.Environment(account=plan.account, region=plan.region) if plan.account or plan.region else None
    local_deploy = str(app.node.try_get_context(LOCAL_DEPLOY_CONTEXT)).lower() == "true"

    def synthesizer() -> cdk.IStackSynthesizer | None:
        return cdk.DefaultStackSynthesizer(generate_bootstrap_version_rule=False) if local_deploy else None

    core = KairosStageStack(
        app,
        plan.stack_name,
        plan=plan,
        env=env,
        description=f"Kairos scheduled tasks, stage {plan.stage}: tables, queue, alarm topic, schedule group",
        synthesizer=synthesizer(),
    )
    code_assets = code_assets or CodeAssets()
    shards = tuple(
        KairosShardStack(
            app,
            shard.stack_name,
            plan=plan,
            shard=shard,
            core=core,
            code_assets=code_assets,
            env=env,
            description=f"Kairos scheduled tasks, stage {plan.stage}: shard {shard.index} of {plan.shard_count}",
            synthesizer=synthesizer(),
        )
        for shard in plan.shards
    )
    return StageStacks(core, shards)


def add_checks(app: cdk.App) -> None:
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
