"""How much of a universe of symbols has a bar for a trading date: the one coverage figure the
fan-out's slot record, the daily summary and ``kairos data gaps`` all report."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

MAX_MISSING_LISTED = 100
"""Missing symbols named in a record; the count is always exact."""


@dataclass(frozen=True, slots=True)
class Coverage:
    universe_size: int
    covered: int
    missing: tuple[str, ...]
    """Every symbol of the universe without a bar, sorted."""

    @property
    def ratio(self) -> float:
        return 1.0 if self.universe_size == 0 else self.covered / self.universe_size

    def as_detail(self) -> dict[str, Any]:
        """The run record's and summary's ``coverage`` field: numbers stay numbers."""
        return {
            "universe": self.universe_size,
            "with_bar": self.covered,
            "missing_count": len(self.missing),
            "missing": list(self.missing[:MAX_MISSING_LISTED]),
        }


def coverage(universe: Collection[str], with_bar: Collection[str]) -> Coverage:
    """Symbols of ``universe`` with a bar; a bar for a symbol outside the universe does not count."""
    wanted = set(universe)
    covered = wanted & set(with_bar)
    return Coverage(universe_size=len(wanted), covered=len(covered), missing=tuple(sorted(wanted - covered)))
