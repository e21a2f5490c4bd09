"""The code assets and layers of a stage's functions, each built once and shared by every function
that runs it.

* Python: one code asset per (task module, architecture, Python version) with the core dependency
  group (Powertools, msgspec), the shared ``kairos_runtime`` and that task module (no other);
  crawler functions add one shared layer with the crawler group (akshare, pycoingecko, pandas).
  Both are bundled locally, without Docker (:mod:`kairos_stack.lambda_bundling`).
* Node.js: the sources as they are; the runtime ships the AWS SDK v3, the only dependency.
"""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from kairos.catalog import PROJECT_ROOT
from kairos.plan import SharedFunctionPlan, TaskPlan
from kairos_build.builder import DependencyBuilder
from kairos_build.platforms import LambdaPlatform
from kairos_build.project import dependency_groups
from kairos_runtime.registry import DependencyGroup
from kairos_runtime.settings import TASK_MODULE_ENV
from kairos_stack.lambda_bundling import AssetHashes
from kairos_stack.scheduled_task import ARCHITECTURES, LAMBDA_RUNTIMES

# Files that never belong in a function package.
ASSET_EXCLUDES = ["**/__pycache__", "**/*.pyc", "**/.mypy_cache", "**/test", "**/tests", "**/node_modules"]


class CodeAssets:
    """Builds each distinct asset once, so N functions share one upload and one asset hash."""

    def __init__(self, *, builder: DependencyBuilder | None = None, sources_only: bool = False) -> None:
        self._groups = dependency_groups(PROJECT_ROOT)
        self._hashes = AssetHashes(builder, sources_only=sources_only)
        self._codes: dict[tuple[str, object], lambda_.Code] = {}
        self._layers: dict[tuple[str, DependencyGroup, LambdaPlatform], lambda_.ILayerVersion] = {}
        # Each scope's stack, found once: ``Stack.of`` and its path are three round trips to CDK.
        self._stacks: dict[Construct, tuple[Stack, str]] = {}

    def _stack(self, scope: Construct) -> tuple[Stack, str]:
        if scope not in self._stacks:
            stack = Stack.of(scope)
            self._stacks[scope] = (stack, stack.node.path)
        return self._stacks[scope]

    def code_for(self, scope: Construct, task: TaskPlan | SharedFunctionPlan) -> lambda_.Code:
        """The task's code, one instance per stack (CDK binds an asset to one stack); the same asset
        hash in every shard stack, so it is bundled and uploaded once."""
        _, stack = self._stack(scope)
        if task.family != "python":
            key: tuple[str, object] = (stack, task.code_dir)
            if key not in self._codes:
                self._codes[key] = lambda_.Code.from_asset(task.code_dir, exclude=ASSET_EXCLUDES)
            return self._codes[key]
        target = LambdaPlatform.for_runtime(task.runtime, task.architecture)
        module = task.environment.get(TASK_MODULE_ENV)
        python_key = (stack, (target, module))
        if python_key not in self._codes:
            core = self._groups[DependencyGroup.CORE]
            self._codes[python_key] = self._hashes.function_code(core, target, module)
        return self._codes[python_key]

    def layers_for(self, scope: Construct, task: TaskPlan | SharedFunctionPlan) -> list[lambda_.ILayerVersion]:
        """The dependency layers a task's function needs: none for the core group."""
        spec = self._groups[task.group]
        if task.family != "python" or not spec.is_layer:
            return []
        stack, path = self._stack(scope)
        target = LambdaPlatform.for_runtime(task.runtime, task.architecture)
        key = (path, task.group, target)
        if key not in self._layers:
            suffix = f"{target.architecture.replace('_', '')}Py{target.python_version.replace('.', '')}"
            self._layers[key] = lambda_.LayerVersion(
                stack,
                f"{task.group.value.title()}Layer{suffix.title()}",
                code=self._hashes.layer_code(spec, target),
                compatible_runtimes=[LAMBDA_RUNTIMES[task.runtime]],
                compatible_architectures=[ARCHITECTURES[task.architecture]],
                description=(
                    f"Kairos {task.group.value} dependency group for {target.describe()}: {spec.layer_description}"
                ),
            )
        return [self._layers[key]]
