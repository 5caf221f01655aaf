"""The call controller's database edge: callback sessions, their legs and status timeline, accounts,
and the rating engine's credit operations, each in its own short transaction.

Blocking SQLAlchemy calls; the asyncio controller runs them in worker threads (`asyncio.to_thread`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
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
)
from boomerang.store.types import utcnow
from rating import cdrs, credit
from rating.decisions import Decision, Grant
from rating.tariff_cache import TariffCache

# Session states a controller owns while the call runs; "requested" waits for a controller.
REQUESTED = "requested"
FINAL_STATES = ("ended", "failed")
FINAL_LEG_STATUSES = (LegStatus.BUSY, LegStatus.NO_ANSWER, LegStatus.FAILED, LegStatus.CANCELLED, LegStatus.ENDED)


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
                row = session.get(CallbackSession, session_id)
                access = session.get(AccessNumber, row.access_number_id) if row.access_number_id else None
                gateway = session.get(Gateway, row.gateway_id) if row.gateway_id else None
                claimed.append(
                    DueCallback(
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
                    )
                )
        return claimed

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

    def set_state(self, session_id: str, state: str) -> None:
        with transaction(self._writes) as session:
            session.execute(update(CallbackSession).where(CallbackSession.id == session_id).values(state=state))

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

    def attach_account(self, session_id: str, account_id: int) -> None:
        with transaction(self._writes) as session:
            session.execute(
                update(CallbackSession).where(CallbackSession.id == session_id).values(account_id=account_id)
            )

    def recover(self, now: datetime) -> list[str]:
        """After a restart: sessions a controller was running are over. Their legs end now and are
        settled; a session cut before its first leg was placed is requested again. Returns the legs
        that were still up, for the controller to hang up."""
        interrupted = []
        with transaction(self._reads) as session:
            running = list(
                session.execute(
                    select(CallbackSession.id).where(CallbackSession.state.not_in((REQUESTED, *FINAL_STATES)))
                ).scalars()
            )
        for session_id in running:
            with transaction(self._writes) as session:
                legs = list(session.execute(select(CallLeg).where(CallLeg.session_id == session_id)).scalars())
                if not legs:
                    session.execute(
                        update(CallbackSession).where(CallbackSession.id == session_id).values(state=REQUESTED)
                    )
                    continue
                for leg in legs:
                    if leg.status not in FINAL_LEG_STATUSES:
                        status = LegStatus.ENDED if leg.answered_at else LegStatus.FAILED
                        self._record(session, leg, status, now, None, "controller restarted")
                        interrupted.append(leg.id)
            for leg in legs:
                self.settle(leg.id, now)
            self.end(session_id, "ended", "controller restarted", now)
        return interrupted

    # --- legs ------------------------------------------------------------------------------------

    def new_leg(self, session_id: str, role: LegRole, sequence: int, number: str, caller_id: str) -> str:
        with transaction(self._writes) as session:
            leg = CallLeg(session_id=session_id, role=role, sequence=sequence, number=number, caller_id=caller_id)
            session.add(leg)
            session.flush()
            leg.sip_call_id = f"{leg.id}@boomerang"
            session.add(LegEvent(leg_id=leg.id, status=LegStatus.QUEUED, at=utcnow()))
            return leg.id

    def leg_event(
        self, leg_id: str, status: LegStatus, at: datetime, sip_code: int | None = None, detail: str = ""
    ) -> None:
        with transaction(self._writes) as session:
            leg = session.get(CallLeg, leg_id)
            if leg is not None:
                self._record(session, leg, status, at, sip_code, detail)

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

    def reserve_many(self, leg_ids: list[str], now: datetime) -> list[Decision | Exception]:
        """`reserve` for the legs of many calls in one transaction; see `_each_or_alone`.
        For the credit desk's reserving thread only."""

        def together(legs: list[str]) -> list[Decision]:
            with self._reserving.transaction() as session:
                return credit.reserve_many(session, self.tariffs, legs, now=now)

        return _each_or_alone(together, leg_ids)

    def extend(self, leg_ids: list[str], now: datetime) -> list[Grant]:
        with transaction(self._writes) as session:
            return credit.extend(session, leg_ids, now=now)

    def settle(self, leg_id: str, now: datetime) -> None:
        """Rate an ended leg and charge it, or release an unanswered leg's reservation; idempotent.
        A leg of nobody (a caller who never identified) has nothing to bill."""
        with transaction(self._writes) as session:
            cdrs.settle_many(session, [leg_id], now=now, cache=self.tariffs, skip_unowned=True)

    def settle_many(self, leg_ids: list[str], now: datetime) -> list[None | Exception]:
        """`settle` for the legs of many calls in one transaction; see `_each_or_alone`.
        For the credit desk's settling thread only."""

        def together(legs: list[str]) -> list[None]:
            with self._settling.transaction() as session:
                cdrs.settle_many(session, legs, now=now, cache=self.tariffs, skip_unowned=True)
                return [None] * len(legs)

        return _each_or_alone(together, leg_ids)
