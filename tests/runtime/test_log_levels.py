"""The third-party loggers that could write secrets stay at WARNING, and holding them there is cheap."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from kairos_runtime.log_levels import QUIET_LOGGERS, quiet_third_party_loggers


@pytest.fixture
def restored_levels() -> Iterator[None]:
    saved = {name: logging.getLogger(name).level for name in QUIET_LOGGERS}
    yield
    for name, level in saved.items():
        logging.getLogger(name).setLevel(level)


@pytest.mark.parametrize("level", [logging.NOTSET, logging.DEBUG, logging.INFO, logging.ERROR])
def test_a_library_logger_moved_off_warning_is_put_back(level: int, restored_levels: None) -> None:
    logging.getLogger("urllib3").setLevel(level)
    logging.getLogger("botocore").setLevel(level)

    quiet_third_party_loggers()

    assert {name: logging.getLogger(name).level for name in QUIET_LOGGERS} == dict.fromkeys(
        QUIET_LOGGERS, logging.WARNING
    )


def test_a_call_that_changes_nothing_keeps_every_loggers_cached_answers(restored_levels: None) -> None:
    # setLevel empties the isEnabledFor cache of every logger in the process; the crawlers call this
    # before each request, so a call with nothing to change must not.
    quiet_third_party_loggers()
    app = logging.getLogger("kairos.test.cache")
    app.isEnabledFor(logging.INFO)
    assert app._cache  # type: ignore[attr-defined]

    quiet_third_party_loggers()

    assert logging.INFO in app._cache  # type: ignore[attr-defined]
