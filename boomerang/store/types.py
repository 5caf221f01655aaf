"""Column types that keep money exact and time in UTC on every database we support."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import BigInteger, DateTime
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

# Money is stored as a whole number of micro-units (1/1,000,000 of the currency unit). SQLite has no
# exact decimal type (SQLAlchemy would store floats there), integers are exact everywhere, and SUM()
# over them is exact in SQL. Six decimals carry per-second rating of sub-cent prices without loss.
MONEY_DECIMALS = 6
_MONEY_SCALE = 10**MONEY_DECIMALS
MONEY_QUANTUM = Decimal(1).scaleb(-MONEY_DECIMALS)


class MoneyPrecisionError(ValueError):
    """A money amount has more decimals than can be stored exactly."""


def to_micro_units(amount: Decimal | int) -> int:
    if isinstance(amount, float) or not isinstance(amount, Decimal | int):
        raise TypeError(f"money must be Decimal or int, not {type(amount).__name__}")
    scaled = Decimal(amount) * _MONEY_SCALE
    if scaled != scaled.to_integral_value():
        raise MoneyPrecisionError(f"{amount} has more than {MONEY_DECIMALS} decimals")
    return int(scaled)


def from_micro_units(units: int) -> Decimal:
    return (Decimal(units) / _MONEY_SCALE).quantize(MONEY_QUANTUM)


class Money(TypeDecorator[Decimal]):
    """Decimal in Python, integer micro-units in the database; refuses floats and lost precision."""

    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value: Decimal | int | None, dialect: Dialect) -> int | None:
        return None if value is None else to_micro_units(value)

    def process_result_value(self, value: int | None, dialect: Dialect) -> Decimal | None:
        return None if value is None else from_micro_units(int(value))


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes with microseconds; stored naive in UTC (MariaDB DATETIME(6))."""

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect):
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime())

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given where UTC is required")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)
