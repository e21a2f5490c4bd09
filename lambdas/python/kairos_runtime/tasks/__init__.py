"""Every task type Kairos ships, merged from one registry per module.

Task modules only declare params models and functions; heavy libraries are imported inside the
functions that use them. A deployed function runs one task, so its handler loads only the module
that registers that task's type (:func:`registry_for_module`); the CDK app and the CLI load them all
(:func:`default_registry`) to validate tasks.yaml.

Every module or package directly in this folder is a task module, with a ``registry`` (helpers
belong inside a task package, as ``market/`` keeps them): the list is the folder's, not a tuple to
edit, so adding a task module changes no file another function ships, and each function's code
asset holds only its own module (docs/adr/0191-one-code-asset-per-task-module.md).
"""

from __future__ import annotations

import importlib

from kairos_runtime.registry import TaskRegistry


def task_modules() -> tuple[str, ...]:
    """The task modules installed beside this package, sorted (in a function's asset: its own).

    Only the CDK app, the CLI and tests call this (a function imports the module it is given), and
    it lists the folder itself, as ``pkgutil.iter_modules`` would, without importing ``pkgutil``.
    """
    import os

    names = set()
    for folder in __path__:
        for entry in os.scandir(folder):
            if entry.name.startswith(("_", ".")):
                continue
            if entry.is_dir() and os.path.isfile(os.path.join(entry.path, "__init__.py")):
                names.add(entry.name)
            elif entry.is_file() and entry.name.endswith(".py"):
                names.add(entry.name.removesuffix(".py"))
    return tuple(sorted(f"{__name__}.{name}" for name in names))


def _module_registry(module_name: str) -> TaskRegistry:
    registry = importlib.import_module(module_name).registry
    if not isinstance(registry, TaskRegistry):
        raise TypeError(f"{module_name}.registry is not a TaskRegistry")
    return registry


def default_registry() -> TaskRegistry:
    registry = TaskRegistry()
    for module_name in task_modules():
        registry.include(_module_registry(module_name))
    return registry


def registry_for_module(module_name: str | None) -> TaskRegistry:
    """The task types one module registers (all of them when no module is named)."""
    if not module_name:
        return default_registry()
    registry = TaskRegistry()
    registry.include(_module_registry(module_name))
    return registry
