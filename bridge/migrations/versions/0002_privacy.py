"""Agents a link has seen (current and past: whose messages may enter the ticket), and the answer kept with each
seen signature (a retried signed call gets the first call's answer again).

Revision ID: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("link") as batch:
        batch.add_column(sa.Column("agents_seen_json", sa.Text, nullable=False, server_default="[]"))
    # Agents linked today are agents the link has seen.
    op.execute("UPDATE link SET agents_seen_json = agents_json")
    with op.batch_alter_table("seensignature") as batch:
        batch.add_column(sa.Column("status", sa.Integer, nullable=True))
        batch.add_column(sa.Column("response_json", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("seensignature") as batch:
        batch.drop_column("response_json")
        batch.drop_column("status")
    with op.batch_alter_table("link") as batch:
        batch.drop_column("agents_seen_json")
