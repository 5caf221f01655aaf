"""An INVITE to an access number: ring, reject busy, and promise a callback.

The caller hears ringing for the access number's ring time and then busy: the call is never
answered, so it costs the caller nothing. The worker process is not held while it rings: the
transaction is suspended and resumed by the async module after the ring time.
"""

from datetime import UTC, datetime, timedelta

import KSR

from kemi import controller_channel, metrics, sip_text, triggers
from kemi.sip_parties import caller_number

EXIT = -255
RESUME_ROUTE = "ksr_route_ring_end"
CANCELLED_TABLE = "ringing_cancelled"  # Call-ID -> 1 once the caller hung up during the ringing
# The transaction must outlive the ringing, or tm would answer 408 while we wait.
TRANSACTION_TIMEOUT_MS = 65000


def route(directory, gateway):
    access = directory.access_number(sip_text.text("rU"))
    if access is None:
        return 1
    caller = caller_number(gateway)
    if caller is None:
        metrics.trigger("anonymous")
        KSR.sl.sl_send_reply(433, "Anonymity Disallowed")
        return EXIT

    account_id = directory.known_caller_account(caller)
    if access.known_callers_only and account_id is None:
        metrics.trigger(triggers.UNKNOWN_CALLER)
        KSR.sl.sl_send_reply(486, "Busy Here")
        return EXIT
    refusal = triggers.admit(directory.settings, caller)
    if refusal in (triggers.PLATFORM_LIMIT, triggers.CALLER_LIMIT):
        metrics.trigger(refusal)
        KSR.sl.sl_send_reply(486, "Busy Here")  # over a limit: no ringing, no callback
        return EXIT

    KSR.tm.t_newtran()
    KSR.tm.t_set_fr(TRANSACTION_TIMEOUT_MS, TRANSACTION_TIMEOUT_MS)
    if refusal is None:
        _promise_callback(directory, access, gateway, caller, account_id)
    else:
        metrics.trigger(refusal)  # a repeat: rings and is rejected like the first, nothing more
    KSR.tm.t_reply(180, "Ringing")
    getattr(KSR, "async").ms_route(RESUME_ROUTE, access.ring_time_seconds * 1000)
    return EXIT


def _promise_callback(directory, access, gateway, caller, account_id):
    now = datetime.now(UTC)
    due_at = now + timedelta(seconds=access.ring_time_seconds + access.callback_delay_seconds)
    call_id = KSR.pv.get("$ci")
    try:
        session_id = directory.record_callback_request(
            access, gateway, caller, account_id, "trigger:" + call_id, due_at
        )
    except Exception as exc:  # the database is down: no promise we cannot keep
        KSR.err("callback request from " + caller + " not recorded: " + repr(exc)[:300] + "\n")
        metrics.trigger("error")
        return
    metrics.trigger("callback")
    controller_channel.send(
        {
            "type": "callback_request",
            "session_id": session_id,
            "caller": caller,
            "access_number": access.number,
            "account_id": account_id,
            "requested_at": now.isoformat(),
            "due_at": due_at.isoformat(),
        }
    )


def hang_up_while_ringing():
    """The caller sent CANCEL: answer the INVITE 487 now, and let ring_end know not to answer again."""
    call_id = KSR.pv.get("$ci")
    KSR.htable.sht_setxi(CANCELLED_TABLE, call_id, 1, 120)
    KSR.tmx.t_reply_callid(call_id, str(KSR.pv.get("$cs")), 487, "Request Terminated")


def ring_end():
    call_id = KSR.pv.get("$ci")
    if KSR.htable.sht_get(CANCELLED_TABLE, call_id) is not None:
        KSR.htable.sht_rm(CANCELLED_TABLE, call_id)
        return 1
    KSR.tm.t_reply(486, "Busy Here")
    return 1
