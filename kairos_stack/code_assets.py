"""One Lambda code asset per runtime family, shared by every function that runs it."""

from __future__ import annotations

from aws_cdk import aws_lambda as lambda_

from kairos.plan import TaskPlan

# Files that never belong in a function package.
ASSET_EXCLUDES = ["**/__pycache__", "**/*.pyc", "**/.mypy_cache", "**/test", "**/tests", "**/node_modules"]


class CodeAssets:
    """Builds each distinct asset once, so N functions share one upload and one asset hash."""

    def __init__(self) -> None:
        self._codes: dict[str, lambda_.Code] = {}

    def code_for(self, task: TaskPlan) -> lambda_.Code:
        if task.code_dir not in self._codes:
            self._codes[task.code_dir] = lambda_.Code.from_asset(task.code_dir, exclude=ASSET_EXCLUDES)
        return self._codes[task.code_dir]
