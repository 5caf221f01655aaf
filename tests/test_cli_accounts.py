"""`boomerang account ...` and `boomerang callerid ...`: exit codes, messages and the state left behind.

Exit codes (boomerang/cli/main.py): 0 done, 2 invalid input or usage, 3 not found, 4 conflict.
Error cases are looped inside one test where they share a starting state: every command run costs a
database connection, and a test a fresh database, on each backend.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import func, select

from boomerang import security
from boomerang.store.models import Account, AuthorizedCallerId, LedgerEntry
from tests.clikit import failed, ok, table

# --- helpers -------------------------------------------------------------------------------------


def show(cli, login: str) -> dict[str, str]:
    out = ok(cli("account", "show", login))
    return dict(line.split("\t", 1) for line in out.splitlines())


def logins(cli) -> list[str]:
    return [row["login"] for row in table(ok(cli("account", "list")))]


def ledger(cli, login: str) -> list[dict[str, str]]:
    return table(ok(cli("ledger", "list", login)))


def callerids(cli, login: str) -> list[str]:
    return [row["number"] for row in table(ok(cli("callerid", "list", login)))]


def column(db, attribute, login: str):
    with db() as session:
        return session.execute(select(attribute).where(Account.login == login)).scalar_one()


def count(db, model) -> int:
    with db() as session:
        return session.execute(select(func.count()).select_from(model)).scalar_one()


@pytest.fixture
def alice(cli) -> str:
    ok(cli("account", "create", "alice", "--currency", "USD"))
    return "alice"


@pytest.fixture
def bob(cli) -> str:
    ok(cli("account", "create", "bob", "--currency", "USD"))
    return "bob"


# --- account create, show, list ------------------------------------------------------------------


def test_create_show_and_list(cli):
    assert ok(cli("account", "list")) == "login\trole\tstatus\tcurrency\tbalance\tcredit_limit\n"

    assert ok(cli("account", "create", "zed", "--currency", "USD")).startswith("account zed created (id ")
    ok(cli("account", "create", "anna", "--currency", "EUR", "--admin", "--credit-limit", "3"))
    ok(cli("account", "topup", "zed", "7.25"))

    assert show(cli, "zed") == {
        "login": "zed",
        "role": "customer",
        "status": "active",
        "currency": "USD",
        "balance": "7.250000",
        "credit_limit": "0.000000",
        "tariff": "",
        "callback_tariff": "",
        "language": "en",
        "country_code": "",
        "max_concurrent_calls": "2",
        "pin": "not set",
        "password": "not set",
        "caller_ids": "",
    }
    assert show(cli, "anna")["role"] == "admin"
    assert table(ok(cli("account", "list"))) == [
        {
            "login": "anna",
            "role": "admin",
            "status": "active",
            "currency": "EUR",
            "balance": "0.000000",
            "credit_limit": "3.000000",
        },
        {
            "login": "zed",
            "role": "customer",
            "status": "active",
            "currency": "USD",
            "balance": "7.250000",
            "credit_limit": "0.000000",
        },
    ]


def test_create_with_every_option(cli, db):
    ok(cli("tariff", "create", "retail", "--currency", "EUR"))
    ok(cli("tariff", "create", "legs", "--currency", "EUR"))

    ok(
        cli(
            "account", "create", "bob.smith@example.com", "--currency", "EUR", "--tariff", "retail",
            "--callback-tariff", "legs", "--credit-limit", "5.50", "--language", "pt-BR",
            "--country-code", "44", "--max-calls", "0",
        )
    )  # fmt: skip

    fields = show(cli, "bob.smith@example.com")
    assert fields["currency"] == "EUR"
    assert (fields["tariff"], fields["callback_tariff"]) == ("retail", "legs")
    assert fields["credit_limit"] == "5.500000"
    assert (fields["language"], fields["country_code"]) == ("pt-BR", "44")
    assert fields["max_concurrent_calls"] == "0"
    assert column(db, Account.credit_limit, "bob.smith@example.com") == Decimal("5.5")


CREATE_REFUSED = [
    # (login, extra arguments, message)
    ("a", [], "is not a valid login"),
    ("_alice", [], "is not a valid login"),
    ("alice!", [], "is not a valid login"),
    ("x" * 65, [], "is not a valid login"),
    ("alice", ["--currency", "usd"], "is not a valid currency"),
    ("alice", ["--currency", ""], "is not a valid currency"),
    ("alice", ["--language", "english"], "is not a valid language"),
    ("alice", ["--country-code", "044"], "is not a valid country calling code"),
    ("alice", ["--max-calls", "1001"], "max concurrent calls must be between 0 and 1000"),
    ("alice", ["--credit-limit", "-1"], "must not be negative"),
    ("alice", ["--credit-limit", "0.0000001"], "has more than 6 decimals"),
    ("alice", ["--credit-limit", "1e30"], "is too large"),
]


def test_create_refuses_bad_input(cli, db):
    for login, extra, message in CREATE_REFUSED:
        arguments = ["account", "create", login, *(extra if "--currency" in extra else ["--currency", "USD", *extra])]
        failed(cli(*arguments), 2, message)

    assert logins(cli) == []
    assert count(db, Account) == 0


def test_create_with_a_tariff_that_does_not_fit(cli):
    ok(cli("tariff", "create", "euro", "--currency", "EUR"))

    failed(cli("account", "create", "alice", "--currency", "USD", "--tariff", "nope"), 3, "no tariff 'nope'")
    failed(cli("account", "create", "alice", "--currency", "USD", "--callback-tariff", "nope"), 3, "no tariff 'nope'")
    failed(
        cli("account", "create", "alice", "--currency", "USD", "--tariff", "euro"),
        2,
        "tariff 'euro' is in EUR, the account in USD",
    )
    failed(cli("account", "create", "alice", "--currency", "USD", "--callback-tariff", "euro"), 2, "is in EUR")

    assert logins(cli) == []


def test_create_refuses_a_duplicate_login(cli, alice):
    failed(cli("account", "create", "alice", "--currency", "EUR", "--admin"), 4, "an account 'alice' already exists")

    assert logins(cli) == ["alice"]
    fields = show(cli, "alice")
    assert (fields["currency"], fields["role"]) == ("USD", "customer")


def test_usage_errors_exit_2(cli, db):
    for arguments, fragment in [
        (["account", "create", "alice"], "--currency"),
        (["account", "create", "alice", "--currency", "USD", "--max-calls", "two"], "invalid int value"),
        (["account", "create", "--currency", "USD"], "login"),
        (["account", "topup", "alice"], "amount"),
        (["account", "set-pin"], "login"),
        (["account"], "ACTION"),
        (["account", "close", "alice"], "invalid choice"),
        (["callerid", "add", "alice"], "number"),
    ]:
        result = cli(*arguments)
        assert result.code == 2, (arguments, result)
        assert "usage: boomerang" in result.err and fragment in result.err, (arguments, result.err)

    assert count(db, Account) == 0


def test_an_unknown_account_is_not_found(cli, db, alice):
    for arguments, stdin in [
        (["account", "show", "ghost"], ""),
        (["account", "suspend", "ghost"], ""),
        (["account", "activate", "ghost"], ""),
        (["account", "set-password", "ghost"], "long enough\n"),
        (["account", "set-pin", "ghost"], "4321\n"),
        (["account", "topup", "ghost", "10", "--reference", "inv-9"], ""),
        (["callerid", "add", "ghost", "+447700900123"], ""),
        (["callerid", "list", "ghost"], ""),
    ]:
        failed(cli(*arguments, stdin=stdin), 3, "no account 'ghost'")

    assert logins(cli) == ["alice"]
    assert count(db, LedgerEntry) == 0
    assert count(db, AuthorizedCallerId) == 0
    ok(cli("account", "set-pin", "alice", stdin="4321\n"))  # the PIN was not taken by the failed attempt
    ok(cli("account", "topup", "alice", "10", "--reference", "inv-9"))  # nor the reference
    assert show(cli, "alice")["balance"] == "10.000000"


# --- suspend / activate ---------------------------------------------------------------------------


def test_suspend_and_activate(cli, alice):
    assert ok(cli("account", "suspend", "alice")) == "account alice is suspended\n"
    assert show(cli, "alice")["status"] == "suspended"
    assert table(ok(cli("account", "list")))[0]["status"] == "suspended"

    assert ok(cli("account", "activate", "alice")) == "account alice is active\n"
    assert show(cli, "alice")["status"] == "active"


# --- set-password ------------------------------------------------------------------------------------


def test_set_password_from_stdin_and_refuse_a_short_one(cli, db, alice):
    assert ok(cli("account", "set-password", "alice", stdin="correct horse\n")) == "password of alice set\n"

    shown = ok(cli("account", "show", "alice"))
    assert "password\tset\n" in shown
    assert "correct horse" not in shown
    stored = column(db, Account.password_hash, "alice")
    assert "correct horse" not in stored
    assert security.verify_password(stored, "correct horse")
    assert not security.verify_password(stored, "correct horse\n")

    for stdin in ["abc\n", "abc", "\n", ""]:
        failed(cli("account", "set-password", "alice", stdin=stdin), 2, "a password needs at least 4 characters")

    assert column(db, Account.password_hash, "alice") == stored


# --- set-pin -------------------------------------------------------------------------------------------


def test_set_pin_is_stored_as_a_keyed_digest_only(cli, db, migrated, alice, bob):
    assert ok(cli("account", "set-pin", "alice", stdin="4321\n")) == "PIN of alice set\n"

    shown = ok(cli("account", "show", "alice"))
    assert "pin\tset\n" in shown
    assert "4321" not in shown
    digest = column(db, Account.pin_digest, "alice")
    assert "4321" not in digest
    assert digest == security.pin_digest(migrated.secret_key(), "4321")
    assert digest != security.pin_digest(b"the secret key of another deployment", "4321")

    # Setting it again replaces it, and frees the old PIN for another account.
    ok(cli("account", "set-pin", "alice", stdin="4321\n"))  # the same PIN again: still alice's
    ok(cli("account", "set-pin", "alice", stdin="987654\n"))
    ok(cli("account", "set-pin", "bob", stdin="4321"))  # no newline at the end of stdin

    secret = migrated.secret_key()
    assert column(db, Account.pin_digest, "alice") == security.pin_digest(secret, "987654")
    assert column(db, Account.pin_digest, "bob") == security.pin_digest(secret, "4321")


def test_set_pin_refuses_what_is_not_4_to_12_digits(cli, db, migrated, alice):
    ok(cli("account", "set-pin", "alice", stdin="4321\n"))

    # A letter, too short, too long, empty, a space, and digits no telephone keypad sends.
    for pin in ["12a4", "123", "1234567890123", "", "12 34", "١٢٣٤", "12³4"]:
        failed(cli("account", "set-pin", "alice", stdin=pin + "\n"), 2, "a PIN is 4 to 12 digits")

    assert column(db, Account.pin_digest, "alice") == security.pin_digest(migrated.secret_key(), "4321")


def test_set_pin_refuses_a_pin_another_account_holds(cli, db, migrated, alice, bob):
    ok(cli("account", "set-pin", "alice", stdin="4321\n"))

    result = cli("account", "set-pin", "bob", stdin="4321\n")

    failed(result, 4, "this PIN cannot be used; choose another")
    assert "alice" not in result.err  # the refusal does not tell who holds the PIN
    assert show(cli, "bob")["pin"] == "not set"
    assert column(db, Account.pin_digest, "bob") is None
    assert column(db, Account.pin_digest, "alice") == security.pin_digest(migrated.secret_key(), "4321")


# --- topup ------------------------------------------------------------------------------------------


def test_topup_adds_credit_through_the_ledger(cli, db, alice):
    out = ok(cli("account", "topup", "alice", "10", "--reference", "inv-1", "--note", "bank transfer"))
    assert "(reference inv-1); balance 10.000000" in out
    ok(cli("account", "topup", "alice", "2.5"))
    ok(cli("account", "topup", "alice", " 0.000001 "))

    assert show(cli, "alice")["balance"] == "12.500001"
    newest, middle, oldest = ledger(cli, "alice")
    assert (oldest["kind"], oldest["amount"], oldest["balance"]) == ("topup", "10.000000", "10.000000")
    assert (oldest["reference"], oldest["description"]) == ("inv-1", "bank transfer")
    assert (middle["amount"], middle["balance"], middle["description"]) == ("2.500000", "12.500000", "top-up")
    assert middle["reference"].startswith("topup:")
    assert (newest["amount"], newest["balance"]) == ("0.000001", "12.500001")
    assert column(db, Account.balance, "alice") == Decimal("12.500001")
    with db() as session:
        assert session.execute(select(LedgerEntry.created_by)).scalars().all() == ["cli"] * 3


def test_topup_refuses_a_bad_amount(cli, alice):
    ok(cli("account", "topup", "alice", "1"))

    for amount, message in [
        ("-5", "must not be negative"),
        ("0", "a top-up must be a positive amount"),
        ("ten", "is not an amount"),
        ("", "is not an amount"),
        ("NaN", "is not an amount"),
        ("1.0000001", "has more than 6 decimals"),
        ("1e30", "is too large"),
        ("99999999999999999999", "is too large"),
    ]:
        failed(cli("account", "topup", "alice", amount), 2, message)
    failed(cli("account", "topup", "alice", "1", "--reference", "r" * 129), 2, "at most 128 characters")
    failed(cli("account", "topup", "alice", "1", "--note", "n" * 256), 2, "at most 255 characters")

    assert show(cli, "alice")["balance"] == "1.000000"
    assert len(ledger(cli, "alice")) == 1
    ok(cli("account", "topup", "alice", "1", "--reference", "r" * 128, "--note", "n" * 255))
    assert show(cli, "alice")["balance"] == "2.000000"


def test_topup_reference_applies_once(cli, alice, bob):
    ok(cli("account", "topup", "alice", "10", "--reference", "inv-7"))

    again = ok(cli("account", "topup", "alice", "10.00", "--reference", "inv-7"))

    assert again == "reference inv-7 was already applied; nothing changed\n"
    assert show(cli, "alice")["balance"] == "10.000000"
    assert [row["reference"] for row in ledger(cli, "alice")] == ["inv-7"]

    # Reused for another amount or account: a conflict, and nothing moves.
    failed(cli("account", "topup", "alice", "20", "--reference", "inv-7"), 4, "already used for a different entry")
    failed(cli("account", "topup", "bob", "10", "--reference", "inv-7"), 4, "already used for a different entry")

    assert show(cli, "alice")["balance"] == "10.000000"
    assert show(cli, "bob")["balance"] == "0.000000"
    assert len(ledger(cli, "alice")) == 1
    assert ledger(cli, "bob") == []


# --- callerid ---------------------------------------------------------------------------------------


def test_callerid_add_reads_international_forms(cli, alice):
    for typed in ["0044 7700 900123", "447700900123", "+44 (7700) 900-123"]:
        assert ok(cli("callerid", "add", "alice", typed)) == "+447700900123 authorized for alice\n", typed
        assert ok(cli("callerid", "remove", "+447700900123")) == "+447700900123 removed\n", typed

    ok(cli("callerid", "add", "alice", "+44 7700 900123"))
    rows = table(ok(cli("callerid", "list", "alice")))
    assert [(row["number"], row["origin"]) for row in rows] == [("+447700900123", "manual")]
    assert show(cli, "alice")["caller_ids"] == "+447700900123"


def test_callerid_add_refuses_what_is_not_an_international_number(cli, db, alice):
    for typed, message in [
        ("07700 900123", "is not in international format"),
        ("abc", "is not a telephone number"),
        ("+44 7700 9001x3", "is not a telephone number"),
        ("+٤٤٧٧٠٠٩٠٠١٢٣", "is not a telephone number"),
        ("+44123", "must have 6 to 15 digits"),
        ("+1234567890123456", "must have 6 to 15 digits"),
    ]:
        failed(cli("callerid", "add", "alice", typed), 2, message)

    assert callerids(cli, "alice") == []
    assert count(db, AuthorizedCallerId) == 0


def test_callerid_add_a_number_twice_is_a_conflict(cli, db, alice, bob):
    ok(cli("callerid", "add", "alice", "+447700900123"))

    failed(cli("callerid", "add", "alice", "+44 7700 900123"), 4, "+447700900123 is already authorized for 'alice'")
    failed(cli("callerid", "add", "bob", "0044 7700 900123"), 4, "+447700900123 is authorized for another account")

    assert callerids(cli, "alice") == ["+447700900123"]
    assert callerids(cli, "bob") == []
    assert count(db, AuthorizedCallerId) == 1


def test_callerid_list_is_sorted_and_per_account(cli, alice, bob):
    assert ok(cli("callerid", "list", "alice")) == "number\torigin\tadded\n"
    ok(cli("callerid", "add", "alice", "+33612345678"))
    ok(cli("callerid", "add", "alice", "+14155550100"))
    ok(cli("callerid", "add", "bob", "+447700900123"))

    assert callerids(cli, "alice") == ["+14155550100", "+33612345678"]
    assert callerids(cli, "bob") == ["+447700900123"]
    assert show(cli, "bob")["caller_ids"] == "+447700900123"


def test_callerid_remove_frees_the_number(cli, alice, bob):
    ok(cli("callerid", "add", "alice", "+447700900123"))
    ok(cli("callerid", "add", "alice", "+33612345678"))

    assert ok(cli("callerid", "remove", "0044 7700 900123")) == "+447700900123 removed\n"

    assert callerids(cli, "alice") == ["+33612345678"]
    ok(cli("callerid", "add", "bob", "+447700900123"))
    assert callerids(cli, "bob") == ["+447700900123"]


def test_callerid_remove_an_unknown_number(cli, alice):
    ok(cli("callerid", "add", "alice", "+447700900123"))

    failed(cli("callerid", "remove", "+447700900999"), 3, "+447700900999 is not an authorized caller ID")
    failed(cli("callerid", "remove", "07700 900123"), 2, "is not in international format")

    assert callerids(cli, "alice") == ["+447700900123"]
