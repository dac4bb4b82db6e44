"""The sqlmodel models (bridge/store.py) and the Alembic migrations describe the same schema, on both databases; the
schema is prepared once when the bridge starts."""

from __future__ import annotations

from pathlib import Path

import httpx
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine
from sqlmodel import SQLModel

from bridge import store  # noqa: F401  (registers the tables on SQLModel.metadata)
from bridge.app import create_app
from bridge.migrations import current_revision, head_revision, upgrade
from bridge.sandbox.server import BackgroundServer
from bridge.store import sync_url
from tests.conftest import make_settings


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


def test_the_schema_is_prepared_once_where_the_caller_says(tmp_path: Path, im_server: BackgroundServer) -> None:
    """`serve` prepares the database before the server starts and tells the app so: the app leaves it alone then."""
    url = f"sqlite:///{tmp_path / 'bridge.db'}"
    settings = make_settings(url, im_server.url)
    with BackgroundServer(create_app(settings, prepare_schema=False)) as server:
        assert httpx.get(server.url + "/healthz").status_code == 200
    assert current_revision(url) is None
    with BackgroundServer(create_app(settings)) as server:
        assert httpx.get(server.url + "/healthz").status_code == 200
    assert current_revision(url) == head_revision(url)
