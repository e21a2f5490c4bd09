"""Python bytecode for the Lambda packages, compiled at build time by a CPython of the function's version.

Lambda mounts ``/var/task`` and ``/opt`` read-only, so a module shipped as source is compiled again
on every cold start and the result thrown away: for the core handler that is most of its import
time. The build therefore ships bytecode:

* dependencies as *sourceless* ``.pyc`` files in place of their ``.py`` (the layout CPython loads
  without a source, PEP 3147): no source to compile or to check, and the package stays about the
  size of the sources unzipped (it zips less well: the core asset's zip grows from 3.3 to 4.1 MB).
  Tracebacks still name the file and line; only the source text of third-party lines is missing.
* the function's own package with its sources, and ``__pycache__`` entries in the *checked-hash*
  mode (PEP 552): the interpreter hashes the source before using the bytecode, so a source edited
  after the build (in the Lambda console, say) is compiled again rather than silently ignored.

Both forms are hash-based, not timestamp-based: zip archives do not keep modification times, and a
timestamp ``.pyc`` would be stale on arrival. Each code object's file name is the path the module
has on Lambda (``/var/task/...`` or ``/opt/python/...``), not the build directory's.

Bytecode is specific to a CPython minor version, not to a CPU: any CPython of the function's
version on this machine compiles for both architectures. Without one, the packages ship as sources
(and the build says so); :func:`bytecode_flavour` is part of every cache key and asset hash, so
the two kinds of build never mix.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

BytecodeLayout = Literal["sourceless", "beside_source"]

_COMPILE_TIMEOUT_SECONDS = 900

# Runs inside the target interpreter: py_compile there writes that version's bytecode.
_COMPILER = r"""
import json, os, py_compile, sys
root, site, layout = sys.argv[1:4]
mode = (py_compile.PycInvalidationMode.UNCHECKED_HASH if layout == "sourceless"
        else py_compile.PycInvalidationMode.CHECKED_HASH)
compiled, failed = 0, []
for directory, subdirs, files in os.walk(root):
    subdirs.sort()
    for name in sorted(files):
        if not name.endswith(".py"):
            continue
        source = os.path.join(directory, name)
        relative = os.path.relpath(source, root).replace(os.sep, "/")
        target = source[:-3] + ".pyc" if layout == "sourceless" else None
        try:
            py_compile.compile(source, cfile=target, dfile=site + "/" + relative, doraise=True,
                               invalidation_mode=mode)
        except py_compile.PyCompileError as error:
            failed.append(relative + ": " + str(error.exc_value).splitlines()[0])
            continue
        if layout == "sourceless":
            os.remove(source)
        compiled += 1
print(json.dumps({"compiled": compiled, "not_compiled": failed}))
"""


class BytecodeError(RuntimeError):
    """The target interpreter could not compile a tree."""


@dataclass(frozen=True, slots=True)
class CompileReport:
    interpreter: str
    compiled: int
    not_compiled: tuple[str, ...]
    """Files left as source: they do not compile for the target version (a Python 2 example, say);
    importing one fails on Lambda exactly as it would have without bytecode."""


@dataclass(frozen=True, slots=True)
class CompilingInterpreter:
    path: str
    magic: str
    """Its bytecode's magic number (hex): what a .pyc must carry for Lambda's CPython to load it."""


_PROBE = (
    "import importlib.util, sys; "
    "print(sys.implementation.name, '%d.%d' % sys.version_info[:2], sys.version_info.releaselevel, "
    "importlib.util.MAGIC_NUMBER.hex())"
)


@lru_cache(maxsize=8)
def compiling_interpreter(version: str) -> CompilingInterpreter | None:
    """A final (not pre-release) CPython of ``version`` ("3.13") on this machine, of any CPU, or None.

    Pre-releases are refused: their bytecode may carry another magic number than the release's, and
    Lambda's CPython would not load it.
    """
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates = [sys.executable]
    candidates += [str(path) for path in sorted(pyenv_root.glob(f"versions/{version}.*/bin/python{version}"))]
    candidates.append(shutil.which(f"python{version}") or "")
    for candidate in candidates:
        probed = _probe(candidate) if candidate else None
        if probed is not None and probed[:3] == ("cpython", version, "final"):
            return CompilingInterpreter(path=candidate, magic=probed[3])
    return None


def _probe(interpreter: str) -> tuple[str, ...] | None:
    """(implementation, major.minor, release level, magic) of an interpreter that runs; None if not."""
    try:
        result = subprocess.run(  # noqa: S603 - fixed arguments, no shell
            [interpreter, "-S", "-c", _PROBE], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.SubprocessError):
        return None
    fields = tuple(result.stdout.split())
    return fields if result.returncode == 0 and len(fields) == 4 else None


def find_cpython(version: str) -> str | None:
    """The path of :func:`compiling_interpreter`, or None."""
    found = compiling_interpreter(version)
    return found.path if found else None


def bytecode_flavour(version: str) -> str:
    """What a build for CPython ``version`` ships on this machine; part of every cache key, so trees
    compiled by an interpreter with another magic number are never reused."""
    found = compiling_interpreter(version)
    return f"cpython{version}-magic-{found.magic}-hash-pyc" if found else "sources-only"


def compile_tree(interpreter: str, tree: Path, *, site: str, layout: BytecodeLayout) -> CompileReport:
    """Compiles every ``.py`` under ``tree`` with ``interpreter``; ``site`` is where ``tree`` sits on
    Lambda, recorded as each code object's file name."""
    try:
        result = subprocess.run(  # noqa: S603 - the code is ours; -I ignores PYTHON* variables
            [interpreter, "-I", "-S", "-c", _COMPILER, str(tree), site.rstrip("/"), layout],
            capture_output=True,
            text=True,
            timeout=_COMPILE_TIMEOUT_SECONDS,
        )
    except subprocess.TimeoutExpired:
        raise BytecodeError(f"compiling {tree} took over {_COMPILE_TIMEOUT_SECONDS} s") from None
    except OSError as error:
        raise BytecodeError(f"cannot run {interpreter} to compile {tree}: {error}") from None
    if result.returncode != 0:
        raise BytecodeError(f"{interpreter} could not compile {tree}:\n{result.stderr.strip()[-2000:]}")
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    return CompileReport(
        interpreter=interpreter, compiled=summary["compiled"], not_compiled=tuple(summary["not_compiled"])
    )
