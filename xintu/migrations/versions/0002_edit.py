"""edit task scheduling columns

Revision ID: 0002_edit
Revises: 0001

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import xintu.models.base

revision: str = "0002_edit"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("image_edit_tasks", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("credit_cost", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("available_at", xintu.models.base.UTCDateTime(), nullable=True)
        )
        batch_op.add_column(sa.Column("kicked_at", xintu.models.base.UTCDateTime(), nullable=True))
        batch_op.create_index(
            "ix_image_edit_tasks_status_available", ["status", "available_at"], unique=False
        )
        batch_op.create_index("ix_image_edit_tasks_expires_at", ["expires_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("image_edit_tasks", schema=None) as batch_op:
        batch_op.drop_index("ix_image_edit_tasks_expires_at")
        batch_op.drop_index("ix_image_edit_tasks_status_available")
        batch_op.drop_column("kicked_at")
        batch_op.drop_column("available_at")
        batch_op.drop_column("credit_cost")
