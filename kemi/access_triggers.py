"""An INVITE to an access number: ring, reject busy, and promise a callback.

The caller hears ringing for the access number's ring time and then busy: the call is never
answered, so it costs the caller nothing. The worker process is not held while it rings: the
transaction is suspended and resumed by the async module after the ring time.

Ringing then busy is a promise, made only once the request is durably kept: in the node's spool
(`boomerang/trigger_spool.py`), from which the drain process moves it into the database
(`kemi/trigger_drain.py`). No worker waits on the database for it. A request that cannot be kept,
or an access number for known callers only whose callers cannot be looked up, gets 503 at once:
a failure that promises nothing.
"""

from datetime import UTC, datetime, timedelta

import KSR

from boomerang.trigger_spool import SpooledRequest
from kemi import metrics, sip_text, triggers
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

    account_id = None
    if access.known_callers_only:
        try:
            account_id = directory.known_caller_account(caller)
        except Exception as exc:  # the database does not answer: whether we know the caller is unknown
            return _promise_nothing("callers of " + access.number + " cannot be looked up", exc)
        if account_id is None:
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
        try:
            _keep_request(directory, access, gateway, caller, account_id)
        except OSError as exc:  # the spool's disk is full or gone: no promise we cannot keep
            triggers.forget(caller)  # the caller may try again at once
            KSR.err("callback request from " + caller + " not kept: " + repr(exc)[:300] + "\n")
            metrics.trigger("error")
            KSR.tm.t_reply(503, "Service Unavailable")
            return EXIT
        metrics.trigger("callback")
    else:
        metrics.trigger(refusal)  # a repeat: rings and is rejected like the first, nothing more
    KSR.tm.t_reply(180, "Ringing")
    getattr(KSR, "async").ms_route(RESUME_ROUTE, access.ring_time_seconds * 1000)
    return EXIT


def _keep_request(directory, access, gateway, caller, account_id):
    now = datetime.now(UTC)
    due_at = now + timedelta(seconds=access.ring_time_seconds + access.callback_delay_seconds)
    request = SpooledRequest(
        request_ref="trigger:" + KSR.pv.get("$ci"),
        caller=caller,
        access_number_id=access.id,
        access_number=access.number,
        gateway_id=gateway.id,
        known_caller_account=account_id,
        requested_at=now.isoformat(),
        due_at=due_at.isoformat(),
    )
    directory.trigger_spool.keep(request)


def _promise_nothing(why, exc):
    KSR.err("callback trigger refused: " + why + ": " + repr(exc)[:300] + "\n")
    metrics.trigger("error")
    KSR.sl.sl_send_reply(503, "Service Unavailable")
    return EXIT


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
