"""Call history: callback sessions with their legs and what each leg cost, filtered, in pages or as CSV."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import falcon
from sqlalchemy import Select, exists, select
from sqlalchemy.orm import Session

from boomerang.store.models import CallbackKind, CallbackSession, CallLeg, Cdr
from portal.representations import moment, money, phone

CSV_MAX_CALLS = 10_000  # an export holds at most the newest this many calls
CSV_COLUMNS = [
    "call_id",
    "kind",
    "requested_at",
    "state",
    "leg",
    "number",
    "status",
    "answered_at",
    "ended_at",
    "duration_seconds",
    "billed_seconds",
    "destination",
    "price_per_minute",
    "cost",
    "currency",
]


def _moment_param(req: falcon.Request, name: str) -> datetime | None:
    text = req.get_param(name)
    if not text:
        return None
    try:
        at = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise falcon.HTTPBadRequest(
            title="Invalid parameter", description=f"{name} must be a date (2027-01-31) or an ISO time"
        ) from None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


@dataclass(frozen=True)
class CallFilter:
    """`from` and `to` are dates or times (a date `to` includes that whole day); `number` matches the
    start of any leg's number; `kind` is access, web or sms."""

    account_id: int | None = None
    start: datetime | None = None
    end: datetime | None = None
    kind: CallbackKind | None = None
    number: str | None = None
    active_only: bool = False

    @classmethod
    def from_request(cls, req: falcon.Request, account_id: int | None) -> CallFilter:
        start = _moment_param(req, "from")
        end = _moment_param(req, "to")
        if end is not None and len(req.get_param("to", default="").strip()) == 10:
            end += timedelta(days=1)  # "to=2027-01-31" means up to the end of that day
        kind = req.get_param("kind")
        if kind is not None and kind not in {k.value for k in CallbackKind}:
            raise falcon.HTTPBadRequest(title="Invalid parameter", description="kind must be access, web or sms")
        number = req.get_param("number")
        if number is not None:
            number = number.strip().lstrip("+").replace(" ", "")
            if not (number.isascii() and number.isdigit()) or len(number) > 15:
                raise falcon.HTTPBadRequest(
                    title="Invalid parameter", description="number must be digits (the start of a number)"
                )
        return cls(account_id, start, end, CallbackKind(kind) if kind else None, number or None)

    def query(self) -> Select:
        query = select(CallbackSession)
        if self.account_id is not None:
            query = query.where(CallbackSession.account_id == self.account_id)
        if self.start is not None:
            query = query.where(CallbackSession.requested_at >= self.start)
        if self.end is not None:
            query = query.where(CallbackSession.requested_at < self.end)
        if self.kind is not None:
            query = query.where(CallbackSession.kind == self.kind)
        if self.number:
            query = query.where(
                exists().where(CallLeg.session_id == CallbackSession.id, CallLeg.number.startswith(self.number))
            )
        if self.active_only:
            query = query.where(CallbackSession.ended_at.is_(None))
        return query.order_by(CallbackSession.requested_at.desc(), CallbackSession.id.desc())


def _leg(leg: CallLeg, cdr: Cdr | None) -> dict:
    return {
        "role": str(leg.role),
        "sequence": leg.sequence,
        "number": phone(leg.number),
        "status": str(leg.status),
        "answered_at": moment(leg.answered_at),
        "ended_at": moment(leg.ended_at),
        "duration_seconds": cdr.duration_seconds if cdr else None,
        "billed_seconds": cdr.billed_seconds if cdr else None,
        "destination": cdr.destination if cdr else None,
        "price_per_minute": money(cdr.price_per_minute) if cdr else None,
        "cost": money(cdr.cost) if cdr else None,
        "currency": cdr.currency if cdr else None,
    }


def describe(session: Session, calls: list[CallbackSession]) -> list[dict]:
    """The calls with their legs and costs: two queries whatever the number of calls."""
    if not calls:
        return []
    ids = [call.id for call in calls]
    legs: dict[str, list[CallLeg]] = {call_id: [] for call_id in ids}
    for leg in session.execute(
        select(CallLeg).where(CallLeg.session_id.in_(ids)).order_by(CallLeg.created_at, CallLeg.id)
    ).scalars():
        legs[leg.session_id].append(leg)
    cdrs = {cdr.leg_id: cdr for cdr in session.execute(select(Cdr).where(Cdr.session_id.in_(ids))).scalars()}
    described = []
    for call in calls:
        call_cdrs = [cdrs[leg.id] for leg in legs[call.id] if leg.id in cdrs]
        described.append(
            {
                "id": call.id,
                "kind": str(call.kind),
                "state": call.state,
                "requested_at": moment(call.requested_at),
                "started_at": moment(call.started_at),
                "ended_at": moment(call.ended_at),
                "end_reason": call.end_reason,
                "caller_number": phone(call.caller_number),
                "destination_number": phone(call.destination_number),
                "legs": [_leg(leg, cdrs.get(leg.id)) for leg in legs[call.id]],
                "cost": money(sum((cdr.cost for cdr in call_cdrs), Decimal(0))),
                "currency": call_cdrs[0].currency if call_cdrs else None,
            }
        )
    return described


def as_csv(calls: list[dict]) -> str:
    """One line per leg (a call that never got a leg has one line of its own)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for call in calls:
        head = [call["id"], call["kind"], call["requested_at"], call["state"]]
        for leg in call["legs"] or [None]:
            if leg is None:
                writer.writerow(head + [""] * (len(CSV_COLUMNS) - len(head)))
                continue
            writer.writerow(
                head
                + [
                    leg["role"],
                    leg["number"],
                    leg["status"],
                    leg["answered_at"] or "",
                    leg["ended_at"] or "",
                    "" if leg["duration_seconds"] is None else leg["duration_seconds"],
                    "" if leg["billed_seconds"] is None else leg["billed_seconds"],
                    leg["destination"] or "",
                    leg["price_per_minute"] or "",
                    leg["cost"] or "",
                    leg["currency"] or "",
                ]
            )
    return out.getvalue()
