"""SIP MESSAGE from a carrier to the SMS service number: stored, then handed to the SMS handler.

The message is stored before it is acknowledged, so it is never lost; a retransmitted or duplicated
delivery (same Call-ID) is stored once and acknowledged again.
"""

import KSR
from sqlalchemy import select

from boomerang.store.models import SmsChannel, SmsDirection, SmsMessage, SmsStatus
from kemi import controller_channel, metrics
from kemi.sip_parties import caller_number

EXIT = -255
MAX_TEXT = 1600  # ten concatenated SMS parts


def route(directory, gateway):
    if (KSR.pv.get("$rU") or "") != directory.settings.numbers_sms_number:
        return 1
    content_type = (KSR.pv.get("$cT") or "text/plain").split(";")[0].strip().lower()
    if content_type != "text/plain":
        KSR.sl.sl_send_reply(415, "Unsupported Media Type")
        return EXIT
    sender = caller_number(gateway)
    if sender is None:
        KSR.sl.sl_send_reply(433, "Anonymity Disallowed")
        return EXIT
    text = (KSR.pv.get("$rb") or "")[:MAX_TEXT]
    try:
        message_id, new = _store(directory, gateway, sender, text)
    except Exception as exc:
        KSR.err("SMS from " + sender + " not stored: " + repr(exc)[:300] + "\n")
        KSR.sl.sl_send_reply(500, "Server Internal Error")  # the carrier retries later
        return EXIT
    if new:
        metrics.sms_received()
        controller_channel.send({"type": "sms_received", "sms_id": message_id, "sender": sender})
    KSR.sl.sl_send_reply(202, "Accepted")
    return EXIT


def _store(directory, gateway, sender, text):
    external_id = KSR.pv.get("$ci")
    with directory.writing() as session:
        existing = session.execute(
            select(SmsMessage.id).where(
                SmsMessage.direction == SmsDirection.INBOUND,
                SmsMessage.channel == SmsChannel.SIP,
                SmsMessage.external_id == external_id,
            )
        ).scalar_one_or_none()
        if existing is not None:
            return existing, False
        message = SmsMessage(
            direction=SmsDirection.INBOUND,
            channel=SmsChannel.SIP,
            gateway_id=gateway.id,
            external_id=external_id,
            sender=sender,
            receiver=directory.settings.numbers_sms_number,
            text=text,
            status=SmsStatus.RECEIVED,
        )
        session.add(message)
        session.flush()
        return message.id, True
