"""who decided a cache entry; client labels apart from user ids

Revision ID: 0006_cache_trust
Revises: 0004_stats_user_index

``image_classification_cache.verified``: the server hashed the classified bytes itself
(DESIGN §4.1), so the entry is authoritative; entries shared by a quorum of claims are not
and are replaced by such an answer. Existing entries start unverified: which of them came
from a server hash was not recorded.

``request_log.client_label``: the client's ``X-User-ID`` label, no longer written into
``user_id`` (which names accounts only), so that a label can never pose as a user in the
statistics. Existing labelled rows move their label over.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_cache_trust"
down_revision: str | None = "0010_video_cache"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("image_classification_cache", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("verified", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("request_log", schema=None) as batch_op:
        batch_op.add_column(sa.Column("client_label", sa.String(length=128), nullable=True))
    log = sa.table("request_log", sa.column("user_id"), sa.column("client_label"))
    op.execute(
        log.update()
        .where(log.c.user_id.is_not(None), log.c.user_id.not_like("user:%"))
        .values(client_label=log.c.user_id, user_id=None)
    )


def downgrade() -> None:
    log = sa.table("request_log", sa.column("user_id"), sa.column("client_label"))
    op.execute(
        log.update()
        .where(log.c.user_id.is_(None), log.c.client_label.is_not(None))
        .values(user_id=log.c.client_label)
    )
    with op.batch_alter_table("request_log", schema=None) as batch_op:
        batch_op.drop_column("client_label")
    with op.batch_alter_table("image_classification_cache", schema=None) as batch_op:
        batch_op.drop_column("verified")
