"""A stage's alarm destination in tasks.yaml: one address or several, or an existing topic, never both."""

from __future__ import annotations

from pathlib import Path

import pytest

from kairos.catalog import TaskCatalog, load_catalog
from kairos.loading import ConfigError, load_tasks_file


@pytest.fixture(scope="module")
def catalog() -> TaskCatalog:
    return load_catalog()


def load_stage(tmp_path: Path, stage: str, catalog: TaskCatalog) -> object:
    path = tmp_path / "tasks.yaml"
    path.write_text(f"stages:\n  prod: {stage}\ntasks: []\n", encoding="utf-8")
    return load_tasks_file(path, catalog).stages["prod"]


def problems_of(tmp_path: Path, stage: str, catalog: TaskCatalog) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        load_stage(tmp_path, stage, catalog)
    return raised.value.problems


@pytest.mark.parametrize(
    ("stage", "emails"),
    [
        ("{alarm_email: ops@example.com}", ("ops@example.com",)),
        ("{alarm_email: [ops@example.com, pager@example.com]}", ("ops@example.com", "pager@example.com")),
        ("{alarm_email: null}", ()),
        ("{}", ()),
    ],
)
def test_alarm_email_takes_one_address_or_a_list(
    tmp_path: Path, stage: str, emails: tuple[str, ...], catalog: TaskCatalog
) -> None:
    assert load_stage(tmp_path, stage, catalog).alarm_emails == emails  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("stage", "problem"),
    [
        ("{alarm_email: not-an-address}", "field 'alarm_email.0': expected an e-mail address"),
        ("{alarm_email: [ops@example.com, 'bad address']}", "field 'alarm_email.1': expected an e-mail address"),
        ("{alarm_email: []}", "field 'alarm_email': List should have at least 1 item"),
        ("{alarm_email: [ops@example.com, ops@example.com]}", "listed more than once: ops@example.com"),
        ("{alarm_topic_arn: 'arn:aws:sqs:eu-west-1:111122223333:queue'}", "field 'alarm_topic_arn'"),
        ("{alarm_topic_arn: 'arn:aws:sns:eu-west-1:111122223333:alarms.fifo'}", "field 'alarm_topic_arn'"),
        (
            "{alarm_email: ops@example.com, alarm_topic_arn: 'arn:aws:sns:eu-west-1:111122223333:paging'}",
            "alarm_email subscribes to the stage's own alarm topic, which alarm_topic_arn replaces",
        ),
    ],
)
def test_a_bad_alarm_destination_is_one_clear_problem(
    tmp_path: Path, stage: str, problem: str, catalog: TaskCatalog
) -> None:
    problems = problems_of(tmp_path, stage, catalog)

    assert len(problems) == 1, problems
    assert problem in problems[0]


def test_an_existing_topic_is_accepted_by_arn(tmp_path: Path, catalog: TaskCatalog) -> None:
    arn = "arn:aws-cn:sns:cn-north-1:111122223333:ops_paging-1"

    assert load_stage(tmp_path, f"{{alarm_topic_arn: '{arn}'}}", catalog).alarm_topic_arn == arn  # type: ignore[attr-defined]
