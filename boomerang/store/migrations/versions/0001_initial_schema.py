"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

import boomerang.store.types

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "access_numbers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=15), nullable=False),
        sa.Column("label", sa.String(length=100), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("ring_time_seconds", sa.Integer(), nullable=False),
        sa.Column("callback_delay_seconds", sa.Integer(), nullable=False),
        sa.Column("allow_pin", sa.Boolean(), nullable=False),
        sa.Column("allow_ani", sa.Boolean(), nullable=False),
        sa.Column("known_callers_only", sa.Boolean(), nullable=False),
        sa.Column("save_caller_id_on_pin", sa.Boolean(), nullable=False),
        sa.Column("announce_balance", sa.Boolean(), nullable=False),
        sa.Column("retry_attempts", sa.Integer(), nullable=False),
        sa.Column("retry_interval_seconds", sa.Integer(), nullable=False),
        sa.Column("created_at", boomerang.store.types.UTCDateTime(), nullable=False),
        sa.CheckConstraint("callback_delay_seconds BETWEEN 0 AND 60", name=op.f("ck_access_numbers_callback_delay")),
        sa.CheckConstraint("retry_attempts BETWEEN 0 AND 10", name=op.f("ck_access_numbers_retry_attempts")),
        sa.CheckConstraint("retry_interval_seconds >= 0", name=op.f("ck_access_numbers_retry_interval")),
        sa.CheckConstraint("ring_time_seconds BETWEEN 1 AND 60", name=op.f("ck_access_numbers_ring_time")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_numbers")),
        sa.UniqueConstraint("number", name=op.f("uq_access_numbers_number")),
    )
    op.create_table(
        "gateways",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "name",
            sa.String(length=64)
            .with_variant(mysql.VARCHAR(collation="utf8mb4_nopad_bin", length=64), "mariadb")
            .with_variant(mysql.VARCHAR(collation="utf8mb4_nopad_bin", length=64), "mysql"),
            nullable=False,
        ),
        sa.Column("uri", sa.String(length=255), nullable=False),
        sa.Column("trusted_source", sa.String(length=64), nullable=True),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("strip_digits", sa.Integer(), nullable=False),
        sa.Column("add_prefix", sa.String(length=16), nullable=False),
        sa.Column(
            "number_format",
            sa.Enum("e164", "plus_e164", "national", name="number_format", native_enum=False, create_constraint=True),
            nullable=False,
        ),
        sa.Column("national_prefix", sa.String(length=4), nullable=False),
        sa.Column("country_code", sa.String(length=3), nullable=True),
        sa.Column(
            "sms_egress",
            sa.Enum("sip", "kannel", name="sms_egress", native_enum=False, create_constraint=True),
            nullable=False,
        ),
        sa.Column("kannel_sendsms_url", sa.String(length=255), nullable=True),
        sa.Column("created_at", boomerang.store.types.UTCDateTime(), nullable=False),
        sa.CheckConstraint("strip_digits >= 0", name=op.f("ck_gateways_strip_digits")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gateways")),
        sa.UniqueConstraint("name", name=op.f("uq_gateways_name")),
    )
    op.create_table(
        "tariffs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "name",
            sa.String(length=64)
            .with_variant(mysql.VARCHAR(collation="utf8mb4_nopad_bin", length=64), "mariadb")
            .with_variant(mysql.VARCHAR(collation="utf8mb4_nopad_bin", length=64), "mysql"),
            nullable=False,
        ),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("description", sa.String(length=255), nullable=False),
        sa.Column("created_at", boomerang.store.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tariffs")),
        sa.UniqueConstraint("name", name=op.f("uq_tariffs_name")),
    )
    op.create_table(
        "accounts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "login",
            sa.String(length=64)
            .with_variant(mysql.VARCHAR(collation="utf8mb4_nopad_bin", length=64), "mariadb")
            .with_variant(mysql.VARCHAR(collation="utf8mb4_nopad_bin", length=64), "mysql"),
            nullable=False,
        ),
        sa.Column("password_hash", sa.String(length=255), nullable=True),
        sa.Column(
            "pin_digest",
            sa.String(length=64)
            .with_variant(mysql.VARCHAR(collation="utf8mb4_nopad_bin", length=64), "mariadb")
            .with_variant(mysql.VARCHAR(collation="utf8mb4_nopad_bin", length=64), "mysql"),
            nullable=True,
        ),
        sa.Column(
            "role", sa.Enum("customer", "admin", name="role", native_enum=False, create_constraint=True), nullable=False
        ),
        sa.Column(
            "status",
            sa.Enum("active", "suspended", "closed", name="account_status", native_enum=False, create_constraint=True),
            nullable=False,
        ),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("balance", boomerang.store.types.Money(), nullable=False),
        sa.Column("credit_limit", boomerang.store.types.Money(), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("country_code", sa.String(length=3), nullable=True),
        sa.Column("tariff_id", sa.Integer(), nullable=True),
        sa.Column("callback_tariff_id", sa.Integer(), nullable=True),
        sa.Column("max_concurrent_calls", sa.Integer(), nullable=False),
        sa.Column("created_at", boomerang.store.types.UTCDateTime(), nullable=False),
        sa.Column("updated_at", boomerang.store.types.UTCDateTime(), nullable=False),
        sa.CheckConstraint("credit_limit >= 0", name=op.f("ck_accounts_credit_limit")),
        sa.CheckConstraint("max_concurrent_calls >= 0", name=op.f("ck_accounts_max_concurrent_calls")),
        sa.ForeignKeyConstraint(
            ["callback_tariff_id"],
            ["tariffs.id"],
            name=op.f("fk_accounts_callback_tariff_id_tariffs"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["tariff_id"], ["tariffs.id"], name=op.f("fk_accounts_tariff_id_tariffs"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounts")),
        sa.UniqueConstraint("login", name=op.f("uq_accounts_login")),
        sa.UniqueConstraint("pin_digest", name=op.f("uq_accounts_pin_digest")),
    )
    op.create_table(
        "rates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tariff_id", sa.Integer(), nullable=False),
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
        sa.Column("effective_from", boomerang.store.types.UTCDateTime(), nullable=False),
        sa.Column("created_at", boomerang.store.types.UTCDateTime(), nullable=False),
        sa.CheckConstraint("initial_increment > 0 AND subsequent_increment > 0", name=op.f("ck_rates_increments")),
        sa.CheckConstraint("minimum_duration >= 0 AND grace_seconds >= 0", name=op.f("ck_rates_durations")),
        sa.CheckConstraint("price_per_minute >= 0 AND connect_fee >= 0", name=op.f("ck_rates_prices")),
        sa.CheckConstraint("rounding_digits BETWEEN 0 AND 6", name=op.f("ck_rates_rounding_digits")),
        sa.ForeignKeyConstraint(
            ["tariff_id"], ["tariffs.id"], name=op.f("fk_rates_tariff_id_tariffs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rates")),
        sa.UniqueConstraint(
            "tariff_id", "prefix", "effective_from", name=op.f("uq_rates_tariff_id_prefix_effective_from")
        ),
    )
    with op.batch_alter_table("rates", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_rates_tariff_id_prefix"), ["tariff_id", "prefix"], unique=False)

    op.create_table(
        "authorized_caller_ids",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=15), nullable=False),
        sa.Column(
            "origin",
            sa.Enum("manual", "pin", "sms", name="caller_id_origin", native_enum=False, create_constraint=True),
            nullable=False,
        ),
        sa.Column("created_at", boomerang.store.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_authorized_caller_ids_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_authorized_caller_ids")),
        sa.UniqueConstraint("number", name=op.f("uq_authorized_caller_ids_number")),
    )
    with op.batch_alter_table("authorized_caller_ids", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_authorized_caller_ids_account_id"), ["account_id"], unique=False)

    op.create_table(
        "callback_sessions",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column(
            "kind",
            sa.Enum("access", "web", "sms", name="callback_kind", native_enum=False, create_constraint=True),
            nullable=False,
        ),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("access_number_id", sa.Integer(), nullable=True),
        sa.Column("caller_number", sa.String(length=15), nullable=False),
        sa.Column(
            "request_ref",
            sa.String(length=128)
            .with_variant(mysql.VARCHAR(collation="utf8mb4_nopad_bin", length=128), "mariadb")
            .with_variant(mysql.VARCHAR(collation="utf8mb4_nopad_bin", length=128), "mysql"),
            nullable=True,
        ),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("requested_at", boomerang.store.types.UTCDateTime(), nullable=False),
        sa.Column("due_at", boomerang.store.types.UTCDateTime(), nullable=False),
        sa.Column("started_at", boomerang.store.types.UTCDateTime(), nullable=True),
        sa.Column("ended_at", boomerang.store.types.UTCDateTime(), nullable=True),
        sa.Column("end_reason", sa.String(length=64), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["access_number_id"],
            ["access_numbers.id"],
            name=op.f("fk_callback_sessions_access_number_id_access_numbers"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_callback_sessions_account_id_accounts"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_callback_sessions")),
        sa.UniqueConstraint("request_ref", name=op.f("uq_callback_sessions_request_ref")),
    )
    with op.batch_alter_table("callback_sessions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_callback_sessions_account_id_requested_at"), ["account_id", "requested_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_callback_sessions_state_due_at"), ["state", "due_at"], unique=False)

    op.create_table(
        "ledger_entries",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "topup", "charge", "refund", "adjustment", name="ledger_kind", native_enum=False, create_constraint=True
            ),
            nullable=False,
        ),
        sa.Column("amount", boomerang.store.types.Money(), nullable=False),
        sa.Column("balance_after", boomerang.store.types.Money(), nullable=False),
        sa.Column(
            "reference",
            sa.String(length=128)
            .with_variant(mysql.VARCHAR(collation="utf8mb4_nopad_bin", length=128), "mariadb")
            .with_variant(mysql.VARCHAR(collation="utf8mb4_nopad_bin", length=128), "mysql"),
            nullable=False,
        ),
        sa.Column("description", sa.String(length=255), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", boomerang.store.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_ledger_entries_account_id_accounts"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_entries")),
        sa.UniqueConstraint("reference", name=op.f("uq_ledger_entries_reference")),
    )
    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ledger_entries_account_id_id"), ["account_id", "id"], unique=False)

    op.create_table(
        "sms_messages",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "direction",
            sa.Enum("inbound", "outbound", name="sms_direction", native_enum=False, create_constraint=True),
            nullable=False,
        ),
        sa.Column(
            "channel",
            sa.Enum("sip", "kannel", "webhook", name="sms_channel", native_enum=False, create_constraint=True),
            nullable=False,
        ),
        sa.Column("gateway_id", sa.Integer(), nullable=True),
        sa.Column(
            "external_id",
            sa.String(length=128)
            .with_variant(mysql.VARCHAR(collation="utf8mb4_nopad_bin", length=128), "mariadb")
            .with_variant(mysql.VARCHAR(collation="utf8mb4_nopad_bin", length=128), "mysql"),
            nullable=True,
        ),
        sa.Column("sender", sa.String(length=32), nullable=False),
        sa.Column("receiver", sa.String(length=32), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "received",
                "handled",
                "queued",
                "sent",
                "failed",
                name="sms_status",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("in_reply_to_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("created_at", boomerang.store.types.UTCDateTime(), nullable=False),
        sa.Column("updated_at", boomerang.store.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_sms_messages_account_id_accounts"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["gateway_id"], ["gateways.id"], name=op.f("fk_sms_messages_gateway_id_gateways"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["in_reply_to_id"],
            ["sms_messages.id"],
            name=op.f("fk_sms_messages_in_reply_to_id_sms_messages"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sms_messages")),
        sa.UniqueConstraint(
            "direction", "channel", "external_id", name=op.f("uq_sms_messages_direction_channel_external_id")
        ),
    )
    with op.batch_alter_table("sms_messages", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sms_messages_created_at"), ["created_at"], unique=False)

    op.create_table(
        "call_legs",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("session_id", sa.String(length=36), nullable=False),
        sa.Column(
            "role", sa.Enum("A", "B", name="leg_role", native_enum=False, create_constraint=True), nullable=False
        ),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=15), nullable=False),
        sa.Column("caller_id", sa.String(length=32), nullable=False),
        sa.Column("gateway_id", sa.Integer(), nullable=True),
        sa.Column(
            "sip_call_id",
            sa.String(length=128)
            .with_variant(mysql.VARCHAR(collation="utf8mb4_nopad_bin", length=128), "mariadb")
            .with_variant(mysql.VARCHAR(collation="utf8mb4_nopad_bin", length=128), "mysql"),
            nullable=True,
        ),
        sa.Column(
            "status",
            sa.Enum(
                "queued",
                "dialing",
                "ringing",
                "answered",
                "busy",
                "no_answer",
                "failed",
                "cancelled",
                "ended",
                name="leg_status",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("sip_code", sa.Integer(), nullable=True),
        sa.Column("created_at", boomerang.store.types.UTCDateTime(), nullable=False),
        sa.Column("answered_at", boomerang.store.types.UTCDateTime(), nullable=True),
        sa.Column("ended_at", boomerang.store.types.UTCDateTime(), nullable=True),
        sa.Column("hangup_by", sa.String(length=16), nullable=True),
        sa.Column("hangup_cause", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["gateway_id"], ["gateways.id"], name=op.f("fk_call_legs_gateway_id_gateways"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["callback_sessions.id"],
            name=op.f("fk_call_legs_session_id_callback_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_call_legs")),
        sa.UniqueConstraint("session_id", "role", "sequence", name=op.f("uq_call_legs_session_id_role_sequence")),
        sa.UniqueConstraint("sip_call_id", name=op.f("uq_call_legs_sip_call_id")),
    )
    op.create_table(
        "cdrs",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("leg_id", sa.String(length=36), nullable=False),
        sa.Column("session_id", sa.String(length=36), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column(
            "role", sa.Enum("A", "B", name="leg_role", native_enum=False, create_constraint=True), nullable=False
        ),
        sa.Column("number", sa.String(length=15), nullable=False),
        sa.Column("destination", sa.String(length=100), nullable=False),
        sa.Column("answer_time", boomerang.store.types.UTCDateTime(), nullable=False),
        sa.Column("end_time", boomerang.store.types.UTCDateTime(), nullable=False),
        sa.Column("duration_seconds", sa.Integer(), nullable=False),
        sa.Column("billed_seconds", sa.Integer(), nullable=False),
        sa.Column("rate_id", sa.Integer(), nullable=True),
        sa.Column("price_per_minute", boomerang.store.types.Money(), nullable=False),
        sa.Column("connect_fee", boomerang.store.types.Money(), nullable=False),
        sa.Column("cost", boomerang.store.types.Money(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("rated_at", boomerang.store.types.UTCDateTime(), nullable=False),
        sa.CheckConstraint("billed_seconds >= 0 AND duration_seconds >= 0", name=op.f("ck_cdrs_durations")),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_cdrs_account_id_accounts"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["leg_id"], ["call_legs.id"], name=op.f("fk_cdrs_leg_id_call_legs"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(["rate_id"], ["rates.id"], name=op.f("fk_cdrs_rate_id_rates"), ondelete="SET NULL"),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["callback_sessions.id"],
            name=op.f("fk_cdrs_session_id_callback_sessions"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cdrs")),
        sa.UniqueConstraint("leg_id", name=op.f("uq_cdrs_leg_id")),
    )
    with op.batch_alter_table("cdrs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_cdrs_account_id_answer_time"), ["account_id", "answer_time"], unique=False)

    op.create_table(
        "leg_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("leg_id", sa.String(length=36), nullable=False),
        sa.Column("at", boomerang.store.types.UTCDateTime(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "queued",
                "dialing",
                "ringing",
                "answered",
                "busy",
                "no_answer",
                "failed",
                "cancelled",
                "ended",
                name="leg_status",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("sip_code", sa.Integer(), nullable=True),
        sa.Column("detail", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(
            ["leg_id"], ["call_legs.id"], name=op.f("fk_leg_events_leg_id_call_legs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_leg_events")),
    )
    with op.batch_alter_table("leg_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_leg_events_leg_id_id"), ["leg_id", "id"], unique=False)


def downgrade() -> None:
    # Dropping a table drops its indexes; dependents go first so foreign keys never block.
    for table in (
        "leg_events",
        "cdrs",
        "call_legs",
        "sms_messages",
        "ledger_entries",
        "callback_sessions",
        "authorized_caller_ids",
        "rates",
        "accounts",
        "tariffs",
        "gateways",
        "access_numbers",
    ):
        op.drop_table(table)
