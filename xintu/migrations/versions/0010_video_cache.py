"""whole-video answers in the classification cache

Revision ID: 0010_video_cache
Revises: 0004_stats_user_index

A video's answer is cached under its hash like an image's (check-cache answers both); the
per-frame results and the duration it needs are kept beside it as JSON text (docs/VIDEO.md).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_video_cache"
down_revision: str | None = "0005_refund_state"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("image_classification_cache", schema=None) as batch_op:
        batch_op.add_column(sa.Column("video_details", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("image_classification_cache", schema=None) as batch_op:
        batch_op.drop_column("video_details")
