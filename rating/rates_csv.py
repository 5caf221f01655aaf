"""Rates as CSV: the documented exchange format for importing and exporting a tariff's rates.

Format (UTF-8, comma separated, a header row naming the columns, in any order):

    prefix,destination,price_per_minute[,connect_fee,initial_increment,subsequent_increment,
    minimum_duration,grace_seconds,rounding_mode,rounding_digits,effective_from]

- prefix: E.164 digits the destination number starts with (longest prefix wins), e.g. 44 or 4477
- destination: a name shown to users, e.g. "United Kingdom mobile"
- price_per_minute, connect_fee: decimal amounts in the tariff's currency (at most 6 decimals)
- initial_increment, subsequent_increment: billing increments in seconds (60/60, 30/6, 1/1...)
- minimum_duration: a call is billed at least this many seconds; grace_seconds: calls up to this
  long are free
- rounding_mode: up, half_up or down, applied to a call's cost at rounding_digits decimals
- effective_from: date (2027-01-01) or ISO time, UTC unless it carries an offset; empty means the
  rate has always applied. A later effective_from for the same prefix schedules a price change.

Optional columns take the defaults of `RateRow`. Import is all or nothing: every bad line is
reported with its line number and, if there is one, nothing from the file is applied.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from sqlalchemy import select
from sqlalchemy.orm import Session

from boomerang.store.models import Rate, RoundingMode, Tariff
from boomerang.store.types import MONEY_DECIMALS
from rating.tariff_cache import bump_version

ALWAYS = datetime(1970, 1, 1, tzinfo=UTC)
MAX_REPORTED_ERRORS = 20


@dataclass(frozen=True)
class RateRow:
    prefix: str
    destination: str
    price_per_minute: Decimal
    connect_fee: Decimal = Decimal(0)
    initial_increment: int = 60
    subsequent_increment: int = 60
    minimum_duration: int = 0
    grace_seconds: int = 0
    rounding_mode: RoundingMode = RoundingMode.UP
    rounding_digits: int = 4
    effective_from: datetime = ALWAYS


COLUMNS = [f.name for f in fields(RateRow)]
REQUIRED = ["prefix", "destination", "price_per_minute"]


class RatesCsvError(ValueError):
    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


def _money(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"{text!r} is not a decimal amount") from None
    if not value.is_finite() or value < 0:
        raise ValueError(f"{text!r} must be a non-negative amount")
    if value != value.quantize(Decimal(1).scaleb(-MONEY_DECIMALS)):
        raise ValueError(f"{text!r} has more than {MONEY_DECIMALS} decimals")
    return value


def _seconds(low: int, high: int):
    def parse(text: str) -> int:
        if not (text.isascii() and text.isdigit()) or not low <= int(text) <= high:
            raise ValueError(f"{text!r} must be a whole number from {low} to {high}")
        return int(text)

    return parse


def _prefix(text: str) -> str:
    if not (text.isascii() and text.isdigit()) or len(text) > 15:
        raise ValueError(f"{text!r} must be 1 to 15 digits")
    return text


def _destination(text: str) -> str:
    if not text or len(text) > 100:
        raise ValueError("must be 1 to 100 characters")
    return text


def _rounding_mode(text: str) -> RoundingMode:
    try:
        return RoundingMode(text.lower())
    except ValueError:
        raise ValueError(f"{text!r} must be one of {', '.join(m.value for m in RoundingMode)}") from None


def _effective_from(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not a date (2027-01-01) or ISO time") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


_PARSERS = {
    "prefix": _prefix,
    "destination": _destination,
    "price_per_minute": _money,
    "connect_fee": _money,
    "initial_increment": _seconds(1, 3600),
    "subsequent_increment": _seconds(1, 3600),
    "minimum_duration": _seconds(0, 3600),
    "grace_seconds": _seconds(0, 3600),
    "rounding_mode": _rounding_mode,
    "rounding_digits": _seconds(0, MONEY_DECIMALS),
    "effective_from": _effective_from,
}


def parse(text: str) -> list[RateRow]:
    """Every row of the file, or RatesCsvError listing each bad line."""
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    try:
        return _parse_rows(reader)
    except csv.Error as exc:  # text the csv module cannot read, e.g. a field over its size limit
        raise RatesCsvError([f"line {reader.line_num}: {exc}"]) from None


def _parse_rows(reader) -> list[RateRow]:
    header = [name.strip().lower() for name in next(reader, [])]
    if not header:
        raise RatesCsvError(["line 1: the file is empty; a header row is required"])
    unknown = [name for name in header if name not in _PARSERS]
    missing = [name for name in REQUIRED if name not in header]
    duplicated = {name for name in header if header.count(name) > 1}
    if unknown or missing or duplicated:
        problems = [f"unknown column {name!r}" for name in unknown]
        problems += [f"missing column {name!r}" for name in missing]
        problems += [f"column {name!r} appears twice" for name in sorted(duplicated)]
        raise RatesCsvError([f"line 1: {'; '.join(problems)} (columns: {', '.join(COLUMNS)})"])

    rows: list[RateRow] = []
    problems: list[str] = []
    seen: dict[tuple[str, datetime], int] = {}
    for cells in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) != len(header):
            problems.append(f"line {line}: {len(cells)} fields, expected {len(header)}")
            continue
        values = {}
        line_ok = True
        for name, cell in zip(header, cells, strict=True):
            cell = cell.strip()
            if not cell:
                if name in REQUIRED:
                    problems.append(f"line {line}: {name}: required")
                    line_ok = False
                continue  # an optional column left empty takes its default
            try:
                values[name] = _PARSERS[name](cell)
            except ValueError as exc:
                problems.append(f"line {line}: {name}: {exc}")
                line_ok = False
        if not line_ok:
            continue
        row = RateRow(**values)
        key = (row.prefix, row.effective_from)
        if key in seen:
            problems.append(f"line {line}: prefix {row.prefix} with this effective_from is also on line {seen[key]}")
            continue
        seen[key] = line
        rows.append(row)
    if problems:
        shown = problems[:MAX_REPORTED_ERRORS]
        if len(problems) > MAX_REPORTED_ERRORS:
            shown.append(f"... and {len(problems) - MAX_REPORTED_ERRORS} more problems")
        raise RatesCsvError(shown)
    return rows


def apply(session: Session, tariff: Tariff, rows: Iterable[RateRow]) -> tuple[int, int]:
    """Add the rows to the tariff; a row for an existing (prefix, effective_from) replaces it.

    Returns (added, replaced). Runs inside the caller's transaction, so a failure applies nothing.
    Bumps the tariff's version, so processes caching its rates reload them.
    """
    existing = {
        (rate.prefix, rate.effective_from): rate
        for rate in session.execute(select(Rate).where(Rate.tariff_id == tariff.id)).scalars()
    }
    added = replaced = 0
    for row in rows:
        values = {name: getattr(row, name) for name in COLUMNS}
        rate = existing.get((row.prefix, row.effective_from))
        if rate is None:
            session.add(Rate(tariff_id=tariff.id, **values))
            added += 1
        else:
            for name, value in values.items():
                setattr(rate, name, value)
            replaced += 1
    session.flush()
    if added or replaced:
        bump_version(session, tariff.id)
    return added, replaced


def export(session: Session, tariff: Tariff) -> str:
    """The tariff's rates in the import format, ordered by prefix then effective_from."""
    rates = session.execute(
        select(Rate).where(Rate.tariff_id == tariff.id).order_by(Rate.prefix, Rate.effective_from)
    ).scalars()
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for rate in rates:
        cells = []
        for name in COLUMNS:
            value = getattr(rate, name)
            if name == "effective_from":
                value = "" if value == ALWAYS else value.isoformat().replace("+00:00", "Z")
            elif isinstance(value, Decimal):
                value = format(value.normalize(), "f")
            elif isinstance(value, RoundingMode):
                value = value.value
            cells.append(value)
        writer.writerow(cells)
    return out.getvalue()
