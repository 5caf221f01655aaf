"""Provisioning operations shared by the command line and the portal's administration.

Every function works inside the caller's transaction and raises a `ProvisioningError` subclass
with a message fit to show a user; nothing is half-applied because the caller rolls back.
"""

from __future__ import annotations

import ipaddress
import re
import uuid
from dataclasses import asdict, dataclass, fields
from decimal import Decimal, InvalidOperation

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from boomerang import security
from boomerang.numbers import InvalidNumber, service_number, to_e164
from boomerang.store.models import (
    AccessNumber,
    Account,
    AccountStatus,
    AuthorizedCallerId,
    CallerIdOrigin,
    Cdr,
    Gateway,
    LedgerEntry,
    LedgerKind,
    NumberFormat,
    Rate,
    Role,
    SmsEgress,
    Tariff,
)
from boomerang.store.types import MONEY_DECIMALS
from rating import ledger, rates_csv


class ProvisioningError(Exception):
    """Base of the errors an operator or customer can act on."""


class InvalidInput(ProvisioningError):
    pass


class NotFound(ProvisioningError):
    pass


class Conflict(ProvisioningError):
    pass


_LOGIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@+-]{1,63}")
_CURRENCY = re.compile(r"[A-Z]{3}")
_LANGUAGE = re.compile(r"[a-z]{2}(-[A-Z]{2})?")
_COUNTRY_CODE = re.compile(r"[1-9][0-9]{0,2}")
# Money columns hold micro-units in a signed 64-bit integer (about 9.2e12 units): typed amounts stay
# well below, so a balance cannot overflow either.
MAX_AMOUNT = Decimal(10) ** 12


def parse_amount(text: str, *, allow_negative: bool = False) -> Decimal:
    """A money amount typed by a person: plain decimal, at most MONEY_DECIMALS decimals."""
    try:
        amount = Decimal(text.strip())
    except (InvalidOperation, AttributeError):
        raise InvalidInput(f"{text!r} is not an amount") from None
    if not amount.is_finite():
        raise InvalidInput(f"{text!r} is not an amount")
    if abs(amount) >= MAX_AMOUNT:
        raise InvalidInput(f"{text!r} is too large (amounts are below {MAX_AMOUNT:f})")
    if amount != amount.quantize(Decimal(1).scaleb(-MONEY_DECIMALS)):
        raise InvalidInput(f"{text!r} has more than {MONEY_DECIMALS} decimals")
    if amount < 0 and not allow_negative:
        raise InvalidInput(f"{text!r} must not be negative")
    return amount


def _e164(text: str) -> str:
    try:
        return to_e164(text)
    except InvalidNumber as exc:
        raise InvalidInput(str(exc)) from None


def _check(pattern: re.Pattern[str], value: str, what: str) -> str:
    if not pattern.fullmatch(value):
        raise InvalidInput(f"{value!r} is not a valid {what}")
    return value


# --- accounts ------------------------------------------------------------------------------------


def get_account(session: Session, login: str) -> Account:
    account = session.execute(select(Account).where(Account.login == login)).scalar_one_or_none()
    if account is None:
        raise NotFound(f"no account {login!r}")
    return account


def get_tariff(session: Session, name: str) -> Tariff:
    tariff = session.execute(select(Tariff).where(Tariff.name == name)).scalar_one_or_none()
    if tariff is None:
        raise NotFound(f"no tariff {name!r}")
    return tariff


def _tariff_for(session: Session, name: str | None, currency: str) -> Tariff | None:
    if name is None:
        return None
    tariff = get_tariff(session, name)
    if tariff.currency != currency:
        raise InvalidInput(f"tariff {name!r} is in {tariff.currency}, the account in {currency}")
    return tariff


@dataclass
class AccountSpec:
    login: str
    currency: str
    role: Role = Role.CUSTOMER
    tariff: str | None = None
    callback_tariff: str | None = None
    credit_limit: Decimal = Decimal(0)
    language: str = "en"
    country_code: str | None = None
    max_concurrent_calls: int = 2


def create_account(session: Session, spec: AccountSpec) -> Account:
    _check(_LOGIN, spec.login, "login (2-64 letters, digits and _.@+-)")
    _check(_CURRENCY, spec.currency, "currency (three capital letters, e.g. USD)")
    _check(_LANGUAGE, spec.language, "language (e.g. en or pt-BR)")
    if spec.country_code is not None:
        _check(_COUNTRY_CODE, spec.country_code, "country calling code (e.g. 44)")
    if spec.credit_limit < 0:
        raise InvalidInput("the credit limit must not be negative")
    if not 0 <= spec.max_concurrent_calls <= 1000:
        raise InvalidInput("max concurrent calls must be between 0 and 1000")
    if session.execute(select(Account.id).where(Account.login == spec.login)).first():
        raise Conflict(f"an account {spec.login!r} already exists")
    account = Account(
        login=spec.login,
        role=spec.role,
        currency=spec.currency,
        tariff=_tariff_for(session, spec.tariff, spec.currency),
        callback_tariff=_tariff_for(session, spec.callback_tariff, spec.currency),
        credit_limit=spec.credit_limit,
        language=spec.language,
        country_code=spec.country_code,
        max_concurrent_calls=spec.max_concurrent_calls,
    )
    session.add(account)
    session.flush()
    return account


def accounts(session: Session) -> list[Account]:
    return list(session.execute(select(Account).order_by(Account.login)).scalars())


def set_status(session: Session, login: str, status: AccountStatus) -> Account:
    account = get_account(session, login)
    account.status = status
    return account


ACCOUNT_SETTINGS = (
    "tariff",
    "callback_tariff",
    "credit_limit",
    "language",
    "country_code",
    "max_concurrent_calls",
    "max_caller_ids",
    "show_b_to_a",
    "show_a_to_b",
)


def update_account(session: Session, login: str, changes: dict) -> Account:
    """Change some of an account's settings (ACCOUNT_SETTINGS; tariffs by name, None for none)."""
    account = get_account(session, login)
    unknown = set(changes) - set(ACCOUNT_SETTINGS)
    if unknown:
        raise InvalidInput("cannot change " + ", ".join(sorted(unknown)))
    if "tariff" in changes:
        account.tariff = _tariff_for(session, changes["tariff"], account.currency)
    if "callback_tariff" in changes:
        account.callback_tariff = _tariff_for(session, changes["callback_tariff"], account.currency)
    if "credit_limit" in changes:
        if changes["credit_limit"] < 0:
            raise InvalidInput("the credit limit must not be negative")
        account.credit_limit = changes["credit_limit"]
    if "language" in changes:
        account.language = _check(_LANGUAGE, changes["language"], "language (e.g. en or pt-BR)")
    if "country_code" in changes:
        if changes["country_code"] is not None:
            _check(_COUNTRY_CODE, changes["country_code"], "country calling code (e.g. 44)")
        account.country_code = changes["country_code"]
    if "max_concurrent_calls" in changes:
        if not 0 <= changes["max_concurrent_calls"] <= 1000:
            raise InvalidInput("max concurrent calls must be between 0 and 1000")
        account.max_concurrent_calls = changes["max_concurrent_calls"]
    if "max_caller_ids" in changes:
        if not 0 <= changes["max_caller_ids"] <= 1000:
            raise InvalidInput("max caller IDs must be between 0 and 1000")
        account.max_caller_ids = changes["max_caller_ids"]
    for name in ("show_b_to_a", "show_a_to_b"):  # caller ID: is each side shown the other's number?
        if name in changes:
            setattr(account, name, bool(changes[name]))
    session.flush()
    return account


def set_password(session: Session, login: str, password: str) -> Account:
    account = get_account(session, login)
    try:
        account.password_hash = security.hash_password(password)
    except security.CredentialError as exc:
        raise InvalidInput(str(exc)) from None
    return account


def set_pin(session: Session, secret: bytes, login: str, pin: str) -> Account:
    account = get_account(session, login)
    try:
        digest = security.pin_digest(secret, pin)
    except security.CredentialError as exc:
        raise InvalidInput(str(exc)) from None
    holder = session.execute(select(Account.id).where(Account.pin_digest == digest)).scalar_one_or_none()
    if holder is not None and holder != account.id:
        # PINs identify accounts, so two accounts can never share one.
        raise Conflict("this PIN cannot be used; choose another")
    account.pin_digest = digest
    return account


def top_up(
    session: Session, login: str, amount: Decimal, reference: str | None = None, note: str = "", by: str = ""
) -> ledger.Posting:
    account = get_account(session, login)
    if amount <= 0:
        raise InvalidInput("a top-up must be a positive amount")
    if reference is not None and len(reference) > 128:
        raise InvalidInput("a top-up reference is at most 128 characters")
    if len(note) > 255:
        raise InvalidInput("a top-up note is at most 255 characters")
    reference = reference or f"topup:{uuid.uuid4()}"
    try:
        return ledger.post(session, account.id, LedgerKind.TOPUP, amount, reference, note or "top-up", by)
    except ledger.LedgerError as exc:
        raise Conflict(str(exc)) from None


def adjust(
    session: Session, login: str, amount: Decimal, reason: str, reference: str | None = None, by: str = ""
) -> ledger.Posting:
    """A correction of the balance, either way, with the reason recorded in the ledger."""
    account = get_account(session, login)
    if amount == 0:
        raise InvalidInput("an adjustment must not be zero")
    if not reason.strip() or len(reason) > 255:
        raise InvalidInput("an adjustment needs a reason of at most 255 characters")
    if reference is not None and not 1 <= len(reference) <= 128:
        raise InvalidInput("a reference is 1 to 128 characters")
    reference = reference or f"adjustment:{uuid.uuid4()}"
    try:
        return ledger.post(session, account.id, LedgerKind.ADJUSTMENT, amount, reference, reason.strip(), by)
    except ledger.LedgerError as exc:
        raise Conflict(str(exc)) from None


# --- authorized caller IDs ----------------------------------------------------------------------


def add_caller_id(
    session: Session, login: str, number: str, origin: CallerIdOrigin = CallerIdOrigin.MANUAL
) -> AuthorizedCallerId:
    account = get_account(session, login)
    number = _e164(number)
    owner = session.execute(
        select(AuthorizedCallerId.account_id).where(AuthorizedCallerId.number == number)
    ).scalar_one_or_none()
    if owner == account.id:
        raise Conflict(f"+{number} is already authorized for {login!r}")
    if owner is not None:
        raise Conflict(f"+{number} is authorized for another account")
    caller_id = AuthorizedCallerId(account_id=account.id, number=number, origin=origin)
    session.add(caller_id)
    session.flush()
    return caller_id


def remove_caller_id(session: Session, number: str) -> AuthorizedCallerId:
    number = _e164(number)
    caller_id = session.execute(
        select(AuthorizedCallerId).where(AuthorizedCallerId.number == number)
    ).scalar_one_or_none()
    if caller_id is None:
        raise NotFound(f"+{number} is not an authorized caller ID")
    session.delete(caller_id)
    return caller_id


def add_caller_id_within_limit(session: Session, login: str, number: str) -> AuthorizedCallerId:
    """A caller ID added by the account's holder (portal): at most the account's `max_caller_ids`."""
    account = get_account(session, login)
    ledger.lock_account(session, account.id)  # two additions at once cannot both take the last place
    held = session.execute(
        select(func.count(AuthorizedCallerId.id)).where(AuthorizedCallerId.account_id == account.id)
    ).scalar_one()
    if held >= account.max_caller_ids:
        raise Conflict(f"an account has at most {account.max_caller_ids} caller IDs: remove one first")
    return add_caller_id(session, login, number)


def remove_account_caller_id(session: Session, login: str, number: str) -> AuthorizedCallerId:
    """Remove a caller ID of this account; another account's number is "not found" here."""
    account = get_account(session, login)
    number = _e164(number)
    caller_id = session.execute(
        select(AuthorizedCallerId).where(
            AuthorizedCallerId.number == number, AuthorizedCallerId.account_id == account.id
        )
    ).scalar_one_or_none()
    if caller_id is None:
        raise NotFound(f"+{number} is not an authorized caller ID of {login!r}")
    session.delete(caller_id)
    session.flush()
    return caller_id


def caller_ids(session: Session, login: str) -> list[AuthorizedCallerId]:
    account = get_account(session, login)
    query = select(AuthorizedCallerId).where(AuthorizedCallerId.account_id == account.id)
    return list(session.execute(query.order_by(AuthorizedCallerId.number)).scalars())


# --- tariffs -------------------------------------------------------------------------------------


def create_tariff(session: Session, name: str, currency: str, description: str = "") -> Tariff:
    if not 1 <= len(name) <= 64:
        raise InvalidInput("a tariff name is 1 to 64 characters")
    if len(description) > 255:
        raise InvalidInput("a tariff description is at most 255 characters")
    _check(_CURRENCY, currency, "currency (three capital letters, e.g. USD)")
    if session.execute(select(Tariff.id).where(Tariff.name == name)).first():
        raise Conflict(f"a tariff {name!r} already exists")
    tariff = Tariff(name=name, currency=currency, description=description)
    session.add(tariff)
    session.flush()
    return tariff


def import_rates(session: Session, tariff_name: str, csv_text: str) -> tuple[int, int]:
    tariff = get_tariff(session, tariff_name)
    try:
        rows = rates_csv.parse(csv_text)
    except rates_csv.RatesCsvError as exc:
        raise InvalidInput("\n".join(exc.problems)) from None
    return rates_csv.apply(session, tariff, rows)


def export_rates(session: Session, tariff_name: str) -> str:
    return rates_csv.export(session, get_tariff(session, tariff_name))


def tariffs(session: Session) -> list[tuple[Tariff, int]]:
    """Each tariff with its number of rates."""
    query = (
        select(Tariff, func.count(Rate.id))
        .outerjoin(Rate, Rate.tariff_id == Tariff.id)
        .group_by(Tariff.id)
        .order_by(Tariff.name)
    )
    return [(tariff, count) for tariff, count in session.execute(query)]


# --- gateways and access numbers ---------------------------------------------------------------


@dataclass
class GatewaySpec:
    name: str
    uri: str
    trusted_source: str | None = None
    priority: int = 10
    strip_digits: int = 0
    add_prefix: str = ""
    number_format: NumberFormat = NumberFormat.E164
    country_code: str | None = None
    sms_egress: SmsEgress = SmsEgress.SIP  # how SMS replies leave through this gateway
    kannel_sendsms_url: str | None = None  # for sms_egress kannel: sendsms URL with user and password


def _check_gateway(spec: GatewaySpec) -> None:
    if not 1 <= len(spec.name) <= 64:
        raise InvalidInput("a gateway name is 1 to 64 characters")
    if len(spec.uri) > 255:
        raise InvalidInput("a gateway URI is at most 255 characters")
    if not re.fullmatch(r"sips?:[^\s@]*@?[A-Za-z0-9.\-\[\]:]+(;[^\s]*)?", spec.uri):
        raise InvalidInput(f"{spec.uri!r} is not a SIP URI such as sip:192.0.2.10:5060")
    if spec.trusted_source is not None:
        try:
            spec.trusted_source = str(ipaddress.ip_network(spec.trusted_source, strict=False))
        except ValueError:
            raise InvalidInput(f"{spec.trusted_source!r} is not an IP address or network") from None
    if not 0 <= spec.priority <= 1000:
        raise InvalidInput("the priority must be between 0 and 1000")
    if not 0 <= spec.strip_digits <= 15:
        raise InvalidInput("strip digits must be between 0 and 15")
    if spec.add_prefix and not re.fullmatch(r"[0-9*#+]{1,16}", spec.add_prefix):
        raise InvalidInput(f"{spec.add_prefix!r} is not a dial prefix")
    if spec.number_format is NumberFormat.NATIONAL and spec.country_code is None:
        raise InvalidInput("the national number format needs the gateway's country code")
    if spec.country_code is not None:
        _check(_COUNTRY_CODE, spec.country_code, "country calling code (e.g. 44)")
    if spec.sms_egress is SmsEgress.KANNEL and not re.fullmatch(r"https?://\S{1,240}", spec.kannel_sendsms_url or ""):
        raise InvalidInput("SMS by Kannel needs its sendsms URL, e.g. http://127.0.0.1:13013/cgi-bin/sendsms?...")


def add_gateway(session: Session, spec: GatewaySpec) -> Gateway:
    _check_gateway(spec)
    if session.execute(select(Gateway.id).where(Gateway.name == spec.name)).first():
        raise Conflict(f"a gateway {spec.name!r} already exists")
    gateway = Gateway(**asdict(spec))
    session.add(gateway)
    session.flush()
    return gateway


def gateways(session: Session) -> list[Gateway]:
    return list(session.execute(select(Gateway).order_by(Gateway.priority, Gateway.name)).scalars())


def get_gateway(session: Session, name: str) -> Gateway:
    gateway = session.execute(select(Gateway).where(Gateway.name == name)).scalar_one_or_none()
    if gateway is None:
        raise NotFound(f"no gateway {name!r}")
    return gateway


def update_gateway(session: Session, name: str, changes: dict, enabled: bool | None = None) -> Gateway:
    """Change some of a gateway's settings (GatewaySpec fields but the name), checked as when adding."""
    gateway = get_gateway(session, name)
    if "name" in changes:
        raise InvalidInput("a gateway keeps its name")
    spec = GatewaySpec(**{f.name: getattr(gateway, f.name) for f in fields(GatewaySpec)} | changes)
    _check_gateway(spec)
    for key, value in asdict(spec).items():
        setattr(gateway, key, value)
    if enabled is not None:
        gateway.enabled = enabled
    session.flush()
    return gateway


@dataclass
class AccessNumberSpec:
    number: str
    label: str = ""
    language: str = "en"
    ring_time_seconds: int = 5
    callback_delay_seconds: int = 3
    allow_pin: bool = True
    allow_ani: bool = True
    known_callers_only: bool = False
    save_caller_id_on_pin: bool = True
    announce_balance: bool = True
    retry_attempts: int = 0  # further calls to a caller who did not answer
    retry_interval_seconds: int = 30


def _check_access_number(spec: AccessNumberSpec) -> str:
    """The spec's number as stored, once every setting is checked."""
    try:
        number = service_number(spec.number)
    except InvalidNumber as exc:
        raise InvalidInput(str(exc)) from None
    _check(_LANGUAGE, spec.language, "language (e.g. en or pt-BR)")
    if len(spec.label) > 100:
        raise InvalidInput("an access number label is at most 100 characters")
    if not 1 <= spec.ring_time_seconds <= 60:
        raise InvalidInput("the ring time must be between 1 and 60 seconds")
    if not 3 <= spec.callback_delay_seconds <= 6:
        raise InvalidInput("the callback delay must be between 3 and 6 seconds")
    if not (spec.allow_pin or spec.allow_ani):
        raise InvalidInput("an access number must allow PIN or caller ID authorization, or both")
    if not 0 <= spec.retry_attempts <= 5:
        raise InvalidInput("retries must be between 0 and 5")
    if not 5 <= spec.retry_interval_seconds <= 3600:
        raise InvalidInput("the retry interval must be between 5 and 3600 seconds")
    return number


def add_access_number(session: Session, spec: AccessNumberSpec) -> AccessNumber:
    number = _check_access_number(spec)
    if session.execute(select(AccessNumber.id).where(AccessNumber.number == number)).first():
        raise Conflict(f"access number {number} already exists")
    access_number = AccessNumber(**asdict(spec) | {"number": number})
    session.add(access_number)
    session.flush()
    return access_number


def access_numbers(session: Session) -> list[AccessNumber]:
    return list(session.execute(select(AccessNumber).order_by(AccessNumber.number)).scalars())


def get_access_number(session: Session, number: str) -> AccessNumber:
    access_number = session.execute(
        select(AccessNumber).where(AccessNumber.number == number.strip())
    ).scalar_one_or_none()
    if access_number is None:
        raise NotFound(f"no access number {number!r}")
    return access_number


def update_access_number(session: Session, number: str, changes: dict, enabled: bool | None = None) -> AccessNumber:
    """Change some of an access number's callback settings, checked as when adding."""
    access_number = get_access_number(session, number)
    if "number" in changes:
        raise InvalidInput("an access number keeps its number")
    current = {f.name: getattr(access_number, f.name) for f in fields(AccessNumberSpec)}
    spec = AccessNumberSpec(**current | changes)
    _check_access_number(spec)
    for key, value in asdict(spec).items():
        setattr(access_number, key, value)
    if enabled is not None:
        access_number.enabled = enabled
    session.flush()
    return access_number


# --- records -------------------------------------------------------------------------------------


def cdrs(session: Session, login: str | None = None, limit: int = 100) -> list[Cdr]:
    query = select(Cdr).order_by(Cdr.answer_time.desc(), Cdr.id.desc()).limit(limit)
    if login is not None:
        query = query.where(Cdr.account_id == get_account(session, login).id)
    return list(session.execute(query).scalars())


def ledger_entries(session: Session, login: str, limit: int = 100) -> list[LedgerEntry]:
    return ledger.entries(session, get_account(session, login).id, limit)
