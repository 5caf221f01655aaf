"""The call controller's database edge: callback sessions, their legs and status timeline, accounts,
and the rating engine's credit operations, each in its own short transaction.

Blocking SQLAlchemy calls; the asyncio controller runs them in worker threads (`asyncio.to_thread`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import select, update

from boomerang import security
from boomerang.settings import Settings
from boomerang.store import Lane, make_engine, read_only_factory, session_factory, transaction
from boomerang.store.models import (
    AccessNumber,
    Account,
    AccountStatus,
    AuthorizedCallerId,
    CallbackKind,
    CallbackSession,
    CallerIdOrigin,
    CallLeg,
    Gateway,
    LegEvent,
    LegRole,
    LegStatus,
    Reservation,
)
from boomerang.store.types import utcnow
from rating import cdrs, credit
from rating.decisions import Decision, Grant
from rating.tariff_cache import TariffCache

log = logging.getLogger(__name__)

# Session states a controller owns while the call runs; "requested" waits for a controller.
REQUESTED = "requested"
BRIDGED = "bridged"
FINAL_STATES = ("ended", "failed")
FINAL_LEG_STATUSES = (LegStatus.BUSY, LegStatus.NO_ANSWER, LegStatus.FAILED, LegStatus.CANCELLED, LegStatus.ENDED)


HEARTBEAT_SECONDS = 2  # how often the controller records that the legs it runs are up


def last_known_up(answered_at: datetime, alive_at: datetime | None, granted: int | None, now: datetime) -> datetime:
    """Where a leg interrupted by an outage ends for billing: the last moment the platform knew it
    was up, never past what was reserved for it, never the downtime."""
    ended = max(alive_at or answered_at, answered_at)
    if granted is not None:
        ended = min(ended, answered_at + timedelta(seconds=granted))
    return min(ended, now)


def _each_or_alone(together: Callable[[list[str]], list], keys: list[str]) -> list:
    """The results of `together(keys)` (one transaction for all); if that fails, of each key in a
    transaction of its own, with the Exception in place of the result of a key that failed, so that
    one bad request in a batch fails only itself."""
    try:
        return together(keys)
    except Exception as error:
        if len(keys) == 1:
            return [error]
    results = []
    for key in keys:
        try:
            results.extend(together([key]))
        except Exception as error:
            results.append(error)
    return results


@dataclass(frozen=True)
class AccountView:
    id: int
    login: str
    status: AccountStatus
    balance: Decimal
    credit_limit: Decimal
    currency: str
    language: str
    country_code: str | None
    show_a_to_b: bool = True  # leg B is shown A's number (else the service number)


@dataclass(frozen=True)
class AccessSettings:
    number: str
    language: str
    allow_pin: bool
    allow_ani: bool
    save_caller_id_on_pin: bool
    announce_balance: bool
    retry_attempts: int
    retry_interval_seconds: int


@dataclass(frozen=True)
class DueCallback:
    session_id: str
    caller: str
    account_id: int | None
    access: AccessSettings | None
    attempts: int
    gateway: str | None  # the carrier the request came through: leg A goes back through it
    destination: str | None = None  # leg B's number when the request named it: dialled unasked
    caller_id: str = ""  # what leg A shows: the access number dialled, B's number, the SMS number
    connect_two: bool = False  # A, then B (`destination`), bridged, no IVR: callback/connect_two.py
    service_number: str = ""  # our number: shown instead of a party's number the account hides
    # Legs reserved when the callback was asked for (SMS and web callbacks), by role: placed as
    # they are, once their reservations are renewed.
    reserved: dict[LegRole, str] = field(default_factory=dict)


@dataclass(frozen=True)
class UpLeg:
    """A leg the database records as answered and not ended."""

    id: str
    role: LegRole
    answered_at: datetime
    granted: int | None  # seconds reserved from its answer
    dialog: dict | None = None  # its SIP dialog, as Kamailio reported it at the answer


@dataclass(frozen=True)
class BridgedCall:
    due: DueCallback
    a: UpLeg
    b: UpLeg


def _view(account: Account) -> AccountView:
    return AccountView(
        account.id,
        account.login,
        account.status,
        account.balance,
        account.credit_limit,
        account.currency,
        account.language,
        account.country_code,
        account.show_a_to_b,
    )


class CallbackStore:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = make_engine(settings.database_url)
        self._writes = session_factory(self.engine)
        self._reads = read_only_factory(self.engine)
        # Reservations and settlements of the credit desk: each a stream of short transactions.
        self._reserving = Lane(self.engine)
        self._settling = Lane(self.engine)
        self.tariffs = TariffCache()
        self._secret = settings.secret_key()

    def close(self) -> None:
        self._reserving.close()
        self._settling.close()
        self.engine.dispose()

    def writing(self):
        """A write transaction (for the other database edges of the controller)."""
        return transaction(self._writes)

    def reading(self):
        """A read-only transaction."""
        return transaction(self._reads)

    # --- sessions ------------------------------------------------------------------------------

    def claim_due(self, now: datetime, state: str, limit: int = 50) -> list[DueCallback]:
        """Sessions due by `now`, each moved from "requested" to `state` by exactly one controller."""
        with transaction(self._reads) as session:
            due = list(
                session.execute(
                    select(CallbackSession.id)
                    .where(CallbackSession.state == REQUESTED, CallbackSession.due_at <= now)
                    .order_by(CallbackSession.due_at)
                    .limit(limit)
                ).scalars()
            )
        claimed = []
        for session_id in due:
            with transaction(self._writes) as session:
                won = session.execute(
                    update(CallbackSession)
                    .where(CallbackSession.id == session_id, CallbackSession.state == REQUESTED)
                    .values(state=state, started_at=now, attempts=CallbackSession.attempts + 1)
                ).rowcount
                if not won:
                    continue  # another controller took it
                claimed.append(self._due(session, session.get(CallbackSession, session_id)))
        return claimed

    def _due(self, session, row: CallbackSession) -> DueCallback:
        access = session.get(AccessNumber, row.access_number_id) if row.access_number_id else None
        gateway = session.get(Gateway, row.gateway_id) if row.gateway_id else None
        return DueCallback(
            row.id,
            row.caller_number,
            row.account_id,
            AccessSettings(
                access.number,
                access.language,
                access.allow_pin,
                access.allow_ani,
                access.save_caller_id_on_pin,
                access.announce_balance,
                access.retry_attempts,
                access.retry_interval_seconds,
            )
            if access
            else None,
            row.attempts,
            gateway.name if gateway is not None and gateway.enabled else None,
            row.destination_number,
            self._caller_id_for(session, row, access),
            row.connect_two,
            self._service_number(row, access),
            self._reserved_legs(session, row.id),
        )

    def bridged_calls(self) -> list[BridgedCall]:
        """The sessions left bridged by a controller that stopped: leg A and leg B answered and not
        ended, for a restarted controller to take back (`callback/resumed.py`) if they are still up."""
        with transaction(self._reads) as session:
            rows = list(session.execute(select(CallbackSession).where(CallbackSession.state == BRIDGED)).scalars())
            calls = []
            for row in rows:
                up = {
                    leg.role: leg
                    for leg in session.execute(
                        select(CallLeg).where(CallLeg.session_id == row.id, CallLeg.status == LegStatus.ANSWERED)
                    ).scalars()
                }
                if set(up) != {LegRole.A, LegRole.B} or row.account_id is None:
                    continue
                grants = dict(
                    session.execute(
                        select(Reservation.leg_id, Reservation.granted_seconds).where(
                            Reservation.leg_id.in_([leg.id for leg in up.values()])
                        )
                    ).all()
                )
                a, b = (
                    UpLeg(
                        leg.id,
                        leg.role,
                        leg.answered_at,
                        grants.get(leg.id),
                        json.loads(leg.sip_dialog) if leg.sip_dialog else None,
                    )  # fmt: skip
                    for leg in (up[LegRole.A], up[LegRole.B])
                )
                calls.append(BridgedCall(self._due(session, row), a, b))
            return calls

    @staticmethod
    def _reserved_legs(session, session_id: str) -> dict[LegRole, str]:
        queued = session.execute(
            select(CallLeg.role, CallLeg.id)
            .join(Reservation, Reservation.leg_id == CallLeg.id)
            .where(CallLeg.session_id == session_id, CallLeg.status == LegStatus.QUEUED)
        ).all()
        return dict(queued)

    def _service_number(self, row: CallbackSession, access: AccessNumber | None) -> str:
        """The number of ours the request came to: the access number dialled, or the SMS number."""
        if access is not None:
            return access.number
        if row.kind is CallbackKind.SMS:
            return self.settings.numbers_sms_number
        return self.settings.numbers_access_number

    def _caller_id_for(self, session, row: CallbackSession, access: AccessNumber | None) -> str:
        """What leg A is shown: B's number on a connect-two call (unless the account hides it), else ours."""
        if row.connect_two and row.destination_number:
            account = session.get(Account, row.account_id) if row.account_id else None
            if account is None or account.show_b_to_a:
                return row.destination_number
        return self._service_number(row, access)

    def cancel_requested(self, session_ids: list[str]) -> list[str]:
        """Which of these running sessions their requester asked to stop."""
        if not session_ids:
            return []
        with transaction(self._reads) as session:
            return list(
                session.execute(
                    select(CallbackSession.id).where(
                        CallbackSession.id.in_(session_ids), CallbackSession.cancel_requested_at.is_not(None)
                    )
                ).scalars()
            )

    def next_due_at(self) -> datetime | None:
        with transaction(self._reads) as session:
            return session.execute(
                select(CallbackSession.due_at)
                .where(CallbackSession.state == REQUESTED)
                .order_by(CallbackSession.due_at)
                .limit(1)
            ).scalar_one_or_none()

    def set_state(self, session_id: str, state: str, now: datetime | None = None) -> None:
        """The session enters `state`; its legs that are up are known up at `now` (a heartbeat)."""
        with transaction(self._writes) as session:
            session.execute(update(CallbackSession).where(CallbackSession.id == session_id).values(state=state))
            if now is not None:
                session.execute(
                    update(CallLeg)
                    .where(CallLeg.session_id == session_id, CallLeg.status == LegStatus.ANSWERED)
                    .values(alive_at=now)
                )

    def retry_later(self, session_id: str, due_at: datetime) -> None:
        with transaction(self._writes) as session:
            session.execute(
                update(CallbackSession).where(CallbackSession.id == session_id).values(state=REQUESTED, due_at=due_at)
            )

    def end(self, session_id: str, state: str, reason: str, at: datetime) -> None:
        with transaction(self._writes) as session:
            session.execute(
                update(CallbackSession)
                .where(CallbackSession.id == session_id)
                .values(state=state, end_reason=reason[:64], ended_at=at)
            )

    def attach_account(self, session_id: str, account_id: int | None) -> None:
        with transaction(self._writes) as session:
            session.execute(
                update(CallbackSession).where(CallbackSession.id == session_id).values(account_id=account_id)
            )

    def recover(self, now: datetime, keep: frozenset[str] = frozenset()) -> tuple[list[str], list[str]]:
        """After a restart: sessions a controller was running are over. A leg that was up ends at
        the last moment the controller knew it was up (its heartbeat), never past its grant, and
        is settled; a session cut before its first leg was placed is requested again. Each session
        and each leg on its own: one that cannot be closed is logged and left for the next start,
        and does not keep the others from closing. Sessions in `keep` (calls taken back by the
        controller) are left as they are. Returns the legs that were placed and not ended, for the
        controller to hang up (or cancel), and the legs that could not be rated, for it to raise the
        alarm."""
        interrupted: list[str] = []
        unrated: list[str] = []
        with transaction(self._reads) as session:
            running = list(
                session.execute(
                    select(CallbackSession.id).where(CallbackSession.state.not_in((REQUESTED, *FINAL_STATES)))
                ).scalars()
            )
        for session_id in running:
            if session_id in keep:
                continue
            try:
                interrupted += self._recover_session(session_id, now, unrated)
            except Exception:
                log.exception("callback %s could not be closed after the restart", session_id)
        return interrupted, unrated

    def _recover_session(self, session_id: str, now: datetime, unrated: list[str]) -> list[str]:
        interrupted = []
        with transaction(self._writes) as session:
            legs = list(session.execute(select(CallLeg).where(CallLeg.session_id == session_id)).scalars())
            if not legs:
                session.execute(update(CallbackSession).where(CallbackSession.id == session_id).values(state=REQUESTED))
                return []
            grants = dict(
                session.execute(
                    select(Reservation.leg_id, Reservation.granted_seconds).where(
                        Reservation.leg_id.in_([leg.id for leg in legs])
                    )
                ).all()
            )
            for leg in legs:
                if leg.status in FINAL_LEG_STATUSES:
                    continue
                if leg.answered_at is None:
                    if leg.status is not LegStatus.QUEUED:  # placed, perhaps ringing still: cancelled
                        interrupted.append(leg.id)
                    self._record(session, leg, LegStatus.FAILED, now, None, "controller restarted")
                    continue
                ended = last_known_up(leg.answered_at, leg.alive_at, grants.get(leg.id), now)
                self._record(session, leg, LegStatus.ENDED, ended, None, "controller restarted")
                leg.hangup_by, leg.hangup_cause = "platform", "controller restarted"
                interrupted.append(leg.id)
        failed = False
        for leg in legs:
            try:
                if self.settle(leg.id, now) is not None:
                    unrated.append(leg.id)
            except Exception:
                failed = True
                log.exception("leg %s of callback %s could not be settled after the restart", leg.id, session_id)
        if not failed:
            self.end(session_id, "ended", "controller restarted", now)
        return interrupted

    # --- legs ------------------------------------------------------------------------------------

    def new_leg(self, session_id: str, role: LegRole, sequence: int, number: str, caller_id: str) -> str:
        with transaction(self._writes) as session:
            return add_leg(session, session_id, role, sequence, number, utcnow(), caller_id)

    def set_caller_id(self, leg_id: str, caller_id: str) -> None:
        """What a leg reserved ahead shows the called party, now that it is placed."""
        with transaction(self._writes) as session:
            session.execute(update(CallLeg).where(CallLeg.id == leg_id).values(caller_id=caller_id[:32]))

    def mark_alive(self, leg_ids: list[str], now: datetime) -> None:
        """The legs are up now (the heartbeat a recovery bills to)."""
        if leg_ids:
            with transaction(self._writes) as session:
                session.execute(update(CallLeg).where(CallLeg.id.in_(leg_ids)).values(alive_at=now))

    def leg_event(
        self,
        leg_id: str,
        status: LegStatus,
        at: datetime,
        sip_code: int | None = None,
        detail: str = "",
        dialog: dict | None = None,
    ) -> None:
        """`dialog`: an answered leg's SIP dialog, as Kamailio reported it."""
        with transaction(self._writes) as session:
            leg = session.get(CallLeg, leg_id)
            if leg is not None:
                self._record(session, leg, status, at, sip_code, detail)
                if dialog:
                    leg.sip_dialog = json.dumps(dialog, separators=(",", ":"))

    @staticmethod
    def _record(session, leg: CallLeg, status: LegStatus, at: datetime, sip_code: int | None, detail: str) -> None:
        leg.status = status
        if sip_code is not None:
            leg.sip_code = sip_code
        if status is LegStatus.ANSWERED and leg.answered_at is None:
            leg.answered_at = at
        if status in FINAL_LEG_STATUSES and leg.ended_at is None:
            leg.ended_at = at
        session.add(LegEvent(leg_id=leg.id, status=status, at=at, sip_code=sip_code, detail=detail[:255]))

    def leg_note(self, leg_id: str, detail: str, at: datetime) -> None:
        """Something happened to a leg that does not change its status (an answer after our CANCEL)."""
        with transaction(self._writes) as session:
            leg = session.get(CallLeg, leg_id)
            if leg is not None:
                session.add(LegEvent(leg_id=leg.id, status=leg.status, at=at, detail=detail[:255]))

    def leg_hung_up(self, leg_id: str, by: str, cause: str) -> None:
        with transaction(self._writes) as session:
            session.execute(
                update(CallLeg).where(CallLeg.id == leg_id).values(hangup_by=by[:16], hangup_cause=cause[:64])
            )

    # --- accounts --------------------------------------------------------------------------------

    def account(self, account_id: int) -> AccountView | None:
        with transaction(self._reads) as session:
            account = session.get(Account, account_id)
            return _view(account) if account else None

    def account_by_caller(self, number: str) -> AccountView | None:
        with transaction(self._reads) as session:
            account = session.execute(
                select(Account).join(AuthorizedCallerId).where(AuthorizedCallerId.number == number)
            ).scalar_one_or_none()
            return _view(account) if account else None

    def account_by_pin(self, pin: str) -> AccountView | None:
        try:
            digest = security.pin_digest(self._secret, pin)
        except security.CredentialError:
            return None
        with transaction(self._reads) as session:
            account = session.execute(select(Account).where(Account.pin_digest == digest)).scalar_one_or_none()
            return _view(account) if account else None

    def save_caller_id(self, account_id: int, number: str) -> bool:
        """Authorize the number for the account unless it belongs to some account already."""
        with transaction(self._writes) as session:
            owner = session.execute(
                select(AuthorizedCallerId.account_id).where(AuthorizedCallerId.number == number)
            ).scalar_one_or_none()
            if owner is not None:
                return False
            session.add(AuthorizedCallerId(account_id=account_id, number=number, origin=CallerIdOrigin.PIN))
            return True

    # --- money -----------------------------------------------------------------------------------

    def free_credit(self, account_id: int, now: datetime) -> Decimal:
        with transaction(self._reads) as session:
            return credit.credit(session, account_id, now).free

    def authorize(self, account_id: int, number: str, session_id: str, now: datetime) -> Decision:
        with transaction(self._reads) as session:
            return credit.authorize(session, self.tariffs, account_id, number, now=now, call_id=session_id)

    def reserve_many(self, requests: list[tuple[str, bool]], now: datetime) -> list[Decision | Exception]:
        """`reserve` for the legs of many calls in one transaction, each (leg, with a standby for its
        destination); see `_each_or_alone`. For the credit desk's reserving thread only."""

        def together(batch: list[tuple[str, bool]]) -> list[Decision]:
            legs = [leg_id for leg_id, _ in batch]
            standby = [leg_id for leg_id, wanted in batch if wanted]
            with self._reserving.transaction() as session:
                return credit.reserve_many(session, self.tariffs, legs, now=now, standby=standby)

        return _each_or_alone(together, requests)

    def renew(self, leg_ids: list[str], now: datetime) -> dict[str, int] | None:
        """Legs reserved when the call was asked for keep their credit: their granted seconds; None
        when one's reservation had expired and its credit went to other calls (nothing is placed)."""
        with transaction(self._writes) as session:
            grants = credit.renew(session, leg_ids, now=now)
        return None if grants is None else {grant.leg_id: grant.granted_seconds for grant in grants}

    def extend(self, leg_ids: list[str], now: datetime) -> list[Grant]:
        with transaction(self._writes) as session:
            return credit.extend(session, leg_ids, now=now)

    def settle(self, leg_id: str, now: datetime) -> str | None:
        """Rate an ended leg and charge it, or release an unanswered leg's reservation; idempotent.
        A leg of nobody (a caller who never identified) has nothing to bill. Returns why the leg
        could not be rated, if it could not."""
        with transaction(self._writes) as session:
            [cdr] = cdrs.settle_many(session, [leg_id], now=now, cache=self.tariffs, skip_unowned=True)
            return cdr.unrated_reason if cdr is not None else None

    def settle_many(self, leg_ids: list[str], now: datetime) -> list[str | None | Exception]:
        """`settle` for the legs of many calls in one transaction; see `_each_or_alone`.
        For the credit desk's settling thread only."""

        def together(legs: list[str]) -> list[str | None]:
            with self._settling.transaction() as session:
                settled = cdrs.settle_many(session, legs, now=now, cache=self.tariffs, skip_unowned=True)
                return [cdr.unrated_reason if cdr is not None else None for cdr in settled]

        return _each_or_alone(together, leg_ids)


def add_leg(
    session, session_id: str, role: LegRole, sequence: int, number: str, now: datetime, caller_id: str = ""
) -> str:
    """A call leg of the session, queued: its row, its SIP Call-ID and its first status."""
    leg = CallLeg(session_id=session_id, role=role, sequence=sequence, number=number, caller_id=caller_id,
                  created_at=now)  # fmt: skip
    session.add(leg)
    session.flush()
    leg.sip_call_id = f"{leg.id}@boomerang"
    session.add(LegEvent(leg_id=leg.id, status=LegStatus.QUEUED, at=now))
    return leg.id
