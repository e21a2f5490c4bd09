"""Lock files written: every Lambda dependency group resolved for every platform a function can run
on, through pip's dry run against PyPI (see :mod:`kairos_build.locks`; ``make lock`` runs it through
:mod:`kairos_build.__main__`)."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from packaging.utils import canonicalize_name

from kairos_build.errors import MissingWheelError
from kairos_build.groups import DependencyGroupSpec
from kairos_build.locks import Lock, lock_inputs_digest
from kairos_build.pip import PipInstaller
from kairos_build.platforms import Architecture, LambdaPlatform

ARCHITECTURES: tuple[Architecture, ...] = ("arm64", "x86_64")


def locked_platforms(python_versions: Iterable[str]) -> tuple[LambdaPlatform, ...]:
    """Every platform a lock covers: each architecture with each of the project's Python versions."""
    versions = tuple(python_versions)
    return tuple(LambdaPlatform(architecture, version) for architecture in ARCHITECTURES for version in versions)


Resolver = Callable[[DependencyGroupSpec, LambdaPlatform, Mapping[str, str]], dict[str, str]]
"""(group, platform, the base group's pins there) -> canonical name to version; raises MissingWheelError
when the platform has no wheel of a package, BundlingError for anything else."""


def pip_resolver(pip: PipInstaller) -> Resolver:
    """Resolves with pip's dry run and installation report (no files installed)."""

    def resolve(spec: DependencyGroupSpec, target: LambdaPlatform, base_pins: Mapping[str, str]) -> dict[str, str]:
        with tempfile.TemporaryDirectory(prefix="kairos-lock-") as scratch:
            work, report = Path(scratch) / "target", Path(scratch) / "report.json"
            work.mkdir()
            args = [arg for file in spec.requirement_files() for arg in ("-r", str(file))]
            if base_pins:
                constraints = Path(scratch) / "base.txt"
                constraints.write_text("".join(f"{n}=={v}\n" for n, v in sorted(base_pins.items())), encoding="utf-8")
                args += ["-c", str(constraints)]
            pip.install(target, work, [*args, "--dry-run", "--quiet", "--report", str(report)])
            installs = json.loads(report.read_text(encoding="utf-8"))["install"]
        return {canonicalize_name(item["metadata"]["name"]): item["metadata"]["version"] for item in installs}

    return resolve


def resolve_lock(
    spec: DependencyGroupSpec,
    resolve: Resolver,
    platforms: Iterable[LambdaPlatform],
    base: Lock | None = None,
    pending: Mapping[Path, bytes] | None = None,
) -> Lock:
    resolved: dict[str, dict[str, str]] = {}
    unresolvable: dict[str, str] = {}
    for target in platforms:
        if base is not None and target.label not in base.resolved:
            unresolvable[target.label] = f"the {spec.base.name if spec.base else 'base'} group has no pins there"
            continue
        base_pins = base.resolved[target.label] if base is not None else {}
        try:
            resolved[target.label] = dict(sorted(resolve(spec, target, base_pins).items()))
        except MissingWheelError as error:
            # A fact about the platform, worth recording. Any other failure (PyPI unreachable, a
            # conflict) aborts before a lock is written: it would look fresh and be wrong.
            unresolvable[target.label] = f"{error.package} has no wheel for {target.describe()}"
    return Lock(inputs=lock_inputs_digest(spec, pending), resolved=resolved, unresolvable=unresolvable)


def write_locks(
    resolve: Resolver,
    specs: Sequence[DependencyGroupSpec],
    platforms: Sequence[LambdaPlatform],
    *,
    log: Callable[[str], None],
) -> None:
    """Rewrites each group's lock; a base group comes before the groups built on it. Every group is
    resolved before any file is written, so a failure leaves all the old locks in place."""
    locks: dict[str, Lock] = {}
    rendered: dict[Path, bytes] = {}
    for spec in specs:
        base = locks.get(spec.base.name) if spec.base else None
        if spec.base and base is None:
            base = Lock.parse(spec.base.lock_file.read_text(encoding="utf-8"), spec.base.lock_file)
        lock = resolve_lock(spec, resolve, platforms, base=base, pending=rendered)
        rendered[spec.lock_file] = lock.render(spec.requirements.name).encode()
        locks[spec.name] = lock
        skipped = f"; unresolvable: {', '.join(sorted(lock.unresolvable))}" if lock.unresolvable else ""
        log(f"{spec.lock_file.name}: {len(lock.resolved)} platforms{skipped}")
    for path, content in rendered.items():
        path.write_bytes(content)
