"""Dependency trees of the Lambda Python function groups, built on this machine without Docker.

pip installs a group's locked versions as binary wheels for Lambda's platform (manylinux, the
function's architecture, CPython of the function's version) into a directory under the cache's
``deps/``. The directory name carries a hash of everything that decides its content
(requirements, lock, platform, this package's source, the strip tool), so an unchanged group is
reused without running pip, and a present directory is always a complete one: builds happen in a
scratch directory that is renamed into place only after the tree is trimmed and checked.

What a tree leaves out:

* what the Lambda Python runtime already provides (boto3 and the packages only boto3 needs);
* for a layer group (crawler), what the function's own code asset provides (the core group),
  since ``/var/task`` comes before ``/opt/python`` on Lambda's module path;
* what :mod:`kairos_build.trimming` trims.

What it adds: bytecode for the target CPython, in place of the sources (see :mod:`kairos_build.bytecode`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform as host_platform
import shutil
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from kairos_build.bytecode import (
    BytecodeError,
    BytecodeLayout,
    CompileReport,
    bytecode_flavour,
    compile_tree,
    find_cpython,
)
from kairos_build.distributions import installed_dists, needed_dists, read_requirements, remove_dists
from kairos_build.errors import BundlingError
from kairos_build.groups import DependencyGroupSpec
from kairos_build.import_check import find_interpreter, run_import_check
from kairos_build.locks import LockError, read_lock, requirement_lines
from kairos_build.pip import PipFailedError, PipInstaller
from kairos_build.platforms import LambdaPlatform
from kairos_build.project import RUNTIME_PROVIDED, RUNTIME_REQUIREMENTS, SOURCE_ONLY_PACKAGES
from kairos_build.trimming import record_bytecode, strip_tool_flavour, tree_size, trim_tree

# Every module that decides what a tree holds; the lock writer and `make lock` do not.
_TREE_SOURCES = tuple(
    path for path in sorted(Path(__file__).parent.glob("*.py")) if path.name not in ("lock_writer.py", "__main__.py")
)


def _sha256(parts: Iterable[bytes]) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def group_key(spec: DependencyGroupSpec, target: LambdaPlatform) -> str:
    """A hash of everything that decides a group's tree; computing it never runs pip."""
    parts: list[bytes] = [
        spec.name.encode(),
        target.architecture.encode(),
        target.python_version.encode(),
        *(tag.encode() for tag in target.pip_platforms),
        "|".join(sorted(RUNTIME_PROVIDED | SOURCE_ONLY_PACKAGES)).encode(),
        strip_tool_flavour().encode(),
        bytecode_flavour(target.python_version).encode(),
        *(source.read_bytes() for source in _TREE_SOURCES),
    ]
    for requirement_file in spec.requirement_files():
        content = requirement_file.read_bytes() if requirement_file.is_file() else b""
        parts += [requirement_file.name.encode(), requirement_lines(content)]
    parts += [spec.lock_file.name.encode(), spec.lock_file.read_bytes() if spec.lock_file.is_file() else b""]
    return _sha256(parts)


def tree_name(spec: DependencyGroupSpec, target: LambdaPlatform) -> str:
    return f"{spec.name}-{target.label}-{group_key(spec, target)[:20]}"


def source_fingerprint(root: Path) -> str:
    """A hash of a source tree's relative paths and contents, independent of mtimes and location."""
    parts: list[bytes] = []
    for path in iter_source_files(root):
        parts += [path.relative_to(root).as_posix().encode(), path.read_bytes()]
    return _sha256(parts)


_SOURCE_EXCLUDED_DIRS = frozenset({"__pycache__", ".mypy_cache", ".pytest_cache", "test", "tests", "node_modules"})


def iter_source_files(root: Path) -> Iterator[Path]:
    """The files of a package that belong in a function: no caches, tests or compiled bytecode."""
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = sorted(name for name in subdirs if name not in _SOURCE_EXCLUDED_DIRS)
        for name in sorted(files):
            if not name.endswith((".pyc", ".pyo")):
                yield Path(directory) / name


def locked_pins(spec: DependencyGroupSpec, target: LambdaPlatform) -> dict[str, str]:
    """The group's locked versions for the target; a missing, stale or partial lock is a BundlingError."""
    try:
        return read_lock(spec).pins_for(target, spec.lock_file)
    except LockError as error:
        raise BundlingError(str(error)) from None


@dataclass(frozen=True, slots=True)
class DependencyTree:
    spec: DependencyGroupSpec
    target: LambdaPlatform
    path: Path
    report: Mapping[str, Any]

    @property
    def dists(self) -> Mapping[str, str]:
        """Distributions in the tree, name to version."""
        return dict(self.report["kept"])


class DependencyBuilder:
    """Builds dependency trees into the cache, or finds them there.

    One builder serves a whole synth: it computes each group's key once per platform (the key reads
    every requirements and lock file of the group), however many functions share the tree.
    """

    def __init__(self, cache_root: Path, *, log: TextIO | None = None, bytecode: bool = True) -> None:
        self.cache_root = cache_root
        self.bytecode = bytecode
        """False builds trees of sources only, for the benchmark's comparison; deployed trees are compiled."""
        self.deps_dir = cache_root / "deps"
        self._log = log or sys.stderr
        self.pip = PipInstaller(cache_root / "wheels", source_only=SOURCE_ONLY_PACKAGES, say=self.say)
        self._keys: dict[tuple[DependencyGroupSpec, LambdaPlatform], str] = {}

    def say(self, message: str) -> None:
        print(f"kairos bundling: {message}", file=self._log, flush=True)

    def key(self, spec: DependencyGroupSpec, target: LambdaPlatform) -> str:
        """:func:`group_key`, computed once per group and platform in this builder's lifetime."""
        if (spec, target) not in self._keys:
            self._keys[spec, target] = group_key(spec, target)
        return self._keys[spec, target]

    def tree(self, spec: DependencyGroupSpec, target: LambdaPlatform) -> DependencyTree:
        name = f"{spec.name}-{target.label}-{self.key(spec, target)[:20]}" + ("" if self.bytecode else "-sources")
        final = self.deps_dir / name
        report_file = self.deps_dir / f"{name}.json"
        cached = self._cached(spec, target, final, report_file)
        if cached is not None:
            return cached
        base = self.tree(spec.base, target) if spec.base else None
        with self._lock(name):
            cached = self._cached(spec, target, final, report_file)
            if cached is not None:
                return cached
            self.say(f"building the {spec.name} dependencies for {target.describe()} (cache miss: {name})")
            started = time.monotonic()
            report = self._build(spec, target, final, base)
            report["build_seconds"] = round(time.monotonic() - started, 1)
            report_file.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n", encoding="utf-8")
            self.say(f"{spec.name} for {target.describe()}: {report['summary']}")
            self._prune_stale(f"{spec.name}-{target.label}-", keep=final)
            return DependencyTree(spec, target, final, report)

    def runtime_tree(self, target: LambdaPlatform) -> Path:
        """boto3 for the target, standing in for the Lambda runtime's own copy; never shipped."""
        return self.reference_tree(target, RUNTIME_REQUIREMENTS, label="runtime")

    def reference_tree(self, target: LambdaPlatform, requirements: Sequence[str], *, label: str) -> Path:
        """``requirements`` installed for the target as pip installs them (bytecode beside the
        sources), for import checks and the benchmark's comparisons; never shipped."""
        flavour = bytecode_flavour(target.python_version)
        name = f"{label}-{target.label}-{_sha256([repr(tuple(requirements)).encode(), flavour.encode()])[:12]}"
        final = self.deps_dir / name
        if final.is_dir():
            return final
        with self._lock(name):
            if not final.is_dir():
                work = self._scratch(final)
                try:
                    self.pip.run(target, work, list(requirements))
                except PipFailedError as failure:
                    shutil.rmtree(work, ignore_errors=True)
                    raise BundlingError(f"pip could not install {list(requirements)}:\n{failure.tail()}") from None
                compiler = find_cpython(target.python_version)
                if compiler is not None:
                    # Installed packages come with bytecode, as pip installs them by default.
                    site = f"/var/lang/lib/python{target.python_version}/site-packages"
                    try:
                        compile_tree(compiler, work, site=site, layout="beside_source")
                    except BytecodeError as error:
                        shutil.rmtree(work, ignore_errors=True)
                        raise BundlingError(str(error)) from None
                work.rename(final)
        return final

    # -- internals

    def _prune_stale(self, prefix: str, *, keep: Path, generations: int = 3) -> None:
        """Drops all but the newest few trees of a group and platform, so switching between two
        branches does not rebuild, and the cache does not grow with every requirements change."""
        sources = keep.name.endswith("-sources")
        trees = [
            path
            for path in self.deps_dir.glob(f"{prefix}*")
            # The benchmark's sources-only trees age among themselves, never pushing out compiled ones.
            if path.is_dir() and ".building-" not in path.name and path.name.endswith("-sources") is sources
        ]
        trees.sort(key=lambda path: path.stat().st_mtime, reverse=True)
        for stale in [path for path in trees if path != keep][generations - 1 :]:
            shutil.rmtree(stale, ignore_errors=True)
            for suffix in (".json", ".log", ".pins.txt", ".lock"):
                stale.with_name(stale.name + suffix).unlink(missing_ok=True)

    def _cached(
        self, spec: DependencyGroupSpec, target: LambdaPlatform, final: Path, report_file: Path
    ) -> DependencyTree | None:
        if not (final.is_dir() and report_file.is_file()):
            return None
        tree = DependencyTree(spec, target, final, json.loads(report_file.read_text(encoding="utf-8")))
        if self.bytecode and tree.report.get("bytecode", {}).get("layout") == "sources":
            self.say(f"the cached {spec.name} dependencies for {target.describe()} are sources: no CPython to compile")
        return tree

    @contextlib.contextmanager
    def _lock(self, name: str) -> Iterator[None]:
        """Serialises builds of one tree across processes (two synths at once, say)."""
        self.deps_dir.mkdir(parents=True, exist_ok=True)
        try:
            import fcntl
        except ImportError:  # Windows: no cross-process lock; the atomic rename still protects the cache
            yield
            return
        with (self.deps_dir / f"{name}.lock").open("w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _scratch(self, final: Path) -> Path:
        work = final.with_name(f"{final.name}.building-{os.getpid()}")
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        return work

    def _build(
        self, spec: DependencyGroupSpec, target: LambdaPlatform, final: Path, base: DependencyTree | None
    ) -> dict[str, Any]:
        work = self._scratch(final)
        log_file = final.with_name(f"{final.name}.log")
        try:
            # Exactly the locked versions; the lock already holds every dependency, and a layer's
            # lock agrees with its base group's on every package they share.
            pinned = final.with_name(f"{final.name}.pins.txt")
            pinned.write_text(
                "".join(f"{name}=={version}\n" for name, version in sorted(locked_pins(spec, target).items())),
                encoding="utf-8",
            )
            pip_log = self.pip.install(target, work, ["--no-deps", "-r", str(pinned)])
            log_file.write_text(pip_log, encoding="utf-8")
            dists = installed_dists(work)
            provided = RUNTIME_PROVIDED | frozenset(base.dists if base else ())
            unsatisfied: list[str] = []
            roots = read_requirements(spec.requirements)
            needed = needed_dists(roots, dists, target, provided=provided, unsatisfied=unsatisfied)
            if unsatisfied:
                raise BundlingError(
                    f"{spec.lock_file.name} does not satisfy the {spec.name} requirements on {target.describe()}: "
                    f"{'; '.join(sorted(set(unsatisfied)))}. Run `make lock`."
                )
            remove_dists(work, dists, set(dists) - needed)
            trims = trim_tree(work, spec, target)
            compiled = self._compile(spec, target, work)
            record_bytecode(work)
            check = self._import_check(spec, target, work, base)
            size, files = tree_size(work)
            # A tree whose report never got written (an interrupted build) is not in the cache.
            shutil.rmtree(final, ignore_errors=True)
            work.rename(final)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        return {
            "group": spec.name,
            "platform": {"architecture": target.architecture, "python": target.python_version},
            "pip_platforms": list(target.pip_platforms),
            "resolved": {name: dist.version for name, dist in sorted(dists.items())},
            "kept": {name: dists[name].version for name in sorted(needed)},
            "left_out": sorted(set(dists) - needed),
            "trimmed_bytes": dict(sorted(trims.removed.items())),
            "stripped_bytes": dict(sorted(trims.stripped.items())),
            "strip_failures": trims.strip_failures,
            "strip_tool": strip_tool_flavour(),
            "bytecode": compiled,
            "import_check": check,
            "size_bytes": size,
            "files": files,
            "summary": (
                f"{len(needed)} packages, {size / 2**20:.1f} MiB in {files} files; bytecode: {compiled['layout']}; "
                f"import check: {check}"
            ),
        }

    def compile(
        self, target: LambdaPlatform, tree: Path, *, site: str, layout: BytecodeLayout, what: str
    ) -> CompileReport | None:
        """Compiles ``tree`` for the target's CPython, unless this builder ships sources (by choice, or
        because the machine has no such CPython: then it says so); None when it does."""
        compiler = find_cpython(target.python_version) if self.bytecode else None
        if compiler is None:
            if self.bytecode:
                self.say(
                    f"no CPython {target.python_version} on this machine: {what} ship as sources, and Lambda "
                    "compiles them on every cold start"
                )
            return None
        try:
            return compile_tree(compiler, tree, site=site, layout=layout)
        except BytecodeError as error:
            raise BundlingError(str(error)) from None

    def _compile(self, spec: DependencyGroupSpec, target: LambdaPlatform, tree: Path) -> dict[str, Any]:
        what = f"the {spec.name} dependencies"
        report = self.compile(target, tree, site=spec.site, layout="sourceless", what=what)
        if report is None:
            return {"layout": "sources", "compiler": None}
        return {
            "layout": "sourceless",
            "compiler": report.interpreter,
            "compiled": report.compiled,
            "not_compiled": list(report.not_compiled),
        }

    def _import_check(
        self, spec: DependencyGroupSpec, target: LambdaPlatform, tree: Path, base: DependencyTree | None
    ) -> str:
        interpreter = find_interpreter(target)
        if interpreter is None:
            message = (
                f"skipped: no CPython {target.python_version} for {target.machine} on this "
                f"{host_platform.machine()} machine"
            )
            self.say(f"{spec.name} import check {message}")
            return message
        # Lambda's order: the function's code, then the layers, then the runtime's own packages.
        path = [*([base.path] if base else []), tree, self.runtime_tree(target)]
        result = run_import_check(interpreter, path, spec.import_check, spec.smoke_check)
        if result.returncode != 0:
            raise BundlingError(
                f"the {spec.name} dependencies built for {target.describe()} do not import with "
                f"{interpreter}:\n{result.stderr.strip()[-3000:]}"
            )
        return f"passed with {interpreter}"
