"""The SIP edge as it runs: a real Kamailio with the KEMI script, real rtpengine, sipp as the peer."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from boomerang import probes
from callback.evapi import KamailioChannel
from callback.ng import NgClient
from tests import torture as torture_module
from tests.servicekit import running_edge, sipp

pytestmark = pytest.mark.sip

UNTRUSTED_IP = "127.0.0.2"  # on loopback, but not the demo carrier's trusted address


@pytest.fixture(scope="module")
def edge(tmp_path_factory):
    with running_edge(tmp_path_factory.mktemp("edge")) as settings:
        yield settings


def test_options_to_the_platform_gets_200_with_allow(edge):
    result = sipp("options.xml", edge.sip_listen)
    assert result.returncode == 0, result.stdout[-2000:]


def test_an_invite_from_an_untrusted_source_is_refused_not_relayed(edge):
    result = sipp("invite_refused.xml", edge.sip_listen, "-s", "447700900123", local_ip=UNTRUSTED_IP)
    assert result.returncode == 0, result.stdout[-2000:]


def test_malformed_sip_does_not_stop_kamailio(edge):
    garbage = [
        b"\x00\xff" * 300,
        b"INVITE sip:x SIP/2.0\r\nVia: nonsense\r\n\r\n",
        b"OPTIONS sip:127.0.0.1 SIP/2.0\r\nContent-Length: 99999\r\n\r\nshort",
        b"SIP/2.0 200 OK\r\n\r\n",
        b"\r\n\r\n",
    ]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for datagram in garbage:
            sock.sendto(datagram, (edge.sip_listen.host, edge.sip_listen.port))
    with socket.create_connection((edge.sip_listen.host, edge.sip_listen.port)) as stream:
        stream.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + b"A" * 70000)
    time.sleep(0.2)
    assert probes.sip_options(edge.sip_listen) == 200
    assert sipp("options.xml", edge.sip_listen).returncode == 0


def test_the_controller_channel_round_trips_through_kamailio(edge):
    async def exchange():
        channel = KamailioChannel(edge.controller_evapi_listen)
        task = asyncio.create_task(channel.run())
        try:
            await asyncio.wait_for(channel.connected.wait(), 5)
            return [await channel.ping() for _ in range(3)]
        finally:
            task.cancel()

    round_trips = asyncio.run(exchange())
    assert len(round_trips) == 3 and all(seconds < 2.0 for seconds in round_trips)


def test_rtpengine_answers_the_controller_over_tcp_ng(edge):
    async def exchange():
        client = NgClient(edge.rtpengine_ng_tcp_listen)
        task = asyncio.create_task(client.run())
        try:
            await asyncio.wait_for(client.connected.wait(), 5)
            pings = await asyncio.gather(*(client.request("ping") for _ in range(5)))
            with pytest.raises(Exception, match="rtpengine refused"):
                await client.request("query", **{"call-id": "no-such-call"})
            return pings
        finally:
            task.cancel()

    assert asyncio.run(exchange()) == [{"result": "pong"}] * 5


def _send_and_listen(torture, target, timeout: float = 1.0) -> list[int]:
    """Send the message from an untrusted address; the status codes of the replies that come back."""
    codes = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((UNTRUSTED_IP, 0))
        sock.settimeout(timeout)
        local = f"{UNTRUSTED_IP}:{sock.getsockname()[1]}"  # where the Via asks for the replies
        sock.sendto(torture_module.render(torture, str(target), local, id(torture)), (target.host, target.port))
        try:
            while True:
                reply = sock.recv(65535)
                first = reply.split(b"\r\n", 1)[0].split(b" ")
                if first[0] == b"SIP/2.0" and len(first) > 1 and first[1].isdigit():
                    codes.append(int(first[1]))
        except TimeoutError:
            return codes


@pytest.mark.parametrize("torture", torture_module.MESSAGES, ids=lambda t: t.name.split(":")[0])
def test_torture_messages_get_the_answer_the_rfc_expects(edge, torture):
    codes = _send_and_listen(torture, edge.sip_listen)
    final = [code for code in codes if code >= 200]
    if torture.kind == torture_module.WELL_FORMED and not torture.dropped_by_parser:
        assert final, "a well-formed request must be answered"
        assert final[0] in torture.expected
    else:
        assert all(code in torture.expected for code in final), final  # rejected as the RFC says, or dropped
        assert not any(200 <= code < 300 for code in final)
    assert probes.sip_options(edge.sip_listen) == 200  # Kamailio still answers
