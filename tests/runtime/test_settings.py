"""Runtime settings from the environment the ScheduledTask construct sets."""

from __future__ import annotations

import pytest

from kairos_runtime.settings import (
    LAMBDA_RETRY_ATTEMPTS_ENV,
    MAX_EVENT_AGE_ENV,
    SSM_PARAMETERS_ENV,
    TASK_TYPE_ENV,
    RuntimeSettings,
)
from kairos_runtime.validation import InvalidInputError


def test_lambdas_retry_attempts_come_from_the_environment_and_default_to_a_single_delivery() -> None:
    assert RuntimeSettings.from_environ({LAMBDA_RETRY_ATTEMPTS_ENV: "2"}).lambda_retry_attempts == 2
    assert RuntimeSettings.from_environ({}).lambda_retry_attempts == 0


@pytest.mark.parametrize("attempts", ["3", "-1", "two"])
def test_a_retry_count_lambda_does_not_allow_fails_at_cold_start(attempts: str) -> None:
    with pytest.raises(InvalidInputError, match="lambda_retry_attempts"):
        RuntimeSettings.from_environ({LAMBDA_RETRY_ATTEMPTS_ENV: attempts})


def test_an_empty_setting_means_its_default_as_in_the_node_runtime() -> None:
    settings = RuntimeSettings.from_environ({LAMBDA_RETRY_ATTEMPTS_ENV: "", MAX_EVENT_AGE_ENV: ""})
    assert (settings.lambda_retry_attempts, settings.max_event_age_seconds) == (0, 6 * 3600)


@pytest.mark.parametrize(
    ("attempt", "age", "retries"),
    [
        (1, 5, True),
        (1, 119, True),  # 119 s old, plus the minute Lambda waits: 179 s, under the 180 s limit
        (1, 120, False),  # it would be 180 s old when the retry is due: Lambda drops it instead
        (2, 59, True),  # the second retry waits two minutes
        (2, 60, False),
        (3, 0, False),  # Lambda's two retries are used up
    ],
)
def test_lambda_retries_while_attempts_remain_and_the_event_is_young_enough(
    attempt: int, age: float, retries: bool
) -> None:
    settings = RuntimeSettings.from_environ({LAMBDA_RETRY_ATTEMPTS_ENV: "2", MAX_EVENT_AGE_ENV: "180"})
    assert settings.lambda_retries(attempt=attempt, event_age_seconds=age) is retries


def test_the_pinned_task_type_and_parameters_come_from_the_environment() -> None:
    pinned = RuntimeSettings.from_environ({TASK_TYPE_ENV: "crypto_markets", SSM_PARAMETERS_ENV: '["/a", "/b"]'})
    unpinned = RuntimeSettings.from_environ({})

    assert (pinned.task_type, pinned.ssm_parameters) == ("crypto_markets", frozenset({"/a", "/b"}))
    assert (unpinned.task_type, unpinned.ssm_parameters) == (None, None)
    assert RuntimeSettings.from_environ({SSM_PARAMETERS_ENV: "[]"}).ssm_parameters == frozenset()


@pytest.mark.parametrize("text", ["/a", '{"a": 1}', "[1]", '["/a"'])
def test_a_malformed_parameter_list_fails_at_cold_start(text: str) -> None:
    with pytest.raises(InvalidInputError, match=SSM_PARAMETERS_ENV):
        RuntimeSettings.from_environ({SSM_PARAMETERS_ENV: text})
