"""`boomerang gateway add|list` and `boomerang access-number add|list`.

Exit codes (boomerang/cli/main.py): 0 done, 2 invalid input or usage, 4 conflict.
"""

from __future__ import annotations

import functools

from sqlalchemy import func, select

from boomerang.store.models import AccessNumber, Gateway, NumberFormat, SmsEgress
from tests import clikit
from tests.clikit import ok, table

failed = functools.partial(clikit.failed, usage_errors=True)

GATEWAY_HEADER = "name\turi\ttrusted_source\tpriority\tenabled\tformat\n"
ACCESS_HEADER = "number\tlabel\tring_time\tcallback_delay\tpin\tani\tknown_only\tretries\n"


def count(db, model) -> int:
    with db() as session:
        return session.execute(select(func.count()).select_from(model)).scalar_one()


# --- gateway ---------------------------------------------------------------------------------------------


def test_gateway_add_and_list(cli, db):
    assert ok(cli("gateway", "list")) == GATEWAY_HEADER

    out = ok(cli("gateway", "add", "carrier-a", "sip:192.0.2.10:5060", "--trusted-source", "192.0.2.10"))
    assert out == "gateway carrier-a added\n"
    ok(cli("gateway", "add", "carrier-b", "sips:trunk@carrier.example.net;transport=tls", "--priority", "5"))
    ok(
        cli(
            "gateway", "add", "carrier-c", "sip:[2001:db8::10]:5060", "--trusted-source", "2001:db8::7/64",
            "--priority", "5", "--strip", "2", "--prefix", "00", "--format", "national", "--country-code", "44",
        )
    )  # fmt: skip
    sendsms = "http://127.0.0.1:13013/cgi-bin/sendsms?username=u"
    ok(cli("gateway", "add", "carrier-d", "sip:198.51.100.1", "--trusted-source", "198.51.100.77/24",
           "--sms-egress", "kannel", "--kannel-sendsms-url", sendsms))  # fmt: skip

    assert table(ok(cli("gateway", "list"))) == [  # by priority, then name
        {
            "name": "carrier-b",
            "uri": "sips:trunk@carrier.example.net;transport=tls",
            "trusted_source": "",
            "priority": "5",
            "enabled": "yes",
            "format": "e164",
        },
        {
            "name": "carrier-c",
            "uri": "sip:[2001:db8::10]:5060",
            "trusted_source": "2001:db8::/64",
            "priority": "5",
            "enabled": "yes",
            "format": "national",
        },
        {
            "name": "carrier-a",
            "uri": "sip:192.0.2.10:5060",
            "trusted_source": "192.0.2.10/32",
            "priority": "10",
            "enabled": "yes",
            "format": "e164",
        },
        {
            "name": "carrier-d",
            "uri": "sip:198.51.100.1",
            "trusted_source": "198.51.100.0/24",
            "priority": "10",
            "enabled": "yes",
            "format": "e164",
        },
    ]
    with db() as session:
        gateway = session.execute(select(Gateway).where(Gateway.name == "carrier-c")).scalar_one()
        assert (gateway.strip_digits, gateway.add_prefix, gateway.country_code) == (2, "00", "44")
        assert gateway.number_format is NumberFormat.NATIONAL
        assert gateway.sms_egress is SmsEgress.SIP
        kannel = session.execute(select(Gateway).where(Gateway.name == "carrier-d")).scalar_one()
        assert kannel.sms_egress is SmsEgress.KANNEL
        assert kannel.kannel_sendsms_url == sendsms


def test_gateway_add_refuses_bad_input_and_a_duplicate_name(cli, db):
    uri = "sip:192.0.2.10"
    for arguments, message in [
        (["gw", "192.0.2.10:5060"], "is not a SIP URI such as sip:192.0.2.10:5060"),
        (["gw", "sip:"], "is not a SIP URI"),
        (["gw", "sip:carrier example.net"], "is not a SIP URI"),
        (["gw", "sip:" + "a" * 252], "a gateway URI is at most 255 characters"),
        (["gw", uri, "--trusted-source", "carrier.example.net"], "is not an IP address or network"),
        (["gw", uri, "--trusted-source", "10.0.0.0/33"], "is not an IP address or network"),
        (["gw", uri, "--format", "national"], "the national number format needs the gateway's country code"),
        (["gw", uri, "--format", "national", "--country-code", "0"], "is not a valid country calling code"),
        (["gw", uri, "--strip", "16"], "strip digits must be between 0 and 15"),
        (["gw", uri, "--prefix", "9a"], "is not a dial prefix"),
        (["gw", uri, "--priority", "-1"], "the priority must be between 0 and 1000"),
        (["gw", uri, "--priority", "99999999999"], "the priority must be between 0 and 1000"),
        (["x" * 65, uri], "a gateway name is 1 to 64 characters"),
        (["gw", uri, "--format", "e.164"], "invalid choice"),
        (["gw", uri, "--sms-egress", "kannel"], "SMS by Kannel needs its sendsms URL"),
        (
            ["gw", uri, "--sms-egress", "kannel", "--kannel-sendsms-url", "ftp://x"],
            "SMS by Kannel needs its sendsms URL",
        ),
        (["gw", uri, "--priority", "first"], "invalid int value"),
        (["gw"], "uri"),
    ]:
        failed(cli("gateway", "add", *arguments), 2, message)

    assert ok(cli("gateway", "list")) == GATEWAY_HEADER
    assert count(db, Gateway) == 0

    ok(cli("gateway", "add", "carrier", "sip:192.0.2.10:5060", "--trusted-source", "192.0.2.10"))
    failed(cli("gateway", "add", "carrier", "sip:198.51.100.1:5060"), 4, "a gateway 'carrier' already exists")

    rows = table(ok(cli("gateway", "list")))
    assert [(row["name"], row["uri"], row["trusted_source"]) for row in rows] == [
        ("carrier", "sip:192.0.2.10:5060", "192.0.2.10/32")
    ]


# --- access-number ---------------------------------------------------------------------------------------


def test_access_number_add_and_list(cli, db):
    assert ok(cli("access-number", "list")) == ACCESS_HEADER

    assert ok(cli("access-number", "add", "123333333", "--label", "Main line")) == "access number 123333333 added\n"
    ok(
        cli(
            "access-number", "add", "441234567890", "--language", "de", "--ring-time", "60", "--callback-delay", "6",
            "--no-ani", "--known-callers-only", "--no-save-caller-id", "--no-balance",
        )
    )  # fmt: skip
    ok(cli("access-number", "add", "555", "--no-pin", "--ring-time", "1", "--callback-delay", "3", "--retries", "2",
           "--retry-interval", "60"))  # fmt: skip

    assert table(ok(cli("access-number", "list"))) == [  # sorted by number, as text
        {
            "number": "123333333",
            "label": "Main line",
            "ring_time": "5",
            "callback_delay": "3",
            "pin": "yes",
            "ani": "yes",
            "known_only": "no",
            "retries": "no",
        },
        {
            "number": "441234567890",
            "label": "",
            "ring_time": "60",
            "callback_delay": "6",
            "pin": "yes",
            "ani": "no",
            "known_only": "yes",
            "retries": "no",
        },
        {
            "number": "555",
            "label": "",
            "ring_time": "1",
            "callback_delay": "3",
            "pin": "no",
            "ani": "yes",
            "known_only": "no",
            "retries": "2 every 60s",
        },
    ]
    with db() as session:
        numbers = {n.number: n for n in session.execute(select(AccessNumber)).scalars()}
    assert (numbers["441234567890"].language, numbers["123333333"].language) == ("de", "en")
    assert numbers["441234567890"].save_caller_id_on_pin is False
    assert numbers["441234567890"].announce_balance is False
    assert numbers["123333333"].save_caller_id_on_pin is True
    assert numbers["123333333"].announce_balance is True
    assert (numbers["555"].retry_attempts, numbers["555"].retry_interval_seconds) == (2, 60)
    assert numbers["123333333"].retry_attempts == 0


def test_access_number_add_refuses_bad_input_and_a_duplicate(cli, db):
    for arguments, message in [
        (["123333333", "--callback-delay", "2"], "the callback delay must be between 3 and 6 seconds"),
        (["123333333", "--ring-time", "0"], "the ring time must be between 1 and 60 seconds"),
        (["123333333", "--no-pin", "--no-ani"], "must allow PIN or caller ID authorization, or both"),
        (["+123333333"], "must be 3 to 15 digits"),
        (["12"], "must be 3 to 15 digits"),
        (["123 333 333"], "must be 3 to 15 digits"),
        (["١٢٣٣٣٣"], "must be 3 to 15 digits"),
        (["123333333", "--language", "German"], "is not a valid language"),
        (["123333333", "--label", "l" * 101], "at most 100 characters"),
        (["123333333", "--ring-time", "five"], "invalid int value"),
        (["123333333", "--retries", "6"], "retries must be between 0 and 5"),
        (["123333333", "--retries", "1", "--retry-interval", "4"], "retry interval must be between 5 and 3600"),
        ([], "number"),
    ]:
        failed(cli("access-number", "add", *arguments), 2, message)

    assert ok(cli("access-number", "list")) == ACCESS_HEADER
    assert count(db, AccessNumber) == 0

    ok(cli("access-number", "add", "123333333", "--label", "Main line"))
    failed(cli("access-number", "add", "123333333", "--label", "Other"), 4, "access number 123333333 already exists")

    rows = table(ok(cli("access-number", "list")))
    assert [(row["number"], row["label"]) for row in rows] == [("123333333", "Main line")]
    assert count(db, AccessNumber) == 1
