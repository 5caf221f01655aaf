"""credit held for a callback's destination, unrated CDRs, and the last moment a leg was known up

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

import boomerang.store.types

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("reservations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("standby", boomerang.store.types.Money(), server_default="0", nullable=False))
    with op.batch_alter_table("cdrs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("unrated_reason", sa.String(length=32), nullable=True))
    with op.batch_alter_table("call_legs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("alive_at", boomerang.store.types.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("call_legs", schema=None) as batch_op:
        batch_op.drop_column("alive_at")
    with op.batch_alter_table("cdrs", schema=None) as batch_op:
        batch_op.drop_column("unrated_reason")
    with op.batch_alter_table("reservations", schema=None) as batch_op:
        batch_op.drop_column("standby")
