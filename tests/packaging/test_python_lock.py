"""Lock files: what they pin, when they are stale, and how `make lock` builds them (no pip here)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from kairos.config import PYTHON_RUNTIMES
from kairos_build.builder import group_key, locked_pins
from kairos_build.distributions import read_requirements
from kairos_build.errors import BundlingError, MissingWheelError
from kairos_build.groups import DependencyGroupSpec
from kairos_build.lock_writer import locked_platforms, resolve_lock, write_locks
from kairos_build.locks import Lock, LockError, StaleLockError, read_lock, requirement_lines
from kairos_build.pip import index_unreachable, parse_missing_distribution
from kairos_build.platforms import LambdaPlatform
from kairos_build.project import dependency_groups
from kairos_runtime.registry import DependencyGroup
from tests.conftest import PROJECT_ROOT

GROUPS = dependency_groups(PROJECT_ROOT)
CORE, CRAWLER = GROUPS[DependencyGroup.CORE], GROUPS[DependencyGroup.CRAWLER]
LOCKED_PLATFORMS = locked_platforms(runtime.removeprefix("python") for runtime in PYTHON_RUNTIMES)


ARM_313 = LambdaPlatform("arm64", "3.13")
X86_313 = LambdaPlatform("x86_64", "3.13")


def groups(tmp_path: Path) -> tuple[DependencyGroupSpec, DependencyGroupSpec]:
    (tmp_path / "requirements.txt").write_text("pydantic==2.14.4\n")
    (tmp_path / "requirements-crawler.txt").write_text("akshare==1.19.5\n")
    base = DependencyGroupSpec(DependencyGroup.CORE, tmp_path / "requirements.txt", import_check=())
    layer = DependencyGroupSpec(
        DependencyGroup.CRAWLER, tmp_path / "requirements-crawler.txt", import_check=(), base=base
    )
    return base, layer


class FakeResolver:
    """Stands in for pip: fixed answers per platform, and a record of the base pins it was given."""

    def __init__(self) -> None:
        self.base_pins: dict[tuple[str, str], Mapping[str, str]] = {}

    def __call__(
        self, spec: DependencyGroupSpec, target: LambdaPlatform, base_pins: Mapping[str, str]
    ) -> dict[str, str]:
        self.base_pins[(spec.name, target.label)] = base_pins
        if spec.group is DependencyGroup.CORE:
            # A platform-specific answer: an older wrapt on arm64, say.
            wrapt = "1.17.0" if target.architecture == "arm64" else "2.5.2"
            return {"pydantic": "2.14.4", "pydantic-core": "2.50.5", "wrapt": wrapt}
        if target.architecture == "arm64":
            raise MissingWheelError(
                package="py-mini-racer", requirement="py-mini-racer>=0.6", required_by="akshare", target=target
            )
        return {**base_pins, "akshare": "1.19.5", "py-mini-racer": "0.6.0"}


def test_the_committed_locks_are_fresh_and_cover_every_platform_a_function_can_use() -> None:
    core, crawler = read_lock(CORE), read_lock(CRAWLER)
    assert set(core.resolved) == {target.label for target in LOCKED_PLATFORMS}
    x86 = {target.label for target in LOCKED_PLATFORMS if target.architecture == "x86_64"}
    assert set(crawler.resolved) == x86
    assert all("py-mini-racer has no wheel" in reason for reason in crawler.unresolvable.values())
    core_pins, crawler_pins = locked_pins(CORE, X86_313), locked_pins(CRAWLER, X86_313)
    top_level = read_requirements(CORE.requirements)
    assert top_level, "the core group pins its requirements"
    for requirement in top_level:
        pinned = core_pins[canonicalize_name(requirement.name)]
        assert f"=={pinned}" == str(requirement.specifier), "top-level pins come through unchanged"
    assert {name: crawler_pins[name] for name in core_pins} == core_pins, "the layer agrees with the code asset"
    assert {"pandas", "numpy", "requests", "lxml"} <= crawler_pins.keys(), "transitive dependencies are pinned"


def test_a_lock_round_trips_and_marks_pins_that_hold_on_some_platforms_only(tmp_path: Path) -> None:
    core, _layer = groups(tmp_path)
    lock = resolve_lock(core, FakeResolver(), platforms=(ARM_313, X86_313))

    text = lock.render("requirements.txt")

    assert "pydantic==2.14.4\n" in text
    assert "wrapt==1.17.0  # only arm64-py3.13\n" in text
    assert "wrapt==2.5.2  # only x86_64-py3.13\n" in text
    assert Lock.parse(text, tmp_path / "lock") == lock
    assert lock.pins_for(ARM_313, tmp_path / "lock")["wrapt"] == "1.17.0"


def test_a_requirements_change_makes_the_lock_stale_until_make_lock_runs(tmp_path: Path) -> None:
    core, _layer = groups(tmp_path)
    write_locks(FakeResolver(), [core], LOCKED_PLATFORMS, log=lambda message: None)
    assert read_lock(core).pins_for(X86_313, core.lock_file)["pydantic-core"] == "2.50.5"
    key_before = group_key(core, X86_313)

    (tmp_path / "requirements.txt").write_text("pydantic==2.15.0\n")

    with pytest.raises(StaleLockError, match=r"requirements\.lock\.txt was resolved from other inputs.*make lock"):
        read_lock(core)
    with pytest.raises(BundlingError, match="make lock"):
        locked_pins(core, X86_313)
    write_locks(FakeResolver(), [core], LOCKED_PLATFORMS, log=lambda message: None)
    assert read_lock(core)
    assert group_key(core, X86_313) != key_before


def test_a_comment_or_blank_line_in_requirements_changes_neither_the_lock_nor_the_asset(tmp_path: Path) -> None:
    core, _layer = groups(tmp_path)
    write_locks(FakeResolver(), [core], LOCKED_PLATFORMS, log=lambda message: None)
    key_before = group_key(core, X86_313)
    requirements = tmp_path / "requirements.txt"

    requirements.write_text("# what every function ships\n\npydantic==2.14.4  # the models\n")

    assert read_lock(core), "still fresh"
    assert group_key(core, X86_313) == key_before
    requirements.write_text("pydantic==2.14.4 ; python_version >= '3.12'\n")
    with pytest.raises(StaleLockError, match="make lock"):
        read_lock(core)
    assert group_key(core, X86_313) != key_before, "a requirement's change is a new asset"


def test_only_pips_comments_are_left_out_of_a_requirements_digest() -> None:
    text = b"# a comment\nrepo @ https://example.invalid/r.zip#sha256=abc  # by hash\n  \nwrapt==2.5.2\t# tab\n"

    assert requirement_lines(text) == b"repo @ https://example.invalid/r.zip#sha256=abc\nwrapt==2.5.2"


def test_a_layer_lock_follows_its_base_lock(tmp_path: Path) -> None:
    core, layer = groups(tmp_path)
    resolver = FakeResolver()
    messages: list[str] = []
    write_locks(resolver, [core, layer], LOCKED_PLATFORMS, log=messages.append)

    assert resolver.base_pins[("crawler", "x86_64-py3.13")] == read_lock(core).resolved["x86_64-py3.13"]
    assert read_lock(layer).pins_for(X86_313, layer.lock_file)["wrapt"] == "2.5.2"
    assert any("unresolvable: arm64-py3.12, arm64-py3.13, arm64-py3.14" in message for message in messages)

    # A new core pin (make lock run for the core group alone) leaves the layer's lock stale.
    write_locks(resolver, [core], LOCKED_PLATFORMS, log=messages.append)
    core.lock_file.write_text(core.lock_file.read_text().replace("2.50.5", "2.50.6"))
    with pytest.raises(StaleLockError, match="make lock"):
        read_lock(layer)


def test_a_platform_the_lock_cannot_serve_says_why(tmp_path: Path) -> None:
    _core, layer = groups(tmp_path)
    lock = resolve_lock(layer, FakeResolver(), platforms=(ARM_313, X86_313), base=None)
    with pytest.raises(LockError, match=r"py-mini-racer has no wheel for python3\.13 on arm64"):
        lock.pins_for(ARM_313, layer.lock_file)
    with pytest.raises(StaleLockError, match=r"does not cover python3\.14 on x86_64: run `make lock`"):
        lock.pins_for(LambdaPlatform("x86_64", "3.14"), layer.lock_file)


def test_a_missing_or_hand_edited_lock_is_refused(tmp_path: Path) -> None:
    core, _layer = groups(tmp_path)
    with pytest.raises(StaleLockError, match=r"requirements\.lock\.txt is missing: run `make lock`"):
        read_lock(core)
    write_locks(FakeResolver(), [core], LOCKED_PLATFORMS, log=lambda message: None)
    core.lock_file.write_text(core.lock_file.read_text() + "requests>=2\n")
    with pytest.raises(StaleLockError, match=r"requirements\.lock\.txt:\d+: not a pin this tool writes"):
        read_lock(core)


def test_the_real_groups_lock_beside_their_requirements() -> None:
    assert CORE.lock_file.name == "requirements.lock.txt"
    assert CRAWLER.lock_file.name == "requirements-crawler.lock.txt"
    assert CRAWLER.lock_inputs[-1] == CORE.lock_file


def test_a_pip_failure_other_than_a_missing_wheel_writes_no_lock(tmp_path: Path) -> None:
    core, _layer = groups(tmp_path)
    write_locks(FakeResolver(), [core], LOCKED_PLATFORMS, log=lambda message: None)
    before = core.lock_file.read_text()
    (tmp_path / "requirements.txt").write_text("pydantic==2.15.0\n")

    def offline(spec: DependencyGroupSpec, target: LambdaPlatform, base_pins: Mapping[str, str]) -> dict[str, str]:
        raise BundlingError("pip could not install the dependencies: Could not reach pypi.org")

    with pytest.raises(BundlingError, match=r"Could not reach pypi\.org"):
        write_locks(offline, [core], LOCKED_PLATFORMS, log=lambda message: None)
    assert core.lock_file.read_text() == before, "a half-resolved lock must not look fresh"
    with pytest.raises(StaleLockError):
        read_lock(core)


def test_a_layer_that_fails_to_resolve_leaves_every_old_lock_in_place(tmp_path: Path) -> None:
    core, layer = groups(tmp_path)
    write_locks(FakeResolver(), [core, layer], LOCKED_PLATFORMS, log=lambda message: None)
    before = {spec.lock_file: spec.lock_file.read_text() for spec in (core, layer)}
    (tmp_path / "requirements.txt").write_text("pydantic==2.15.0\n")
    fake = FakeResolver()

    def layer_offline(
        spec: DependencyGroupSpec, target: LambdaPlatform, base_pins: Mapping[str, str]
    ) -> dict[str, str]:
        if spec.base is not None:
            raise BundlingError("pip could not reach the package index")
        return fake(spec, target, base_pins)

    with pytest.raises(BundlingError, match="could not reach"):
        write_locks(layer_offline, [core, layer], LOCKED_PLATFORMS, log=lambda message: None)
    assert {spec.lock_file: spec.lock_file.read_text() for spec in (core, layer)} == before


def test_pip_that_cannot_reach_the_index_is_not_mistaken_for_a_missing_wheel() -> None:
    offline = (
        "WARNING: Retrying (Retry(total=4, connect=None, read=None, redirect=None, status=None)) after connection "
        "broken by 'NewConnectionError(...: Failed to establish a new connection: [Errno 111] Connection refused')'\n"
        "ERROR: Could not find a version that satisfies the requirement pandas==3.1.1 (from versions: none)\n"
        "ERROR: No matching distribution found for pandas==3.1.1\n"
    )
    no_wheel = (
        "ERROR: Could not find a version that satisfies the requirement py-mini-racer>=0.6.0 (from akshare) "
        "(from versions: none)\nERROR: No matching distribution found for py-mini-racer>=0.6.0\n"
    )
    assert index_unreachable(offline)
    assert parse_missing_distribution(offline) is None
    assert not index_unreachable(no_wheel)
    missing = parse_missing_distribution(no_wheel)
    assert missing is not None
    assert (missing.requirement, missing.required_by) == ("py-mini-racer>=0.6.0", "akshare")
