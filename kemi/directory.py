"""What the SIP edge reads from the database: gateways, access numbers, known callers.

Kamailio forks its workers after loading this module, so each process opens its own engine on first
use. Gateways and access numbers are read-through caches refreshed every few seconds: a change made
with the CLI or the portal takes effect without a restart, and no state lives only here. The edge
never waits long on the database: a statement gives up after EDGE_WAIT_SECONDS, and a cache whose
refresh fails keeps serving what it read last.
"""

import ipaddress
import os
import time
from dataclasses import dataclass
from datetime import datetime

import KSR
from sqlalchemy import select

from boomerang.numbers import for_gateway
from boomerang.settings import load
from boomerang.store import make_engine, read_only_factory, session_factory, transaction
from boomerang.store.models import AccessNumber, AuthorizedCallerId, CallbackSession, Gateway, NumberFormat
from boomerang.trigger_spool import SpooledRequest, TriggerSpool

CACHE_SECONDS = 5.0
EDGE_WAIT_SECONDS = 2  # a SIP worker waits no longer than this on a lock or a silent server


@dataclass(frozen=True)
class TrustedGateway:
    id: int
    name: str
    network: ipaddress.IPv4Network | ipaddress.IPv6Network
    country_code: str | None
    national_prefix: str


@dataclass(frozen=True)
class AccessNumberView:
    id: int
    number: str
    ring_time_seconds: int
    callback_delay_seconds: int
    known_callers_only: bool


@dataclass(frozen=True)
class OutboundGateway:
    name: str
    uri: str
    number_format: str = NumberFormat.E164.value
    country_code: str | None = None
    national_prefix: str = "0"
    strip_digits: int = 0
    add_prefix: str = ""


class _Refreshed:
    """A value read from the database, read again once it is older than CACHE_SECONDS."""

    def __init__(self, load):
        self._load = load
        self._value = None
        self._loaded = float("-inf")

    def get(self):
        if time.monotonic() - self._loaded > CACHE_SECONDS:
            try:
                self._value = self._load()
            except Exception as exc:
                if self._value is None:
                    raise  # nothing read yet: nothing to serve
                KSR.warn("database not answering, serving what was read before: " + repr(exc)[:200] + "\n")
            self._loaded = time.monotonic()  # failed or not, the next try is a cache period away
        return self._value


class Directory:
    def __init__(self):
        self.settings = load()
        self._pid = None
        self._writes = self._reads = None
        self._gateways = _Refreshed(self._load_gateways)
        self._outbound = _Refreshed(self._load_outbound)
        self._access_numbers = _Refreshed(self._load_access_numbers)
        self.trigger_spool = TriggerSpool(self.settings.paths_var_dir / "spool" / "triggers")

    def _factories(self):
        if self._pid != os.getpid():  # first use in this (forked) process
            self._pid = os.getpid()
            engine = make_engine(self.settings.database_url, wait_seconds=EDGE_WAIT_SECONDS)
            self._writes, self._reads = session_factory(engine), read_only_factory(engine)
        return self._writes, self._reads

    def reading(self):
        return transaction(self._factories()[1])

    def writing(self):
        return transaction(self._factories()[0])

    def gateway_for_source(self, address):
        """The gateway whose trusted source covers this IP address, or None."""
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return None
        for gateway in self._gateways.get():
            if ip in gateway.network:
                return gateway
        return None

    def outbound_routes(self, e164):
        """Where to send a call to this number, in order of preference: gateway, R-URI, outbound proxy."""
        routes = []
        for gateway in self._outbound.get():
            dialled = for_gateway(
                e164,
                gateway.number_format,
                gateway.country_code,
                gateway.national_prefix,
                gateway.strip_digits,
                gateway.add_prefix,
            )
            host = gateway.uri.split(":", 1)[1].rsplit("@", 1)[-1].split(";", 1)[0]
            routes.append({"gateway": gateway.name, "ruri": f"sip:{dialled}@{host}", "ouri": gateway.uri})
        return routes

    def access_number(self, number):
        return self._access_numbers.get().get(number)

    def known_caller_account(self, number):
        """The account that has this number as an authorized caller ID, or None."""
        with self.reading() as session:
            return session.execute(
                select(AuthorizedCallerId.account_id).where(AuthorizedCallerId.number == number)
            ).scalar_one_or_none()

    def record_callback_requests(self, requests: list[SpooledRequest]) -> list[tuple[int, int | None, bool]]:
        """Persist promised callbacks in one transaction: for each, (its id, the account of a known
        caller, whether it is new). A request recorded before (moved from the spool twice) keeps its
        first record."""
        with self.writing() as session:
            return [self._record(session, request) for request in requests]

    @staticmethod
    def _record(session, request: SpooledRequest) -> tuple[int, int | None, bool]:
        existing = session.execute(
            select(CallbackSession.id, CallbackSession.account_id).where(
                CallbackSession.request_ref == request.request_ref
            )
        ).one_or_none()
        if existing is not None:
            return existing.id, existing.account_id, False
        account_id = request.known_caller_account
        if account_id is None:
            account_id = session.execute(
                select(AuthorizedCallerId.account_id).where(AuthorizedCallerId.number == request.caller)
            ).scalar_one_or_none()
        callback = CallbackSession(
            kind="access",
            account_id=account_id,
            access_number_id=request.access_number_id,
            gateway_id=request.gateway_id,
            caller_number=request.caller,
            request_ref=request.request_ref,
            state="requested",
            requested_at=datetime.fromisoformat(request.requested_at),
            due_at=datetime.fromisoformat(request.due_at),
        )
        session.add(callback)
        session.flush()
        return callback.id, account_id, True

    def _load_gateways(self):
        with self.reading() as session:
            rows = session.execute(
                select(Gateway).where(Gateway.enabled.is_(True), Gateway.trusted_source.is_not(None))
            ).scalars()
            gateways = [
                TrustedGateway(
                    g.id,
                    g.name,
                    ipaddress.ip_network(g.trusted_source, strict=False),
                    g.country_code,
                    g.national_prefix,
                )
                for g in rows
            ]
        # Most specific network first, so a carrier's /32 wins over a wider range.
        return sorted(gateways, key=lambda g: g.network.prefixlen, reverse=True)

    def _load_outbound(self):
        with self.reading() as session:
            rows = session.execute(
                select(Gateway).where(Gateway.enabled.is_(True)).order_by(Gateway.priority, Gateway.id)
            ).scalars()
            gateways = [
                OutboundGateway(
                    g.name,
                    g.uri,
                    g.number_format.value,
                    g.country_code,
                    g.national_prefix,
                    g.strip_digits,
                    g.add_prefix,
                )
                for g in rows
            ]
        # Nothing provisioned: every leg goes to the configured default gateway.
        return gateways or [OutboundGateway("default", self.settings.carrier_default_gateway)]

    def _load_access_numbers(self):
        with self.reading() as session:
            rows = session.execute(select(AccessNumber).where(AccessNumber.enabled.is_(True))).scalars()
            return {
                n.number: AccessNumberView(
                    n.id, n.number, n.ring_time_seconds, n.callback_delay_seconds, n.known_callers_only
                )
                for n in rows
            }
