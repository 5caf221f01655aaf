"""The platform's data model (SQLAlchemy 2 typed declarative models).

Conventions: money columns are `Money` (exact Decimal, stored as integer micro-units); times are
`UTCDateTime`; telephone numbers are E.164 digits without "+"; enumerations are stored as short
strings guarded by CHECK constraints so both SQLite and MariaDB enforce them.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Enum,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
    true,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from boomerang.store.types import Money, UTCDateTime, utcnow

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

E164 = String(15)


def Key(length: int) -> String:  # noqa: N802  (used like the type it returns)
    """A string compared exactly: case, accents and trailing spaces count, on every database.

    MariaDB's default collations compare case-insensitively and ignore trailing spaces, which would
    make "Ref-1" and "ref-1 " the same ledger reference there but not on SQLite.
    """
    return String(length).with_variant(mysql.VARCHAR(length, collation="utf8mb4_nopad_bin"), "mysql", "mariadb")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), Decimal: Money()}


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    """A portable enum column: VARCHAR plus a CHECK constraint, storing the member's value."""
    return Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=max(len(m.value) for m in cls),
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )


def new_uuid() -> str:
    return str(uuid.uuid4())


# --- enumerations --------------------------------------------------------------------------------


class Role(enum.StrEnum):
    CUSTOMER = "customer"
    ADMIN = "admin"


class AccountStatus(enum.StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    CLOSED = "closed"


class CallerIdOrigin(enum.StrEnum):
    MANUAL = "manual"  # added by an operator or the customer in the portal
    PIN = "pin"  # saved after a correct PIN on a callback
    SMS = "sms"  # registered by an SMS "REG <PIN>"


class RoundingMode(enum.StrEnum):
    UP = "up"  # towards the customer paying more: the usual carrier rule
    HALF_UP = "half_up"
    DOWN = "down"


class NumberFormat(enum.StrEnum):
    E164 = "e164"  # 447700900123
    PLUS_E164 = "plus_e164"  # +447700900123
    NATIONAL = "national"  # 07700900123 (country code replaced by the national prefix)


class SmsEgress(enum.StrEnum):
    SIP = "sip"  # SIP MESSAGE through Kamailio
    KANNEL = "kannel"  # Kannel's sendsms HTTP interface


class CallbackKind(enum.StrEnum):
    ACCESS = "access"  # the caller dialled an access number
    WEB = "web"  # "connect two" from the portal or API
    SMS = "sms"  # an SMS command


class LegRole(enum.StrEnum):
    A = "A"  # the leg to the user being called back
    B = "B"  # a leg to a destination


class LegStatus(enum.StrEnum):
    QUEUED = "queued"
    DIALING = "dialing"
    RINGING = "ringing"
    ANSWERED = "answered"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    FAILED = "failed"
    CANCELLED = "cancelled"
    ENDED = "ended"


class ReservationState(enum.StrEnum):
    ACTIVE = "active"  # counts against the account's credit until it expires
    SETTLED = "settled"  # the leg was rated: its CDR and charge exist
    RELEASED = "released"  # given back unused (the leg was never answered, or the call refused)


class LedgerKind(enum.StrEnum):
    TOPUP = "topup"
    CHARGE = "charge"
    REFUND = "refund"
    ADJUSTMENT = "adjustment"


class SmsDirection(enum.StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class SmsChannel(enum.StrEnum):
    SIP = "sip"
    KANNEL = "kannel"
    WEBHOOK = "webhook"


class SmsStatus(enum.StrEnum):
    RECEIVED = "received"
    HANDLED = "handled"
    QUEUED = "queued"
    SENT = "sent"
    FAILED = "failed"


# --- rating --------------------------------------------------------------------------------------


class Tariff(Base):
    __tablename__ = "tariffs"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(Key(64), unique=True)
    currency: Mapped[str] = mapped_column(String(3))
    description: Mapped[str] = mapped_column(String(255), default="")
    # Bumped by every change to the tariff's rates, so processes caching them notice (rating/tariff_cache.py).
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    rates: Mapped[list[Rate]] = relationship(back_populates="tariff", cascade="all, delete-orphan")


class Rate(Base):
    """The price of calls to numbers starting with `prefix`, from `effective_from` on."""

    __tablename__ = "rates"
    __table_args__ = (
        UniqueConstraint("tariff_id", "prefix", "effective_from"),
        Index(None, "tariff_id", "prefix"),
        CheckConstraint("initial_increment > 0 AND subsequent_increment > 0", name="increments"),
        CheckConstraint("minimum_duration >= 0 AND grace_seconds >= 0", name="durations"),
        CheckConstraint("price_per_minute >= 0 AND connect_fee >= 0", name="prices"),
        CheckConstraint("rounding_digits BETWEEN 0 AND 6", name="rounding_digits"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    tariff_id: Mapped[int] = mapped_column(ForeignKey("tariffs.id", ondelete="CASCADE"))
    prefix: Mapped[str] = mapped_column(String(15))  # E.164 digits; "" would match everything
    destination: Mapped[str] = mapped_column(String(100))
    price_per_minute: Mapped[Decimal]
    connect_fee: Mapped[Decimal] = mapped_column(default=Decimal(0))
    initial_increment: Mapped[int] = mapped_column(Integer, default=60)  # seconds
    subsequent_increment: Mapped[int] = mapped_column(Integer, default=60)  # seconds
    minimum_duration: Mapped[int] = mapped_column(Integer, default=0)  # billed at least, seconds
    grace_seconds: Mapped[int] = mapped_column(Integer, default=0)  # calls this short are free
    rounding_mode: Mapped[RoundingMode] = mapped_column(_enum(RoundingMode, "rounding_mode"), default=RoundingMode.UP)
    rounding_digits: Mapped[int] = mapped_column(Integer, default=4)  # decimals of a call's cost
    effective_from: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    tariff: Mapped[Tariff] = relationship(back_populates="rates")


# --- accounts ------------------------------------------------------------------------------------


class Account(Base):
    __tablename__ = "accounts"
    __table_args__ = (
        CheckConstraint("credit_limit >= 0", name="credit_limit"),
        CheckConstraint("max_concurrent_calls >= 0", name="max_concurrent_calls"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    login: Mapped[str] = mapped_column(Key(64), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(255))  # argon2id; None: cannot sign in
    # Keyed digest (HMAC-SHA256 with the deployment secret) of the PIN: verifiable, unique across
    # accounts so a caller is identified by PIN alone, and never readable back.
    pin_digest: Mapped[str | None] = mapped_column(Key(64), unique=True)
    role: Mapped[Role] = mapped_column(_enum(Role, "role"), default=Role.CUSTOMER)
    status: Mapped[AccountStatus] = mapped_column(_enum(AccountStatus, "account_status"), default=AccountStatus.ACTIVE)
    currency: Mapped[str] = mapped_column(String(3))
    # Running total of this account's ledger entries, written only together with a ledger entry.
    balance: Mapped[Decimal] = mapped_column(default=Decimal(0))
    credit_limit: Mapped[Decimal] = mapped_column(default=Decimal(0))
    language: Mapped[str] = mapped_column(String(8), default="en")
    # Country calling code used to read national numbers the customer dials (e.g. "44").
    country_code: Mapped[str | None] = mapped_column(String(3))
    tariff_id: Mapped[int | None] = mapped_column(ForeignKey("tariffs.id", ondelete="RESTRICT"))
    # Tariff for the leg that calls the customer back; None: the account's tariff.
    callback_tariff_id: Mapped[int | None] = mapped_column(ForeignKey("tariffs.id", ondelete="RESTRICT"))
    max_concurrent_calls: Mapped[int] = mapped_column(Integer, default=2)
    # How many caller IDs the customer may authorize in the portal.
    max_caller_ids: Mapped[int] = mapped_column(Integer, default=5, server_default="5")
    # Caller ID: A (called back) is shown B's number, and B is shown A's; where a carrier refuses to
    # present numbers that are not the operator's, turn these off: that side sees the service number.
    show_b_to_a: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    show_a_to_b: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    tariff: Mapped[Tariff | None] = relationship(foreign_keys=[tariff_id])
    callback_tariff: Mapped[Tariff | None] = relationship(foreign_keys=[callback_tariff_id])
    caller_ids: Mapped[list[AuthorizedCallerId]] = relationship(back_populates="account", cascade="all, delete-orphan")


class AuthorizedCallerId(Base):
    """A caller ID that identifies its account without a PIN; one account per number."""

    __tablename__ = "authorized_caller_ids"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    number: Mapped[str] = mapped_column(E164, unique=True)
    origin: Mapped[CallerIdOrigin] = mapped_column(_enum(CallerIdOrigin, "caller_id_origin"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    account: Mapped[Account] = relationship(back_populates="caller_ids")


class LedgerEntry(Base):
    """Append-only: one row per balance change, each with a unique reference (idempotency key)."""

    __tablename__ = "ledger_entries"
    __table_args__ = (Index(None, "account_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="RESTRICT"))
    kind: Mapped[LedgerKind] = mapped_column(_enum(LedgerKind, "ledger_kind"))
    amount: Mapped[Decimal]  # positive credits the account, negative debits it
    balance_after: Mapped[Decimal]
    reference: Mapped[str] = mapped_column(Key(128), unique=True)
    description: Mapped[str] = mapped_column(String(255), default="")
    created_by: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# --- network -------------------------------------------------------------------------------------


class Gateway(Base):
    """A carrier's SIP gateway: where outbound legs go and whose traffic we trust by address."""

    __tablename__ = "gateways"
    __table_args__ = (CheckConstraint("strip_digits >= 0", name="strip_digits"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(Key(64), unique=True)
    uri: Mapped[str] = mapped_column(String(255))
    # IP address or CIDR network whose requests are accepted as coming from this carrier.
    trusted_source: Mapped[str | None] = mapped_column(String(64))
    priority: Mapped[int] = mapped_column(Integer, default=10)  # lower is tried first
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    strip_digits: Mapped[int] = mapped_column(Integer, default=0)
    add_prefix: Mapped[str] = mapped_column(String(16), default="")
    number_format: Mapped[NumberFormat] = mapped_column(_enum(NumberFormat, "number_format"), default=NumberFormat.E164)
    national_prefix: Mapped[str] = mapped_column(String(4), default="0")
    country_code: Mapped[str | None] = mapped_column(String(3))  # for number_format = national
    sms_egress: Mapped[SmsEgress] = mapped_column(_enum(SmsEgress, "sms_egress"), default=SmsEgress.SIP)
    kannel_sendsms_url: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AccessNumber(Base):
    """A number callers dial to be called back, with its callback settings."""

    __tablename__ = "access_numbers"
    __table_args__ = (
        CheckConstraint("ring_time_seconds BETWEEN 1 AND 60", name="ring_time"),
        CheckConstraint("callback_delay_seconds BETWEEN 0 AND 60", name="callback_delay"),
        CheckConstraint("retry_attempts BETWEEN 0 AND 10", name="retry_attempts"),
        CheckConstraint("retry_interval_seconds >= 0", name="retry_interval"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(E164, unique=True)
    label: Mapped[str] = mapped_column(String(100), default="")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    language: Mapped[str] = mapped_column(String(8), default="en")
    ring_time_seconds: Mapped[int] = mapped_column(Integer, default=5)  # before the busy reject
    callback_delay_seconds: Mapped[int] = mapped_column(Integer, default=3)  # reject to call back
    allow_pin: Mapped[bool] = mapped_column(Boolean, default=True)  # PIN prompt for unknown callers
    allow_ani: Mapped[bool] = mapped_column(Boolean, default=True)  # known caller ID skips the PIN
    known_callers_only: Mapped[bool] = mapped_column(Boolean, default=False)
    save_caller_id_on_pin: Mapped[bool] = mapped_column(Boolean, default=True)
    announce_balance: Mapped[bool] = mapped_column(Boolean, default=True)
    retry_attempts: Mapped[int] = mapped_column(Integer, default=0)  # extra tries when A fails
    retry_interval_seconds: Mapped[int] = mapped_column(Integer, default=30)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# --- calls ---------------------------------------------------------------------------------------


class CallbackSession(Base):
    """One callback from request to end: its legs, and the state of its call flow."""

    __tablename__ = "callback_sessions"
    __table_args__ = (Index(None, "state", "due_at"), Index(None, "account_id", "requested_at"))

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    kind: Mapped[CallbackKind] = mapped_column(_enum(CallbackKind, "callback_kind"))
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="RESTRICT"))
    access_number_id: Mapped[int | None] = mapped_column(ForeignKey("access_numbers.id", ondelete="SET NULL"))
    # The carrier the request came in through: the callback to the caller goes back through it.
    gateway_id: Mapped[int | None] = mapped_column(ForeignKey("gateways.id", ondelete="SET NULL"))
    caller_number: Mapped[str] = mapped_column(E164)
    # Where leg B goes, when the request named it (SMS "CB <number>", a web callback); else asked.
    destination_number: Mapped[str | None] = mapped_column(E164)
    # Call A, then B, and bridge them with no IVR (web callback, SMS "CB <A> <B>"); the account is known.
    connect_two: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Who asked for it wants it stopped: the controller running it hangs up whatever is up.
    cancel_requested_at: Mapped[datetime | None]
    # What caused the request (a trigger's Call-ID, an SMS id, an API request key): one session each.
    request_ref: Mapped[str | None] = mapped_column(Key(128), unique=True)
    state: Mapped[str] = mapped_column(String(32))
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    due_at: Mapped[datetime]  # when the callback is to be placed
    started_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    end_reason: Mapped[str | None] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, default=0)

    legs: Mapped[list[CallLeg]] = relationship(back_populates="session", order_by="CallLeg.created_at")


class CallLeg(Base):
    __tablename__ = "call_legs"
    __table_args__ = (UniqueConstraint("session_id", "role", "sequence"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    session_id: Mapped[str] = mapped_column(ForeignKey("callback_sessions.id", ondelete="CASCADE"))
    role: Mapped[LegRole] = mapped_column(_enum(LegRole, "leg_role"))
    sequence: Mapped[int] = mapped_column(Integer, default=0)  # A: attempt number; B: nth destination
    number: Mapped[str] = mapped_column(E164)
    caller_id: Mapped[str] = mapped_column(String(32), default="")
    gateway_id: Mapped[int | None] = mapped_column(ForeignKey("gateways.id", ondelete="SET NULL"))
    sip_call_id: Mapped[str | None] = mapped_column(Key(128), unique=True)
    status: Mapped[LegStatus] = mapped_column(_enum(LegStatus, "leg_status"), default=LegStatus.QUEUED)
    sip_code: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    answered_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    hangup_by: Mapped[str | None] = mapped_column(String(16))  # "party", "platform" or "peer"
    hangup_cause: Mapped[str | None] = mapped_column(String(64))
    # The last moment the controller running the leg knew it was up (a heartbeat while it runs):
    # a leg interrupted by an outage is billed to here, not to whenever the platform came back.
    alive_at: Mapped[datetime | None]
    # The SIP dialog of an answered leg as Kamailio reported it (JSON): what a Kamailio that
    # restarted is taught back to reach the leg, by whichever controller runs it then.
    sip_dialog: Mapped[str | None] = mapped_column(Text)

    session: Mapped[CallbackSession] = relationship(back_populates="legs")
    events: Mapped[list[LegEvent]] = relationship(back_populates="leg", order_by="LegEvent.id")


class LegEvent(Base):
    """The status timeline of a leg: one row per change, in order."""

    __tablename__ = "leg_events"
    __table_args__ = (Index(None, "leg_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    leg_id: Mapped[str] = mapped_column(ForeignKey("call_legs.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    status: Mapped[LegStatus] = mapped_column(_enum(LegStatus, "leg_status"))
    sip_code: Mapped[int | None] = mapped_column(Integer)
    detail: Mapped[str] = mapped_column(String(255), default="")

    leg: Mapped[CallLeg] = relationship(back_populates="events")


class Cdr(Base):
    """The rated record of one answered leg; one per leg, so a leg is never billed twice."""

    __tablename__ = "cdrs"
    __table_args__ = (
        Index(None, "account_id", "answer_time"),
        CheckConstraint("billed_seconds >= 0 AND duration_seconds >= 0", name="durations"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    leg_id: Mapped[str] = mapped_column(ForeignKey("call_legs.id", ondelete="RESTRICT"), unique=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("callback_sessions.id", ondelete="RESTRICT"))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="RESTRICT"))
    role: Mapped[LegRole] = mapped_column(_enum(LegRole, "leg_role"))
    number: Mapped[str] = mapped_column(E164)
    destination: Mapped[str] = mapped_column(String(100), default="")
    answer_time: Mapped[datetime]
    end_time: Mapped[datetime]
    duration_seconds: Mapped[int] = mapped_column(Integer)
    billed_seconds: Mapped[int] = mapped_column(Integer)
    rate_id: Mapped[int | None] = mapped_column(ForeignKey("rates.id", ondelete="SET NULL"))
    # The rate's prices as applied, kept so the CDR stays explainable when the rate changes.
    price_per_minute: Mapped[Decimal]
    connect_fee: Mapped[Decimal]
    cost: Mapped[Decimal]
    currency: Mapped[str] = mapped_column(String(3))
    rated_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Why an answered leg was recorded at no cost although it was not free ("no_rate": nothing in
    # its tariff rated it); None for a leg rated as usual. Operators are alerted to these.
    unrated_reason: Mapped[str | None] = mapped_column(String(32))


class Reservation(Base):
    """Credit set aside for one leg while it may run (rating/credit.py).

    An account's available credit is its balance plus its credit limit minus the amounts of its
    active reservations that have not expired. `amount` is the cost of the leg lasting
    `granted_seconds`, at the price copied here when the leg was authorized: a price change during
    the call does not change what the call was promised. Every change to an account's reservations
    is made holding that account's row lock.
    """

    __tablename__ = "reservations"
    __table_args__ = (
        Index(None, "account_id", "state", "expires_at"),
        Index(None, "session_id", "state"),
        CheckConstraint("granted_seconds >= 0 AND amount >= 0", name="amounts"),
        CheckConstraint("initial_increment > 0 AND subsequent_increment > 0", name="increments"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="RESTRICT"))
    session_id: Mapped[str] = mapped_column(ForeignKey("callback_sessions.id", ondelete="RESTRICT"))
    leg_id: Mapped[str] = mapped_column(ForeignKey("call_legs.id", ondelete="RESTRICT"), unique=True)
    state: Mapped[ReservationState] = mapped_column(
        _enum(ReservationState, "reservation_state"), default=ReservationState.ACTIVE
    )
    granted_seconds: Mapped[int] = mapped_column(Integer)  # of the leg's talk time, from its answer
    amount: Mapped[Decimal]  # held in all: the cost of granted_seconds, plus the standby
    # Held on leg A of a callback whose destination is not known yet, for that destination's first
    # increment; handed to leg B when it is reserved.
    standby: Mapped[Decimal] = mapped_column(default=Decimal(0), server_default="0")
    expires_at: Mapped[datetime]
    # The rate as authorized.
    rate_id: Mapped[int | None] = mapped_column(ForeignKey("rates.id", ondelete="SET NULL"))
    prefix: Mapped[str] = mapped_column(String(15))
    destination: Mapped[str] = mapped_column(String(100))
    price_per_minute: Mapped[Decimal]
    connect_fee: Mapped[Decimal]
    initial_increment: Mapped[int] = mapped_column(Integer)
    subsequent_increment: Mapped[int] = mapped_column(Integer)
    minimum_duration: Mapped[int] = mapped_column(Integer)
    grace_seconds: Mapped[int] = mapped_column(Integer)
    rounding_mode: Mapped[RoundingMode] = mapped_column(_enum(RoundingMode, "rounding_mode"))
    rounding_digits: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class SmsMessage(Base):
    """Every SMS received or sent; a duplicate delivery of one inbound message is stored once."""

    __tablename__ = "sms_messages"
    __table_args__ = (
        UniqueConstraint("direction", "channel", "external_id"),
        Index(None, "created_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    direction: Mapped[SmsDirection] = mapped_column(_enum(SmsDirection, "sms_direction"))
    channel: Mapped[SmsChannel] = mapped_column(_enum(SmsChannel, "sms_channel"))
    gateway_id: Mapped[int | None] = mapped_column(ForeignKey("gateways.id", ondelete="SET NULL"))
    external_id: Mapped[str | None] = mapped_column(Key(128))  # the carrier's message id
    sender: Mapped[str] = mapped_column(String(32))
    receiver: Mapped[str] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(Text)
    status: Mapped[SmsStatus] = mapped_column(_enum(SmsStatus, "sms_status"))
    in_reply_to_id: Mapped[int | None] = mapped_column(ForeignKey("sms_messages.id", ondelete="SET NULL"))
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


# --- portal sign-in ------------------------------------------------------------------------------


class PortalSession(Base):
    """A signed-in browser: the cookie holds a random token, the database only its SHA-256 digest."""

    __tablename__ = "portal_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_digest: Mapped[str] = mapped_column(Key(64), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    remote_addr: Mapped[str] = mapped_column(String(45), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]


class ApiToken(Base):
    """A bearer token for API clients; like sessions, only its digest is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    token_digest: Mapped[str] = mapped_column(Key(64), unique=True)
    hint: Mapped[str] = mapped_column(String(12))  # the token's first characters, to recognise it
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]


class LoginThrottle(Base):
    """Failed sign-ins counted per login and per source address, and the lock-out they led to."""

    __tablename__ = "login_throttles"
    __table_args__ = (UniqueConstraint("scope", "subject"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    scope: Mapped[str] = mapped_column(String(16))  # "login" or "address"
    subject: Mapped[str] = mapped_column(Key(128))
    failures: Mapped[int] = mapped_column(Integer, default=0)
    window_started_at: Mapped[datetime] = mapped_column(default=utcnow)
    locked_until: Mapped[datetime | None]
