"""Dependency trees of the Lambda Python function groups, built on this machine without Docker.

pip installs a group's requirements as binary wheels for Lambda's platform (manylinux, the
function's architecture, CPython of the function's version) into a directory under
``.bundle-cache/deps/``. The directory name carries a hash of everything that decides its content
(requirements, platform, this module's source, the strip tool), so an unchanged group is reused
without running pip, and a present directory is always a complete one: builds happen in a scratch
directory that is renamed into place only after the tree is trimmed and checked.

What a tree leaves out:

* what the Lambda Python runtime already provides (boto3 and the packages only boto3 needs);
* for a layer group (crawler), what the function's own code asset provides (the core group),
  since ``/var/task`` comes before ``/opt/python`` on Lambda's module path;
* test folders, ``__pycache__``, type stubs, console scripts, binaries built for another platform
  and static files or modules no scheduled task uses; debug symbols are stripped where that is safe.

What it adds: bytecode for the target CPython, in place of the sources (see :mod:`kairos_stack.bytecode`).

Nothing here imports CDK: the CDK glue is :mod:`kairos_stack.lambda_bundling`, and the benchmark
in ``bench/`` drives these builds directly.
"""

from __future__ import annotations

import contextlib
import email.parser
import hashlib
import json
import os
import platform as host_platform
import shutil
import struct
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, TextIO

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from kairos.catalog import PROJECT_ROOT
from kairos_runtime.registry import DependencyGroup
from kairos_stack import bytecode
from kairos_stack.bytecode import (
    BytecodeError,
    BytecodeLayout,
    CompileReport,
    bytecode_flavour,
    compile_tree,
    find_cpython,
)
from kairos_stack.python_lock import LOCK_SUFFIX, LockError, read_lock, requirement_lines

PYTHON_CODE_DIR = PROJECT_ROOT / "lambdas" / "python"
CACHE_ROOT = PROJECT_ROOT / ".bundle-cache"

# What the Lambda Python runtime ships in its own site-packages. A bundled copy would only shadow it.
RUNTIME_PROVIDED = frozenset({"boto3", "botocore", "s3transfer", "jmespath"})
# Pure-Python packages published as source only; pip builds a wheel for them once, on the host.
# Building any other source distribution is refused: it could compile for the host, not for Lambda.
SOURCE_ONLY_PACKAGES = frozenset({"jsonpath"})

_PIP_TIMEOUT_SECONDS = 1800
_CHECK_TIMEOUT_SECONDS = 300

Architecture = Literal["arm64", "x86_64"]
_MACHINES: dict[str, str] = {"arm64": "aarch64", "x86_64": "x86_64"}
_ELF_MACHINES: dict[str, int] = {"aarch64": 183, "x86_64": 62}


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
            f"and ships only a source distribution, add it to SOURCE_ONLY_PACKAGES in {Path(__file__).name}."
        )


@dataclass(frozen=True, slots=True, order=True)
class LambdaPlatform:
    """Where a function runs: its architecture and the CPython version of its runtime."""

    architecture: Architecture
    python_version: str

    @classmethod
    def for_runtime(cls, runtime: str, architecture: str) -> LambdaPlatform:
        if not runtime.startswith("python3.") or architecture not in _MACHINES:
            raise ValueError(f"not a Lambda Python platform: {runtime} on {architecture}")
        return cls(architecture=architecture, python_version=runtime.removeprefix("python"))  # type: ignore[arg-type]

    @property
    def machine(self) -> str:
        return _MACHINES[self.architecture]

    @property
    def runtime(self) -> str:
        return f"python{self.python_version}"

    @property
    def pip_platforms(self) -> tuple[str, ...]:
        # Lambda's Python 3.12+ runtimes run on Amazon Linux 2023 (glibc 2.34); pip also accepts
        # older manylinux tags than the ones named.
        return (f"manylinux2014_{self.machine}", f"manylinux_2_28_{self.machine}")

    @property
    def label(self) -> str:
        return f"{self.architecture}-py{self.python_version}"

    def describe(self) -> str:
        return f"{self.runtime} on {self.architecture}"

    def marker_environment(self) -> dict[str, str]:
        """PEP 508 marker values of the Lambda runtime, to evaluate ``Requires-Dist`` lines."""
        full_version = f"{self.python_version}.0"
        return {
            "implementation_name": "cpython",
            "implementation_version": full_version,
            "os_name": "posix",
            "platform_machine": self.machine,
            "platform_python_implementation": "CPython",
            "platform_release": "",
            "platform_system": "Linux",
            "platform_version": "",
            "python_full_version": full_version,
            "python_version": self.python_version,
            "sys_platform": "linux",
        }


@dataclass(frozen=True, slots=True)
class DependencyGroupSpec:
    """How one dependency group is built."""

    group: DependencyGroup
    requirements: Path
    import_check: tuple[str, ...]
    """Modules imported from the built tree to prove it works on the target interpreter."""
    smoke_check: str = ""
    """Python run after the imports: loads native libraries that importing alone does not."""
    base: DependencyGroupSpec | None = None
    """The group the function's own code asset carries; a layer leaves those packages out."""
    unused_data: tuple[str, ...] = ()
    """Glob patterns of package data files no scheduled task reads."""

    @property
    def name(self) -> str:
        return self.group.value

    @property
    def site(self) -> str:
        """Where the tree sits on Lambda: a function's code asset, or a layer's ``python/`` folder."""
        return "/opt/python" if self.base else "/var/task"

    def requirement_files(self) -> tuple[Path, ...]:
        """Every file resolved together: this group's and its base's, so shared packages agree."""
        return (*(self.base.requirement_files() if self.base else ()), self.requirements)

    @property
    def lock_file(self) -> Path:
        """Every version the group installs, per platform (see :mod:`kairos_stack.python_lock`)."""
        return self.requirements.with_name(self.requirements.stem + LOCK_SUFFIX)

    @property
    def lock_inputs(self) -> tuple[Path, ...]:
        """What the lock is resolved from: a layer's lock follows its base group's pins."""
        return (*self.requirement_files(), *((self.base.lock_file,) if self.base else ()))


CORE = DependencyGroupSpec(
    group=DependencyGroup.CORE,
    requirements=PYTHON_CODE_DIR / "requirements.txt",
    import_check=(
        "msgspec",
        "aws_lambda_powertools.logging",
        "aws_lambda_powertools.metrics",
        "aws_lambda_powertools.tracing",
        "aws_xray_sdk.core",
    ),
    # The Swagger UI bundle is served only by Powertools' REST event handler; a scheduled task
    # never serves HTTP. It is 1.7 MB of the 10 MB core budget.
    unused_data=(
        "aws_lambda_powertools/event_handler/openapi/swagger_ui/*.js",
        "aws_lambda_powertools/event_handler/openapi/swagger_ui/*.css",
    ),
)
CRAWLER = DependencyGroupSpec(
    group=DependencyGroup.CRAWLER,
    requirements=PYTHON_CODE_DIR / "requirements-crawler.txt",
    import_check=("akshare", "pycoingecko", "pandas", "numpy", "curl_cffi", "lxml.etree", "py_mini_racer"),
    # Load the native libraries importing alone leaves unloaded (mini_racer's V8, numpy's random and
    # fft), so a stripped or missing binary fails the build, not the first crawl.
    smoke_check=(
        "from py_mini_racer import MiniRacer\n"
        "assert MiniRacer().eval('6 * 7') == 42\n"
        "import numpy.fft, numpy.linalg, numpy.random\n"
        "assert numpy.random.default_rng(7).integers(0, 10, 5).shape == (5,)\n"
        "assert pandas.DataFrame({'a': [1, 1, 2]}).groupby('a').size().tolist() == [2, 1]\n"
    ),
    base=CORE,
)
GROUP_SPECS: dict[DependencyGroup, DependencyGroupSpec] = {CORE.group: CORE, CRAWLER.group: CRAWLER}
# boto3 as the Lambda runtime provides it, for import checks and the benchmark only (never shipped).
RUNTIME_REQUIREMENTS = ("boto3",)


# -- cache keys --------------------------------------------------------------------------------------


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
        Path(__file__).read_bytes(),
        Path(bytecode.__file__).read_bytes(),
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


# -- installed distributions -------------------------------------------------------------------------


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
        metadata = email.parser.HeaderParser().parsestr((info / "METADATA").read_text(encoding="utf-8"))
        requires = tuple(Requirement(line) for line in metadata.get_all("Requires-Dist") or [])
        record = info / "RECORD"
        lines = record.read_text(encoding="utf-8").splitlines() if record.exists() else []
        files = tuple(line.rsplit(",", 2)[0] for line in lines if line.strip())
        name = canonicalize_name(str(metadata["Name"]))
        dists[name] = InstalledDist(name, str(metadata["Version"]), info, requires, files)
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


# -- native binaries ---------------------------------------------------------------------------------

_NATIVE_SUFFIXES = (".so", ".dylib", ".dll", ".pyd", ".exe")
_MACHO_MAGICS = {
    b"\xfe\xed\xfa\xce",
    b"\xfe\xed\xfa\xcf",
    b"\xce\xfa\xed\xfe",
    b"\xcf\xfa\xed\xfe",
    b"\xca\xfe\xba\xbe",
}
_SHT_DYNAMIC = 6
_DT_RPATH, _DT_RUNPATH = 15, 29


@dataclass(frozen=True, slots=True)
class ElfInfo:
    machine: int
    """``e_machine``; -1 for an ELF that is not 64-bit little-endian (no Lambda platform)."""
    sections: frozenset[str] = frozenset()
    has_rpath: bool = False

    @property
    def has_symbols(self) -> bool:
        return ".symtab" in self.sections or any(name.startswith(".debug") for name in self.sections)


def read_elf(path: Path) -> ElfInfo | None:
    """The parts of an ELF header that decide whether to drop or strip it; None if not ELF."""
    with path.open("rb") as file:
        header = file.read(64)
        if header[:4] != b"\x7fELF":
            return None
        if len(header) < 64 or header[4] != 2 or header[5] != 1:
            return ElfInfo(machine=-1)
        (machine,) = struct.unpack_from("<H", header, 18)
        (section_offset,) = struct.unpack_from("<Q", header, 40)
        entry_size, count, names_index = struct.unpack_from("<HHH", header, 58)
        if section_offset == 0 or count == 0 or names_index >= count:
            return ElfInfo(machine=machine)
        file.seek(section_offset)
        table = file.read(entry_size * count)
        sections = [struct.unpack_from("<IIQQQQIIQQ", table, index * entry_size) for index in range(count)]

        def read_section(index: int) -> bytes:
            file.seek(sections[index][4])
            return file.read(sections[index][5])

        names = read_section(names_index)
        section_names = frozenset(names[s[0] : names.index(b"\0", s[0])].decode("latin-1") for s in sections)
        has_rpath = False
        for index, section in enumerate(sections):
            if section[1] == _SHT_DYNAMIC:
                dynamic = read_section(index)
                tags = (struct.unpack_from("<q", dynamic, at)[0] for at in range(0, len(dynamic) - 15, 16))
                has_rpath = any(tag in (_DT_RPATH, _DT_RUNPATH) for tag in tags)
        return ElfInfo(machine=machine, sections=section_names, has_rpath=has_rpath)


def is_foreign_binary(path: Path, target: LambdaPlatform) -> bool:
    """A native library built for another OS or architecture (macOS, Windows, the other CPU)."""
    name = path.name
    if not (name.endswith(_NATIVE_SUFFIXES) or ".so." in name):
        return False
    elf = read_elf(path)
    if elf is not None:
        return elf.machine != _ELF_MACHINES[target.machine]
    with path.open("rb") as file:
        magic = file.read(4)
    return magic in _MACHO_MAGICS or (magic[:2] == b"MZ" and name.endswith((".dll", ".pyd", ".exe")))


@lru_cache(maxsize=1)
def _strip_tool() -> tuple[str, str] | None:
    """(path, flavour) of a strip that understands ``--strip-unneeded``; macOS's own strip does not."""
    for name in ("llvm-strip", "strip"):
        path = shutil.which(name)
        if path is None:
            continue
        try:
            version = subprocess.run(  # noqa: S603 - a tool found on PATH, fixed arguments, no shell
                [path, "--version"], capture_output=True, text=True, timeout=30
            ).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        for flavour in ("LLVM", "GNU"):
            if flavour in version:
                return path, flavour.lower()
    return None


def strip_tool_flavour() -> str:
    tool = _strip_tool()
    return tool[1] if tool else "none"


def strippable(path: Path, tree: Path, target: LambdaPlatform) -> bool:
    """Only libraries nobody patched: auditwheel's vendored ``<pkg>.libs`` and the extensions it
    gave an RPATH were rewritten by patchelf, and strip can corrupt such files (numpy breaks)."""
    if any(part.endswith(".libs") for part in path.relative_to(tree).parts[:-1]):
        return False
    if not (path.name.endswith(".so") or ".so." in path.name):
        return False
    elf = read_elf(path)
    return elf is not None and elf.machine == _ELF_MACHINES[target.machine] and not elf.has_rpath and elf.has_symbols


# -- trimming ----------------------------------------------------------------------------------------


@dataclass(slots=True)
class TrimReport:
    removed: dict[str, int] = field(default_factory=dict)
    """Bytes removed, by reason."""
    stripped: dict[str, int] = field(default_factory=dict)
    """Bytes saved, by stripped library (relative path)."""
    strip_failures: list[str] = field(default_factory=list)

    def count(self, reason: str, size: int) -> None:
        self.removed[reason] = self.removed.get(reason, 0) + size


def _remove(path: Path, reason: str, report: TrimReport) -> None:
    if path.is_dir() and not path.is_symlink():
        report.count(reason, tree_size(path)[0])
        shutil.rmtree(path)
    elif path.exists():
        report.count(reason, path.stat().st_size)
        path.unlink()


def trim_tree(tree: Path, spec: DependencyGroupSpec, target: LambdaPlatform) -> TrimReport:
    report = TrimReport()
    _remove(tree / "bin", "console scripts", report)
    for path in sorted(tree.iterdir()):
        if path.is_dir() and path.name.endswith("-stubs"):
            _remove(path, "type stubs", report)
    for directory, subdirs, files in os.walk(tree):
        base = Path(directory)
        for name in [name for name in subdirs if name in _TRIMMED_DIRS]:
            _remove(base / name, _TRIMMED_DIRS[name], report)
            subdirs.remove(name)
        for name in files:
            reason = _trim_reason(base / name, target)
            if reason:
                _remove(base / name, reason, report)
    for pattern in spec.unused_data:
        for path in sorted(tree.glob(pattern)):
            _remove(path, "unused package data", report)
    _trim_distribution_metadata(tree, report)
    _strip_libraries(tree, target, report)
    prune_empty_dirs(tree)
    return report


_TRIMMED_DIRS = {"__pycache__": "bytecode caches", "tests": "test folders"}
# Compiler inputs shipped next to the extension modules built from them (wrapt ships its .c).
_COMPILER_INPUTS = (".c", ".cc", ".cpp", ".h", ".hpp", ".pyx", ".pxd", ".pxi")


def _trim_reason(path: Path, target: LambdaPlatform) -> str | None:
    if path.name.endswith((".pyc", ".pyo")):
        return "bytecode caches"
    if path.name.endswith(".pyi"):
        return "type stubs"
    if path.name.endswith(_COMPILER_INPUTS):
        return "C and Cython sources"
    if is_foreign_binary(path, target):
        return "binaries for other platforms"
    return None


def record_bytecode(tree: Path) -> None:
    """Points RECORD entries of sources that were compiled away at their ``.pyc`` (no hash, as pip
    records the bytecode it writes), so ``importlib.metadata.files()`` lists files that exist."""
    for record in sorted(tree.glob("*.dist-info/RECORD")):
        lines = []
        for line in record.read_text(encoding="utf-8").splitlines():
            path = line.rsplit(",", 2)[0]
            if path.endswith(".py") and not (tree / path).exists() and (tree / f"{path}c").is_file():
                line = f"{path}c,,"
            lines.append(line)
        record.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")


def _record_path_kept(root: Path, relative: str) -> bool:
    path = (root / relative).resolve()
    return path.is_relative_to(root) and path.is_file()


def _trim_distribution_metadata(tree: Path, report: TrimReport) -> None:
    """Keeps the headers of each METADATA (importlib.metadata reads names, versions, entry points)
    and drops the body, the project's README (pydantic's changelog alone is 140 kB), and the
    software bills of materials some wheels carry. Licence files stay."""
    for sboms in sorted(tree.glob("*.dist-info/sboms")):
        _remove(sboms, "long descriptions and SBOMs in package metadata", report)
    root = tree.resolve()
    for record in sorted(tree.glob("*.dist-info/RECORD")):
        # Entries of trimmed files go: they would name console scripts whose hashes embed the
        # building interpreter's path, and a rebuild would differ for nothing.
        lines = record.read_text(encoding="utf-8").splitlines()
        kept = [line for line in lines if _record_path_kept(root, line.rsplit(",", 2)[0])]
        record.write_text("".join(f"{line}\n" for line in kept), encoding="utf-8")
    for metadata in sorted(tree.glob("*.dist-info/METADATA")):
        text = metadata.read_bytes()
        end = text.find(b"\n\n")
        if end >= 0:
            report.count("long descriptions and SBOMs in package metadata", len(text) - end - 1)
            metadata.write_bytes(text[: end + 1])


def _strip_libraries(tree: Path, target: LambdaPlatform, report: TrimReport) -> None:
    tool = _strip_tool()
    if tool is None:
        return
    for path in sorted(tree.rglob("*.so*")):
        if not path.is_file() or not strippable(path, tree, target):
            continue
        stripped = path.with_name(path.name + ".stripped")
        result = subprocess.run(  # noqa: S603 - fixed arguments, no shell
            [tool[0], "--strip-unneeded", "-o", str(stripped), str(path)], capture_output=True, text=True
        )
        if result.returncode != 0:
            # A strip built for the host only cannot read the other architecture: keep the library.
            stripped.unlink(missing_ok=True)
            report.strip_failures.append(f"{path.relative_to(tree)}: {result.stderr.strip()[:200]}")
            continue
        saved = path.stat().st_size - stripped.stat().st_size
        shutil.copymode(path, stripped)
        stripped.replace(path)
        report.stripped[path.relative_to(tree).as_posix()] = saved


def tree_size(path: Path) -> tuple[int, int]:
    """(bytes, files) of a directory, counting file contents as Lambda's unzipped limit does."""
    size = files = 0
    for directory, _subdirs, names in os.walk(path):
        for name in names:
            file = Path(directory) / name
            if file.is_file() and not file.is_symlink():
                size += file.stat().st_size
                files += 1
    return size, files


# -- interpreters for the import check ---------------------------------------------------------------


def find_interpreter(target: LambdaPlatform) -> str | None:
    """A CPython of the target's version that can load the target's native libraries: only on a
    machine with the target's CPU."""
    if host_platform.machine() not in (target.machine, "amd64" if target.machine == "x86_64" else ""):
        return None
    return find_cpython(target.python_version)


def run_import_check(
    interpreter: str, path: Sequence[Path], modules: Sequence[str], smoke: str = ""
) -> subprocess.CompletedProcess[str]:
    """Imports modules with only ``path`` on sys.path: -S keeps the interpreter's own site-packages
    out (they would hide a missing dependency), -B keeps bytecode out of the cached tree."""
    code = f"import sys\nsys.path[:0] = {[str(entry) for entry in path]!r}\n"
    code += "".join(f"import {module}\n" for module in modules) + smoke
    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),  # noqa: S108 - a fallback for a missing HOME only
        "PYTHONDONTWRITEBYTECODE": "1",
        "TQDM_DISABLE": "1",
    }
    return subprocess.run(  # noqa: S603 - the code is ours, built from module names
        [interpreter, "-S", "-B", "-c", code],
        capture_output=True,
        text=True,
        env=environment,
        timeout=_CHECK_TIMEOUT_SECONDS,
    )


# -- pip ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MissingDistribution:
    requirement: str
    required_by: str | None


# What pip prints when it could not talk to the index: then "no matching distribution" says nothing
# about the package (pip saw no versions at all), so it must not be read as a missing wheel.
_UNREACHABLE_INDEX = (
    "Retrying (Retry(",
    "NewConnectionError",
    "Max retries exceeded",
    "Could not fetch URL",
    "Temporary failure in name resolution",
    "Network is unreachable",
    "ProxyError",
    "ReadTimeoutError",
)


def index_unreachable(pip_output: str) -> bool:
    return any(marker in pip_output for marker in _UNREACHABLE_INDEX)


def parse_missing_distribution(pip_output: str) -> MissingDistribution | None:
    """The requirement behind pip's "Could not find a version that satisfies …" error, if any (and
    None when pip could not reach the index, since it then finds no version of anything)."""
    if index_unreachable(pip_output):
        return None
    marker = "Could not find a version that satisfies the requirement "
    for line in pip_output.splitlines():
        if marker not in line:
            continue
        text = line.split(marker, 1)[1]
        text = text[: text.rfind(" (from versions:")] if " (from versions:" in text else text
        required_by = None
        if text.endswith(")") and " (from " in text:
            text, required_by = text.split(" (from ", 1)
            required_by = required_by[:-1].split("->")[0].split("==")[0].strip() or None
        return MissingDistribution(text.strip(), required_by)
    marker = "No matching distribution found for "
    for line in pip_output.splitlines():
        if marker in line:
            return MissingDistribution(line.split(marker, 1)[1].strip(), None)
    return None


# -- the builder -------------------------------------------------------------------------------------


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
    """Builds dependency trees into the cache, or finds them there."""

    def __init__(self, cache_root: Path = CACHE_ROOT, *, log: TextIO | None = None, bytecode: bool = True) -> None:
        self.cache_root = cache_root
        self.bytecode = bytecode
        """False builds trees of sources only, for the benchmark's comparison; deployed trees are compiled."""
        self.deps_dir = cache_root / "deps"
        self.wheelhouse = cache_root / "wheels"
        self._log = log or sys.stderr

    def say(self, message: str) -> None:
        print(f"kairos bundling: {message}", file=self._log, flush=True)

    def tree(self, spec: DependencyGroupSpec, target: LambdaPlatform) -> DependencyTree:
        name = tree_name(spec, target) + ("" if self.bytecode else "-sources")
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
                    self._pip(target, work, list(requirements))
                except _PipFailedError as failure:
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
            pip_log = self.pip_install(target, work, ["--no-deps", "-r", str(pinned)])
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

    def pip_install(self, target: LambdaPlatform, work: Path, args: list[str]) -> str:
        """pip install; a source-only pure-Python package gets its wheel built once, then pip retries."""
        built: set[str] = set()
        while True:
            try:
                return self._pip(target, work, args)
            except _PipFailedError as failure:
                missing = parse_missing_distribution(failure.output)
                if missing is None:
                    trouble = "could not reach the package index" if index_unreachable(failure.output) else "failed"
                    raise BundlingError(
                        f"pip {trouble} installing the dependencies for {target.describe()}:\n{failure.tail()}"
                    ) from None
                try:
                    package: str = canonicalize_name(Requirement(missing.requirement).name)
                except InvalidRequirement:
                    package = missing.requirement
                if package not in SOURCE_ONLY_PACKAGES or package in built:
                    raise MissingWheelError(
                        package=package, requirement=missing.requirement, required_by=missing.required_by, target=target
                    ) from None
                self._build_source_wheel(package, missing.requirement)
                built.add(package)
                shutil.rmtree(work)
                work.mkdir()

    def _build_source_wheel(self, package: str, requirement: str) -> None:
        self.say(f"{package} publishes no wheel: building a pure-Python wheel from its source")
        self.wheelhouse.mkdir(parents=True, exist_ok=True)
        spec = requirement.split(";", 1)[0].strip()
        before = set(self.wheelhouse.glob("*.whl"))
        command = [sys.executable, "-m", "pip", "wheel", "--disable-pip-version-check", "--no-input", "--no-deps"]
        command += [f"--no-binary={package}", "--wheel-dir", str(self.wheelhouse), spec]
        result = subprocess.run(  # noqa: S603 - pip with fixed options, no shell
            command, capture_output=True, text=True, timeout=_PIP_TIMEOUT_SECONDS
        )
        if result.returncode != 0:
            raise BundlingError(f"could not build a wheel of {spec}:\n{_tail(result.stdout + result.stderr)}")
        for wheel in set(self.wheelhouse.glob("*.whl")) - before:
            if not wheel.name.endswith("-none-any.whl"):
                wheel.unlink()
                raise BundlingError(
                    f"{package} is not pure Python (its source builds {wheel.name}): it needs a wheel "
                    "published for the Lambda platform"
                )

    def _pip(self, target: LambdaPlatform, work: Path, args: Sequence[str]) -> str:
        command = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--no-input"]
        command += ["--no-compile", "--no-warn-script-location", "--target", str(work)]
        command += [arg for tag in target.pip_platforms for arg in ("--platform", tag)]
        command += ["--implementation", "cp", "--python-version", target.python_version]
        command += ["--only-binary=:all:", "--find-links", str(self.wheelhouse), *args]
        self.wheelhouse.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(  # noqa: S603 - pip with fixed options, no shell
            command, capture_output=True, text=True, timeout=_PIP_TIMEOUT_SECONDS
        )
        output = f"$ {' '.join(command)}\n{result.stdout}{result.stderr}"
        if result.returncode != 0:
            raise _PipFailedError(output)
        return output


class _PipFailedError(Exception):
    def __init__(self, output: str) -> None:
        super().__init__("pip failed")
        self.output = output

    def tail(self) -> str:
        return _tail(self.output)


def _tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])
