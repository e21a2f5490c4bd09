"""pip, run for a Lambda platform: binary wheels only (a source-only pure-Python package gets its
wheel built once, on the host), and pip's errors read into what to change.

pip (not uv, not aws-lambda-builders) installs and resolves: see docs/adr/0060-packaging-tools.md.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from kairos_build.errors import BundlingError, MissingWheelError
from kairos_build.platforms import LambdaPlatform

_PIP_TIMEOUT_SECONDS = 1800


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


class PipInstaller:
    """Installs requirements into a folder for a Lambda platform; ``wheelhouse`` keeps the wheels
    it built from source."""

    def __init__(self, wheelhouse: Path, *, source_only: frozenset[str], say: Callable[[str], None]) -> None:
        self.wheelhouse = wheelhouse
        self.source_only = source_only
        self.say = say

    def install(self, target: LambdaPlatform, work: Path, args: list[str]) -> str:
        """pip install; a source-only pure-Python package gets its wheel built once, then pip retries."""
        built: set[str] = set()
        while True:
            try:
                return self.run(target, work, args)
            except PipFailedError as failure:
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
                if package not in self.source_only or package in built:
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

    def run(self, target: LambdaPlatform, work: Path, args: Sequence[str]) -> str:
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
            raise PipFailedError(output)
        return output


class PipFailedError(Exception):
    def __init__(self, output: str) -> None:
        super().__init__("pip failed")
        self.output = output

    def tail(self) -> str:
        return _tail(self.output)


def _tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])
