"""SIP MESSAGE from a carrier to the SMS service number: stored, then handed to the SMS handler.

The message is stored before it is acknowledged, so it is never lost; a retransmitted or duplicated
delivery (same Call-ID) is stored once and acknowledged again.
"""

import KSR

from boomerang import sms_inbox
from boomerang.store.models import SmsChannel
from kemi import controller_channel, metrics, sip_text
from kemi.sip_parties import caller_number

EXIT = -255


def route(directory, gateway):
    if sip_text.text("rU") != directory.settings.numbers_sms_number:
        return 1
    content_type = sip_text.text("cT") or "text/plain"
    if content_type.split(";")[0].strip().lower() != "text/plain":
        KSR.sl.sl_send_reply(415, "Unsupported Media Type")
        return EXIT
    sender = caller_number(gateway)
    if sender is None:
        KSR.sl.sl_send_reply(433, "Anonymity Disallowed")
        return EXIT
    text = sip_text.body(content_type)
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
    with directory.writing() as session:
        return sms_inbox.receive(
            session, SmsChannel.SIP, gateway.id, KSR.pv.get("$ci"), sender, directory.settings.numbers_sms_number, text
        )
