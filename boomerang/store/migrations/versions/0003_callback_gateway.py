"""callback sessions remember the carrier the request came in through

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("callback_sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("gateway_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_callback_sessions_gateway_id_gateways"),
            "gateways",
            ["gateway_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    with op.batch_alter_table("callback_sessions", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_callback_sessions_gateway_id_gateways"), type_="foreignkey")
        batch_op.drop_column("gateway_id")
