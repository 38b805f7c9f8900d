"""covering index for the top-users statistics

Revision ID: 0004_stats_user_index
Revises: 0003_stats_indexes

``/stats/users/top`` counts requests per caller over the whole window, then reads the
details (hits, remote calls, last activity) of the few callers it returns, and counts
anonymous callers by IP address: all through ``(user_id, created_at, …)`` without visiting
the table rows. This index replaces ``(user_id, created_at)``, which it starts with; see
docs/STATS.md for the measurements.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004_stats_user_index"
down_revision: str | None = "0003_stats_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

USER_COLUMNS = ["user_id", "created_at", "from_cache", "inference_method", "ip_address"]


def upgrade() -> None:
    with op.batch_alter_table("request_log", schema=None) as batch_op:
        batch_op.create_index("ix_request_log_user_stats", USER_COLUMNS, unique=False)
        batch_op.drop_index("ix_request_log_user_created_at")


def downgrade() -> None:
    with op.batch_alter_table("request_log", schema=None) as batch_op:
        batch_op.create_index(
            "ix_request_log_user_created_at", ["user_id", "created_at"], unique=False
        )
        batch_op.drop_index("ix_request_log_user_stats")
