"""Texts received on the service number, whichever way they came (SIP MESSAGE, Kannel, webhook):
stored before they are acknowledged, so none is lost, and stored once however often the carrier
delivers the same message. The call controller's SMS desk answers them (callback/sms.py)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from boomerang.store.models import SmsChannel, SmsDirection, SmsMessage, SmsStatus

MAX_TEXT = 1600  # ten concatenated SMS parts


def receive(
    session: Session,
    channel: SmsChannel,
    gateway_id: int | None,
    external_id: str,
    sender: str,
    receiver: str,
    text: str,
) -> tuple[int, bool]:
    """Store an inbound text; returns its id and whether it is new (False: a repeated delivery)."""
    existing = session.execute(
        select(SmsMessage.id).where(
            SmsMessage.direction == SmsDirection.INBOUND,
            SmsMessage.channel == channel,
            SmsMessage.external_id == external_id,
        )
    ).scalar_one_or_none()
    if existing is not None:
        return existing, False
    message = SmsMessage(
        direction=SmsDirection.INBOUND,
        channel=channel,
        gateway_id=gateway_id,
        external_id=external_id,
        sender=sender,
        receiver=receiver,
        text=text[:MAX_TEXT],
        status=SmsStatus.RECEIVED,
    )
    session.add(message)
    session.flush()
    return message.id, True
