"""The sqlmodel models (bridge/store.py) and the Alembic migrations describe the same schema, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine
from sqlmodel import SQLModel

from bridge import store  # noqa: F401  (registers the tables on SQLModel.metadata)
from bridge.migrations import upgrade
from bridge.store import sync_url


def test_models_match_the_migrations(database_url: str) -> None:
    upgrade(database_url)
    engine = create_engine(sync_url(database_url))
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            differences = compare_metadata(context, SQLModel.metadata)
    finally:
        engine.dispose()
    assert differences == [], "models and migrations differ; write a migration or fix the model:\n" + "\n".join(
        map(str, differences)
    )
