"""A seeded mutation test: a few hundred mutants of the shipped tasks.yaml through ``kairos validate``.

None may crash, hang or exit other than 0 or 1, print a traceback, reach the CLI's last-resort
handler (every known kind of bad input has its own message) or print a line longer than a bound.
"""

from __future__ import annotations

import random
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

import pytest
from typer.testing import CliRunner

from kairos import cli
from kairos.catalog import load_catalog
from tests.conftest import PROJECT_ROOT

SEED = 20261201
MUTANTS = 200
# A hang runs for ever: the bound only has to tell one apart from a slow run on a loaded machine
# (in isolation the slowest mutant takes a fraction of a second).
PER_MUTANT_SECONDS = 5.0
MAX_LINE = 600
SHIPPED = (PROJECT_ROOT / "tasks.yaml").read_bytes()

Mutation = Callable[[random.Random, bytes], bytes]


def flip_byte(rng: random.Random, data: bytes) -> bytes:
    at = rng.randrange(len(data))
    return data[:at] + bytes([rng.randrange(256)]) + data[at + 1 :]


def truncate(rng: random.Random, data: bytes) -> bytes:
    return data[: rng.randrange(len(data))]


def control_character(rng: random.Random, data: bytes) -> bytes:
    at = rng.randrange(len(data))
    character = rng.choice(["\0", "\x1b", "\x07", "\x7f", "\x85", "\x9b", "\ufeff", "\ud800"])
    return data[:at] + character.encode("utf-8", "surrogatepass") + data[at:]


def deep_nesting(rng: random.Random, data: bytes) -> bytes:
    depth = rng.choice([30, 33, 100, 250, 1000, 5000])
    value = rng.choice(["[" * depth + "]" * depth, "{a: " * depth + "1" + "}" * depth])
    return data.replace(b"label: python task 1", b"label: " + value.encode(), 1)


TAGGED = [
    "!!float abc", "!!int abc", "!!bool maybe", "!!timestamp 2026-13-45", "!!binary ???", "!!int 0x",
    "!!set [1]", "!!omap {a: 1}", "!!null x", "!!str", "!thing x", "!!python/object:os.system ls",
    "!!merge x", "!!seq x", "!!map x", "!!float .inf", "!!int 1_000", "!!timestamp 2026-01-01",
]  # fmt: skip


def bad_tag(rng: random.Random, data: bytes) -> bytes:
    values = [b"label: python task 1", b"memory: 512", b"schedule: rate(5 minutes)", b"enabled: true"]
    target = rng.choice(values)
    key = target.split(b":")[0]
    return data.replace(target, key + b": " + rng.choice(TAGGED).encode(), 1)


def aliases(rng: random.Random, data: bytes) -> bytes:
    levels, width = rng.choice([(9, 9), (5, 30), (20, 2), (3, 3)])
    rows = ["      payload:", "        l0: &a0 [1]"]
    rows += [f"        l{n}: &a{n} [{', '.join([f'*a{n - 1}'] * width)}]" for n in range(1, levels + 1)]
    choice = rng.choice(
        [
            "\n".join(rows),
            "      payload: &loop {again: *loop}",
            "      payload: *nowhere",
            "      payload: {<<: *nowhere}",
            "      payload: &m {a: 1}\n      other: *m",
            "      payload: {a: &same 1, b: &same 2, c: *same}",
            "      payload:\n        ? &k [1]\n        : x\n        ? *k\n        : y",
        ]
    )
    mutated = data.replace(b"      payload: {source: python-task-2}", choice.encode(), 1)
    if rng.random() < 0.3:  # aliases outside params too
        mutated = mutated.replace(b"  dev:\n", b"  dev: &stage\n", 1).replace(
            b"  prod:\n", b"  prod: *stage\n  x:\n", 1
        )
    return mutated


def huge_value(rng: random.Random, data: bytes) -> bytes:
    size = rng.choice([300, 5_000, 70_000])
    filler = rng.choice(["x", "🙂", "9", "a,"]) * size
    target = rng.choice(
        [
            b"name: python-task-1",
            b"description: Python simple task 1 - log timestamp",
            b"schedule: rate(5 minutes)",
            b"task_type: simple_task_1",
            b"timezone: Asia/Shanghai",
            b"label: python task 1",
            b"memory: 512",
            b"shedule",
        ]
    )
    key = target.split(b":")[0]
    return data.replace(target, key + b": " + filler.encode(), 1) if b":" in target else data + filler.encode()


def encoding(rng: random.Random, data: bytes) -> bytes:
    text = data.decode("utf-8", "replace").replace("python task 1", "pythön task 1 ✓")
    return text.encode(
        rng.choice(["utf-16", "utf-16-le", "utf-16-be", "utf-32", "latin-1", "cp1252", "utf-8-sig"]), "replace"
    )


def shuffle_lines(rng: random.Random, data: bytes) -> bytes:
    lines = data.split(b"\n")
    action = rng.choice(["delete", "duplicate", "swap", "indent", "dedent"])
    at, other = rng.randrange(len(lines)), rng.randrange(len(lines))
    if action == "delete":
        del lines[at]
    elif action == "duplicate":
        lines.insert(at, lines[at])
    elif action == "swap":
        lines[at], lines[other] = lines[other], lines[at]
    elif action == "indent":
        lines[at] = b"   " + lines[at]
    else:
        lines[at] = lines[at].lstrip()
    return b"\n".join(lines)


SCALARS = [
    "null", "~", "[]", "{}", "1e999", "-1", "0", "99999999999999999999", "'", '"', "&a", "*a", "|", ">", "- x",
    "? x", ": x", "@x", "`x`", "%YAML 1.1", "---", "...", "<<: {a: 1}", "{a: 1, a: 2}", "[1, [2, [3]]]", "yes",
    "2026-11-27", "0o17", ".nan", "\t1", "#", "!", "!!", "\\", "x: y: z",
]  # fmt: skip


def replace_value(rng: random.Random, data: bytes) -> bytes:
    lines = data.split(b"\n")
    candidates = [index for index, line in enumerate(lines) if b": " in line and not line.lstrip().startswith(b"#")]
    if not candidates:
        return data
    at = rng.choice(candidates)
    key = lines[at].split(b": ", 1)[0]
    lines[at] = key + b": " + rng.choice(SCALARS).encode()
    return b"\n".join(lines)


MUTATIONS: list[Mutation] = [
    flip_byte, truncate, control_character, deep_nesting, bad_tag, aliases, huge_value, encoding,
    shuffle_lines, replace_value,
]  # fmt: skip


def mutants() -> Iterator[tuple[str, bytes]]:
    rng = random.Random(SEED)  # noqa: S311 - reproducible mutants, not secrets
    for number in range(MUTANTS):
        data = SHIPPED
        names = []
        for _ in range(rng.choice([1, 1, 1, 2, 3])):
            mutation = rng.choice(MUTATIONS)
            names.append(mutation.__name__)
            data = mutation(rng, data)
        yield f"#{number} {'+'.join(names)}", data


class _TooSlowError(BaseException):
    """Not an Exception, so no handler under test can swallow it."""


def _too_slow(signum: int, frame: FrameType | None) -> None:
    raise _TooSlowError


def test_no_mutant_of_the_shipped_file_crashes_or_hangs_validate(tmp_path: Path) -> None:
    cli.services._catalog = load_catalog()
    runner = CliRunner()
    path = tmp_path / "tasks.yaml"
    outcomes: dict[int, int] = {}
    previous = signal.signal(signal.SIGALRM, _too_slow)
    started = time.perf_counter()
    try:
        for label, data in mutants():
            path.write_bytes(data)
            signal.setitimer(signal.ITIMER_REAL, PER_MUTANT_SECONDS)
            try:
                result = runner.invoke(cli.app, ["validate", "--file", str(path)])
            except _TooSlowError:
                pytest.fail(f"mutant {label} took over {PER_MUTANT_SECONDS} s")
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            if isinstance(result.exception, _TooSlowError):
                pytest.fail(f"mutant {label} took over {PER_MUTANT_SECONDS} s")
            assert result.exception is None or isinstance(result.exception, SystemExit), (label, result.exception)
            assert result.exit_code in (0, 1), (label, result.output)
            assert "Traceback" not in result.output, (label, result.output)
            assert cli.INTERNAL_ERROR not in result.output, (label, result.output)
            assert "Warning" not in result.output, (label, result.output)
            lines = result.output.splitlines()
            assert lines, label
            assert max(map(len, lines)) <= MAX_LINE, (label, max(lines, key=len)[:MAX_LINE])
            outcomes[result.exit_code] = outcomes.get(result.exit_code, 0) + 1
    finally:
        signal.signal(signal.SIGALRM, previous)
        cli.services._catalog = None
    # The mutants must exercise both answers, or the test checks nothing.
    assert outcomes.get(1, 0) > MUTANTS // 2, outcomes
    assert outcomes.get(0, 0) > 0, outcomes
    assert time.perf_counter() - started < 60
