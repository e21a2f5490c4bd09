"""Runtime settings from the environment the ScheduledTask construct sets."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from kairos_runtime.settings import LAMBDA_RETRY_ATTEMPTS_ENV, RuntimeSettings


def test_lambdas_retry_attempts_come_from_the_environment_and_default_to_a_single_delivery() -> None:
    assert RuntimeSettings.from_environ({LAMBDA_RETRY_ATTEMPTS_ENV: "2"}).lambda_retry_attempts == 2
    assert RuntimeSettings.from_environ({}).lambda_retry_attempts == 0


@pytest.mark.parametrize("attempts", ["3", "-1", "two"])
def test_a_retry_count_lambda_does_not_allow_fails_at_cold_start(attempts: str) -> None:
    with pytest.raises(ValidationError, match="lambda_retry_attempts"):
        RuntimeSettings.from_environ({LAMBDA_RETRY_ATTEMPTS_ENV: attempts})
