"""The SMS handler's database edge: claim a received text, carry out its command and queue its
reply in one transaction, so a command is never done without its reply queued, nor twice.

Blocking SQLAlchemy calls; the controller runs them in worker threads.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from boomerang import security
from boomerang.numbers import InvalidNumber, PrefixList, dialled_to_e164
from boomerang.store.models import (
    Account,
    AccountStatus,
    AuthorizedCallerId,
    CallbackKind,
    CallerIdOrigin,
    Gateway,
    SmsDirection,
    SmsEgress,
    SmsMessage,
    SmsStatus,
)
from callback import requests
from callback import sms_commands as words
from callback.sms_commands import Command, CommandError, Verb
from callback.store import CallbackStore
from rating import credit

SENDER_LIMIT_PER_HOUR = 20  # texts one phone may send in an hour before commands are refused
PIN_FAILURES_PER_HOUR = 3  # wrong REG PINs from one phone before REG is refused for the hour
CALLBACK_DELAY = timedelta(seconds=3)
_NUMBER_SEPARATORS = str.maketrans("", "", "-.()/")


@dataclass(frozen=True)
class Reply:
    """A queued answer SMS, and how it leaves."""

    id: int
    to: str
    sender: str  # our service number
    text: str
    egress: SmsEgress
    gateway: str | None  # the gateway the question came through
    kannel_sendsms_url: str | None
    callback_requested: bool = False


class SmsStore:
    def __init__(self, store: CallbackStore, blocked: PrefixList) -> None:
        self.store = store
        self.blocked = blocked
        self._secret = store.settings.secret_key()

    def waiting(self) -> list[int]:
        """Received texts not yet handled (some arrived while no controller ran)."""
        with self.store.reading() as session:
            return list(
                session.execute(
                    select(SmsMessage.id)
                    .where(SmsMessage.direction == SmsDirection.INBOUND, SmsMessage.status == SmsStatus.RECEIVED)
                    .order_by(SmsMessage.id)
                    .limit(100)
                ).scalars()
            )

    def handle(self, sms_id: int, now: datetime) -> Reply | None:
        """Claim one received text, carry out its command, queue its reply; None if already handled."""
        with self.store.writing() as session:
            claimed = session.execute(
                update(SmsMessage)
                .where(SmsMessage.id == sms_id, SmsMessage.status == SmsStatus.RECEIVED)
                .values(status=SmsStatus.HANDLED, updated_at=now)
            ).rowcount
            if not claimed:
                return None
            message = session.get(SmsMessage, sms_id)
            outcome = _Outcome()
            try:
                text = self._carry_out(session, message, now, outcome)
            except CommandError as refusal:
                text = str(refusal)
            message.text = words.redacted(message.text)  # no PIN kept
            reply = SmsMessage(
                direction=SmsDirection.OUTBOUND,
                channel=message.channel,
                gateway_id=message.gateway_id,
                sender=message.receiver,
                receiver=message.sender,
                text=text,
                status=SmsStatus.QUEUED,
                in_reply_to_id=message.id,
                account_id=message.account_id,
                created_at=now,
            )
            session.add(reply)
            session.flush()
            gateway = session.get(Gateway, message.gateway_id) if message.gateway_id else None
            return Reply(
                reply.id, message.sender, message.receiver, text,
                gateway.sms_egress if gateway else SmsEgress.SIP,
                gateway.name if gateway else None,
                gateway.kannel_sendsms_url if gateway else None,
                outcome.callback_requested,
            )  # fmt: skip

    def sent(self, sms_id: int, delivered: bool, now: datetime) -> None:
        with self.store.writing() as session:
            session.execute(
                update(SmsMessage)
                .where(SmsMessage.id == sms_id, SmsMessage.status == SmsStatus.QUEUED)
                .values(status=SmsStatus.SENT if delivered else SmsStatus.FAILED, updated_at=now)
            )

    # --- the commands ------------------------------------------------------------------------------

    def _carry_out(self, session: Session, message: SmsMessage, now: datetime, outcome: _Outcome) -> str:
        if _texts_from(session, message.sender, now - timedelta(hours=1)) > SENDER_LIMIT_PER_HOUR:
            return words.TOO_MANY
        command = words.parse(message.text)
        if command.verb is Verb.REGISTER:
            return self._register(session, message, command, now)
        account = session.execute(
            select(Account).join(AuthorizedCallerId).where(AuthorizedCallerId.number == message.sender)
        ).scalar_one_or_none()
        if account is None:
            return words.NOT_REGISTERED
        message.account_id = account.id
        if command.verb is Verb.HELP:
            return words.HELP_TEXT
        if command.verb is Verb.BALANCE:
            available = credit.credit(session, account.id, now).free
            return words.balance_reply(account.balance, available, account.currency)
        if command.verb is Verb.RATE:
            return self._rate(session, account, self._number(command.numbers[0], account), now)
        if account.status is not AccountStatus.ACTIVE:
            return words.ACCOUNT_UNAVAILABLE
        if command.verb is Verb.CONNECT:
            a, b = (self._number(number, account) for number in command.numbers)
            try:
                requests.connect_two(session, self.store.tariffs, account, a, b, kind=CallbackKind.SMS,
                                     request_ref=f"sms:{message.id}", now=now, delay=CALLBACK_DELAY)  # fmt: skip
            except requests.RequestRefused as refused:
                return str(refused)
            outcome.callback_requested = True
            return words.CONNECTING.format(a=a, b=b)
        destination = self._number(command.numbers[0], account) if command.verb is Verb.CALL_ME_TO else None
        try:
            requests.call_back(session, self.store.tariffs, account, message.sender, destination, kind=CallbackKind.SMS,
                               request_ref=f"sms:{message.id}", now=now, delay=CALLBACK_DELAY)  # fmt: skip
        except requests.RequestRefused as refused:
            return str(refused)
        outcome.callback_requested = True
        return words.CALLING_YOU if destination is None else words.CALLING_YOU_TO.format(number=destination)

    def _register(self, session: Session, message: SmsMessage, command: Command, now: datetime) -> str:
        if _failed_registrations(session, message, now - timedelta(hours=1)) >= PIN_FAILURES_PER_HOUR:
            return words.PIN_LOCKED
        owner = session.execute(
            select(AuthorizedCallerId.account_id).where(AuthorizedCallerId.number == message.sender)
        ).scalar_one_or_none()
        try:
            digest = security.pin_digest(self._secret, command.pin)
        except security.CredentialError:
            digest = None
        account = session.execute(select(Account).where(Account.pin_digest == digest)).scalar_one_or_none()
        if account is None:
            return words.WRONG_PIN
        message.account_id = account.id  # a good PIN: not counted against the phone
        if owner == account.id:
            return words.ALREADY_REGISTERED
        if owner is not None:
            return words.REGISTERED_ELSEWHERE
        session.add(AuthorizedCallerId(account_id=account.id, number=message.sender, origin=CallerIdOrigin.SMS))
        return words.REGISTERED

    def _number(self, text: str, account: Account) -> str:
        try:
            number = dialled_to_e164(text.translate(_NUMBER_SEPARATORS), account.country_code)
        except InvalidNumber:
            raise CommandError(words.INVALID_NUMBER.format(shown=words._shown(text))) from None
        if self.blocked.covers(number):
            raise CommandError(words.BLOCKED.format(number=number))
        return number

    def _rate(self, session: Session, account: Account, number: str, now: datetime) -> str:
        if account.tariff_id is None:
            return words.NO_RATE.format(number=number)
        entry = self.store.tariffs.get(session, account.tariff_id).lookup(number, now)
        if entry is None:
            return words.NO_RATE.format(number=number)
        return words.rate_reply(number, entry.destination, entry.price.per_minute, entry.price.connect_fee,
                                account.currency)  # fmt: skip


@dataclass
class _Outcome:
    callback_requested: bool = False


def _texts_from(session: Session, sender: str, since: datetime) -> int:
    return session.execute(
        select(func.count())
        .select_from(SmsMessage)
        .where(
            SmsMessage.direction == SmsDirection.INBOUND,
            SmsMessage.sender == sender,
            SmsMessage.created_at >= since,
        )
    ).scalar_one()


def _failed_registrations(session: Session, message: SmsMessage, since: datetime) -> int:
    """Earlier REG texts from this phone that named no account (a good PIN records the account)."""
    texts = session.execute(
        select(SmsMessage.text).where(
            SmsMessage.direction == SmsDirection.INBOUND,
            SmsMessage.sender == message.sender,
            SmsMessage.id != message.id,
            SmsMessage.created_at >= since,
            SmsMessage.status == SmsStatus.HANDLED,
            SmsMessage.account_id.is_(None),
        )
    ).scalars()
    return sum(1 for text in texts if words.is_pin_attempt(text))
