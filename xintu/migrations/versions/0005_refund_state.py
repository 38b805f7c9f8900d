"""refund state on orders

Revision ID: 0005_refund_state
Revises: 0004_stats_user_index

A refund WeChat Pay accepted may still be ``PROCESSING`` and end ``SUCCESS``, ``CLOSED`` or
``ABNORMAL`` (docs/BILLING.md). The order keeps WeChat Pay's last word and what the refund
took back, so that a refund that ends ``CLOSED`` can give exactly that back.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_refund_state"
down_revision: str | None = "0004_stats_user_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("payment_records", schema=None) as batch_op:
        batch_op.add_column(sa.Column("refund_status", sa.String(length=16), nullable=True))
        batch_op.add_column(
            sa.Column("refund_credits_taken", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column(
                "refund_member_seconds_taken", sa.Integer(), nullable=False, server_default="0"
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("payment_records", schema=None) as batch_op:
        batch_op.drop_column("refund_member_seconds_taken")
        batch_op.drop_column("refund_credits_taken")
        batch_op.drop_column("refund_status")
