"""Packaging benchmark: size and cold import time of each Lambda function group.

``make bench`` (or ``.venv/bin/python bench/packaging_bench.py --write bench/RESULTS.md``) builds
the assets exactly as a synth does (``LocalBundling.bundle``, through ``.bundle-cache/``), then:

* sizes: unzipped bytes (what Lambda's 250 MB limit counts), zipped bytes (deflate level 6, as
  the CDK CLI's zip library uses by default) and file count, per group;
* cold import: each import runs in a fresh CPython of the target version, with only the asset,
  the layer and a stand-in for the Lambda runtime's own boto3 on ``sys.path`` (no site-packages)
  and Lambda's environment variables (the floor too runs in the simple-task function's), with
  bytecode writing off (Lambda's file system is read-only). The child reads two clocks around the
  import statement: wall time and CPU time (``time.process_time``: its user + sys). The floor,
  ``import boto3, aws_lambda_powertools``, and the handlers run in rounds, each once per round in
  alternating order; a ratio to the floor is the median of the rounds' own ratios, each with its
  interquartile range. The budget (issue 13: the core handler + boto3 within 1.10× of the floor)
  is judged on CPU time, which other load on the machine barely moves (ADR 0193); ``--busy N``
  runs N busy loops beside the measurement, ``--budget-only`` measures the budget's statements
  only. The stand-in boto3 has its bytecode, as pip installs it; the assets are measured as
  shipped (compiled, see ``kairos_build/bytecode.py``) and, for comparison, from sources only;
* where the extra goes: ``-X importtime`` self time per module (median of a few runs) of what the
  handler imports and the floor does not;
* in the same run, the floor plus one pydantic model (pydantic as the CDK app pins it, installed
  for the target beside the asset): why the runtime validates with msgspec instead.

Imports run on this machine's CPU: the arm64 core asset is measured through its x86_64 twin (same
sources and versions). Numbers are indicative of the ratio, not of Lambda's absolute timings.
"""

from __future__ import annotations

import argparse
import io
import operator
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(PROJECT_ROOT), str(PROJECT_ROOT / "lambdas" / "python")]

from packaging.requirements import Requirement  # noqa: E402
from packaging.utils import canonicalize_name  # noqa: E402

from kairos.catalog import load_catalog  # noqa: E402
from kairos.loading import load_tasks_file  # noqa: E402
from kairos.plan import StagePlan, plan_stage  # noqa: E402
from kairos_build.builder import DependencyBuilder  # noqa: E402
from kairos_build.import_check import find_interpreter  # noqa: E402
from kairos_build.locks import requirement_lines  # noqa: E402
from kairos_build.platforms import LambdaPlatform  # noqa: E402
from kairos_build.project import BUNDLE_CACHE, dependency_groups  # noqa: E402
from kairos_build.trimming import tree_size  # noqa: E402
from kairos_runtime.registry import DependencyGroup  # noqa: E402
from kairos_stack.lambda_bundling import (  # noqa: E402
    LAYER_PREFIX,
    PYTHON_CODE_DIR,
    RUNTIME_PACKAGE,
    LocalBundling,
    runtime_files,
)

GROUPS = dependency_groups(PROJECT_ROOT)
CORE, CRAWLER = GROUPS[DependencyGroup.CORE], GROUPS[DependencyGroup.CRAWLER]
CORE_BUDGET = 10_000_000
CRAWLER_BUDGET = 200_000_000
IMPORT_BUDGET_RATIO = 1.1
"""Issue 13: the simple-task handler within 1.10× of the floor, quiet machine or loaded."""
FLOOR = "import boto3, aws_lambda_powertools"
HANDLER = "import kairos_runtime.handler"
FIRST_RUN = f"{HANDLER}\nimport boto3"
"""The handler imports boto3 on its first AWS call, which every run makes (its run record): the
budget compares the handler plus boto3 with the floor, which imports boto3 too."""
CRAWL = "import akshare, pycoingecko"
# What the core handler adds to the floor, each on its own: typed params need a model library, and
# issue 2's tracing needs the X-Ray SDK behind Powertools' Tracer.
# Each builds its validator in full: pydantic when the class is made, msgspec on the first convert.
MSGSPEC_MODEL = (
    "import msgspec; msgspec.convert({'value': 1}, msgspec.defstruct('Probe', [('value', int)], frozen=True))"
)
PYDANTIC_MODEL = "from pydantic import create_model; create_model('Probe', value=(int, ...))"
TRACER = "aws_lambda_powertools.Tracer(service='kairos', patch_modules=('boto3',))"
# The functions measured: each with the environment the plan gives it in the dev stage.
CORE_TASK = "python-task-1"
CRAWLER_TASK = "stock-spot"
SIMPLE_MODULE, MARKET_MODULE = "kairos_runtime.tasks.simple", "kairos_runtime.tasks.market"


def dev_plan() -> StagePlan:
    catalog = load_catalog()
    return plan_stage(load_tasks_file(PROJECT_ROOT / "tasks.yaml", catalog), catalog, "dev")


@dataclass(frozen=True)
class Asset:
    name: str
    paths: tuple[Path, ...]

    def unzipped(self) -> tuple[int, int]:
        sizes = [tree_size(path) for path in self.paths]
        return sum(size for size, _ in sizes), sum(files for _, files in sizes)

    def zipped(self) -> int:
        return sum(zipped_size(path) for path in self.paths)


def zipped_size(tree: Path) -> int:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for file in sorted(path for path in tree.rglob("*") if path.is_file()):
            archive.write(file, file.relative_to(tree).as_posix())
    return buffer.tell()


def build_assets(
    workdir: Path, builder: DependencyBuilder, *, suffix: str = "", with_arm64: bool = True
) -> dict[str, Path]:
    """The assets measured. The arm64 core asset is measured for its size only (imports run on its
    x86_64 twin), so the sources-only comparison leaves it out."""
    arm, x86 = LambdaPlatform("arm64", "3.13"), LambdaPlatform("x86_64", "3.13")
    sources = PYTHON_CODE_DIR / RUNTIME_PACKAGE
    # Each function's code asset holds the shared runtime and its own task module (ADR 0191).
    simple, market = runtime_files(sources, SIMPLE_MODULE), runtime_files(sources, MARKET_MODULE)
    bundles = {
        "core-arm64": LocalBundling(spec=CORE, target=arm, sources=sources, files=simple, builder=builder),
        "core-x86_64": LocalBundling(spec=CORE, target=x86, sources=sources, files=simple, builder=builder),
        "crawler-code": LocalBundling(spec=CORE, target=x86, sources=sources, files=market, builder=builder),
        "crawler-layer": LocalBundling(spec=CRAWLER, target=x86, prefix=LAYER_PREFIX, builder=builder),
    }
    if not with_arm64:
        del bundles["core-arm64"]
    for name, bundling in bundles.items():
        bundling.bundle(workdir / f"{name}{suffix}")
    return {name: workdir / f"{name}{suffix}" for name in bundles}


def lambda_environment(task_root: Path) -> dict[str, str]:
    """What Lambda and the stack set for a simple Python task (tables named, tracing on)."""
    from kairos_runtime.settings import RUN_RECORD_TTL_DAYS_ENV, RUNTIME_ENV, STAGE_ENV
    from kairos_runtime.tables import TABLE_DESIGNS

    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONDONTWRITEBYTECODE": "1",
        "LAMBDA_TASK_ROOT": str(task_root),
        "AWS_LAMBDA_FUNCTION_NAME": "kairos-bench",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
        "POWERTOOLS_SERVICE_NAME": "kairos",
        "POWERTOOLS_METRICS_NAMESPACE": "Kairos",
        "TQDM_DISABLE": "1",
        STAGE_ENV: "bench",
        RUNTIME_ENV: "python3.13",
        RUN_RECORD_TTL_DAYS_ENV: "90",
    }
    environment |= {design.env_var: f"kairos-bench-{design.table_id.value}" for design in TABLE_DESIGNS.values()}
    return environment


@dataclass(frozen=True)
class Sample:
    """One cold import: wall seconds and CPU seconds (user + sys of the child), around the statement."""

    wall: float
    cpu: float


CHILD_TIMER = (
    "import sys, time\n"
    "sys.path[:0] = {path!r}\n"
    "wall, cpu = time.perf_counter(), time.process_time()\n"
    "{statement}\n"
    "print(time.perf_counter() - wall, time.process_time() - cpu)\n"
)
"""What a child runs: the statement between two readings of each clock. ``time.process_time`` is the
child's own user + sys time, so interpreter start-up and exit (the same for every statement) stay out
of the ratio, as they stay out of the wall time."""


def time_import(interpreter: str, statement: str, path: Sequence[Path], environment: Mapping[str, str]) -> Sample:
    code = CHILD_TIMER.format(path=[str(entry) for entry in path], statement=statement)
    result = subprocess.run(
        [interpreter, "-S", "-c", code], capture_output=True, text=True, env=dict(environment), check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"{statement!r} failed:\n{result.stderr[-2000:]}")
    wall, cpu = result.stdout.strip().splitlines()[-1].split()
    return Sample(wall=float(wall), cpu=float(cpu))


def import_profile(
    interpreter: str, statement: str, path: Sequence[Path], environment: Mapping[str, str]
) -> dict[str, int]:
    """Self import time (µs) by module, from one ``-X importtime`` run."""
    code = f"import sys\nsys.path[:0] = {[str(entry) for entry in path]!r}\n{statement}\n"
    result = subprocess.run(
        [interpreter, "-S", "-X", "importtime", "-c", code], capture_output=True, text=True, env=dict(environment)
    )
    if result.returncode != 0:
        raise RuntimeError(f"{statement!r} failed:\n{result.stderr[-2000:]}")
    return parse_importtime(result.stderr)


def parse_importtime(stderr: str) -> dict[str, int]:
    """``-X importtime``'s lines as self µs per module (the module's own code, not its imports)."""
    profile: dict[str, int] = {}
    for line in stderr.splitlines():
        if line.startswith("import time:") and "self [us]" not in line:
            self_us, _cumulative, name = line.removeprefix("import time:").split("|")
            profile[name.strip()] = int(self_us)
    return profile


def median_profile(profiles: Sequence[Mapping[str, int]]) -> dict[str, float]:
    """Each module's median self time over the runs (0 in a run that did not import it)."""
    modules = {name for profile in profiles for name in profile}
    return {name: statistics.median(profile.get(name, 0) for profile in profiles) for name in modules}


def by_package(profile: Mapping[str, float]) -> Counter[str]:
    packages: Counter[str] = Counter()
    for name, cost in profile.items():
        packages[name.split(".")[0]] += round(cost)
    return packages


def extra_lines(title: str, profile: Mapping[str, float], baseline: Mapping[str, float], top: int = 10) -> list[str]:
    """What ``profile`` imports that ``baseline`` does not, by package and by module (self time)."""
    extra = {name: cost for name, cost in profile.items() if name not in baseline}
    total = sum(profile.values()) - sum(baseline.values())
    packages = ", ".join(f"{name} {cost / 1000:.1f} ms" for name, cost in by_package(extra).most_common(top))
    modules = ", ".join(
        f"{name} {cost / 1000:.1f}" for name, cost in sorted(extra.items(), key=lambda item: -item[1])[:top]
    )
    return [
        f"- {title}: {sum(extra.values()) / 1000:.1f} ms of self time in modules the other does not import "
        f"({len(extra)}; all self time: {total / 1000:+.1f} ms)",
        f"  - by package: {packages or 'none'}",
        f"  - slowest of those modules (ms): {modules or 'none'}",
    ]


@dataclass(frozen=True)
class Measure:
    label: str
    statement: str
    path: tuple[Path, ...]
    task_environment: Mapping[str, str] = field(default_factory=dict)
    """What the plan sets for the function this measure stands for (its task module, say)."""


Samples = dict[str, list[Sample]]
"""Per label, one sample per round; the i-th samples of two labels come from the same round."""


def measure_imports(
    interpreter: str, measures: Sequence[Measure], environment: Mapping[str, str], runs: int
) -> Samples:
    """Every measure once per round, ``runs`` rounds, in alternating order (A B C, C B A, ...), so that
    drift on the machine hits all alike and each round compares neighbours in time."""
    samples: Samples = {measure.label: [] for measure in measures}
    for run in range(runs):
        order = measures if run % 2 == 0 else list(reversed(measures))
        for measure in order:
            samples[measure.label].append(
                time_import(interpreter, measure.statement, measure.path, {**environment, **measure.task_environment})
            )
    return samples


@dataclass(frozen=True)
class Spread:
    """The median and the interquartile range of some values."""

    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        if not values:
            raise ValueError("no values")
        if len(values) == 1:
            return cls(values[0], values[0], values[0])
        low, median, high = statistics.quantiles(values, n=4, method="inclusive")
        return cls(median, low, high)

    def ms(self) -> str:
        return f"{self.median * 1000:.0f} ms ({self.low * 1000:.0f}–{self.high * 1000:.0f})"

    def times(self) -> str:
        return f"{self.median:.2f}× ({self.low:.2f}–{self.high:.2f})"


Metric = Callable[[Sample], float]
CPU: Metric = operator.attrgetter("cpu")
WALL: Metric = operator.attrgetter("wall")


def spread(samples: Samples, label: str, metric: Metric) -> Spread:
    return Spread.of([metric(sample) for sample in samples[label]])


def ratio(samples: Samples, label: str, floor: str, metric: Metric) -> Spread:
    """``label`` over ``floor``, round by round (each pair measured side by side), summarised."""
    pairs = zip(samples[label], samples[floor], strict=True)
    return Spread.of([metric(measured) / metric(base) for measured, base in pairs])


def budget_line(samples: Samples, floor: str = "floor", measured: str = "core handler + boto3") -> str:
    """The issue's budget, on CPU time; wall time beside it, for reference."""
    cpu, wall = ratio(samples, measured, floor, CPU), ratio(samples, measured, floor, WALL)
    verdict = "ok" if cpu.median <= IMPORT_BUDGET_RATIO else "OVER"
    return (
        f"{measured} ≤ {IMPORT_BUDGET_RATIO:.2f}× the {floor}: {cpu.median:.2f}× ({verdict}) on CPU time, "
        f"median of {len(samples[floor])} side-by-side rounds (interquartile {cpu.low:.2f}–{cpu.high:.2f}); "
        f"wall time {wall.times()}"
    )


@contextmanager
def busy_loops(count: int) -> Iterator[list[int]]:
    """``count`` processes spinning on the CPU for the duration (the bench's "loaded" condition);
    their ids, each stopped on the way out."""
    loops = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        yield [loop.pid for loop in loops]
    finally:
        for loop in loops:
            loop.kill()
            loop.wait()


def load_note() -> str:
    one, five, _fifteen = os.getloadavg()
    return f"load average {one:.1f} (1 min), {five:.1f} (5 min)"


def mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB ({size / 1e6:.1f} MB)"


def size_lines(assets: Mapping[str, Path]) -> list[str]:
    groups = {
        "core (arm64): code asset": Asset("core", (assets["core-arm64"],)),
        "crawler (x86_64): code asset + layer": Asset("crawler", (assets["crawler-code"], assets["crawler-layer"])),
    }
    lines = [
        "| function group | unzipped | zipped | files | budget (unzipped) |",
        "|---|---|---|---|---|",
    ]
    budgets = {"core": CORE_BUDGET, "crawler": CRAWLER_BUDGET}
    for label, asset in groups.items():
        unzipped, files = asset.unzipped()
        budget = budgets[asset.name]
        verdict = "ok" if unzipped <= budget else "OVER"
        lines.append(
            f"| {label} | {mib(unzipped)} | {mib(asset.zipped())} | {files} | ≤ {budget / 1e6:.0f} MB: {verdict} |"
        )
    layer_size, layer_files = tree_size(assets["crawler-layer"])
    lines.append(
        f"| of which the crawler layer | {mib(layer_size)} | {mib(zipped_size(assets['crawler-layer']))} "
        f"| {layer_files} | |"
    )
    return lines


def import_measures(assets: Mapping[str, Path], runtime: Path, suffix: str) -> list[Measure]:
    """What is timed, for the assets as shipped (suffix "") or built from sources only. The floor
    runs with the simple-task function's environment too, so the two differ by the statement only."""
    plan = dev_plan()
    code, layer = assets["core-x86_64"], assets["crawler-layer"] / LAYER_PREFIX
    crawler_code = assets["crawler-code"]
    core, crawler = plan.task(CORE_TASK).environment, plan.task(CRAWLER_TASK).environment
    from kairos_runtime.settings import SDK_TRACING_ENV

    traced = {**core, SDK_TRACING_ENV: "true"}
    return [
        Measure(f"floor{suffix}", FLOOR, (code, runtime), core),
        Measure(f"floor + a msgspec model{suffix}", f"{FLOOR}\n{MSGSPEC_MODEL}", (code, runtime), core),
        Measure(f"floor + Tracer{suffix}", f"{FLOOR}\n{TRACER}", (code, runtime), core),
        Measure(f"core handler{suffix}", HANDLER, (code, runtime), core),
        Measure(f"core handler + boto3{suffix}", FIRST_RUN, (code, runtime), core),
        Measure(f"core handler, sdk_tracing on{suffix}", HANDLER, (code, runtime), traced),
        Measure(f"crawler handler{suffix}", HANDLER, (crawler_code, layer, runtime), crawler),
        Measure(f"crawler libraries{suffix}", CRAWL, (crawler_code, layer, runtime), crawler),
    ]


BUDGET_LABELS = ("floor", "core handler", "core handler + boto3")
"""What ``--budget-only`` measures: the budget's two statements, and the handler alone."""
PROFILED = ("floor", "core handler + boto3", "core handler", "crawler handler")


def pydantic_requirement() -> str:
    """pydantic as the CDK app pins it (``requirements.txt``, which also includes other files)."""
    for line in requirement_lines((PROJECT_ROOT / "requirements.txt").read_bytes()).decode().splitlines():
        if not line.startswith("-") and canonicalize_name(Requirement(line).name) == "pydantic":
            return line
    raise LookupError("requirements.txt names no pydantic")


def cold_import_table(shipped: Sequence[Measure], before: Sequence[Measure] | None, samples: Samples) -> list[str]:
    """One row per measure: CPU and wall medians (interquartile range) and their ratios to the floor,
    each ratio the median of the rounds' own ratios; then the sources-only figures, if measured."""
    head = "| cold import | statement | CPU, as shipped | ratio to floor (CPU) | wall, as shipped | ratio (wall) |"
    rule = "|---|---|---|---|---|---|"
    if before is not None:
        head += " CPU, sources only | ratio (CPU) | bytecode speed-up (CPU) |"
        rule += "---|---|---|"
    lines = [head, rule]
    for index, now in enumerate(shipped):
        cpu = spread(samples, now.label, CPU)
        row = (
            f"| {now.label} | `{now.statement.replace(chr(10), '; ')}` | {cpu.ms()} "
            f"| {ratio(samples, now.label, 'floor', CPU).times()} | {spread(samples, now.label, WALL).ms()} "
            f"| {ratio(samples, now.label, 'floor', WALL).times()} |"
        )
        if before is not None:
            then = before[index].label
            old = spread(samples, then, CPU)
            row += (
                f" {old.ms()} | {ratio(samples, then, 'floor (sources)', CPU).times()} "
                f"| {old.median / cpu.median:.1f}× |"
            )
        lines.append(row)
    return lines


def profile_section(
    interpreter: str, shipped: Sequence[Measure], environment: Mapping[str, str], runs: int
) -> list[str]:
    """Where the extra goes: ``-X importtime`` self times, the median of ``runs`` interleaved runs each."""
    measures = [measure for measure in shipped if measure.label in PROFILED]
    runs_of: dict[str, list[dict[str, int]]] = {measure.label: [] for measure in measures}
    for _ in range(runs):
        for measure in measures:
            runs_of[measure.label].append(
                import_profile(
                    interpreter, measure.statement, measure.path, {**environment, **measure.task_environment}
                )
            )
    profiles = {label: median_profile(profiles) for label, profiles in runs_of.items()}
    lines = [
        "",
        f"Where the extra time goes (`-X importtime`, as shipped, median self time of {runs} runs each):",
    ]
    lines += extra_lines("core handler + boto3 over the floor", profiles["core handler + boto3"], profiles["floor"])
    if "crawler handler" in profiles:
        lines += extra_lines(
            "crawler handler over the core handler", profiles["crawler handler"], profiles["core handler"]
        )
        lines.append("- akshare, pandas and numpy load only when a crawler task runs (the `crawler libraries` row).")
    return lines


def pydantic_line(builder: DependencyBuilder, assets: Mapping[str, Path], runtime: Path) -> tuple[Measure, str]:
    pinned = pydantic_requirement()
    x86 = LambdaPlatform("x86_64", "3.13")
    pydantic = builder.reference_tree(x86, (pinned,), label="bench-pydantic")
    compared = Measure(
        "floor + a pydantic model",
        f"{FLOOR}\n{PYDANTIC_MODEL}",
        (assets["core-x86_64"], runtime, pydantic),
        # As the plan set it while the functions shipped pydantic: no scan for plugins.
        {**dev_plan().task(CORE_TASK).environment, "PYDANTIC_DISABLE_PLUGINS": "__all__"},
    )
    return compared, pinned


def import_lines(
    args: argparse.Namespace, builder: DependencyBuilder, assets: Mapping[str, Path], interpreter: str
) -> list[str]:
    x86 = LambdaPlatform("x86_64", "3.13")
    runtime = builder.runtime_tree(x86)
    environment = lambda_environment(assets["core-x86_64"])
    shipped = import_measures(assets, runtime, "")
    before: list[Measure] | None = None
    extra: list[Measure] = []
    pinned = ""
    if args.budget_only:
        shipped = [measure for measure in shipped if measure.label in BUDGET_LABELS]
    else:
        sources_builder = DependencyBuilder(PROJECT_ROOT / BUNDLE_CACHE, log=sys.stderr, bytecode=False)
        sources = build_assets(Path(args.workdir), sources_builder, suffix="-sources", with_arm64=False)
        before = import_measures(sources, runtime, " (sources)")
        compared, pinned = pydantic_line(builder, assets, runtime)
        extra = [compared, *before]
    with busy_loops(args.busy):
        started = load_note()
        samples = measure_imports(interpreter, [*shipped, *extra], environment, args.runs)
        profile = profile_section(interpreter, shipped, environment, args.profile_runs)
        ended = load_note()
    lines = [
        f"{args.runs} rounds, each measure once per round in alternating order; {args.busy} busy loops "
        f"running beside them; {started} at the start, {ended} at the end.",
        "",
        *cold_import_table(shipped, before, samples),
    ]
    if pinned:
        pydantic = ratio(samples, "floor + a pydantic model", "floor", CPU)
        msgspec = ratio(samples, "floor + a msgspec model", "floor", CPU)
        lines += [
            "",
            f"For comparison, not shipped: {pinned} (the CDK app's pin, compiled as pip installs it) on the same "
            f"path, floor + one model: {spread(samples, 'floor + a pydantic model', CPU).ms()} of CPU, "
            f"{pydantic.times()} the floor, against {msgspec.times()} for msgspec.",
        ]
    lines += [
        "",
        "Budget (CPU time: user + sys of the importing process, which other load on the machine barely "
        "moves; the core handler + boto3 is what a cold start imports by its first AWS call):",
        f"**{budget_line(samples)}**",
        *profile,
    ]
    return lines


def report(args: argparse.Namespace) -> str:
    builder = DependencyBuilder(PROJECT_ROOT / BUNDLE_CACHE, log=sys.stderr)
    x86 = LambdaPlatform("x86_64", "3.13")
    with tempfile.TemporaryDirectory(prefix="kairos-bench-") as scratch:
        args.workdir = scratch
        assets = build_assets(Path(scratch), builder)
        lines = size_lines(assets)
        interpreter = find_interpreter(x86)
        lines += [
            "",
            f"Machine: {platform.machine()}, {os.cpu_count()} CPUs; interpreter: {interpreter}.",
            "",
        ]
        if interpreter is None:
            lines.append("No CPython 3.13 for this CPU on this machine: cold imports not measured.")
            return "\n".join(lines) + "\n"
        lines += import_lines(args, builder, assets, interpreter)
        return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=21, help="rounds: each import measured once per round")
    parser.add_argument("--profile-runs", type=int, default=5, help="-X importtime runs per profiled import")
    parser.add_argument("--busy", type=int, default=0, help="busy loops to run beside the measurement (load)")
    parser.add_argument(
        "--budget-only", action="store_true", help="only the floor and the core handler (no sources, no pydantic)"
    )
    parser.add_argument("--write", type=Path, help="also write the table to this markdown file")
    args = parser.parse_args(argv)
    table = report(args)
    print(table)
    if args.write:
        command = " ".join(["bench/packaging_bench.py", *(argv if argv is not None else sys.argv[1:])])
        header = f"# Packaging benchmark results\n\nWritten by `{command}` (`make bench` runs it in full).\n\n"
        args.write.write_text(header + table, encoding="utf-8")


if __name__ == "__main__":
    main()
