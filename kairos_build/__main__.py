"""``make lock``: ``python -m kairos_build --root DIR --python 3.12 --python 3.13 ...`` rewrites the
lock files of the project under DIR for each architecture and those Python versions (it reaches PyPI)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from kairos_build.errors import BundlingError
from kairos_build.lock_writer import locked_platforms, pip_resolver, write_locks
from kairos_build.pip import PipInstaller
from kairos_build.project import BUNDLE_CACHE, SOURCE_ONLY_PACKAGES, dependency_groups


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kairos_build", description=__doc__)
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="the project root (default: here)")
    parser.add_argument(
        "--python", action="append", required=True, metavar="VERSION", help="a Lambda Python version (3.13)"
    )
    arguments = parser.parse_args(argv)
    root: Path = arguments.root.resolve()

    def say(message: str) -> None:
        print(f"kairos lock: {message}", file=sys.stderr, flush=True)

    pip = PipInstaller(root / BUNDLE_CACHE / "wheels", source_only=SOURCE_ONLY_PACKAGES, say=say)
    groups = dependency_groups(root)
    specs = sorted(groups.values(), key=lambda spec: spec.is_layer)
    try:
        write_locks(pip_resolver(pip), specs, locked_platforms(arguments.python), log=say)
    except BundlingError as error:
        say(str(error))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
