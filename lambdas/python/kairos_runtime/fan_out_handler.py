"""The Lambda entry points of a fan-out task's three functions, with the same Powertools decorators
as every task's handler (:mod:`kairos_runtime.handler`): ``plan``, ``batch`` and ``summarize``."""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from kairos_runtime.context import Clients
from kairos_runtime.fan_out_runner import FanOutRunner
from kairos_runtime.handler import PowertoolsObserver, logger, metrics, tracer
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


@logger.inject_lambda_context(correlation_id_path="execution_id", clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def plan(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return FAN_OUT_RUNNER.plan(event, context)


@logger.inject_lambda_context(correlation_id_path="event.execution_id", clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
def batch(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return FAN_OUT_RUNNER.batch(event, context)


@logger.inject_lambda_context(correlation_id_path="event.execution_id", clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def summarize(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return FAN_OUT_RUNNER.summarize(event, context)
