"""``make lock``: resolves every Lambda dependency group for every platform a function can run on,
through pip's dry run against PyPI, and rewrites the lock files (see :mod:`kairos_stack.python_lock`)."""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from packaging.utils import canonicalize_name

from kairos.config import RUNTIMES
from kairos_stack.python_deps import (
    GROUP_SPECS,
    Architecture,
    DependencyBuilder,
    DependencyGroupSpec,
    LambdaPlatform,
    MissingWheelError,
)
from kairos_stack.python_lock import Lock, lock_inputs_digest

PYTHON_VERSIONS = tuple(runtime.removeprefix("python") for runtime in RUNTIMES if runtime.startswith("python"))
ARCHITECTURES: tuple[Architecture, ...] = ("arm64", "x86_64")
LOCKED_PLATFORMS = tuple(
    LambdaPlatform(architecture, version) for architecture in ARCHITECTURES for version in PYTHON_VERSIONS
)

Resolver = Callable[[DependencyGroupSpec, LambdaPlatform, Mapping[str, str]], dict[str, str]]
"""(group, platform, the base group's pins there) -> canonical name to version; raises MissingWheelError
when the platform has no wheel of a package, BundlingError for anything else."""


def pip_resolver(builder: DependencyBuilder) -> Resolver:
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
            builder.pip_install(target, work, [*args, "--dry-run", "--quiet", "--report", str(report)])
            installs = json.loads(report.read_text(encoding="utf-8"))["install"]
        return {canonicalize_name(item["metadata"]["name"]): item["metadata"]["version"] for item in installs}

    return resolve


def resolve_lock(
    spec: DependencyGroupSpec,
    resolve: Resolver,
    platforms: Iterable[LambdaPlatform] = LOCKED_PLATFORMS,
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


def write_locks(resolve: Resolver, specs: Sequence[DependencyGroupSpec], *, log: Callable[[str], None]) -> None:
    """Rewrites each group's lock; a base group comes before the groups built on it. Every group is
    resolved before any file is written, so a failure leaves all the old locks in place."""
    locks: dict[str, Lock] = {}
    rendered: dict[Path, bytes] = {}
    for spec in specs:
        base = locks.get(spec.base.name) if spec.base else None
        if spec.base and base is None:
            base = Lock.parse(spec.base.lock_file.read_text(encoding="utf-8"), spec.base.lock_file)
        lock = resolve_lock(spec, resolve, base=base, pending=rendered)
        rendered[spec.lock_file] = lock.render(spec.requirements.name).encode()
        locks[spec.name] = lock
        skipped = f"; unresolvable: {', '.join(sorted(lock.unresolvable))}" if lock.unresolvable else ""
        log(f"{spec.lock_file.name}: {len(lock.resolved)} platforms{skipped}")
    for path, content in rendered.items():
        path.write_bytes(content)


def main() -> None:
    builder = DependencyBuilder(log=sys.stderr)
    specs = sorted(GROUP_SPECS.values(), key=lambda spec: spec.base is not None)
    write_locks(pip_resolver(builder), specs, log=lambda message: print(f"kairos lock: {message}", file=sys.stderr))


if __name__ == "__main__":
    main()
