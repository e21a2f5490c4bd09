"""The import check: a built tree imported by a CPython of the target's version and CPU."""

from __future__ import annotations

import os
import platform as host_platform
import subprocess
from collections.abc import Sequence
from pathlib import Path

from kairos_build.bytecode import find_cpython
from kairos_build.platforms import LambdaPlatform

_CHECK_TIMEOUT_SECONDS = 300


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
