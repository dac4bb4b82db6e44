"""Alembic environment: runs migrations on the configured URL; on PostgreSQL under an advisory lock, so several
bridge instances starting together on an empty database migrate it once."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, text

MIGRATION_LOCK = 7_244_351_001


def run() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    assert url, "bridge.migrations sets sqlalchemy.url before running Alembic"
    engine = create_engine(url)
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK})
            conn.commit()
        try:
            context.configure(connection=conn, render_as_batch=conn.dialect.name == "sqlite")
            with context.begin_transaction():
                context.run_migrations()
        finally:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK})
                conn.commit()
    engine.dispose()


run()
