"""Lambda's Python platforms: an architecture and a CPython version, as wheel tags and PEP 508 markers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Architecture = Literal["arm64", "x86_64"]
MACHINES: dict[str, str] = {"arm64": "aarch64", "x86_64": "x86_64"}
"""Lambda's architecture name to the machine name wheels and ELF headers use."""


@dataclass(frozen=True, slots=True, order=True)
class LambdaPlatform:
    """Where a function runs: its architecture and the CPython version of its runtime."""

    architecture: Architecture
    python_version: str

    @classmethod
    def for_runtime(cls, runtime: str, architecture: str) -> LambdaPlatform:
        if not runtime.startswith("python3.") or architecture not in MACHINES:
            raise ValueError(f"not a Lambda Python platform: {runtime} on {architecture}")
        return cls(architecture=architecture, python_version=runtime.removeprefix("python"))  # type: ignore[arg-type]

    @property
    def machine(self) -> str:
        return MACHINES[self.architecture]

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
