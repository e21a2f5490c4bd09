"""Lambda code assets and dependency layers for Python functions, bundled locally at synth time.

A code asset is the group's dependency tree (compiled, see :mod:`kairos_build.bytecode`) plus the
``kairos_runtime`` sources with their bytecode beside them: the shared runtime and the one task
module its functions run (:func:`runtime_files`), never the other task modules. So adding a task
module, or editing one, changes the assets of that module's functions only
(docs/adr/0191-one-code-asset-per-task-module.md).

``kairos diff`` synthesizes with ``-c kairos:sources-only=true``: each Python asset folder is filled
with the sources it ships and the group's lock file only, no dependency tree and no bytecode (the
asset hash is the same custom hash), so the diff can name the files that changed without building.

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
from kairos_build.builder import DependencyBuilder, iter_source_files
from kairos_build.errors import BundlingError
from kairos_build.groups import DependencyGroupSpec
from kairos_build.platforms import LambdaPlatform
from kairos_build.project import BUNDLE_CACHE, PYTHON_CODE

PYTHON_CODE_DIR = PROJECT_ROOT / PYTHON_CODE

RUNTIME_PACKAGE = "kairos_runtime"
LAYER_PREFIX = "python"
"""Lambda puts a layer's ``python/`` folder on the module path (``/opt/python``)."""
PLACEHOLDER_IMAGE = "kairos-local-bundling-only"
TASKS_PACKAGE = "tasks"
"""The folder of ``kairos_runtime`` whose entries are task modules, one asset each."""
DEPENDENCIES_FOLDER = "kairos-dependencies"
"""Where a sources-only asset puts its group's lock (read by ``kairos diff``, never deployed)."""
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
        files: tuple[Path, ...] | None = None,
        builder: DependencyBuilder,
        sources_only: bool = False,
    ) -> None:
        self.spec = spec
        self.target = target
        self.prefix = prefix
        self.sources = sources
        self.files = files
        """The files of ``sources`` to ship (default: every source file)."""
        self.sources_only = sources_only
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
        destination = output_dir / self.prefix if self.prefix else output_dir
        if self.sources_only:
            # What kairos diff compares: the shipped sources and the pins the dependencies come from.
            (output_dir / DEPENDENCIES_FOLDER).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.spec.lock_file, output_dir / DEPENDENCIES_FOLDER / self.spec.lock_file.name)
        else:
            link_tree(builder.tree(self.spec, self.target).path, destination)
        if self.sources is not None:
            package = destination / self.sources.name
            for file in self.files if self.files is not None else tuple(iter_source_files(self.sources)):
                target = package / file.relative_to(self.sources)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(file, target)
            if not self.sources_only:
                site = f"{self.spec.site}/{package.name}"
                what = f"the {package.name} sources"
                builder.compile(self.target, package, site=site, layout="beside_source", what=what)
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


def runtime_files(runtime: Path, module: str | None) -> tuple[Path, ...]:
    """The ``kairos_runtime`` files a function running task module ``module`` ships: everything but
    the other task modules (each file or package directly under ``tasks/`` is one); all of them
    when no module is named."""
    own = module.split(".")[2] if module and module.count(".") >= 2 else None
    kept = []
    for file in iter_source_files(runtime):
        parts = file.relative_to(runtime).parts
        if own is not None and len(parts) > 1 and parts[0] == TASKS_PACKAGE and parts[1] != "__init__.py":
            entry = parts[1].removesuffix(".py") if len(parts) == 2 else parts[1]
            if entry != own:
                continue
        kept.append(file)
    return tuple(kept)


def files_fingerprint(root: Path, files: tuple[Path, ...]) -> str:
    """A hash of the files' paths (relative to ``root``) and contents: :func:`source_fingerprint` of a subset."""
    digest = hashlib.sha256()
    for path in files:
        for part in (path.relative_to(root).as_posix().encode(), path.read_bytes()):
            digest.update(len(part).to_bytes(8, "big"))
            digest.update(part)
    return digest.hexdigest()


class AssetHashes:
    """The code and layer assets of one synth: every hash input is read once per group, platform and
    task module, however many functions share it."""

    def __init__(self, builder: DependencyBuilder | None = None, *, sources_only: bool = False) -> None:
        self.builder = builder or project_builder()
        self.sources_only = sources_only
        self._files: dict[str | None, tuple[tuple[Path, ...], str]] = {}

    @property
    def runtime_sources(self) -> Path:
        return PYTHON_CODE_DIR / RUNTIME_PACKAGE

    def module_sources(self, module: str | None) -> tuple[tuple[Path, ...], str]:
        """The runtime files a task module's functions ship, and their fingerprint."""
        if module not in self._files:
            files = runtime_files(self.runtime_sources, module)
            self._files[module] = (files, files_fingerprint(self.runtime_sources, files))
        return self._files[module]

    def function_code(
        self, spec: DependencyGroupSpec, target: LambdaPlatform, module: str | None = None
    ) -> lambda_.Code:
        """A function's code asset: the group's dependencies, the shared runtime and its task module."""
        # This module decides how the sources are compiled into the asset: its changes are the asset's too.
        bundler = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12]
        files, fingerprint = self.module_sources(module)
        asset_hash = f"code-{self.builder.key(spec, target)[:24]}-{fingerprint[:24]}-{bundler}"
        local = LocalBundling(
            spec=spec,
            target=target,
            sources=self.runtime_sources,
            files=files,
            builder=self.builder,
            sources_only=self.sources_only,
        )
        return _bundled_asset(asset_hash, local)

    def layer_code(self, spec: DependencyGroupSpec, target: LambdaPlatform) -> lambda_.Code:
        """A layer asset: the group's dependencies (without its base group's) under ``python/``."""
        asset_hash = f"layer-{self.builder.key(spec, target)[:48]}"
        local = LocalBundling(
            spec=spec, target=target, prefix=LAYER_PREFIX, builder=self.builder, sources_only=self.sources_only
        )
        return _bundled_asset(asset_hash, local)
