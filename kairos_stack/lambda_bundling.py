"""Lambda code assets and dependency layers for Python functions, bundled locally at synth time.

A code asset is the group's dependency tree (compiled, see :mod:`kairos_build.bytecode`) plus the
``kairos_runtime`` sources with their bytecode beside them.

CDK asks an ``ILocalBundling`` to fill an asset directory before it would fall back to Docker; the
bundler here always succeeds or raises, so Docker is never run (the image it names is a required
placeholder). Asset hashes are CUSTOM: a hash of the dependency group's build inputs plus the
function sources, computed without building, so a stack CDK does not bundle (unit tests pass
``aws:cdk:bundling-stacks: []``) gets the same hash as a real synth, and an unchanged project shows
no asset change in ``cdk diff``. One :class:`AssetHashes` serves a synth, so each group's key and the
sources' fingerprint are computed once per group and platform, not once per function.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import jsii
from aws_cdk import aws_lambda as lambda_

from kairos.catalog import PROJECT_ROOT
from kairos_build.builder import DependencyBuilder, iter_source_files, source_fingerprint
from kairos_build.errors import BundlingError
from kairos_build.groups import DependencyGroupSpec
from kairos_build.platforms import LambdaPlatform
from kairos_build.project import BUNDLE_CACHE, PYTHON_CODE

PYTHON_CODE_DIR = PROJECT_ROOT / PYTHON_CODE

RUNTIME_PACKAGE = "kairos_runtime"
LAYER_PREFIX = "python"
"""Lambda puts a layer's ``python/`` folder on the module path (``/opt/python``)."""
PLACEHOLDER_IMAGE = "kairos-local-bundling-only"
# When CDK does not bundle (the stack is not in aws:cdk:bundling-stacks), it stages the asset's
# source folder instead: keep that copy small.
STAGED_SOURCE_EXCLUDES = ["**/__pycache__", "**/*.pyc", "**/.mypy_cache", "**/tests", "requirements*.txt"]


@jsii.implements(cdk.ILocalBundling)
class LocalBundling:
    """Fills CDK's bundling directory from a dependency tree (hard links into the cache) and the
    function sources; the build runs on the first synth that needs it, then comes from the cache."""

    def __init__(
        self,
        *,
        spec: DependencyGroupSpec,
        target: LambdaPlatform,
        prefix: str = "",
        sources: Path | None = None,
        builder: DependencyBuilder,
    ) -> None:
        self.spec = spec
        self.target = target
        self.prefix = prefix
        self.sources = sources
        self._builder = builder

    def try_bundle(self, output_dir: str, *, image: cdk.DockerImage, **kwargs: Any) -> bool:
        try:
            self.bundle(Path(output_dir))
        except BundlingError as error:
            # jsii re-raises this inside CDK's own stack trace; say it plainly first.
            print(f"\nkairos: cannot bundle the {self.spec.name} group: {error}\n", file=sys.stderr, flush=True)
            raise
        return True

    def bundle(self, output_dir: Path) -> None:
        builder = self._builder
        tree = builder.tree(self.spec, self.target)
        destination = output_dir / self.prefix if self.prefix else output_dir
        link_tree(tree.path, destination)
        if self.sources is not None:
            package = destination / self.sources.name
            for file in iter_source_files(self.sources):
                target = package / file.relative_to(self.sources)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(file, target)
            site = f"{self.spec.site}/{package.name}"
            builder.compile(self.target, package, site=site, layout="beside_source", what=f"the {package.name} sources")
        builder.say(f"bundled {self.spec.name} for {self.target.describe()} into {output_dir.name}")


def link_tree(source: Path, destination: Path) -> None:
    """Hard-links a cached tree into an asset folder (a 100 MB layer in well under a second); falls
    back to copying across file systems. CDK only reads the asset folder, so sharing inodes with the
    cache is safe."""
    destination.mkdir(parents=True, exist_ok=True)
    for directory, subdirs, files in os.walk(source):
        relative = Path(directory).relative_to(source)
        for name in subdirs:
            (destination / relative / name).mkdir(exist_ok=True)
        for name in files:
            origin, target = Path(directory) / name, destination / relative / name
            try:
                os.link(origin, target)
            except OSError:
                shutil.copy2(origin, target)


def _bundled_asset(asset_hash: str, local: LocalBundling) -> lambda_.Code:
    return lambda_.Code.from_asset(
        str(PYTHON_CODE_DIR),
        asset_hash_type=cdk.AssetHashType.CUSTOM,
        asset_hash=asset_hash,
        exclude=STAGED_SOURCE_EXCLUDES,
        bundling=cdk.BundlingOptions(image=cdk.DockerImage.from_registry(PLACEHOLDER_IMAGE), local=local),
    )


def project_builder() -> DependencyBuilder:
    """The builder of this project's trees, caching them in its ``.bundle-cache/``."""
    return DependencyBuilder(PROJECT_ROOT / BUNDLE_CACHE)


class AssetHashes:
    """The code and layer assets of one synth: every hash input is read once per group and platform
    (the group key through the builder, the sources' fingerprint once), however many functions share it."""

    def __init__(self, builder: DependencyBuilder | None = None) -> None:
        self.builder = builder or project_builder()
        self._sources_fingerprint: str | None = None

    @property
    def runtime_sources(self) -> Path:
        return PYTHON_CODE_DIR / RUNTIME_PACKAGE

    def sources_fingerprint(self) -> str:
        if self._sources_fingerprint is None:
            self._sources_fingerprint = source_fingerprint(self.runtime_sources)
        return self._sources_fingerprint

    def function_code(self, spec: DependencyGroupSpec, target: LambdaPlatform) -> lambda_.Code:
        """A function's code asset: the group's dependencies and the ``kairos_runtime`` package."""
        # This module decides how the sources are compiled into the asset: its changes are the asset's too.
        bundler = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12]
        asset_hash = f"code-{self.builder.key(spec, target)[:24]}-{self.sources_fingerprint()[:24]}-{bundler}"
        local = LocalBundling(spec=spec, target=target, sources=self.runtime_sources, builder=self.builder)
        return _bundled_asset(asset_hash, local)

    def layer_code(self, spec: DependencyGroupSpec, target: LambdaPlatform) -> lambda_.Code:
        """A layer asset: the group's dependencies (without its base group's) under ``python/``."""
        asset_hash = f"layer-{self.builder.key(spec, target)[:48]}"
        return _bundled_asset(
            asset_hash, LocalBundling(spec=spec, target=target, prefix=LAYER_PREFIX, builder=self.builder)
        )
