"""What a dependency tree leaves out: test folders, caches, type stubs, console scripts, compiler
inputs, binaries for another platform, unused package data and metadata bodies; and the debug
symbols stripped from the libraries where that is safe."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from kairos_build.distributions import prune_empty_dirs
from kairos_build.elf import ELF_MACHINES, is_foreign_binary, read_elf
from kairos_build.groups import DependencyGroupSpec
from kairos_build.platforms import LambdaPlatform


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
    return elf is not None and elf.machine == ELF_MACHINES[target.machine] and not elf.has_rpath and elf.has_symbols


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
