"""Configuration that cannot work stops the start at once, naming the variable and echoing no secret."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.config import load_settings
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


def test_the_sandbox_reads_no_variable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`load_settings(environment=False)` (the sandbox's) takes only the values it is given, the connectors' too."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("ZENDESK_AGENT_PREFIX=agent-\n")
    for name, value in {"IM_RATE_LIMIT": "7", "ZENDESK_RATE_LIMIT": "5", "SALESFORCE_CONSUMER_KEY": "x"}.items():
        monkeypatch.setenv(name, value)
    settings = load_settings(environment=False, im_sdkappid=SDKAPPID, im_secret_key=IM_KEY, zendesk_rate_limit=9)
    assert settings.im_rate_limit == 200 and settings.enabled_connectors == []
    zendesk = settings.connectors["zendesk"]
    assert (zendesk.rate_limit, zendesk.agent_prefix) == (9, "zd_")  # type: ignore[attr-defined]
    assert settings.connectors["salesforce"].consumer_key is None  # type: ignore[attr-defined]
