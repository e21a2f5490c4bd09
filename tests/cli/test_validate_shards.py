"""``kairos validate`` says how many stacks and resources each stage makes, and refuses a stage a shard
of which would pass a CloudFormation limit with the reason and the fix, in one line, never a traceback."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from kairos import cli
from tests.conftest import PROJECT_ROOT


def many_tasks(path: Path, count: int, shards: int) -> Path:
    text = f"stages:\n  big:\n    shards: {shards}\ntasks:\n"
    text += "".join(
        f"  - {{name: t-{index}, task_type: simple_task_1, schedule: rate(5 minutes)}}\n" for index in range(count)
    )
    path.write_text(text, encoding="utf-8")
    return path


def test_validate_prints_each_stages_stacks_and_resources() -> None:
    result = CliRunner().invoke(cli.app, ["validate", "--file", str(PROJECT_ROOT / "tasks.yaml")])

    assert result.exit_code == 0
    lines = result.output.splitlines()
    for stage in ("dev", "prod"):
        (line,) = [line for line in lines if line.startswith(f"  {stage}: core + 4 shards; resources: core ")]
        assert "of 399; <= " in line
        assert line.endswith(" KB")
        assert len(line) <= 80


def test_validate_refuses_a_stage_whose_shard_would_pass_the_resource_limit(tmp_path: Path) -> None:
    path = many_tasks(tmp_path / "tasks.yaml", 300, shards=4)

    result = CliRunner().invoke(cli.app, ["validate", "--file", str(path)])

    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert f"{path}: stage 'big': shard stack kairos-big-Shard" in result.output
    assert "Give the stage more shard stacks (shards: " in result.output


def test_a_thousand_tasks_validate_once_the_stage_has_shards_enough(tmp_path: Path) -> None:
    path = many_tasks(tmp_path / "tasks.yaml", 1000, shards=32)

    result = CliRunner().invoke(cli.app, ["validate", "--file", str(path)])

    assert result.exit_code == 0, result.output
    assert "  big: core + 32 shards; resources: core " in result.output
