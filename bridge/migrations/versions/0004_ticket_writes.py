"""The updates the transcript made to each ticket, kept for the helpdesk's window: its pace under the connector's
update budget (Zendesk: 30 per 10 minutes per user per ticket) is shared by every bridge process.

Revision ID: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ticketwrite",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("group_id", sa.String(64), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
    )
    op.create_index("ix_ticketwrite_group_at", "ticketwrite", ["group_id", "at"])


def downgrade() -> None:
    op.drop_table("ticketwrite")
