"""covering indexes for the statistics queries

Revision ID: 0003_stats_indexes
Revises: 0002_edit

The statistics read tens or hundreds of thousands of request_log rows per query. These
indexes hold every column those queries read, so the databases answer from the index
alone instead of visiting each (wide) table row; see docs/STATS.md for the measurements.
``ix_request_log_stats`` starts with created_at and so replaces the two indexes that did.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003_stats_indexes"
down_revision: str | None = "0002_edit"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATS_COLUMNS = [
    "created_at",
    "inference_method",
    "from_cache",
    "status_code",
    "endpoint",
    "processing_time_ms",
    "size_bytes",
    "cost",
    "user_id",
    "ip_address",
]
METHOD_COLUMNS = [
    "inference_method",
    "created_at",
    "provider",
    "model",
    "input_tokens",
    "output_tokens",
    "cost",
]
CATEGORY_COLUMNS = ["category", "created_at", "status_code", "image_hash"]


def upgrade() -> None:
    with op.batch_alter_table("request_log", schema=None) as batch_op:
        batch_op.create_index("ix_request_log_stats", STATS_COLUMNS, unique=False)
        batch_op.create_index("ix_request_log_method_stats", METHOD_COLUMNS, unique=False)
        batch_op.create_index("ix_request_log_category_stats", CATEGORY_COLUMNS, unique=False)
        batch_op.drop_index("ix_request_log_created_at")
        batch_op.drop_index("ix_request_log_created_at_method")
        batch_op.drop_index("ix_request_log_category_created_at")


def downgrade() -> None:
    with op.batch_alter_table("request_log", schema=None) as batch_op:
        batch_op.create_index(
            "ix_request_log_category_created_at", ["category", "created_at"], unique=False
        )
        batch_op.create_index(
            "ix_request_log_created_at_method", ["created_at", "inference_method"], unique=False
        )
        batch_op.create_index("ix_request_log_created_at", ["created_at"], unique=False)
        batch_op.drop_index("ix_request_log_category_stats")
        batch_op.drop_index("ix_request_log_method_stats")
        batch_op.drop_index("ix_request_log_stats")
