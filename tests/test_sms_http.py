"""SMS over HTTP at the portal: Kannel's get-url and the JSON webhook store what a trusted gateway
delivers, once, and refuse the rest with a reason (SQLite and MariaDB)."""

from __future__ import annotations

import pytest
from falcon import testing
from sqlalchemy import select

from boomerang import provisioning
from boomerang.store import transaction
from boomerang.store.models import SmsChannel, SmsDirection, SmsMessage, SmsStatus
from portal.app import create_app

SMS_NUMBER = "1234000000"


@pytest.fixture
def portal(migrated, db):
    with transaction(db) as session:
        provisioning.add_gateway(
            session, provisioning.GatewaySpec(name="carrier", uri="sip:127.0.0.1:5080", trusted_source="127.0.0.1")
        )
        provisioning.add_gateway(session, provisioning.GatewaySpec(name="other", uri="sip:192.0.2.1:5060",
                                                                   trusted_source="192.0.2.1"))  # fmt: skip
    return testing.TestClient(create_app(migrated))


def stored(db) -> list[tuple]:
    with transaction(db) as session:
        rows = session.execute(select(SmsMessage).order_by(SmsMessage.id)).scalars()
        return [(m.direction, m.channel, m.sender, m.receiver, m.text, m.status, m.external_id) for m in rows]


def test_the_webhook_stores_a_text_once_however_often_it_is_delivered(portal, db):
    body = {"gateway": "carrier", "sender": "+447700900123", "receiver": SMS_NUMBER, "text": "BAL", "id": "m-1"}
    first = portal.simulate_post("/api/sms/inbound", json=body)
    again = portal.simulate_post("/api/sms/inbound", json=body)
    assert first.status_code == again.status_code == 202
    assert first.json == {"id": first.json["id"], "duplicate": False}
    assert again.json == {"id": first.json["id"], "duplicate": True}
    assert stored(db) == [
        (SmsDirection.INBOUND, SmsChannel.WEBHOOK, "447700900123", SMS_NUMBER, "BAL", SmsStatus.RECEIVED, "m-1")
    ]


def test_kannel_get_url_stores_the_text_and_answers_with_nothing_to_send_back(portal, db):
    query = {"gateway": "carrier", "sender": "00447700900124", "receiver": SMS_NUMBER, "text": "reg 4321", "id": "k1"}
    result = portal.simulate_get("/sms/kannel", params=query)
    assert (result.status_code, result.text) == (202, "")
    assert stored(db) == [
        (SmsDirection.INBOUND, SmsChannel.KANNEL, "447700900124", SMS_NUMBER, "reg 4321", SmsStatus.RECEIVED, "k1")
    ]


@pytest.mark.parametrize(
    ("escaped", "coding", "charset", "text"),
    [
        ("R%C9G+4321", "1", "", "RÉG 4321"),  # 8-bit, no charset named: Latin-1
        ("R%C9G+4321", "0", "ISO-8859-1", "RÉG 4321"),  # 7-bit, recoded by Kannel to Latin-1
        ("R%C3%89G+4321", "0", "UTF-8", "RÉG 4321"),
        ("%00R%00%C9%00G%00+%00%34%00%33%00%32%00%31", "2", "UTF-16BE", "RÉG 4321"),  # UCS-2
        ("%00B%00A%00L", "2", "", "BAL"),  # UCS-2, charset not passed on
        ("BAL+%E9t%E9", None, None, "BAL été"),  # %a from an older get-url: Latin-1 bytes, no charset
        ("BAL+%FF%FE%FD", "0", "UTF-8", "BAL \ufffd\ufffd\ufffd"),  # bytes that are no UTF-8: replaced
    ],
)
def test_kannel_texts_in_any_coding_are_stored_as_their_sender_wrote_them(portal, db, escaped, coding, charset, text):
    query = f"gateway=carrier&sender=00447700900125&receiver={SMS_NUMBER}&id=k-{escaped[:12]}&text={escaped}"
    if coding is not None:
        query += f"&coding={coding}&charset={charset}"
    result = portal.simulate_get("/sms/kannel", query_string=query)
    assert result.status_code == 202, result.text
    [row] = stored(db)
    assert row[4] == text


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"gateway": "other", "sender": "+447700900123", "receiver": SMS_NUMBER, "text": "x", "id": "1"}, 403,
         "Not a trusted gateway"),  # its address is not ours
        ({"gateway": "nobody", "sender": "+447700900123", "receiver": SMS_NUMBER, "text": "x", "id": "1"}, 403,
         "Not a trusted gateway"),
        ({"gateway": "carrier", "sender": "+447700900123", "receiver": "999", "text": "x", "id": "1"}, 404,
         "not our SMS number"),
        ({"gateway": "carrier", "sender": "hello", "receiver": SMS_NUMBER, "text": "x", "id": "1"}, 400,
         "not a telephone number"),
        ({"gateway": "carrier", "receiver": SMS_NUMBER, "text": "x"}, 400, "required: sender, id"),
        ({"gateway": "carrier", "sender": "+447700900123", "receiver": SMS_NUMBER, "text": 5, "id": "1"}, 400,
         "text must be a string"),
        ([1, 2], 400, "expected a JSON object"),
    ],
)  # fmt: skip
def test_bad_deliveries_are_refused_with_the_reason_and_store_nothing(portal, db, body, status, says):
    result = portal.simulate_post("/api/sms/inbound", json=body)
    assert result.status_code == status
    assert says in result.text
    assert stored(db) == []


def test_malformed_json_is_refused(portal, db):
    result = portal.simulate_post("/api/sms/inbound", body="{not json", headers={"Content-Type": "application/json"})
    assert result.status_code == 400
    assert stored(db) == []
