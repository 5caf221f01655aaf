"""SMS replies as SIP MESSAGE through a carrier gateway, sent on the call controller's word, with
the outcome reported back to it (`sms_result`)."""

import uuid

import KSR

from kemi import controller_channel

CALL_ID_PREFIX = "sms-"
EVENT_PREFIX = "sms:"


def send(directory, command):
    """{"type": "send_sms", "sms_id", "target" (E.164), "sender", "text", "gateways" (names)}.

    The reply leaves through the gateway the text came from when named, else the best route."""
    sms_id = int(command["sms_id"])
    routes = directory.outbound_routes(str(command["target"]))
    chosen = [str(name) for name in command.get("gateways") or []]
    if chosen:
        routes = [route for route in routes if route["gateway"] in chosen]
    if not routes:
        _result(sms_id, 503)
        return
    route = routes[0]
    local = str(directory.settings.sip_listen)
    from_uri = "sip:" + str(command["sender"]) + "@" + local.rsplit(":", 1)[0]
    for name, value in (
        ("method", "MESSAGE"),
        ("ruri", route["ruri"]),
        ("furi", from_uri),
        ("turi", route["ruri"]),
        ("ouri", route["ouri"]),
        ("callid", CALL_ID_PREFIX + str(sms_id) + "-" + uuid.uuid4().hex[:12]),
        ("hdrs", "Content-Type: text/plain; charset=UTF-8\r\n"),
        ("body", str(command["text"])),
        ("evparam", EVENT_PREFIX + str(sms_id)),
    ):
        KSR.pv.sets("$uac_req(" + name + ")", value)
    KSR.pv.seti("$uac_req(evroute)", 2)  # failures and timeouts; a 2xx is seen in the reply route
    if KSR.uac.uac_req_send() < 0:
        _result(sms_id, 500)


def is_ours(evparam):
    return evparam.startswith(EVENT_PREFIX)


def on_reply():
    """Reply route: True when the reply was to one of our MESSAGEs (its 2xx is reported)."""
    call_id = KSR.pv.get("$ci") or ""
    if not call_id.startswith(CALL_ID_PREFIX) or KSR.pv.get("$rm") != "MESSAGE":
        return False
    code = int(KSR.pv.get("$rs") or 0)
    if 200 <= code < 300:
        _result(int(call_id[len(CALL_ID_PREFIX) :].split("-", 1)[0]), code)
    return True


def on_failure():
    """uac event route for a MESSAGE of ours: a negative final reply or no reply at all."""
    evparam = KSR.pv.get("$uac_req(evparam)") or ""
    _result(int(evparam[len(EVENT_PREFIX) :]), int(KSR.pv.get("$uac_req(evcode)") or 408))


def _result(sms_id, code):
    controller_channel.send({"type": "sms_result", "sms_id": sms_id, "code": code})
