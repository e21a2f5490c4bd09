"""Where ``kairos diff`` gets its two sides: a synth of a source tree (the working tree, or a git ref
checked out in a temporary worktree), or a saved template or cloud assembly; offline, cached.

A synth here runs the tree's own ``app.py`` the way the CDK CLI would (``CDK_OUTDIR`` and
``CDK_CONTEXT_JSON``: the tree's ``cdk.json`` context plus the stage), with three differences:

* Python assets are bundled sources-only (``kairos:sources-only``): each asset folder holds the
  sources that asset ships and its dependency group's lock, nothing is built and pip never runs;
  the asset hashes are Kairos's custom hashes, the same as a real synth's
  (``kairos_stack/lambda_bundling.py``). A tree from before that switch is synthesized without
  bundling (``aws:cdk:bundling-stacks: []``), and its Python assets are compared as whole
  ``lambdas/python`` folders;
* no AWS variable reaches the process (no profile, no credentials, no instance metadata): the
  synth must not need an account, and cannot reach one;
* the result is cached under ``.kairos/diff-cache/`` by the tree's git tree id (the working tree's
  through a throwaway index), the stage, the tasks file and the CDK version, so a second ``kairos
  diff`` of the same trees synthesizes nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from importlib import metadata
from pathlib import Path

from kairos.diffing import Assembly, StackTemplate
from kairos.excerpts import shorten
from kairos.plan import STAGE_TAG

SOURCES_ONLY_CONTEXT = "kairos:sources-only"
"""CDK context: bundle each Python asset as the sources it ships and its group's lock, building
nothing (read by ``kairos_stack``; an asset bundled so is never deployed)."""
CACHE_DIR = Path(".kairos") / "diff-cache"
CACHE_KEEP = 12
"""How many synthesized assemblies the cache keeps (the oldest go first)."""
SYNTH_TIMEOUT_SECONDS = 600
ASSET_FILES = "kairos-asset-files.json"


class DiffSourceError(Exception):
    """A side of the diff cannot be had: said in one line."""


def _git(root: Path, *args: str, env: Mapping[str, str] | None = None) -> str:
    try:
        done = subprocess.run(  # noqa: S603 - git, with arguments this module builds
            ["git", "-C", str(root), *args],  # noqa: S607 - git from PATH, as a developer runs it
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, **(env or {})},
        )
    except FileNotFoundError:
        raise DiffSourceError("git is not installed: give --template instead of --base") from None
    if done.returncode != 0:
        raise DiffSourceError(f"git {' '.join(args[:2])}: {shorten(done.stderr or done.stdout, 200)}")
    return done.stdout.strip()


def ref_tree_id(root: Path, ref: str) -> str:
    """The git tree a ref names (an unknown ref is an error naming it)."""
    try:
        return _git(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{tree}}")
    except DiffSourceError:
        raise DiffSourceError(f"unknown git ref {ref!r} in {root}") from None


def working_tree_id(root: Path) -> str:
    """The git tree of the working tree as it is (tracked and untracked files, minus ignored ones),
    written through a throwaway index so the real index is untouched."""
    with tempfile.TemporaryDirectory(prefix="kairos-index-") as scratch:
        env = {"GIT_INDEX_FILE": str(Path(scratch) / "index")}
        _git(root, "add", "-A", ".", env=env)
        return _git(root, "write-tree", env=env)


def _cdk_version() -> str:
    try:
        return metadata.version("aws-cdk-lib")
    except metadata.PackageNotFoundError:
        return "unknown"


def cache_key(tree_id: str, stage: str, tasks_file: str) -> str:
    outside = Path(tasks_file)
    # A tasks file outside the tree is not in its tree id: its bytes are.
    extra = hashlib.sha256(outside.read_bytes()).hexdigest() if outside.is_absolute() and outside.is_file() else ""
    text = json.dumps([tree_id, stage, tasks_file, extra, _cdk_version(), sys.version_info[:2]])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _synth_environment(tree: Path, outdir: Path, context: Mapping[str, object]) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_") and key != "CDK_CONTEXT_JSON"}
    python_path = [str(tree), str(tree / "lambdas" / "python")]
    env.update(
        CDK_OUTDIR=str(outdir),
        CDK_CONTEXT_JSON=json.dumps(context),
        PYTHONPATH=os.pathsep.join(python_path),
        PYTHONDONTWRITEBYTECODE="1",
        AWS_EC2_METADATA_DISABLED="true",
        JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20,22",
        JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION="20,22",
    )
    return env


def synth_context(tree: Path, stage: str, tasks_file: str) -> dict[str, object]:
    """What the CDK CLI would pass: the tree's cdk.json context, then the stage, without bundling."""
    cdk_json = tree / "cdk.json"
    try:
        context = dict(json.loads(cdk_json.read_text(encoding="utf-8")).get("context") or {})
    except (OSError, ValueError) as error:
        raise DiffSourceError(f"{cdk_json}: cannot read it ({shorten(str(error), 120)})") from None
    this_module = tree / "kairos" / "diff_sources.py"
    knows_sources_only = this_module.is_file() and SOURCES_ONLY_CONTEXT in this_module.read_text(encoding="utf-8")
    if knows_sources_only:
        context[SOURCES_ONLY_CONTEXT] = True
    else:
        context["aws:cdk:bundling-stacks"] = []
    context.update(
        {
            "stage": stage,
            "tasks_file": tasks_file,
            "aws:cdk:enable-path-metadata": True,
            "aws:cdk:enable-asset-metadata": True,
            "aws:cdk:version-reporting": False,
        }
    )
    return context


def synthesize(tree: Path, outdir: Path, *, stage: str, tasks_file: str, what: str) -> None:
    """Runs the tree's ``app.py`` into ``outdir``; a failure is one line naming ``what`` failed."""
    if not (tree / "app.py").is_file():
        raise DiffSourceError(f"{what}: no app.py in {tree}")
    context = synth_context(tree, stage, tasks_file)
    try:
        done = subprocess.run(
            [sys.executable, "app.py"],
            cwd=tree,
            env=_synth_environment(tree, outdir, context),
            capture_output=True,
            text=True,
            timeout=SYNTH_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise DiffSourceError(f"{what}: the synth took over {SYNTH_TIMEOUT_SECONDS} s") from None
    if done.returncode != 0:
        lines = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
        said = next((line for line in lines if line.startswith("kairos:")), lines[-1] if lines else "no output")
        raise DiffSourceError(f"{what} does not synthesize: {shorten(said, 240)}")
    record_asset_files(outdir)


def _cached_synth(
    root: Path, tree: Path | None, key: str, *, stage: str, tasks_file: str, what: str, checkout: str | None
) -> Path:
    cache = root / CACHE_DIR
    final = cache / key
    if (final / "manifest.json").is_file():
        os.utime(final)
        return final
    cache.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f"{key}.", dir=cache))
    try:
        if checkout is None:
            assert tree is not None
            synthesize(tree, scratch / "out", stage=stage, tasks_file=tasks_file, what=what)
        else:
            with git_worktree(root, checkout) as checked_out:
                synthesize(checked_out, scratch / "out", stage=stage, tasks_file=tasks_file, what=what)
        try:
            (scratch / "out").rename(final)
        except OSError:  # another kairos diff finished the same synth first
            if not (final / "manifest.json").is_file():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    _prune(cache)
    return final


def _prune(cache: Path) -> None:
    entries = sorted(
        (p for p in cache.iterdir() if p.is_dir() and "." not in p.name and p.name != "uncached"),
        key=lambda p: p.stat().st_mtime,
    )
    for stale in entries[:-CACHE_KEEP]:
        shutil.rmtree(stale, ignore_errors=True)


@contextmanager
def git_worktree(root: Path, ref: str) -> Iterator[Path]:
    """``ref`` checked out (detached) in a temporary worktree, removed afterwards whatever happens."""
    parent = Path(tempfile.mkdtemp(prefix="kairos-diff-base-"))
    path = parent / "tree"
    try:
        _git(root, "worktree", "add", "--detach", "--quiet", str(path), ref)
        yield path
    finally:
        with suppress(DiffSourceError):
            _git(root, "worktree", "remove", "--force", str(path))
        shutil.rmtree(parent, ignore_errors=True)
        with suppress(DiffSourceError):
            _git(root, "worktree", "prune")


def synth_ref(root: Path, ref: str, *, stage: str, tasks_file: str) -> Path:
    """The cloud assembly of ``ref``'s tree (cached by its tree id)."""
    tree_id = ref_tree_id(root, ref)
    key = cache_key(tree_id, stage, tasks_file)
    return _cached_synth(root, None, key, stage=stage, tasks_file=tasks_file, what=f"the base {ref}", checkout=ref)


def synth_working_tree(root: Path, *, stage: str, tasks_file: str) -> Path:
    """The cloud assembly of the working tree (cached by its tree id when it is a git work tree)."""
    try:
        tree_id = working_tree_id(root)
    except DiffSourceError:
        tree_id = None
    if tree_id is None:  # not a git work tree: synthesized every time, into one reused folder
        out = root / CACHE_DIR / "uncached" / "out"
        shutil.rmtree(out, ignore_errors=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        synthesize(root, out, stage=stage, tasks_file=tasks_file, what="the working tree")
        return out
    key = cache_key(tree_id, stage, tasks_file)
    return _cached_synth(root, root, key, stage=stage, tasks_file=tasks_file, what="the working tree", checkout=None)


NOT_SHIPPED = frozenset({"__pycache__", ".mypy_cache", "node_modules", "tests", "test"})
"""Folders no asset ships (``ASSET_EXCLUDES`` in kairos_stack/code_assets.py), so no file list shows them."""


def _file_hashes(folder: Path) -> dict[str, str]:
    hashes = {}
    for directory, subdirs, files in os.walk(folder):
        subdirs[:] = sorted(name for name in subdirs if name not in NOT_SHIPPED)
        for name in files:
            if name.endswith(".pyc"):
                continue
            path = Path(directory) / name
            hashes[path.relative_to(folder).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return hashes


def record_asset_files(assembly_dir: Path) -> None:
    """Writes :data:`ASSET_FILES` beside the manifest: per file asset, the sha256 of each of its files.

    An unbundled asset's source is the tree's own folder (``lambdas/python``), which a temporary
    worktree takes with it; so the files are read while the tree exists, and kept with the assembly.
    """
    (assembly_dir / ASSET_FILES).write_text(json.dumps(asset_file_hashes(assembly_dir), sort_keys=True), "utf-8")


def asset_file_hashes(assembly_dir: Path) -> dict[str, dict[str, str]]:
    """Per file asset of the assembly's asset manifests, the sha256 of each file its source holds."""
    assets: dict[str, dict[str, str]] = {}
    for manifest in sorted(assembly_dir.glob("*.assets.json")):
        files = _load_json(manifest).get("files")
        for asset_id, asset in files.items() if isinstance(files, dict) else []:
            source = Path(str((asset.get("source") or {}).get("path", ""))) if isinstance(asset, dict) else None
            if source is None or str(source) in ("", "."):
                continue
            folder = source if source.is_absolute() else assembly_dir / source
            if folder.is_dir() and asset_id not in assets:
                assets[asset_id] = _file_hashes(folder)
    return assets


def _load_json(path: Path) -> dict[str, object]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise DiffSourceError(f"{path}: not a readable JSON file ({shorten(str(error), 120)})") from None
    if not isinstance(document, dict):
        raise DiffSourceError(f"{path}: not a CloudFormation template (a JSON object)")
    return document


def stack_artifacts(assembly_dir: Path, stage: str) -> list[tuple[str, Path]]:
    """The stage's stacks in a cloud assembly: (stack name, template file), from ``manifest.json``;
    stacks tagged with another stage are left out, so one assembly may hold several stages."""
    manifest = _load_json(assembly_dir / "manifest.json")
    artifacts = manifest.get("artifacts")
    found: list[tuple[str, Path]] = []
    others: list[tuple[str, Path]] = []
    for artifact_id, artifact in artifacts.items() if isinstance(artifacts, dict) else []:
        if not isinstance(artifact, dict) or artifact.get("type") != "aws:cloudformation:stack":
            continue
        properties = artifact.get("properties") or {}
        name = str(properties.get("stackName") or artifact_id)
        entry = (name, assembly_dir / str(properties.get("templateFile", f"{artifact_id}.template.json")))
        tags = properties.get("tags") or {}
        (found if tags.get(STAGE_TAG, stage) == stage else others).append(entry)
    if not found and others:
        raise DiffSourceError(f"{assembly_dir}: no stack of stage {stage!r} (found {', '.join(n for n, _ in others)})")
    return sorted(found)


def read_assembly(path: Path, stage: str, label: str) -> Assembly:
    """A cloud assembly folder (every stack of the stage, and its asset folders) or one template file."""
    if path.is_dir():
        if not (path / "manifest.json").is_file():
            raise DiffSourceError(f"{path}: not a cloud assembly (no manifest.json): give a template file or cdk.out")
        stacks = tuple(StackTemplate(name, _load_json(template)) for name, template in stack_artifacts(path, stage))
        if (path / ASSET_FILES).is_file():
            recorded = _load_json(path / ASSET_FILES)
            assets = {str(key): value for key, value in recorded.items() if isinstance(value, dict)}
        else:  # a cdk.out from cdk synth: its asset folders are the staged (bundled) copies
            assets = asset_file_hashes(path)
        return Assembly(label, stacks, assets)
    if path.is_file():
        name = path.name.removesuffix(".json").removesuffix(".template")
        return Assembly(label, (StackTemplate(name, _load_json(path)),))
    raise DiffSourceError(f"{path}: no such template file or cloud assembly folder")
