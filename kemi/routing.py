"""Kamailio KEMI routing script (app_python3): the SIP edge of the platform.

Kamailio loads this file, calls mod_init() once, then forks workers: each routes requests through
KamailioRouting. State shared between workers lives in Kamailio (htable) or the database, never in
module globals. Each route function handles one concern and returns EXIT when it has answered.
"""

import os
import site
import sys

import KSR  # provided by app_python3

# Kamailio embeds Debian's python3; the platform's packages live in its virtualenv.
_PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if os.environ.get("VIRTUAL_ENV"):
    _version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    site.addsitedir(os.path.join(os.environ["VIRTUAL_ENV"], "lib", _version, "site-packages"))
if _PROJECT_ROOT not in sys.path:
    sys.path.insert(0, _PROJECT_ROOT)

from kemi import access_triggers, controller_channel, legs, metrics, sms_egress, sms_ingress  # noqa: E402
from kemi.directory import Directory  # noqa: E402
from kemi.trigger_drain import TriggerDrain  # noqa: E402

EXIT = -255  # a route function's "stop here" (KEMI convention for exit)


def mod_init():
    return KamailioRouting()


class KamailioRouting:
    def __init__(self):
        self.directory = Directory()
        self.trigger_drain = TriggerDrain(self.directory)
        # What the call controller may ask of the SIP edge (kemi/controller_channel.py).
        self.controller_commands = {
            "originate": lambda message: legs.originate(self.directory, message),
            "hangup": legs.hangup,
            "set_max_duration": lambda message: legs.set_max_duration(self.directory, message),
            "reinvite": legs.reinvite,
            "leg_state": legs.report_state,
            "adopt": legs.adopt,
            "send_sms": lambda message: sms_egress.send(self.directory, message),
            "alert": metrics.alert,
            "gauges": metrics.gauges,
        }

    def child_init(self, rank):
        return 0

    # --- request routing ----------------------------------------------------------------------

    def ksr_request_route(self, msg):
        try:
            return self.route_request()
        except Exception as exc:  # a bug or the database gone: answer, and keep the worker alive
            KSR.err("request route failed: " + repr(exc)[:500] + "\n")
            if not KSR.is_ACK():
                KSR.sl.sl_send_reply(500, "Server Internal Error")
            return 1

    def route_request(self):
        if self.route_reqinit() == EXIT:
            return 1
        if self.route_cancel_and_ack() == EXIT:
            return 1
        if self.route_options() == EXIT:
            return 1
        if legs.on_in_dialog_request():  # BYE, re-INVITE, INFO from the far end of one of our legs
            return 1
        if self.route_within_dialog() == EXIT:
            return 1
        gateway = self.directory.gateway_for_source(KSR.pv.get("$si"))
        if gateway is None:
            self.route_untrusted()
            return 1
        if self.route_retransmission() == EXIT:
            return 1
        if self.route_foreign_domain() == EXIT:
            return 1
        if KSR.is_INVITE() and access_triggers.route(self.directory, gateway) == EXIT:
            return 1
        if KSR.is_MESSAGE() and sms_ingress.route(self.directory, gateway) == EXIT:
            return 1
        metrics.refused("not_found")
        KSR.sl.sl_send_reply(404, "Not Found")
        return 1

    def route_reqinit(self):
        """Sanity and loop checks every request must pass."""
        if KSR.maxfwd.process_maxfwd(10) < 0:
            KSR.sl.sl_send_reply(483, "Too Many Hops")
            return EXIT
        if KSR.sanity.sanity_check(17895, 7) < 0:  # replies 400 (or drops) by itself
            KSR.err("malformed SIP message from " + KSR.pv.get("$si") + ":" + str(KSR.pv.get("$sp")) + "\n")
            return EXIT
        return 1

    def route_cancel_and_ack(self):
        """CANCEL and ACK only ever belong to a transaction of ours: tm matches them, or they are dropped."""
        if KSR.is_CANCEL():
            # Our only INVITE transactions are ringing access-number calls, answered locally: the
            # caller hung up, so the CANCEL gets 200 and the INVITE its final 487 now.
            if KSR.tm.t_check_trans() > 0:
                KSR.sl.sl_send_reply(200, "OK")
                access_triggers.hang_up_while_ringing()
            return EXIT
        if KSR.is_ACK():
            KSR.tm.t_check_trans()  # an ACK to one of our final replies is absorbed by tm
            return EXIT
        return 1

    def route_options(self):
        """Keepalive probes (OPTIONS to the platform itself) get 200 with what we accept."""
        if not KSR.is_OPTIONS() or not KSR.is_myself_ruri() or KSR.corex.has_ruri_user() > 0:
            return 1
        KSR.hdr.append_to_reply("Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, MESSAGE, INFO\r\n")
        KSR.sl.sl_send_reply(200, "OK")
        return EXIT

    def route_within_dialog(self):
        """We hold no dialogs that others may route through us: in-dialog requests are refused."""
        if KSR.siputils.has_totag() < 0:
            return 1
        KSR.sl.sl_send_reply(481, "Call/Transaction Does Not Exist")
        return EXIT

    def route_untrusted(self):
        """Only carrier gateways may send us requests; floods from elsewhere are dropped silently."""
        if KSR.pike.pike_check_req() < 0:
            metrics.refused("flood")
            return EXIT
        metrics.refused("untrusted")
        KSR.sl.sl_send_reply(403, "Forbidden")
        return EXIT

    def route_retransmission(self):
        if KSR.tmx.t_precheck_trans() > 0:
            KSR.tm.t_check_trans()
            return EXIT
        if KSR.tm.t_check_trans() == 0:
            return EXIT
        return 1

    def route_foreign_domain(self):
        """Never an open relay: even a trusted carrier only reaches numbers of ours."""
        if KSR.is_myself_ruri():
            return 1
        metrics.refused("relay")
        KSR.sl.sl_send_reply(403, "Relaying Forbidden")
        return EXIT

    def ksr_route_ring_end(self, msg):
        """Resumed after an access number's ring time."""
        return access_triggers.ring_end()

    def ksr_reply_route(self, msg):
        if not sms_egress.on_reply():
            legs.on_reply()
        return 1

    def ksr_onsend_route(self, msg):
        return 1

    # --- events ---------------------------------------------------------------------------------

    def ksr_evapi_event(self, msg, evname):
        return controller_channel.on_event(evname, self.controller_commands)

    def ksr_uac_event(self, msg, evname):
        if sms_egress.is_ours(KSR.pv.get("$uac_req(evparam)") or ""):
            sms_egress.on_failure()
        else:
            legs.on_failure()
        return 1

    def ksr_htable_event(self, msg, evname):
        if evname == "htable:expired:" + legs.DEADLINES:
            legs.on_deadline_expired()
        return 1

    def ksr_rtimer_legs(self, msg, evname):
        try:
            legs.run_leg_timer()
        except Exception as exc:  # keep the timer process alive
            KSR.err("leg timer failed: " + repr(exc)[:500] + "\n")
        return 1

    def ksr_rtimer_triggers(self, msg, evname):
        try:
            self.trigger_drain.run()
        except Exception as exc:  # keep the timer process alive
            KSR.err("trigger drain failed: " + repr(exc)[:500] + "\n")
        return 1

    def ksr_xhttp_event(self, msg, evname):
        return metrics.serve_http()
