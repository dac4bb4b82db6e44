"""Schema migrations (Alembic). `upgrade(url)` brings a database to the newest schema; `prepare_database(url)`, run at
every start, creates the schema on an empty database and refuses an outdated one."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine

from bridge.store import sync_url


def config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent))
    cfg.set_main_option("sqlalchemy.url", sync_url(url).replace("%", "%%"))
    return cfg


def upgrade(url: str) -> None:
    command.upgrade(config(url), "head")


def current_revision(url: str) -> str | None:
    engine = create_engine(sync_url(url))
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def head_revision(url: str) -> str | None:
    return ScriptDirectory.from_config(config(url)).get_current_head()


class SchemaError(Exception):
    """The database schema is older than this version of the bridge."""


def prepare_database(url: str) -> None:
    """Create the schema on an empty database; refuse to start on an outdated one."""
    current = current_revision(url)
    if current is None:
        upgrade(url)
    elif current != head_revision(url):
        raise SchemaError(
            f"the database schema is at {current}, this bridge needs "
            f"{head_revision(url)}: run `helpdesk-bridge db upgrade`"
        )
