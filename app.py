#!/usr/bin/env python3
"""CDK entry point: ``npx cdk synth -c stage=dev [-c tasks_file=tasks.yaml]``."""

from __future__ import annotations

import sys
from pathlib import Path

import aws_cdk as cdk

from kairos.loading import ConfigError
from kairos.plan import PlanError
from kairos_stack.app_builder import add_checks, build_stage, stage_plan


def main() -> None:
    app = cdk.App()
    stage = str(app.node.try_get_context("stage") or "dev")
    tasks_file = Path(str(app.node.try_get_context("tasks_file") or "tasks.yaml"))
    try:
        plan = stage_plan(tasks_file, stage)
    except (ConfigError, PlanError) as error:
        # A bad tasks.yaml must stop the synth with the problems, not a traceback.
        print(f"kairos: {tasks_file} is not valid:\n{error}", file=sys.stderr)
        raise SystemExit(1) from None
    build_stage(app, plan)
    add_checks(app)
    app.synth()


if __name__ == "__main__":
    main()
