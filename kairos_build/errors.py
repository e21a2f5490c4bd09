"""What a build reports when it cannot go on; each message says what to change."""

from __future__ import annotations

from kairos_build.platforms import LambdaPlatform


class BundlingError(RuntimeError):
    """A dependency tree could not be built; the message says what to change."""


class MissingWheelError(BundlingError):
    """pip found no binary wheel of a dependency for the target platform."""

    def __init__(self, *, package: str, requirement: str, required_by: str | None, target: LambdaPlatform):
        self.package = package
        self.target = target
        via = f" (required by {required_by})" if required_by else ""
        super().__init__(
            f"{package}{via} has no wheel for the Lambda platform {target.describe()}: pip found no "
            f"distribution of {requirement!r} among {', '.join(target.pip_platforms)} wheels for CPython "
            f"{target.python_version}. Run the task on another architecture (tasks.yaml: architecture), "
            f"pin a version of {package} that publishes such a wheel, or, if {package} is pure Python "
            "and ships only a source distribution, add it to SOURCE_ONLY_PACKAGES in kairos_build/project.py."
        )
