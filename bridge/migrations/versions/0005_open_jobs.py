"""The queue's indexes cover open jobs only (partial indexes): claiming and ordering cost the same with a million
finished jobs as with none. They replace the claim index and the ordering-key index, which held every job.

Revision ID: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

PENDING, RUNNING, OPEN = "status = 'pending'", "status = 'running'", "status IN ('pending', 'running')"


def _partial(name: str, columns: list[str], where: str) -> None:
    op.create_index(name, "job", columns, sqlite_where=sa.text(where), postgresql_where=sa.text(where))


def upgrade() -> None:
    op.drop_index("ix_job_claim", table_name="job")
    op.drop_index("ix_job_ordering_key", table_name="job")
    _partial("ix_job_pending", ["next_attempt_at"], PENDING)
    _partial("ix_job_running", ["lease_until"], RUNNING)
    _partial("ix_job_open_group", ["ordering_key", "id"], OPEN)


def downgrade() -> None:
    op.drop_index("ix_job_open_group", table_name="job")
    op.drop_index("ix_job_running", table_name="job")
    op.drop_index("ix_job_pending", table_name="job")
    op.create_index("ix_job_ordering_key", "job", ["ordering_key"])
    op.create_index("ix_job_claim", "job", ["status", "next_attempt_at"])
