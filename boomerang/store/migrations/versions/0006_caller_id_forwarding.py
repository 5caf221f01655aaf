"""accounts choose whether each side of a call is shown the other's number

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("show_b_to_a", sa.Boolean(), server_default=sa.true(), nullable=False))
        batch_op.add_column(sa.Column("show_a_to_b", sa.Boolean(), server_default=sa.true(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_column("show_a_to_b")
        batch_op.drop_column("show_b_to_a")
