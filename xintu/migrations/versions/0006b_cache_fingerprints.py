"""perceptual fingerprints of cache entries

Revision ID: 0006b_cache_fingerprints
Revises: 0006_cache_trust

The 64-bit pHash of the upload an entry was decided on, its four 16-bit bands (one index
each: a near-duplicate lookup reads the entries sharing a band, then checks the Hamming
distance) and a 4×4 colour thumbnail (48 bytes). Never an image.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006b_cache_fingerprints"
down_revision: str | None = "0006_cache_trust"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BANDS = [f"phash_band{band}" for band in range(4)]


def upgrade() -> None:
    with op.batch_alter_table("image_classification_cache", schema=None) as batch_op:
        batch_op.add_column(sa.Column("phash", sa.BigInteger(), nullable=True))
        for band in BANDS:
            batch_op.add_column(sa.Column(band, sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("thumb", sa.LargeBinary(), nullable=True))
        for band in BANDS:
            batch_op.create_index(f"ix_image_classification_cache_{band}", [band], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("image_classification_cache", schema=None) as batch_op:
        for band in BANDS:
            batch_op.drop_index(f"ix_image_classification_cache_{band}")
        for column in ["thumb", *reversed(BANDS), "phash"]:
            batch_op.drop_column(column)
