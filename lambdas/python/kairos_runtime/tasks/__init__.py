"""Every task type Kairos ships, merged from one registry per module.

Task modules only declare params models and functions; heavy libraries are imported inside the
functions that use them, so building the registry stays cheap for the CDK app, the CLI and the
simple tasks' cold start.
"""

from __future__ import annotations

from kairos_runtime.registry import TaskRegistry
from kairos_runtime.tasks import market, simple


def default_registry() -> TaskRegistry:
    registry = TaskRegistry()
    registry.include(simple.registry)
    registry.include(market.registry)
    return registry
