from kairos_runtime.tasks.market.coverage import MAX_MISSING_LISTED, coverage


def test_counts_only_symbols_of_the_universe() -> None:
    result = coverage(["600000", "000001", "300750"], ["000001", "688981"])
    assert (result.universe_size, result.covered, result.missing) == (3, 1, ("300750", "600000"))
    assert result.ratio == 1 / 3


def test_an_empty_universe_is_fully_covered() -> None:
    assert coverage([], ["000001"]).ratio == 1.0


def test_detail_names_at_most_the_listed_missing_but_counts_all() -> None:
    universe = [f"{number:06d}" for number in range(MAX_MISSING_LISTED + 5)]
    detail = coverage(universe, []).as_detail()
    assert detail["missing_count"] == MAX_MISSING_LISTED + 5
    assert detail["missing"] == universe[:MAX_MISSING_LISTED]
    assert detail["with_bar"] == 0
    assert detail["universe"] == MAX_MISSING_LISTED + 5
