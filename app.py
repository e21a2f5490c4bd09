#!/usr/bin/env python3
"""CDK entry point: ``npx cdk synth -c stage=dev [-c tasks_file=tasks.yaml]``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import aws_cdk as cdk

from kairos.excerpts import shorten
from kairos.limits import TEMPLATE_MAX_BYTES
from kairos.loading import ConfigError
from kairos.plan import PlanError
from kairos_stack.app_builder import add_checks, build_stage, stage_plan


def create_app(**options: Any) -> cdk.App:
    """The app ``cdk synth`` runs (``options`` as ``cdk.App``'s: a context, an outdir).

    CDK's built-in CloudFormation validation is off: it took 8 s of a 1-task synth and 75 s of a
    1,000-task one, and cfn-lint checks every template in `make test` (docs/adr/0182-synth-speed.md).
    """
    return cdk.App(builtin_cloud_formation_validation=False, **options)


def main(app: cdk.App | None = None) -> None:
    """Synthesize one stage; any failure is a message on stderr and exit status 1, never a traceback."""
    app = app or create_app()
    stage = str(app.node.try_get_context("stage") or "dev")
    tasks_file = Path(str(app.node.try_get_context("tasks_file") or "tasks.yaml"))
    try:
        plan = stage_plan(tasks_file, stage)
    except (ConfigError, PlanError) as error:
        # A bad tasks.yaml must stop the synth with the problems, not a traceback.
        print(f"kairos: {tasks_file} is not valid:\n{error}", file=sys.stderr)
        raise SystemExit(1) from None
    except Exception as error:  # the last resort: every known kind of bad input has its own message
        print(f"kairos: {tasks_file}: internal error while reading it: {shorten(str(error))}", file=sys.stderr)
        raise SystemExit(1) from None
    try:
        build_stage(app, plan)
        add_checks(app)
        assembly = app.synth()
    except Exception as error:  # CDK's own checks (TooManyResourcesInStack, ...) arrive as jsii errors
        # A jsii error carries the JavaScript stack after its first line: the first line is the message.
        message = shorten(str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__)
        print(f"kairos: stage {stage!r} of {tasks_file} failed to synthesize: {message}", file=sys.stderr)
        raise SystemExit(1) from None
    for stack in assembly.stacks:
        # The template as written is what cdk deploy uploads to S3, and what CloudFormation measures.
        size = Path(stack.template_full_path).stat().st_size
        if size > TEMPLATE_MAX_BYTES:
            print(
                f"kairos: stage {stage!r} of {tasks_file}: the template of {stack.stack_name} is {size:,} bytes, "
                f"and CloudFormation takes at most {TEMPLATE_MAX_BYTES:,}: shrink the params of its tasks, or give "
                "the stage more shards (docs/adr/0180-stage-shards.md)",
                file=sys.stderr,
            )
            raise SystemExit(1)


if __name__ == "__main__":
    main()
