"""Credit control under random interleavings: calls of several accounts reserve, answer, extend,
end and are settled (some twice), unanswered legs are cancelled, accounts are topped up, time
passes; the controller keeps its side of the contract (it extends before a grant runs out or cuts
the call, a leg may end a little past its grant). After every step no account has spent more than
its balance and credit limit allow, no leg is billed twice, and the ledger adds up.
"""

from __future__ import annotations

import shutil
import tempfile
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, initialize, invariant, rule
from sqlalchemy import func, select

from boomerang.store import make_engine, migrate, session_factory, transaction
from boomerang.store.models import Account, CallLeg, Cdr, LedgerEntry, LedgerKind, LegRole
from rating import cdrs, credit, ledger
from rating.tariff_cache import TariffCache
from tests.ratingkit import T0, UK_LANDLINE, UK_MOBILE, US, ledger_sum, make_account, make_tariff, new_call, new_leg

RETAIL = (
    "prefix,destination,price_per_minute,connect_fee,initial_increment,subsequent_increment\n"
    "44,United Kingdom,0.10,0,60,60\n"
    "447,United Kingdom mobile,0.20,0.02,60,60\n"
    "1,US and Canada,0.05,0,30,6\n"
)
NUMBERS = (UK_LANDLINE, UK_MOBILE, US)
TTL = 10**6  # the controller is alive throughout: reservations are kept, never left to expire
ACCOUNTS = (("alice", "0.30", "0"), ("bob", "0.40", "0.10"), ("carol", "0", "0.15"))

_template: Path | None = None


def _database() -> tuple[Path, str]:
    """A fresh copy of a migrated database with the tariff and the accounts (built once)."""
    global _template
    if _template is None:
        folder = Path(tempfile.mkdtemp(prefix="boomerang-properties-"))
        _template = folder / "template.db"
        url = f"sqlite:///{_template}"
        migrate.upgrade(url)
        engine = make_engine(url)
        with transaction(session_factory(engine)) as session:
            make_tariff(session, "retail", RETAIL)
            for login, balance, limit in ACCOUNTS:
                make_account(session, login, tariff="retail", balance=balance, credit_limit=limit, max_calls=3)
        engine.dispose()
    folder = Path(tempfile.mkdtemp(prefix="boomerang-properties-"))
    shutil.copy(_template, folder / "run.db")
    return folder, f"sqlite:///{folder / 'run.db'}"


class CreditMachine(RuleBasedStateMachine):
    calls = Bundle("calls")
    ringing = Bundle("ringing")  # legs reserved, not answered
    talking = Bundle("talking")  # legs answered, not ended
    settled = Bundle("settled")

    @initialize()
    def open_database(self):
        self.folder, url = _database()
        self.engine = make_engine(url)
        self.db = session_factory(self.engine)
        self.cache = TariffCache(check_interval=3600)
        self.now = T0
        with transaction(self.db) as session:
            self.accounts = dict(session.execute(select(Account.login, Account.id)).all())
        self.call_of: dict[str, tuple[str, int]] = {}  # leg -> (call, account)

    def teardown(self):
        if hasattr(self, "engine"):
            self.engine.dispose()
            shutil.rmtree(self.folder, ignore_errors=True)

    # --- what happens --------------------------------------------------------------------------

    @rule(seconds=st.integers(1, 90))
    def time_passes(self, seconds):
        self.now += timedelta(seconds=seconds)

    @rule(target=calls, login=st.sampled_from([login for login, _, _ in ACCOUNTS]))
    def new_callback(self, login):
        with transaction(self.db) as session:
            return new_call(session, self.accounts[login]), self.accounts[login]

    @rule(target=ringing, call=calls, number=st.sampled_from(NUMBERS), standby=st.booleans())
    def leg_a(self, call, number, standby):
        return self._reserve(call, number, LegRole.A, standby)

    @rule(target=ringing, call=calls, number=st.sampled_from(NUMBERS))
    def leg_b(self, call, number):
        return self._reserve(call, number, LegRole.B, False)

    def _reserve(self, call, number, role, standby):
        call_id, account_id = call
        with transaction(self.db) as session:
            sequence = session.execute(select(func.count()).where(CallLeg.session_id == call_id)).scalar_one()
            leg_id = new_leg(session, call_id, number, role, sequence=sequence)
            decision = credit.reserve(session, self.cache, leg_id, now=self.now, ttl_seconds=TTL, standby=standby)
        self.call_of[leg_id] = call
        return leg_id if decision.allowed else None

    @rule(target=talking, leg=consumes(ringing))
    def answer(self, leg):
        if leg is None:
            return None
        with transaction(self.db) as session:
            session.get(CallLeg, leg).answered_at = self.now
        return leg

    @rule(target=settled, leg=consumes(ringing))
    def cancel(self, leg):
        if leg is None:
            return None
        return self._end(leg)

    @rule(leg=talking)
    def extend(self, leg):
        """The controller extends all of a call's legs that are up, together."""
        if leg is None:
            return
        with transaction(self.db) as session:
            call_id = session.get(CallLeg, leg).session_id
            up = session.execute(
                select(CallLeg.id).where(
                    CallLeg.session_id == call_id, CallLeg.answered_at.is_not(None), CallLeg.ended_at.is_(None)
                )
            ).scalars()
            legs = [leg_id for leg_id in up if credit.reservation_of(session, leg_id).state == "active"]
            if legs:
                credit.extend(session, legs, now=self.now, ttl_seconds=TTL)

    @rule(target=settled, leg=consumes(talking), late=st.integers(0, 2))
    def hang_up(self, leg, late):
        """The leg ends now, or at its grant's end if that came first (the controller cuts it), at
        most `late` seconds after it."""
        if leg is None:
            return None
        with transaction(self.db) as session:
            found = session.get(CallLeg, leg)
            grant = credit.reservation_of(session, leg)
            cut = found.answered_at + timedelta(seconds=grant.granted_seconds + late + 0.5)
            found.ended_at = min(self.now, cut)
            event(
                "a leg ran past its grant"
                if found.ended_at - found.answered_at >= timedelta(seconds=grant.granted_seconds + 1)
                else "a leg ended within its grant"
            )
        return self._end(leg, already_ended=True)

    def _end(self, leg, already_ended=False):
        with transaction(self.db) as session:
            if not already_ended:
                session.get(CallLeg, leg).ended_at = self.now
            cdrs.settle(session, leg, now=self.now)
        return leg

    @rule(leg=settled)
    def settle_again(self, leg):
        if leg is None:
            return
        before = self._money()
        with transaction(self.db) as session:
            cdrs.settle(session, leg, now=self.now)
        assert self._money() == before

    @rule(login=st.sampled_from([login for login, _, _ in ACCOUNTS]), cents=st.integers(1, 50))
    def top_up(self, login, cents):
        with transaction(self.db) as session:
            reference = f"topup:{login}:{self.now.isoformat()}:{cents}"
            ledger.post(session, self.accounts[login], LedgerKind.TOPUP, Decimal(cents) / 100, reference)

    # --- what must always hold -----------------------------------------------------------------

    def _money(self):
        with transaction(self.db) as session:
            return session.execute(select(Account.id, Account.balance).order_by(Account.id)).all()

    @invariant()
    def nobody_overdraws_and_the_ledger_adds_up(self):
        if not hasattr(self, "db"):
            return
        with transaction(self.db) as session:
            for account_id in self.accounts.values():
                money = credit.credit(session, account_id, self.now)
                assert money.balance >= -money.credit_limit
                assert money.free >= 0  # what is reserved was there to reserve
                assert money.balance == ledger_sum(session, account_id)
            charges = session.execute(
                select(LedgerEntry.reference, func.count())
                .where(LedgerEntry.kind == LedgerKind.CHARGE)
                .group_by(LedgerEntry.reference)
            ).all()
            assert all(count == 1 for _, count in charges)
            costs = session.execute(select(func.coalesce(func.sum(Cdr.cost), 0))).scalar_one()
            charged = session.execute(
                select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(LedgerEntry.kind == LedgerKind.CHARGE)
            ).scalar_one()
            assert Decimal(costs) == -Decimal(charged)


TestCreditUnderRandomInterleavings = CreditMachine.TestCase
TestCreditUnderRandomInterleavings.settings = settings(
    max_examples=100, stateful_step_count=50, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
