"""Every task type Kairos ships, merged from one registry per module.

Task modules only declare params models and functions; heavy libraries are imported inside the
functions that use them. A deployed function runs one task, so its handler loads only the module
that registers that task's type (:func:`registry_for_module`); the CDK app and the CLI load them all
(:func:`default_registry`) to validate tasks.yaml.
"""

from __future__ import annotations

import importlib

from kairos_runtime.registry import TaskRegistry

TASK_MODULES = ("kairos_runtime.tasks.simple", "kairos_runtime.tasks.market")


def _module_registry(module_name: str) -> TaskRegistry:
    registry = importlib.import_module(module_name).registry
    if not isinstance(registry, TaskRegistry):
        raise TypeError(f"{module_name}.registry is not a TaskRegistry")
    return registry


def default_registry() -> TaskRegistry:
    registry = TaskRegistry()
    for module_name in TASK_MODULES:
        registry.include(_module_registry(module_name))
    return registry


def registry_for_module(module_name: str | None) -> TaskRegistry:
    """The task types one module registers (all of them when no module is named)."""
    if not module_name:
        return default_registry()
    registry = TaskRegistry()
    registry.include(_module_registry(module_name))
    return registry
