"""Prometheus metrics of the SIP edge, kept by Kamailio's xhttp_prom module (shared by all workers).

Served at GET /metrics on the metrics listen address (settings: metrics.listen).
"""

import functools

import KSR

from boomerang.settings import load

# Declared in kamailio/kamailio.cfg (modparam xhttp_prom prom_counter); names here must match.
TRIGGERS = "boomerang_triggers_total"  # label outcome: callback, repeat, caller_limit, ...
REFUSED = "boomerang_sip_refused_total"  # label reason: untrusted, flood, relay, not_found
SMS_RECEIVED = "boomerang_sms_received_total"
LEGS = "boomerang_legs_total"  # label event: originated, answered, failed, ended_peer, ...
ACTIVE_LEGS = "boomerang_active_legs"
ALERTS = "boomerang_alerts_total"  # label alert: what an operator must look at (ALERTS_RAISED)
# unrated_leg: a leg recorded at no cost because nothing rated it; session_not_closed: a session
# whose end could not be written (the database away for minutes), left for the next start to close.
ALERTS_RAISED = ("unrated_leg", "session_not_closed")
# Reported by the call controller every few seconds: its sessions, and the calls rtpengine holds.
# After any burst the second comes back to the number of live calls; a gap between them is a leak.
CONTROLLER_SESSIONS = "boomerang_controller_sessions"
MEDIA_CALLS = "boomerang_media_calls"
# Callbacks promised and kept on the node's disk, not yet in the database (it is stalled or away).
SPOOLED_TRIGGERS = "boomerang_triggers_spooled"


def trigger(outcome):
    KSR.xhttp_prom.counter_inc_l1(TRIGGERS, 1, outcome)


def refused(reason):
    KSR.xhttp_prom.counter_inc_l1(REFUSED, 1, reason)


def sms_received():
    KSR.xhttp_prom.counter_inc_l0(SMS_RECEIVED, 1)


def leg(event):
    KSR.xhttp_prom.counter_inc_l1(LEGS, 1, event)


def alert(command):
    """{"type": "alert", "alert"}: the call controller raises an alert (one of ALERTS_RAISED)."""
    name = str(command["alert"])
    if name not in ALERTS_RAISED:
        raise ValueError("unknown alert " + name[:40])
    KSR.xhttp_prom.counter_inc_l1(ALERTS, 1, name)


def gauges(command):
    """{"type": "gauges", "sessions", "media_calls"}: the controller's counts (-1: not known)."""
    for name, key in ((CONTROLLER_SESSIONS, "sessions"), (MEDIA_CALLS, "media_calls")):
        value = int(command.get(key, -1))
        if value >= 0:
            KSR.xhttp_prom.gauge_set_l0(name, str(value))


def spooled_triggers(count):
    KSR.xhttp_prom.gauge_set_l0(SPOOLED_TRIGGERS, str(max(int(count), 0)))


def active_legs(count):
    KSR.xhttp_prom.gauge_set_l0(ACTIVE_LEGS, str(max(int(count or 0), 0)))


def serve_http():
    """HTTP requests reach Kamailio's TCP sockets: only /metrics is answered, the rest is 404."""
    if KSR.pv.get("$Rp") == _metrics_port() and KSR.pv.get("$hu") == "/metrics":
        KSR.xhttp_prom.dispatch()
        return 1
    KSR.xhttp.xhttp_reply(404, "Not Found", "text/plain", "not found\n")
    return 1


@functools.cache
def _metrics_port():
    return load().metrics_listen.port
