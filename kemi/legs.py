"""Call legs the controller places: Kamailio carries out the SIP, the controller decides.

A leg is an INVITE that Kamailio originates (uac module) to a carrier gateway, with the SDP the
controller got from rtpengine. Its state lives in the shared htable `legs` (JSON, keyed by Call-ID),
so whichever worker sees a reply or an in-dialog request can act on it:

    calling --(2xx)--> answered --(BYE either way, or the hard deadline)--> gone
       |--(5xx, 408: next gateway)--> calling
       '--(other final reply, or no gateway left)--> gone (leg_failed)

Every leg has a hard maximum duration enforced here (htable `leg_deadline` expiry sends the BYE), so
a controller that dies cannot leave a call up. Events go to the controller over evapi.
"""

import json
import time

import KSR

from kemi import controller_channel, metrics

LEGS = "legs"
DEADLINES = "leg_deadline"
COUNTERS = "leg_counters"  # "answered": legs up right now, on this Kamailio
LATE_ANSWERS = "late_answers"  # Call-IDs of legs hung up because they answered after our CANCEL
LATE_ANSWER_MEMORY_SECONDS = 64  # longer than a 200 is retransmitted (64 * T1)
LATE_BYES = "late_byes"  # the BYEs to send for them, once tm has acknowledged their 200
LATE_BYE_DELAY_SECONDS = 0.05
DEADLINES_DUE = "deadlines_due"  # legs whose deadline expired, for the leg timer to hang up
CALL_ID_SUFFIX = "@boomerang"  # the Call-ID of every leg we place: its leg id and this
LEG_STATE_SECONDS = 86400  # a leg's record outlives any call, and is removed when the leg ends
UAC_FIRST_CSEQ = 10  # uac_req_send numbers its INVITE 10
# What a BYE, a re-INVITE and an in-dialog request from the far end need of an answered leg: sent to
# the controller with its answer, and taught back to a Kamailio that restarted (`adopt`).
DIALOG_FIELDS = ("from_tag", "to_tag", "from_uri", "to_uri", "remote_target", "route_set", "cseq", "local", "sdp")
# A Kamailio taught a dialog does not know how many requests were sent in it since the answer
# (re-INVITEs): it numbers on from this far above, CSeq needing only to grow.
ADOPTED_CSEQ_STEP = 1000
FAILOVER_CODES = (408, 500, 502, 503, 504)  # the gateway failed, not the called party: try the next


class LegStore:
    """JSON records in the `legs` htable; callers hold the per-leg lock while they change one."""

    @staticmethod
    def get(call_id):
        value = KSR.htable.sht_get(LEGS, call_id)
        return json.loads(value) if value else None

    @staticmethod
    def put(leg):
        KSR.htable.sht_setxs(LEGS, leg["call_id"], json.dumps(leg, separators=(",", ":")), LEG_STATE_SECONDS)

    @staticmethod
    def remove(call_id):
        KSR.htable.sht_rm(LEGS, call_id)
        KSR.htable.sht_rm(DEADLINES, call_id)

    @staticmethod
    def lock(call_id):
        KSR.htable.sht_lock(LEGS, call_id)

    @staticmethod
    def unlock(call_id):
        KSR.htable.sht_unlock(LEGS, call_id)


def call_id_for(leg_id):
    return leg_id + CALL_ID_SUFFIX


def _event(leg, kind, **fields):
    controller_channel.send(dict(fields, type=kind, leg=leg["leg"]))


# --- commands from the controller ------------------------------------------------------------------


def originate(directory, command):
    """{"type": "originate", "leg", "target" (E.164), "caller_id", "sdp", "max_seconds"[, "gateways"]}.

    "gateways" (names, in order) restricts the leg to those gateways, e.g. calling a user back through
    the carrier their trigger came from; without it every enabled gateway is tried by priority.
    """
    leg_id = str(command["leg"])
    routes = directory.outbound_routes(str(command["target"]))
    if command.get("gateways"):
        chosen = [str(name) for name in command["gateways"]]
        routes = sorted((r for r in routes if r["gateway"] in chosen), key=lambda r: chosen.index(r["gateway"]))
    ceiling = directory.settings.sip_max_leg_seconds
    max_seconds = min(int(command.get("max_seconds") or ceiling), ceiling)
    leg = {
        "leg": leg_id,
        "call_id": call_id_for(leg_id),
        "caller_id": str(command.get("caller_id") or ""),
        "sdp": str(command.get("sdp") or ""),
        "routes": routes,
        "attempt": 0,
        "state": "calling",
        "max_seconds": max_seconds,
        "local": str(directory.settings.sip_listen),
    }
    if not routes:
        _event(leg, "leg_failed", code=503, reason="no gateway for this number")
        return
    LegStore.put(leg)
    metrics.leg("originated")
    _send_invite(leg)


def _send_invite(leg):
    route = leg["routes"][leg["attempt"]]
    local, caller = leg["local"], leg["caller_id"] or "anonymous"
    from_uri = "sip:" + caller + "@" + local.rsplit(":", 1)[0]
    headers = (
        "Contact: <sip:boomerang@" + local + ">\r\n"
        "P-Asserted-Identity: <" + from_uri + ">\r\n"
        "Content-Type: application/sdp\r\n"
    )
    for name, value in (
        ("method", "INVITE"),
        ("ruri", route["ruri"]),
        ("furi", from_uri),
        ("turi", route["ruri"]),
        ("ouri", route["ouri"]),
        ("callid", leg["call_id"]),
        ("hdrs", headers),
        ("body", leg["sdp"]),
        ("evparam", leg["call_id"]),  # identifies the leg in on_failure, even when no reply came
    ):
        KSR.pv.sets("$uac_req(" + name + ")", value)
    KSR.pv.seti("$uac_req(evroute)", 2)
    _event(leg, "leg_dialing", gateway=route["gateway"], attempt=leg["attempt"])
    if KSR.uac.uac_req_send() < 0:
        LegStore.remove(leg["call_id"])
        metrics.leg("failed")
        _event(leg, "leg_failed", code=500, reason="the INVITE could not be sent")


def hangup(command):
    """{"type": "hangup", "leg"}: BYE an answered leg, CANCEL a ringing one."""
    call_id = call_id_for(str(command["leg"]))
    LegStore.lock(call_id)
    try:
        leg = LegStore.get(call_id)
        if leg is None:
            return
        if leg["state"] == "answered":
            _send_bye(leg)
            _ended(leg, "platform")
        else:
            leg["cancelled"] = True  # the 487 that follows is reported as cancelled, not failed
            LegStore.put(leg)
            KSR.tmx.t_cancel_callid(call_id, str(leg.get("invite_cseq", UAC_FIRST_CSEQ)), 0)
    finally:
        LegStore.unlock(call_id)


def set_max_duration(directory, command):
    """{"type": "set_max_duration", "leg", "seconds"}: the leg is cut that many seconds from now."""
    call_id = call_id_for(str(command["leg"]))
    seconds = max(1, min(int(command["seconds"]), directory.settings.sip_max_leg_seconds))
    LegStore.lock(call_id)
    try:
        leg = LegStore.get(call_id)
        if leg is None:
            return
        leg["max_seconds"] = seconds
        LegStore.put(leg)
        if leg["state"] == "answered":
            KSR.htable.sht_setxs(DEADLINES, call_id, leg["leg"], seconds)
    finally:
        LegStore.unlock(call_id)


def reinvite(command):
    """{"type": "reinvite", "leg", "sdp"}: offer new media to an answered leg."""
    call_id = call_id_for(str(command["leg"]))
    LegStore.lock(call_id)
    try:
        leg = LegStore.get(call_id)
        if leg is None or leg["state"] != "answered":
            return
        leg["sdp"] = str(command["sdp"])
        headers = "Contact: <sip:boomerang@" + leg["local"] + ">\r\nContent-Type: application/sdp\r\n"
        _send_in_dialog(leg, "INVITE", headers, leg["sdp"])
        LegStore.put(leg)
    finally:
        LegStore.unlock(call_id)


def adopt(command):
    """{"type": "adopt", "leg", "dialog", "seconds"}: a leg the controller has up and this Kamailio
    does not hold (it restarted) is held again, so that a BYE from either end is routed, the
    controller's hang-up reaches it and its deadline cuts it. A leg held already is left as it is."""
    leg_id = str(command["leg"])
    call_id = call_id_for(leg_id)
    seconds = max(1, int(command["seconds"]))
    LegStore.lock(call_id)
    try:
        if LegStore.get(call_id) is not None:
            return
        leg = {name: command["dialog"][name] for name in DIALOG_FIELDS}
        leg.update(leg=leg_id, call_id=call_id, state="answered", max_seconds=seconds, routes=[], attempt=0)
        leg["cseq"] = int(leg["cseq"]) + ADOPTED_CSEQ_STEP
        LegStore.put(leg)
        KSR.htable.sht_setxs(DEADLINES, call_id, leg_id, seconds)
        metrics.active_legs(_count_answered(+1))
        KSR.info("leg " + leg_id + " taught back by the controller\n")
    finally:
        LegStore.unlock(call_id)


def report_state(command):
    """{"type": "leg_state", "leg"}: how this Kamailio holds the leg ("calling", "answered"), or
    "gone" (it ended, or was never placed here); a restarted controller asks before taking a call back."""
    leg_id = str(command["leg"])
    leg = LegStore.get(call_id_for(leg_id))
    controller_channel.send({"type": "leg_state", "leg": leg_id, "state": leg["state"] if leg else "gone"})


# --- replies to our INVITEs ------------------------------------------------------------------------


def on_reply():
    """Reply route: 1xx (with early-media SDP if any) and the 2xx of one of our INVITEs.

    Failures are handled in on_failure: the uac module runs that for negative replies and timeouts.
    A 2xx for a leg we cancelled (it crossed our CANCEL, or the far end answered on it), or for a
    Call-ID of ours we no longer know, gets a BYE at once: nobody pays for such a call.
    """
    call_id = KSR.pv.get("$ci") or ""
    code = int(KSR.pv.get("$rs") or 0)
    if code == 100 or code >= 300 or KSR.pv.get("$rm") != "INVITE":
        return
    if KSR.htable.sht_get(LEGS, call_id) is None:
        if code >= 200 and call_id.endswith(CALL_ID_SUFFIX):
            _late_answer({"leg": call_id[: -len(CALL_ID_SUFFIX)], "call_id": call_id})
        return
    LegStore.lock(call_id)
    try:
        leg = LegStore.get(call_id)
        if leg is None:
            return
        if code < 200:
            body = KSR.pv.get("$rb") or ""
            _event(leg, "leg_progress", code=code, sdp=body if "v=0" in body else "")
        elif leg["state"] != "calling":
            return  # a retransmitted 200 changes nothing
        elif leg.get("cancelled"):
            LegStore.remove(call_id)
            _late_answer(leg)
        else:
            _answered(leg)
    finally:
        LegStore.unlock(call_id)


def _late_answer(leg):
    """Hang up a leg that answered when we no longer wanted it, once per Call-ID whatever the
    retransmissions of its 200. tm acknowledges the 200 once this reply route is done; the BYE must
    follow that ACK, so it is queued for the leg timer (`run_leg_timer`), due at once."""
    if KSR.htable.sht_get(LATE_ANSWERS, leg["call_id"]) is not None:
        return
    KSR.htable.sht_setxs(LATE_ANSWERS, leg["call_id"], "1", LATE_ANSWER_MEMORY_SECONDS)
    _dialog_from_reply(leg)
    leg["bye_at"] = time.time() + LATE_BYE_DELAY_SECONDS
    KSR.htable.sht_setxs(LATE_BYES, leg["call_id"], json.dumps(leg, separators=(",", ":")), LATE_ANSWER_MEMORY_SECONDS)
    metrics.leg("late_answer")
    KSR.warn("leg " + leg["leg"] + " answered after it was cancelled: hung up\n")
    _event(leg, "leg_late_answer")


def run_leg_timer():
    """Kamailio's leg timer (rtimer, every 100 ms): the BYEs due for legs answered too late, and
    the legs whose deadline expired."""
    now = time.time()
    for call_id, value in _items(LATE_BYES):
        leg = json.loads(value)
        if leg["bye_at"] <= now:
            KSR.htable.sht_rm(LATE_BYES, call_id)
            _send_bye(leg, store=False)
    for call_id, _ in _items(DEADLINES_DUE):
        KSR.htable.sht_rm(DEADLINES_DUE, call_id)
        _hang_up_at_deadline(call_id)


def _items(table):
    """A table's items, read before any is acted on: the iterator holds each slot's lock."""
    items = []
    KSR.htable.sht_iterator_start("legs", table)
    while KSR.htable.sht_iterator_next("legs") > 0:
        items.append((KSR.pv.get("$shtitkey(legs)"), KSR.pv.get("$shtitval(legs)")))
    KSR.htable.sht_iterator_end("legs")
    return items


def on_failure():
    """uac event route: a negative final reply, or a local timeout, for one of our INVITEs."""
    call_id = KSR.pv.get("$uac_req(evparam)") or ""
    code = int(KSR.pv.get("$uac_req(evcode)") or 408)
    LegStore.lock(call_id)
    try:
        leg = LegStore.get(call_id)
        if leg is None:
            return
        if leg["state"] != "calling":
            return
        if code in FAILOVER_CODES and not leg.get("cancelled") and leg["attempt"] + 1 < len(leg["routes"]):
            leg["attempt"] += 1
            LegStore.put(leg)
            _send_invite(leg)
        else:
            LegStore.remove(call_id)
            metrics.leg("failed")
            if leg.get("cancelled"):
                _event(leg, "leg_cancelled", code=code)
            else:
                _event(leg, "leg_failed", code=code)
    finally:
        LegStore.unlock(call_id)


def _dialog_from_reply(leg):
    """The dialog a 2xx to our INVITE set up, from the reply in hand: what a BYE needs."""
    leg.update(
        from_tag=KSR.pv.get("$ft"),
        to_tag=KSR.pv.get("$tt"),
        from_uri=KSR.pv.get("$fu"),
        to_uri=KSR.pv.get("$tu"),
        remote_target=_contact_uri(KSR.pv.get("$hdr(Contact)") or "") or KSR.pv.get("$tu"),
        route_set=list(reversed(_record_routes())),
        cseq=int(KSR.pv.get("$cs") or UAC_FIRST_CSEQ),
    )


def _answered(leg):
    leg["state"] = "answered"
    _dialog_from_reply(leg)
    LegStore.put(leg)
    KSR.htable.sht_setxs(DEADLINES, leg["call_id"], leg["leg"], leg["max_seconds"])
    metrics.active_legs(_count_answered(+1))
    metrics.leg("answered")
    _event(
        leg, "leg_answered", sdp=KSR.pv.get("$rb") or "", gateway=leg["routes"][leg["attempt"]]["gateway"],
        dialog={name: leg[name] for name in DIALOG_FIELDS},
    )  # fmt: skip


def _contact_uri(value):
    value = value.split(",")[0].strip()
    if "<" in value:
        return value[value.index("<") + 1 : value.index(">")]
    return value.split(";")[0]


def _record_routes():
    routes, index = [], 0
    while True:
        value = KSR.hdr.get_idx("Record-Route", index)
        if value is None:
            return routes
        routes += [part.strip() for part in value.split(",") if part.strip()]
        index += 1


# --- requests within a leg's dialog, from the far end ------------------------------------------


def on_in_dialog_request():
    """A request within one of our legs' dialogs; returns False when it is not ours."""
    call_id = KSR.pv.get("$ci") or ""
    if KSR.siputils.has_totag() < 0 or KSR.htable.sht_get(LEGS, call_id) is None:
        return False
    if KSR.is_ACK():
        return True  # the far end acknowledging our 200 to its re-INVITE
    LegStore.lock(call_id)
    try:
        leg = LegStore.get(call_id)
        if leg is None:
            KSR.sl.sl_send_reply(481, "Call/Transaction Does Not Exist")
            return True
        method = KSR.pv.get("$rm")
        if method == "BYE":
            KSR.sl.sl_send_reply(200, "OK")
            _ended(leg, "peer")
        elif method == "INFO":
            digit = _dtmf_relay_digit(KSR.pv.get("$rb") or "")
            KSR.sl.sl_send_reply(200, "OK")
            if digit is not None:
                _event(leg, "leg_dtmf", digit=digit, source="info")
        elif method == "INVITE":
            # Keep media as it is: answer with the SDP we last offered, and tell the controller.
            KSR.hdr.append_to_reply("Contact: <sip:boomerang@" + leg["local"] + ">\r\n")
            KSR.textops.set_reply_body(leg["sdp"], "application/sdp")
            KSR.sl.sl_send_reply(200, "OK")
            _event(leg, "leg_reinvite", sdp=KSR.pv.get("$rb") or "")
        else:
            KSR.sl.sl_send_reply(200, "OK")
    finally:
        LegStore.unlock(call_id)
    return True


# Keys as `Signal=` carries them: the key itself, or (some phones) its RFC 4733 event code.
_DTMF_KEYS = "0123456789*#ABCD"
_DTMF_EVENT_CODES = {str(code): key for code, key in enumerate(_DTMF_KEYS)}


def _dtmf_relay_digit(body):
    """The key of an application/dtmf-relay INFO body, or None when it names none."""
    for line in body.splitlines():
        name, _, value = line.partition("=")
        if name.strip().lower() != "signal":
            continue
        value = value.strip().upper()
        if len(value) == 1 and value in _DTMF_KEYS:
            return value
        return _DTMF_EVENT_CODES.get(value)
    return None


# --- ending ----------------------------------------------------------------------------------------


def on_deadline_expired():
    """htable expiry of `leg_deadline`: the leg reached its hard maximum duration.

    htable runs this holding the expiring item's slot lock, while everything else takes a leg's
    lock first and a deadline's second (a hang-up removes the deadline of the leg it holds): taking
    the leg's lock here deadlocks this timer and the controller's channel. So the leg is only
    queued here, and the leg timer (`run_leg_timer`) hangs it up."""
    call_id = KSR.pv.get("$shtrecord(key)") or ""
    KSR.htable.sht_setxs(DEADLINES_DUE, call_id, "1", LATE_ANSWER_MEMORY_SECONDS)


def _hang_up_at_deadline(call_id):
    LegStore.lock(call_id)
    try:
        leg = LegStore.get(call_id)
        if leg is None or leg["state"] != "answered":
            return
        if KSR.htable.sht_get(DEADLINES, call_id) is not None:
            return  # the controller set a new deadline after this one expired
        _send_bye(leg)
        _ended(leg, "max_duration")
    finally:
        LegStore.unlock(call_id)


def _ended(leg, by):
    LegStore.remove(leg["call_id"])
    metrics.active_legs(_count_answered(-1))
    metrics.leg("ended_" + by)
    _event(leg, "leg_ended", by=by)


def _count_answered(change):
    KSR.htable.sht_lock(COUNTERS, "answered")
    try:
        count = max(int(KSR.htable.sht_get(COUNTERS, "answered") or 0) + change, 0)
        KSR.htable.sht_seti(COUNTERS, "answered", count)
        return count
    finally:
        KSR.htable.sht_unlock(COUNTERS, "answered")


def _send_bye(leg, store=True):
    _send_in_dialog(leg, "BYE", "", "", store)


def _send_in_dialog(leg, method, extra_headers, body, store=True):
    leg["cseq"] += 1
    routes = leg.get("route_set") or []
    headers = (
        "From: <" + leg["from_uri"] + ">;tag=" + leg["from_tag"] + "\r\n"
        "To: <" + leg["to_uri"] + ">;tag=" + leg["to_tag"] + "\r\n"
        "Call-ID: " + leg["call_id"] + "\r\n"
        "CSeq: "
        + str(leg["cseq"])
        + " "
        + method
        + "\r\n"
        + ("Route: " + ", ".join(routes) + "\r\n" if routes else "")
        + "Max-Forwards: 70\r\n"
        + extra_headers
    )
    next_hop = _contact_uri(routes[0]) if routes else ""
    KSR.tm.t_uac_send(method, leg["remote_target"], next_hop, "", headers, body)
    if store:
        LegStore.put(leg)
