"""``kairos diff``: what a change to tasks.yaml or the code does to a stage, task by task, offline.

The two sides come from :mod:`kairos.diff_sources` (a git ref synthesized in a temporary worktree,
or a saved template / cloud assembly, against the working tree), the comparison from
:mod:`kairos.diffing` and the text from :mod:`kairos.diff_render`. ``--raw`` hands the same two
assemblies to the CDK CLI's offline diff, ``cdk diff --app <head> --template <base>``, per stack.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Annotated

import typer

from kairos.catalog import PROJECT_ROOT
from kairos.cli import DEFAULT_STAGE, JsonOption, _fail, _flag, _print_json, services
from kairos.diff_render import render_markdown, render_text
from kairos.diff_sources import (
    DiffSourceError,
    read_assembly,
    stack_artifacts,
    synth_ref,
    synth_working_tree,
)
from kairos.diffing import diff as diff_assemblies

DEFAULT_BASE = "HEAD"


def project_root() -> Path:
    """The Kairos tree to compare: the current directory when it is one, else this installation's."""
    here = Path.cwd()
    return here if (here / "app.py").is_file() and (here / "cdk.json").is_file() else PROJECT_ROOT


def raw_diff(root: Path, base_dir: Path | None, base_template: Path | None, head_dir: Path, stage: str) -> int:
    """``cdk diff --template`` for every stack of the working tree; returns the worst exit status."""
    base_templates = dict(stack_artifacts(base_dir, stage)) if base_dir is not None else {}
    worst = 0
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    for name, _ in stack_artifacts(head_dir, stage):
        template = base_template if base_template is not None else base_templates.get(name)
        if template is None:
            services.console.out(f"Stack {name}: new in the working tree (no base template)", highlight=False)
            continue
        # --exclusively: a shard stack depends on the core stack, and a fixed template compares one stack.
        command = [
            *("npx", "--no-install", "cdk", "diff", "--exclusively"),
            *("--app", str(head_dir), "--template", str(template), name),
        ]
        done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, check=False)  # noqa: S603
        services.console.out((done.stdout + done.stderr).rstrip(), highlight=False)
        worst = max(worst, done.returncode)
    return worst


def diff(
    stage: Annotated[str, typer.Option("--stage", "-s", help="The stage to compare.")] = DEFAULT_STAGE,
    base: Annotated[
        str | None, typer.Option("--base", help="The git ref to compare with (default HEAD), synthesized offline.")
    ] = None,
    template: Annotated[
        Path | None,
        typer.Option("--template", help="A saved template or cloud assembly (cdk.out) to compare with, not a ref."),
    ] = None,
    file: Annotated[
        str, typer.Option("--file", "-f", help="The task registry, relative to each tree (or absolute).")
    ] = "tasks.yaml",
    markdown: Annotated[bool, _flag("--markdown", help_text="Print Markdown, for a PR comment.")] = False,
    raw: Annotated[bool, _flag("--raw", help_text="Print the CDK CLI's own offline diff per stack instead.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Tasks added, removed and changed, code changes by asset and resources replaced: the working
    tree against a git ref or a saved template, without AWS."""
    if base is not None and template is not None:
        raise _fail("give --base or --template, not both")
    if sum((markdown, raw, as_json)) > 1:
        raise _fail("give at most one of --markdown, --json, --raw")
    root = project_root()
    try:
        if template is not None:
            base_path = template
            base_label = f"{template}"
        else:
            ref = base or DEFAULT_BASE
            base_path = synth_ref(root, ref, stage=stage, tasks_file=file)
            base_label = ref
        head_dir = synth_working_tree(root, stage=stage, tasks_file=file)
        if raw:
            base_dir = base_path if base_path.is_dir() else None
            code = raw_diff(root, base_dir, None if base_dir else base_path, head_dir, stage)
            raise typer.Exit(code)
        report = diff_assemblies(
            read_assembly(base_path, stage, f"stage {stage}, {base_label}"),
            read_assembly(head_dir, stage, "working tree"),
        )
    except DiffSourceError as error:
        raise _fail(str(error)) from None
    if as_json:
        _print_json({"stage": stage, **report.as_json()})
    elif markdown:
        services.console.out(render_markdown(report), highlight=False, end="")
    else:
        services.console.out(render_text(report, width=min(services.console.width, 80)), highlight=False, end="")


def register(app: typer.Typer) -> None:
    """Add ``kairos diff`` to the ``kairos`` app."""
    app.command("diff")(diff)
