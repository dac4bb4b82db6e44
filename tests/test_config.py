"""Configuration that cannot work stops the start at once, naming the variable and echoing no secret."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import IM_KEY, SDKAPPID
from tests.test_cli import one_line_error, run

IM = {"IM_SDKAPPID": str(SDKAPPID), "IM_SECRET_KEY": IM_KEY}


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:garbage",
        "postgresql+psycopg//postgres:hunter2@db/bridge",  # no "://": SQLAlchemy cannot parse it
        "postgresql+psycopg://postgres:hunter2@db:port/bridge",
        "mysql://root:hunter2@db/bridge",
        "sqlitex:///bridge.db",
    ],
)
@pytest.mark.parametrize("args", [["serve"], ["db", "upgrade"]])
def test_a_bad_database_url_names_the_variable(tmp_path: Path, url: str, args: list[str]) -> None:
    error = one_line_error(run(args, {**IM, "BRIDGE_DATABASE_URL": url}, tmp_path))
    assert "BRIDGE_DATABASE_URL" in error and "hunter2" not in error


def test_a_missing_private_key_file_stops_the_start(tmp_path: Path) -> None:
    env = {
        **IM,
        "SALESFORCE_CONSUMER_KEY": "consumer-key",
        "SALESFORCE_USERNAME": "agent@example.com",
        "SALESFORCE_PRIVATE_KEY_FILE": str(tmp_path / "nonexistent.pem"),
        "BRIDGE_DATABASE_URL": f"sqlite:///{tmp_path}/b.db",
    }
    error = one_line_error(run(["serve"], env, tmp_path))
    assert "SALESFORCE_PRIVATE_KEY_FILE" in error and "No such file" in error
    assert not (tmp_path / "b.db").exists()  # stopped before touching the database


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"BRIDGE_GROUP_NAME": "Ticket {ticketId} for {customer}"}, "not 'customer'"),
        ({"BRIDGE_GROUP_NAME": "Ticket {ticketId"}, "not a valid template"),
        ({"BRIDGE_GROUP_NAME": "Ticket {ticketId:d}"}, "not a valid template"),
        ({"BRIDGE_GROUP_NAME": "Ticket {}"}, "may use {ticketId} and {subject} only"),
        ({"ZENDESK_AGENT_PREFIX": "zd agent "}, "ZENDESK_AGENT_PREFIX must be 1 to 12"),
        ({"ZENDESK_AGENT_PREFIX": "sf"}, "must not overlap"),
    ],
)
def test_a_bad_group_name_template_or_agent_prefix_stops_the_start(
    tmp_path: Path, env: dict[str, str], says: str
) -> None:
    error = one_line_error(run(["serve"], {**IM, **env, "BRIDGE_DATABASE_URL": f"sqlite:///{tmp_path}/b.db"}, tmp_path))
    assert next(iter(env)) in error and says in error, error
    assert not (tmp_path / "b.db").exists()
