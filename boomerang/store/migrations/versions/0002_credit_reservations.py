"""credit reservations and tariff versions

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26

Adds `reservations` (credit set aside for running legs, rating/credit.py) and `tariffs.version`
(bumped by every change to a tariff's rates, so the processes caching rates reload them).
"""

import sqlalchemy as sa
from alembic import op

import boomerang.store.types

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reservations",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.String(length=36), nullable=False),
        sa.Column("leg_id", sa.String(length=36), nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "active", "settled", "released", name="reservation_state", native_enum=False, create_constraint=True
            ),
            nullable=False,
        ),
        sa.Column("granted_seconds", sa.Integer(), nullable=False),
        sa.Column("amount", boomerang.store.types.Money(), nullable=False),
        sa.Column("expires_at", boomerang.store.types.UTCDateTime(), nullable=False),
        sa.Column("rate_id", sa.Integer(), nullable=True),
        sa.Column("prefix", sa.String(length=15), nullable=False),
        sa.Column("destination", sa.String(length=100), nullable=False),
        sa.Column("price_per_minute", boomerang.store.types.Money(), nullable=False),
        sa.Column("connect_fee", boomerang.store.types.Money(), nullable=False),
        sa.Column("initial_increment", sa.Integer(), nullable=False),
        sa.Column("subsequent_increment", sa.Integer(), nullable=False),
        sa.Column("minimum_duration", sa.Integer(), nullable=False),
        sa.Column("grace_seconds", sa.Integer(), nullable=False),
        sa.Column(
            "rounding_mode",
            sa.Enum("up", "half_up", "down", name="rounding_mode", native_enum=False, create_constraint=True),
            nullable=False,
        ),
        sa.Column("rounding_digits", sa.Integer(), nullable=False),
        sa.Column("created_at", boomerang.store.types.UTCDateTime(), nullable=False),
        sa.Column("updated_at", boomerang.store.types.UTCDateTime(), nullable=False),
        sa.CheckConstraint("granted_seconds >= 0 AND amount >= 0", name=op.f("ck_reservations_amounts")),
        sa.CheckConstraint(
            "initial_increment > 0 AND subsequent_increment > 0", name=op.f("ck_reservations_increments")
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_reservations_account_id_accounts"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["leg_id"], ["call_legs.id"], name=op.f("fk_reservations_leg_id_call_legs"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["rate_id"], ["rates.id"], name=op.f("fk_reservations_rate_id_rates"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["callback_sessions.id"],
            name=op.f("fk_reservations_session_id_callback_sessions"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reservations")),
        sa.UniqueConstraint("leg_id", name=op.f("uq_reservations_leg_id")),
    )
    with op.batch_alter_table("reservations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_reservations_account_id_state_expires_at"),
            ["account_id", "state", "expires_at"],
            unique=False,
        )
        batch_op.create_index(batch_op.f("ix_reservations_session_id_state"), ["session_id", "state"], unique=False)

    # Existing tariffs start at version 1, as new ones do.
    with op.batch_alter_table("tariffs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("version", sa.Integer(), server_default="1", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("tariffs", schema=None) as batch_op:
        batch_op.drop_column("version")
    # Dropping the table drops its indexes.
    op.drop_table("reservations")
