"""The runtime's models: what msgspec accepts, and how a problem is located and worded."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import msgspec
import msgspec.inspect
import pytest
from msgspec import Meta, field

from kairos_runtime.events import ScheduledEvent, parse_instant
from kairos_runtime.tasks import default_registry
from kairos_runtime.validation import InvalidInputError, Model, input_problems, parse


class Leg(Model, frozen=True):
    venue: Annotated[str, Meta(pattern=r"^[A-Z]+$")]


class Order(Model, frozen=True, kw_only=True):
    symbol: str
    quantity: Annotated[int, Meta(ge=1)] = 1
    legs: tuple[Leg, ...] = ()
    tags: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.quantity > 1 and not self.legs:
            raise ValueError("a quantity over 1 needs legs")


@pytest.mark.parametrize(
    ("raw", "location", "message"),
    [
        ({"symbol": "A", "quantity": 0}, "quantity", "Expected `int` >= 1"),
        ({"symbol": "A", "legs": [{"venue": "SSE"}, {"venue": "sse"}]}, "legs.1.venue", "Expected `str` matching"),
        ({"quantity": 1}, "symbol", "required field missing"),
        ({"symbol": "A", "legs": [{}]}, "legs.0.venue", "required field missing"),
        ({"symbol": "A", "quantity": 2}, "", "a quantity over 1 needs legs"),
        ({"symbol": "A", "tags": {"x": "1"}}, "tags.*", "Expected `int`, got `str`"),
        ({"symbol": "A", "tags": {1: 1}}, "tags.[key]", "Expected `str`, got `int`"),
        ("not a mapping", "", "Expected `object`, got `str`"),
    ],
)
def test_a_problem_names_the_path_to_the_field(raw: object, location: str, message: str) -> None:
    with pytest.raises(InvalidInputError) as invalid:
        parse(raw, Order)

    assert invalid.value.location == location
    assert invalid.value.message.startswith(message)
    assert str(invalid.value) == (f"{location}: {invalid.value.message}" if location else invalid.value.message)


def test_an_unknown_field_is_refused_with_the_closest_known_name() -> None:
    with pytest.raises(InvalidInputError) as invalid:
        parse({"symbol": "A", "quantty": 2}, Order)
    assert str(invalid.value) == "quantty: unknown field (did you mean 'quantity'?)"

    with pytest.raises(InvalidInputError) as nested:
        parse({"symbol": "A", "legs": [{"venue": "SSE", "zzz": 1}]}, Order)
    assert str(nested.value) == "legs.0.zzz: unknown field"


def test_numbers_written_as_strings_are_accepted_only_when_asked_for() -> None:
    with pytest.raises(InvalidInputError, match="quantity: Expected `int`, got `str`"):
        parse({"symbol": "A", "quantity": "1"}, Order)

    assert parse({"symbol": "A", "quantity": "1"}, Order, lax=True).quantity == 1


def test_models_are_frozen() -> None:
    order = parse({"symbol": "A"}, Order)
    with pytest.raises(AttributeError, match="immutable"):
        order.symbol = "B"  # type: ignore[misc]


def test_a_scheduler_event_is_parsed_from_the_strings_scheduler_substitutes() -> None:
    event = ScheduledEvent.parse(
        {
            "task": "one",
            "task_type": "simple_task_1",
            "params": {"label": "x"},
            "scheduled_time": "2026-11-27T15:15:00+08:00",
            "execution_id": "exec-1",
            "attempt": "2",
            "added_by_a_newer_schedule": True,
        }
    )

    assert event.scheduled_time == datetime(2026, 11, 27, 7, 15, tzinfo=UTC)
    assert event.scheduled_time.tzinfo is UTC
    assert event.attempt == 2
    assert event.as_json() == {
        "task": "one",
        "task_type": "simple_task_1",
        "params": {"label": "x"},
        "scheduled_time": "2026-11-27T07:15:00Z",
        "execution_id": "exec-1",
        "attempt": 2,
    }


def test_a_fraction_of_a_second_is_written_in_microseconds_as_the_node_runtime_writes_it() -> None:
    raw = {"task": "one", "task_type": "t", "scheduled_time": "2024-05-01T09:30:00.5Z", "execution_id": "e"}

    assert ScheduledEvent.parse(raw).as_json()["scheduled_time"] == "2024-05-01T09:30:00.500000Z"


def test_a_naive_scheduled_time_is_taken_as_utc_however_the_event_is_built() -> None:
    naive = datetime(2026, 11, 27, 7, 15)

    built = ScheduledEvent(task="one", task_type="t", scheduled_time=naive, execution_id="e")
    parsed = ScheduledEvent.parse(
        {"task": "one", "task_type": "t", "scheduled_time": "2026-11-27T07:15:00", "execution_id": "e"}
    )

    assert built.scheduled_time == parsed.scheduled_time == datetime(2026, 11, 27, 7, 15, tzinfo=UTC)


def test_an_event_for_another_task_keeps_everything_else() -> None:
    event = ScheduledEvent(
        task="one", task_type="t", scheduled_time=datetime(2026, 11, 27, tzinfo=UTC), execution_id="e"
    )

    moved = event.for_task("two")

    assert moved.task == "two"
    assert (moved.task_type, moved.scheduled_time, moved.execution_id) == ("t", event.scheduled_time, "e")


@pytest.mark.parametrize(
    ("task_type", "params", "location"),
    [
        ("stock_spot", {"symbols": ["600519\n"]}, "symbols.0"),
        ("stock_spot", {"symbols": ["\uff16\uff10\uff10\uff15\uff11\uff19"]}, "symbols.0"),  # full-width digits
        ("index_daily", {"symbols": ["000300\n"]}, "symbols.0"),
        ("crypto_markets", {"vs_currency": "usd\n"}, "vs_currency"),
        ("crypto_markets", {"coin_ids": ["bitcoin\n"]}, "coin_ids.0"),
        ("crypto_markets", {"api_key_parameter": "/kairos/coingecko\n"}, "api_key_parameter"),
        ("daily_summary", {"crypto_quote_currency": "usd\n"}, "crypto_quote_currency"),
    ],
)
def test_patterned_params_match_the_whole_value(task_type: str, params: dict[str, object], location: str) -> None:
    # msgspec matches with re.search, where "$" also matches before a final newline.
    with pytest.raises(InvalidInputError) as invalid:
        default_registry().get(task_type).parse_params(params)

    assert invalid.value.location == location
    # The message says what fits in words (the pattern's description) and echoes the value refused.
    assert invalid.value.message.startswith("expected "), invalid.value.message
    assert invalid.value.message.endswith(r"\n')") or "\uff16" in invalid.value.message, invalid.value.message


@pytest.mark.parametrize("text", ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+05:00"])
def test_an_instant_beyond_the_years_python_holds_is_refused_not_a_crash(text: str) -> None:
    # The Node runtime's Date reaches further; a Python function cannot run such a slot at all.
    with pytest.raises(ValueError, match="not an ISO 8601 date and time"):
        parse_instant(text)
    raw = {"task": "one", "task_type": "t", "scheduled_time": text, "execution_id": "e"}
    with pytest.raises(InvalidInputError) as invalid:
        ScheduledEvent.parse(raw)
    assert invalid.value.location == "scheduled_time"


def test_input_problems_reports_the_first_problem_of_every_field() -> None:
    # msgspec alone stops at `quantity`; each field is then converted on its own.
    raw = {"symbl": "X", "quantity": 0, "legs": [{"venue": "lse"}], "tags": {"a": "1"}, "extra": 1}

    found = {(problem.location, problem.message) for problem in input_problems(raw, Order)}

    assert found == {
        ("symbl", "unknown field (did you mean 'symbol'?)"),
        ("extra", "unknown field"),
        ("quantity", "Expected `int` >= 1 (got 0)"),
        ("legs.0.venue", "Expected `str` matching regex '^[A-Z]+$'"),
        ("tags.*", "Expected `int`, got `str`"),  # msgspec names no mapping key
    }, "no 'symbol' missing next to its typo 'symbl'"


def test_input_problems_reports_a_missing_field_and_the_check_across_fields() -> None:
    assert [(p.location, p.message) for p in input_problems({}, Order)] == [("symbol", "required field missing")]
    assert [(p.location, p.message) for p in input_problems({"symbol": "X", "quantity": 2}, Order)] == [
        ("", "a quantity over 1 needs legs")
    ]
    assert input_problems({"symbol": "X"}, Order) == []


@pytest.mark.parametrize(
    ("task_type", "params", "message"),
    [
        ("index_spot", {"group": "majr"}, "Invalid enum value 'majr': expected one of major, shanghai, shenzhen, "
         "constituent, csi (did you mean 'major'?)"),
        ("stock_daily", {"symbols": ["600519"], "adjust": "qqf"},
         "Invalid enum value 'qqf': expected one of none, qfq, hfq (did you mean 'qfq'?)"),
        ("crypto_markets", {"api_plan": "enterprise"}, "Invalid enum value 'enterprise': expected one of demo, pro"),
        ("crypto_markets", {"vs_currency": "USD"}, "expected a lower-case currency code such as usd (got 'USD')"),
    ],
)  # fmt: skip
def test_an_enum_lists_its_choices_and_a_pattern_says_what_it_means(
    task_type: str, params: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidInputError) as invalid:
        default_registry().get(task_type).parse_params(params)

    assert invalid.value.message == message


def _patterns_without_description(node: object, described: bool = False) -> list[str]:
    """Every pattern in a msgspec type tree whose Meta gives no description."""
    info = msgspec.inspect
    if isinstance(node, info.Metadata):
        has = bool((node.extra_json_schema or {}).get("description"))
        return _patterns_without_description(node.type, has)
    if isinstance(node, info.StrType):
        return [] if node.pattern is None or described else [node.pattern]
    if isinstance(node, info.StructType):
        return [p for f in node.fields for p in _patterns_without_description(f.type)]
    if isinstance(node, info.UnionType):
        return [p for t in node.types for p in _patterns_without_description(t, described)]
    if isinstance(node, info.ListType | info.VarTupleType | info.SetType | info.FrozenSetType):
        return _patterns_without_description(node.item_type)
    if isinstance(node, info.DictType):
        return _patterns_without_description(node.value_type)
    return []


def test_every_pattern_of_every_params_model_has_a_description() -> None:
    missing = {
        task_type.name: found
        for task_type in default_registry()
        if (found := _patterns_without_description(msgspec.inspect.type_info(task_type.params_model)))
    }

    assert missing == {}, "give each pattern a Meta(description=...) that a message can show"
