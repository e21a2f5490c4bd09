"""The distributions installed in a tree (read with the standard library's ``importlib.metadata``)
and the walk that decides which of them a function needs on Lambda."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import PathDistribution
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from kairos_build.errors import BundlingError
from kairos_build.locks import requirement_lines
from kairos_build.platforms import LambdaPlatform


@dataclass(frozen=True, slots=True)
class InstalledDist:
    name: str
    """The canonical (PEP 503) project name."""
    version: str
    dist_info: Path
    requires: tuple[Requirement, ...]
    files: tuple[str, ...]
    """Paths from RECORD, relative to the tree."""


def installed_dists(tree: Path) -> dict[str, InstalledDist]:
    dists: dict[str, InstalledDist] = {}
    for info in sorted(tree.glob("*.dist-info")):
        distribution = PathDistribution(info)
        name = canonicalize_name(distribution.metadata["Name"])
        requires = tuple(Requirement(line) for line in distribution.requires or ())
        files = tuple(path.as_posix() for path in distribution.files or ())
        dists[name] = InstalledDist(name, distribution.version, info, requires, files)
    return dists


def read_requirements(path: Path) -> list[Requirement]:
    requirements = []
    for line in requirement_lines(path.read_bytes()).decode("utf-8").splitlines():
        if line.startswith("-"):
            raise BundlingError(f"{path}: pip options are not supported in a dependency group file: {line}")
        try:
            requirements.append(Requirement(line))
        except InvalidRequirement as error:
            raise BundlingError(f"{path}: {error}") from None
    return requirements


def needed_dists(
    roots: Sequence[Requirement],
    dists: Mapping[str, InstalledDist],
    target: LambdaPlatform,
    *,
    provided: frozenset[str],
    unsatisfied: list[str] | None = None,
) -> set[str]:
    """The distributions the roots need at run time on the target, short of what is provided.

    The walk stops at a provided distribution: whoever provides it provides its dependencies too.
    A needed requirement that is not installed, or installed in a version it excludes, goes into
    ``unsatisfied`` (pip installs a lock with ``--no-deps``, so nobody else checks).
    """
    environment = target.marker_environment()

    def applies(requirement: Requirement, extras: Iterable[str]) -> bool:
        if requirement.marker is None:
            return True
        return any(requirement.marker.evaluate({**environment, "extra": extra}) for extra in ("", *extras))

    needed: set[str] = set()
    extras_seen: dict[str, set[str]] = {}
    pending: list[tuple[Requirement, tuple[str, ...], str]] = [(root, (), "requirements") for root in roots]
    while pending:
        requirement, parent_extras, parent = pending.pop()
        name = canonicalize_name(requirement.name)
        if name in provided or not applies(requirement, parent_extras):
            continue
        if name not in dists or not requirement.specifier.contains(dists[name].version, prereleases=True):
            if unsatisfied is not None:
                found = f"{dists[name].version} is installed" if name in dists else "not installed"
                unsatisfied.append(f"{requirement} (required by {parent}): {found}")
            continue
        new_extras = set(requirement.extras) - extras_seen.setdefault(name, set())
        if name in needed and not new_extras:
            continue
        needed.add(name)
        extras_seen[name] |= new_extras
        extras = tuple(sorted(extras_seen[name]))
        pending += [(dependency, extras, name) for dependency in dists[name].requires]
    return needed


def remove_dists(tree: Path, dists: Mapping[str, InstalledDist], remove: Iterable[str]) -> None:
    """Deletes distributions, sparing files a kept distribution also installed (akracer and
    py-mini-racer, say, share a package folder)."""
    remove = set(remove)
    kept_files = {file for name, dist in dists.items() if name not in remove for file in dist.files}
    root = tree.resolve()
    for name in sorted(remove):
        dist = dists[name]
        for file in dist.files:
            path = (tree / file).resolve()
            if file not in kept_files and path.is_relative_to(root) and path.is_file():
                path.unlink()
        shutil.rmtree(dist.dist_info, ignore_errors=True)
    prune_empty_dirs(tree)


def prune_empty_dirs(tree: Path) -> None:
    for directory, _subdirs, _files in sorted(os.walk(tree, topdown=False), reverse=True):
        path = Path(directory)
        if path != tree and not any(path.iterdir()):
            path.rmdir()
