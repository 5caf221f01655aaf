"""callback sessions may name their destination up front (SMS "CB <number>", web callbacks), and
may be "connect two" calls (A, then B, bridged, no IVR), and may be cancelled by who asked for them

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

from boomerang.store.types import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("callback_sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("destination_number", sa.String(length=15), nullable=True))
        batch_op.add_column(sa.Column("connect_two", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column("cancel_requested_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("callback_sessions", schema=None) as batch_op:
        batch_op.drop_column("cancel_requested_at")
        batch_op.drop_column("connect_two")
        batch_op.drop_column("destination_number")
