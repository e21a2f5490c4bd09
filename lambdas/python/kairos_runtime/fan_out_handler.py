"""The Lambda entry points of a fan-out task's three functions, with the same Powertools decorators
as every task's handler (:mod:`kairos_runtime.handler`): ``plan``, ``batch`` and ``summarize``."""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from kairos_runtime.context import Clients
from kairos_runtime.fan_out_runner import FanOutRunner
from kairos_runtime.handler import PowertoolsObserver, logger, metrics, traced
from kairos_runtime.settings import TASK_MODULE_ENV, settings_from_environment
from kairos_runtime.tasks import registry_for_module

_settings = settings_from_environment()
FAN_OUT_RUNNER = FanOutRunner(
    registry=registry_for_module(os.environ.get(TASK_MODULE_ENV)),
    settings=_settings,
    clients=Clients(_settings),
    logger=logger,
    observer=PowertoolsObserver(),
)


# Traced only where the stage turns SDK tracing on (docs/adr/0192), as every task's handler.
@metrics.log_metrics
def _plan(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return FAN_OUT_RUNNER.plan(event, context)


def _batch(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return FAN_OUT_RUNNER.batch(event, context)


@metrics.log_metrics
def _summarize(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return FAN_OUT_RUNNER.summarize(event, context)


_traced_plan, _traced_batch, _traced_summarize = traced(_plan), traced(_batch), traced(_summarize)


@logger.inject_lambda_context(correlation_id_path="execution_id", clear_state=True)
def plan(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return _traced_plan(event, context)


@logger.inject_lambda_context(correlation_id_path="event.execution_id", clear_state=True)
def batch(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return _traced_batch(event, context)


@logger.inject_lambda_context(correlation_id_path="event.execution_id", clear_state=True)
def summarize(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return _traced_summarize(event, context)
