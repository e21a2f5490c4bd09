"""Kairos's own packaging choices, apart from the machinery that carries them out: its dependency
groups, what the Lambda runtime provides, and the packages allowed to come as source.

Paths are relative to the project root, which callers pass in (:func:`dependency_groups`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from kairos_build.groups import DependencyGroupSpec
from kairos_runtime.registry import Architecture, DependencyGroup

PYTHON_CODE = Path("lambdas") / "python"
"""The Python functions' folder (requirements, locks, ``kairos_runtime``), relative to the root."""
BUNDLE_CACHE = Path(".bundle-cache")

# What the Lambda Python runtime ships in its own site-packages. A bundled copy would only shadow it.
RUNTIME_PROVIDED = frozenset({"boto3", "botocore", "s3transfer", "jmespath"})
# Pure-Python packages published as source only; pip builds a wheel for them once, on the host.
# Building any other source distribution is refused: it could compile for the host, not for Lambda.
SOURCE_ONLY_PACKAGES = frozenset({"jsonpath"})
# boto3 as the Lambda runtime provides it, for import checks and the benchmark only (never shipped).
RUNTIME_REQUIREMENTS = ("boto3",)


def dependency_groups(root: Path) -> Mapping[DependencyGroup, DependencyGroupSpec]:
    """The project's dependency groups, with their files under ``root``; a base comes before its layers."""
    code = root / PYTHON_CODE
    core = DependencyGroupSpec(
        group=DependencyGroup.CORE,
        requirements=code / "requirements.txt",
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
        default_architecture=Architecture.ARM_64,
    )
    crawler = DependencyGroupSpec(
        group=DependencyGroup.CRAWLER,
        requirements=code / "requirements-crawler.txt",
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
        base=core,
        # The lock records that py-mini-racer publishes no arm64 wheel: crawler tasks run on x86_64.
        default_architecture=Architecture.X86_64,
        layer_description="akshare, pycoingecko, pandas and their dependencies",
        # akshare draws tqdm progress bars into the function's log otherwise.
        environment=(("TQDM_DISABLE", "1"),),
        reaches_upstream=True,
    )
    return MappingProxyType({core.group: core, crawler.group: crawler})
