"""The Lambda entry point for every Python task: Powertools decorators and one call into the runner.

The Powertools Tracer (the X-Ray SDK) is built only where the stage turns SDK tracing on
(``sdk_tracing: true`` in tasks.yaml sets ``KAIROS_SDK_TRACING``): its recorder builds botocore
clients at import, most of the handler's cold start over the floor. Lambda's active tracing stays on
in every stage, so each invocation still has its X-Ray segment; SDK tracing adds the subsegments of
boto3 calls and the task annotations (docs/adr/0192-sdk-tracing-per-stage.md).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from kairos_runtime import metrics as metric_names
from kairos_runtime.context import Clients
from kairos_runtime.events import ScheduledEvent
from kairos_runtime.gauges import gauges_in
from kairos_runtime.log_levels import quiet_third_party_loggers
from kairos_runtime.runner import RunResult, TaskRunner
from kairos_runtime.settings import SDK_TRACING_ENV, TASK_MODULE_ENV, settings_from_environment
from kairos_runtime.tasks import registry_for_module

logger = Logger(service=metric_names.SERVICE)
quiet_third_party_loggers()
metrics = Metrics(namespace=metric_names.NAMESPACE, service=metric_names.SERVICE)


def sdk_tracer(environ: dict[str, str] | os._Environ[str] = os.environ) -> Any:
    """The Powertools Tracer when the stage turns SDK tracing on, else ``None`` (the SDK not imported)."""
    if environ.get(SDK_TRACING_ENV, "").lower() != "true":
        return None
    from aws_lambda_powertools import Tracer

    # Only AWS SDK calls get subsegments: patching everything would import requests (and more) on
    # every cold start, crawler or not.
    return Tracer(service=metric_names.SERVICE, patch_modules=("boto3",))


tracer = sdk_tracer()


class PowertoolsObserver:
    """Per-run metrics (dimensions ``task``, ``stage`` and ``service``), the gauges a run reports
    (:mod:`kairos_runtime.gauges`) and trace annotations."""

    def run_started(self, event: ScheduledEvent) -> None:
        metrics.add_dimension(name=metric_names.TASK_DIMENSION, value=event.task)
        if tracer is not None:
            tracer.put_annotation(key="task", value=event.task)
            tracer.put_annotation(key="task_type", value=event.task_type)
        logger.append_keys(task=event.task, task_type=event.task_type, attempt=event.attempt)

    def run_finished(self, event: ScheduledEvent, result: RunResult) -> None:
        for counter in result.counters:
            metrics.add_metric(name=counter, unit=MetricUnit.Count, value=1)
        metrics.add_metric(name=metric_names.RUN_DURATION, unit=MetricUnit.Milliseconds, value=result.duration_ms)
        metrics.add_metric(name=metric_names.ITEMS_WRITTEN, unit=MetricUnit.Count, value=result.items_written)
        metrics.add_metric(name=metric_names.ITEMS_REJECTED, unit=MetricUnit.Count, value=result.items_rejected)
        for name, value in gauges_in(result.detail).items():
            metrics.add_metric(name=name, unit=MetricUnit.NoUnit, value=value)


_settings = settings_from_environment()
# Kept across flushes, unlike a dimension added per run: every metric of this function is its stage's.
metrics.set_default_dimensions(**{metric_names.STAGE_DIMENSION: _settings.stage})
RUNNER = TaskRunner(
    # A function runs one task: load only the module that registers its task type.
    registry=registry_for_module(os.environ.get(TASK_MODULE_ENV)),
    settings=_settings,
    clients=Clients(_settings),
    logger=logger,
    observer=PowertoolsObserver(),
)


Handler = Callable[[dict[str, Any], LambdaContext], dict[str, Any]]


@metrics.log_metrics
def _measured(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return RUNNER.dispatch(event, context)


def traced(function: Handler) -> Handler:
    """``function`` as a traced Lambda handler where the stage turns SDK tracing on, else as it is."""
    if tracer is None:
        return function
    wrapped: Handler = tracer.capture_lambda_handler(capture_response=False)(function)
    return wrapped


_traced = traced(_measured)


@logger.inject_lambda_context(correlation_id_path="execution_id", clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """``context`` is Lambda's context object, or one shaped like it (``kairos run``'s)."""
    return _traced(event, context)
