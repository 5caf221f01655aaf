"""The evapi channel between Kamailio and the call controller, seen from Kamailio.

Messages are JSON objects in netstrings with a "type". Every message Kamailio sends carries a
"seq" (per worker process) and "ts", because events relayed from different workers can arrive out
of order.
"""

import itertools
import json
import os
import time

import KSR

CONTROLLER_TAG = "controller"
_seq = itertools.count(1)  # per process: ordered together with the worker's pid


def send(message):
    """Relay one message to the connected controller(s); dropped if none is connected."""
    message = dict(message, seq=next(_seq), pid=os.getpid(), ts=time.time())
    KSR.evapi.relay(json.dumps(message, separators=(",", ":")))


def on_event(evname, commands):
    """An evapi event; `commands` maps a message type to the function that carries it out."""
    if evname == "evapi:connection-new":
        # A reconnecting client reuses a slot and would inherit an old tag: set it every time.
        KSR.evapi.set_tag(CONTROLLER_TAG)
        KSR.info("call controller connected from " + str(KSR.pv.get("$evapi(srcaddr)")) + "\n")
        return 1
    if evname == "evapi:connection-closed":
        KSR.warn("call controller disconnected\n")
        return 1
    if evname == "evapi:message-received":
        return _on_message(KSR.pv.get("$evapi(msg)"), commands)
    return 1


def _on_message(text, commands):
    try:
        message = json.loads(text)
        kind = message["type"]
    except (ValueError, TypeError, KeyError):
        KSR.err("unreadable message from the call controller: " + str(text)[:200] + "\n")
        return 1
    if kind == "ping":
        send({"type": "pong", "ping": message.get("id")})
    elif kind in commands:
        try:
            commands[kind](message)
        except (KeyError, TypeError, ValueError) as exc:
            KSR.err("bad " + kind + " command from the call controller: " + repr(exc)[:200] + "\n")
            send({"type": "command_error", "command": kind, "leg": message.get("leg"), "error": repr(exc)[:200]})
    else:
        KSR.err("unknown message type from the call controller: " + str(kind)[:50] + "\n")
    return 1
