"""How records appear in the API and on the pages: money as decimal strings, times as ISO 8601 UTC,
numbers with their "+". Secrets (password hashes, PIN digests, token digests) never appear."""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal

from boomerang.store.models import (
    AccessNumber,
    Account,
    ApiToken,
    AuthorizedCallerId,
    Gateway,
    LedgerEntry,
    SmsMessage,
    Tariff,
)

CENT = Decimal("0.01")
# "REG <PIN>" (also R, REGISTER) carries a PIN: the SMS log shows the command, never the PIN.
_PIN_COMMAND = re.compile(r"^(\s*(?:REG|REGISTER|R)\s+)\S+", re.IGNORECASE)


def money(amount: Decimal) -> str:
    """At least two decimals, more only when they carry value: "10.00", "0.0125", "-3.50"."""
    if amount == amount.quantize(CENT):
        return f"{amount.quantize(CENT):f}"
    return f"{amount.normalize():f}"


def optional_money(amount: Decimal | None) -> str | None:
    return None if amount is None else money(amount)


def moment(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat().replace("+00:00", "Z")


def phone(number: str | None) -> str | None:
    """E.164 digits as shown to people; our own short service numbers have no "+"."""
    if not number:
        return number
    return "+" + number if len(number) >= 6 else number


def caller_id(record: AuthorizedCallerId) -> dict:
    return {"number": phone(record.number), "origin": str(record.origin), "created_at": moment(record.created_at)}


def ledger_entry(entry: LedgerEntry, login: str | None = None) -> dict:
    shown = {
        "id": entry.id,
        "kind": str(entry.kind),
        "amount": money(entry.amount),
        "balance_after": money(entry.balance_after),
        "reference": entry.reference,
        "description": entry.description,
        "created_by": entry.created_by,
        "created_at": moment(entry.created_at),
    }
    if login is not None:
        shown["account"] = login
    return shown


def account(record: Account, tariff_names: dict[int, str]) -> dict:
    return {
        "login": record.login,
        "role": str(record.role),
        "status": str(record.status),
        "currency": record.currency,
        "balance": money(record.balance),
        "credit_limit": money(record.credit_limit),
        "language": record.language,
        "country_code": record.country_code,
        "tariff": tariff_names.get(record.tariff_id) if record.tariff_id else None,
        "callback_tariff": tariff_names.get(record.callback_tariff_id) if record.callback_tariff_id else None,
        "max_concurrent_calls": record.max_concurrent_calls,
        "max_caller_ids": record.max_caller_ids,
        "show_b_to_a": record.show_b_to_a,
        "show_a_to_b": record.show_a_to_b,
        "can_sign_in": record.password_hash is not None,
        "has_pin": record.pin_digest is not None,
        "created_at": moment(record.created_at),
    }


def tariff(record: Tariff, rates: int) -> dict:
    return {
        "name": record.name,
        "currency": record.currency,
        "description": record.description,
        "rates": rates,
        "created_at": moment(record.created_at),
    }


def gateway(record: Gateway) -> dict:
    return {
        "name": record.name,
        "uri": record.uri,
        "trusted_source": record.trusted_source,
        "priority": record.priority,
        "enabled": record.enabled,
        "strip_digits": record.strip_digits,
        "add_prefix": record.add_prefix,
        "number_format": str(record.number_format),
        "country_code": record.country_code,
        "sms_egress": str(record.sms_egress),
        # The sendsms URL carries Kannel's user and password: show only whether one is set.
        "kannel_sendsms_url_set": bool(record.kannel_sendsms_url),
        "created_at": moment(record.created_at),
    }


ACCESS_NUMBER_SETTINGS = (
    "label",
    "enabled",
    "language",
    "ring_time_seconds",
    "callback_delay_seconds",
    "allow_pin",
    "allow_ani",
    "known_callers_only",
    "save_caller_id_on_pin",
    "announce_balance",
    "retry_attempts",
    "retry_interval_seconds",
)


def access_number(record: AccessNumber) -> dict:
    return {"number": record.number} | {name: getattr(record, name) for name in ACCESS_NUMBER_SETTINGS}


def sms(record: SmsMessage) -> dict:
    return {
        "id": record.id,
        "direction": str(record.direction),
        "channel": str(record.channel),
        "sender": record.sender,
        "receiver": record.receiver,
        "text": sms_text(record.text, record.direction),
        "status": str(record.status),
        "in_reply_to": record.in_reply_to_id,
        "created_at": moment(record.created_at),
    }


def sms_text(text: str, direction: str) -> str:
    return _PIN_COMMAND.sub(r"\1****", text) if direction == "inbound" else text


def api_token(record: ApiToken) -> dict:
    return {
        "id": record.id,
        "name": record.name,
        "hint": record.hint,
        "created_at": moment(record.created_at),
        "last_used_at": moment(record.last_used_at),
        "expires_at": moment(record.expires_at),
    }
