"""Kamailio KEMI routing script (app_python3): the SIP edge of the platform.

Kamailio loads this file, calls mod_init() once, then forks workers: each calls child_init() and
routes requests through KamailioRouting. State shared between workers lives in Kamailio (htable,
dialogs) or the database, never in module globals.
"""

import os
import site
import sys

import KSR  # provided by app_python3

# Kamailio embeds Debian's python3; the platform's packages live in its virtualenv.
_PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if os.environ.get("VIRTUAL_ENV"):
    site.addsitedir(
        os.path.join(
            os.environ["VIRTUAL_ENV"], "lib", f"python{sys.version_info[0]}.{sys.version_info[1]}", "site-packages"
        )
    )
if _PROJECT_ROOT not in sys.path:
    sys.path.insert(0, _PROJECT_ROOT)

from kemi import controller_channel  # noqa: E402  (needs the paths above)

EXIT = -255  # a route function's "stop here" (KEMI convention for exit)


def mod_init():
    return KamailioRouting()


class KamailioRouting:
    def child_init(self, rank):
        return 0

    # --- request routing: one small route per concern, early returns ----------------------------

    def ksr_request_route(self, msg):
        if self.route_reqinit() == EXIT:
            return 1
        if self.route_options() == EXIT:
            return 1
        # Anything else is refused until a route below accepts it: never an open relay.
        KSR.sl.sl_send_reply(403, "Forbidden")
        return 1

    def route_reqinit(self):
        """Sanity and loop checks every request must pass."""
        if KSR.maxfwd.process_maxfwd(10) < 0:
            KSR.sl.sl_send_reply(483, "Too Many Hops")
            return EXIT
        if KSR.sanity.sanity_check(17895, 7) < 0:
            KSR.err("malformed SIP message from " + KSR.pv.get("$si") + ":" + str(KSR.pv.get("$sp")) + "\n")
            return EXIT
        return 1

    def route_options(self):
        """Keepalive probes (OPTIONS to the platform itself) get 200 with what we accept."""
        if not KSR.is_OPTIONS() or not KSR.is_myself_ruri() or KSR.corex.has_ruri_user() > 0:
            return 1
        KSR.hdr.append_to_reply("Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, MESSAGE, INFO\r\n")
        KSR.sl.sl_send_reply(200, "OK")
        return EXIT

    def ksr_onsend_route(self, msg):
        return 1

    # --- the call controller's channel (evapi) ----------------------------------------------------

    def ksr_evapi_event(self, msg, evname):
        return controller_channel.on_event(evname)
