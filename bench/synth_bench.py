"""Synth benchmark: generated stages of 10 to 1,000 tasks, synthesized as ``cdk synth`` does.

``.venv/bin/python bench/synth_bench.py --tasks 10 100 [--lint] [--write bench/SYNTH_RESULTS.md]``
writes a tasks file per size (a mix of Python, Node.js and crawler tasks: 6:3:1), gives the stage
the fewest shard stacks (at least the default) that keep every stack within 80 % of CloudFormation's
limits, and runs ``app.py`` in a fresh interpreter with bundling on, from ``.bundle-cache/`` (so
a warm-up synth first stages the assets into the cloud assembly directory every size then reuses, as
a developer's ``cdk.out``). It reports the wall-clock
time of the synth (this machine is shared: figures vary with its load), the stacks, the resources of the core
and of the largest shard, the largest template, and the growth per task between sizes. ``--lint``
runs cfn-lint on every template written (the only finding CDK emits by design, W3005, ignored).
``--shared`` gives the stage ``shared_function: true`` (docs/adr/0183-shared-functions.md) and the
tasks a fleet's few rhythms (every 5, 15 or 60 minutes, daily), and reports the functions beside the
schedules: a thousand tasks cost a thousand schedules and a handful of functions.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(PROJECT_ROOT), str(PROJECT_ROOT / "lambdas" / "python")]

from kairos.config import DEFAULT_SHARDS, MAX_SHARDS  # noqa: E402
from kairos.plan import MAX_STACK_RESOURCES, RESOURCES_PER_SHARED_TASK, RESOURCES_PER_TASK, PlanError  # noqa: E402

STAGE = "bench"
KINDS = (
    ("python", "  - {{name: py-{index}, task_type: simple_task_{variant}, schedule: rate({minutes} minutes)}}\n"),
    ("python", "  - {{name: py-b-{index}, task_type: simple_task_{variant}, schedule: cron(0 {hour} * * ? *)}}\n"),
    (
        "nodejs",
        "  - {{name: node-{index}, task_type: simple_task_{variant}, runtime: nodejs22.x, "
        "schedule: rate(15 minutes)}}\n",
    ),
    (
        "crawler",
        "  - {{name: coins-{index}, task_type: crypto_markets, schedule: rate(10 minutes), params: {{top_n: 50}}}}\n",
    ),
)
MIX = (0, 1, 0, 1, 0, 1, 2, 2, 2, 3)
"""Per ten tasks: six Python, three Node.js, one crawler."""
FLEET_MINUTES = (5, 15, 60)
"""A shared fleet's rhythms: tasks share a function only with tasks of the same rhythm (its event age)."""


def tasks_text(count: int, shards: int, *, shared: bool = False) -> str:
    sharing = "    shared_function: true\n" if shared else ""
    text = f"stages:\n  {STAGE}:\n    shards: {shards}\n    log_retention_days: 7\n{sharing}tasks:\n"
    for index in range(count):
        _, line = KINDS[MIX[index % len(MIX)]]
        minutes = FLEET_MINUTES[index % len(FLEET_MINUTES)] if shared else 5 + index % 50
        text += line.format(index=index, variant=1 + index % 2, minutes=minutes, hour=index % 24)
    return text


def fitting_shards(count: int, directory: Path, *, shared: bool = False) -> int:
    from kairos_stack.app_builder import stage_plan

    # No fewer than the resources alone need (7 a task, or a shared task's schedule and alarm): a lower
    # bound, so the first fit is the fewest.
    per_task = RESOURCES_PER_SHARED_TASK + 1 if shared else RESOURCES_PER_TASK
    lower = max(DEFAULT_SHARDS, -(-count * per_task // MAX_STACK_RESOURCES))
    for shards in range(lower, MAX_SHARDS + 1):
        path = directory / f"tasks-{count}.yaml"
        path.write_text(tasks_text(count, shards, shared=shared), encoding="utf-8")
        try:
            stage_plan(path, STAGE)
        except PlanError:
            continue
        return shards
    raise SystemExit(f"{count} tasks do not fit in {MAX_SHARDS} shards")


@dataclass(frozen=True)
class Result:
    tasks: int
    shards: int
    wall_s: float
    core_resources: int
    largest_shard_resources: int
    total_resources: int
    largest_template_bytes: int
    total_template_bytes: int
    lint: str
    functions: int = 0
    schedules: int = 0


SYNTH = """
import app
context = {context}
app.main(app.create_app(context=context, outdir={outdir!r}))
"""


def synth(count: int, directory: Path, *, lint: bool, shared: bool = False) -> Result:
    shards = fitting_shards(count, directory, shared=shared)
    tasks_file = directory / f"tasks-{count}.yaml"
    # One cloud assembly directory for every size, as a developer's cdk.out: the assets staged by the
    # warm-up synth are reused (CDK skips an asset whose staged copy exists), templates are rewritten.
    outdir = directory / "cdk.out"
    for stale in outdir.glob("kairos-*"):
        stale.unlink()
    flags = json.loads((PROJECT_ROOT / "cdk.json").read_text(encoding="utf-8"))["context"]
    context = {**flags, "stage": STAGE, "tasks_file": str(tasks_file), "aws:cdk:enable-path-metadata": True}
    script = SYNTH.format(context=repr(context), outdir=str(outdir))
    started = time.perf_counter()
    env = {**os.environ, "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20,22"}
    subprocess.run([sys.executable, "-c", script], cwd=PROJECT_ROOT, check=True, env=env)
    wall = time.perf_counter() - started
    templates = sorted(outdir.glob("kairos-*.template.json"))
    sizes = {path.name: path.stat().st_size for path in templates}
    resources = [json.loads(path.read_text(encoding="utf-8"))["Resources"] for path in templates]
    counts = {path.name: len(declared) for path, declared in zip(templates, resources, strict=True)}
    types = [resource["Type"] for declared in resources for resource in declared.values()]
    core = f"kairos-{STAGE}.template.json"
    lint_result = "not run"
    if lint:
        linted = subprocess.run(
            [str(Path(sys.executable).with_name("cfn-lint")), "--ignore-checks", "W3005", "--", *map(str, templates)],
            capture_output=True,
            text=True,
            check=False,
        )
        lint_result = "clean" if linted.returncode == 0 else f"findings:\n{linted.stdout[-2000:]}"
    return Result(
        tasks=count,
        shards=shards,
        wall_s=wall,
        core_resources=counts[core],
        largest_shard_resources=max(value for name, value in counts.items() if name != core),
        total_resources=sum(counts.values()),
        largest_template_bytes=max(sizes.values()),
        total_template_bytes=sum(sizes.values()),
        lint=lint_result,
        functions=types.count("AWS::Lambda::Function"),
        schedules=types.count("AWS::Scheduler::Schedule"),
    )


def table(results: list[Result]) -> str:
    lines = [
        "| tasks | shards | synth (wall) | resources: core / largest shard / all | largest template "
        "| per task: resources, template bytes | functions / schedules | cfn-lint |",
        "|---|---|---|---|---|---|---|---|",
    ]
    previous: Result | None = None
    for result in results:
        if previous is None:
            growth = f"{result.total_resources / result.tasks:.1f}, {result.total_template_bytes / result.tasks:,.0f}"
        else:
            added = result.tasks - previous.tasks
            growth = (
                f"{(result.total_resources - previous.total_resources) / added:.1f}, "
                f"{(result.total_template_bytes - previous.total_template_bytes) / added:,.0f} (since {previous.tasks})"
            )
        lines.append(
            f"| {result.tasks:,} | {result.shards} | {result.wall_s:.1f} s | "
            f"{result.core_resources} / {result.largest_shard_resources} / {result.total_resources:,} | "
            f"{result.largest_template_bytes / 1000:,.0f} KB | {growth} | "
            f"{result.functions:,} / {result.schedules:,} | {result.lint.splitlines()[0]} |"
        )
        previous = result
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, nargs="+", default=[10, 100, 500, 1000])
    parser.add_argument("--lint", action="store_true", help="run cfn-lint on every template")
    parser.add_argument("--write", type=Path, help="write the table to this Markdown file")
    parser.add_argument("--shared", action="store_true", help="tasks share functions (shared_function: true)")
    args = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory(prefix="kairos-synth-bench-") as scratch:
        warm_up = synth(min(args.tasks), Path(scratch), lint=False, shared=args.shared)
        print(f"warm-up synth of {warm_up.tasks} tasks (stages the assets): {warm_up.wall_s:.1f} s", flush=True)
        for count in sorted(args.tasks):
            result = synth(count, Path(scratch), lint=args.lint, shared=args.shared)
            print(table([result]).splitlines()[-1], flush=True)
            if result.lint.startswith("findings"):
                print(result.lint, file=sys.stderr)
            results.append(result)
    text = table(results)
    print(text)
    if args.write:
        header = (
            "# Synth benchmark results\n\nWritten by `bench/synth_bench.py` "
            f"(`--tasks {' '.join(map(str, args.tasks))}{' --lint' if args.lint else ''}"
            f"{' --shared' if args.shared else ''}`), "
            f"{os.cpu_count()} CPUs (shared), bundling from `.bundle-cache/`, assets staged by a warm-up synth "
            f"({warm_up.wall_s:.0f} s).\n\n"
        )
        args.write.write_text(header + text, encoding="utf-8")


if __name__ == "__main__":
    main()
