"""The record of a dependency group: everything that decides how one is built and deployed.

The project's groups themselves (which requirements, which checks) are in :mod:`kairos_build.project`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kairos_build.locks import LOCK_SUFFIX
from kairos_runtime.registry import Architecture, DependencyGroup


@dataclass(frozen=True, slots=True)
class DependencyGroupSpec:
    """How one dependency group is built, and where its functions run by default."""

    group: DependencyGroup
    requirements: Path
    import_check: tuple[str, ...]
    """Modules imported from the built tree to prove it works on the target interpreter."""
    smoke_check: str = ""
    """Python run after the imports: loads native libraries that importing alone does not."""
    base: DependencyGroupSpec | None = None
    """The group the function's own code asset carries. A group with a base is a layer, and leaves
    its base's packages out; a group without one is the function's code asset."""
    unused_data: tuple[str, ...] = ()
    """Glob patterns of package data files no scheduled task reads."""
    default_architecture: Architecture = Architecture.ARM_64
    """Where a task type of this group runs unless it names an architecture."""
    layer_description: str = ""
    """What the layer holds, for the layer's description on AWS (a layer group only)."""
    environment: tuple[tuple[str, str], ...] = ()
    """Environment variables every function of this group gets (its libraries' own switches)."""
    reaches_upstream: bool = False
    """Its functions call sources outside AWS, so a stage's ``https_proxy`` applies to them."""

    @property
    def name(self) -> str:
        return self.group.value

    @property
    def is_layer(self) -> bool:
        return self.base is not None

    @property
    def site(self) -> str:
        """Where the tree sits on Lambda: a function's code asset, or a layer's ``python/`` folder."""
        return "/opt/python" if self.is_layer else "/var/task"

    def requirement_files(self) -> tuple[Path, ...]:
        """Every file resolved together: this group's and its base's, so shared packages agree."""
        return (*(self.base.requirement_files() if self.base else ()), self.requirements)

    @property
    def lock_file(self) -> Path:
        """Every version the group installs, per platform (see :mod:`kairos_build.locks`)."""
        return self.requirements.with_name(self.requirements.stem + LOCK_SUFFIX)

    @property
    def lock_inputs(self) -> tuple[Path, ...]:
        """What the lock is resolved from: a layer's lock follows its base group's pins."""
        return (*self.requirement_files(), *((self.base.lock_file,) if self.base else ()))
