"""Values a run reports for CloudWatch beside the runner's per-run counters (``Runs*``).

A task puts them into its outcome's detail under :data:`GAUGES_DETAIL_KEY`, so the run record shows
the same number the metric carries; the handler's observer publishes each one as a metric of the
run (namespace and names: :mod:`kairos_runtime.metrics`, dimension ``task``), whatever the run's status.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

GAUGES_DETAIL_KEY = "gauges"


def gauges_detail(values: Mapping[str, float]) -> dict[str, dict[str, float]]:
    return {GAUGES_DETAIL_KEY: dict(values)}


def gauges_in(detail: Mapping[str, Any] | None) -> dict[str, float]:
    """The gauges a run's detail carries; anything that is not a finite number is left out."""
    raw = (detail or {}).get(GAUGES_DETAIL_KEY)
    if not isinstance(raw, Mapping):
        return {}
    return {
        str(name): float(value)
        for name, value in raw.items()
        if isinstance(value, int | float) and not isinstance(value, bool) and float(value) == float(value)
    }
