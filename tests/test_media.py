"""rtpengine as the IVR's media engine: a callback's leg A hears prompts and its RFC 4733 digits arrive.

Real Kamailio places leg A; real rtpengine anchors its media; sipp plays the user's phone, answering
and keying 4 3 2 1 # as RTP events.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy import update

from boomerang import provisioning
from boomerang.store import make_engine, session_factory, transaction
from boomerang.store.models import Gateway
from callback.evapi import KamailioChannel
from callback.media import MediaSession, dtmf_digit
from callback.ng import NgClient
from callback.prompts import Prompt, sentence
from callback.speech import SpeechCache
from tests.servicekit import GatewaySim, free_port, phone_scenario, running_edge

pytestmark = pytest.mark.sip


@pytest.fixture(scope="module")
def edge(tmp_path_factory):
    """Two carriers: "phone" reaches the user's phone (leg A), "destination" the called party (leg B)."""
    with running_edge(tmp_path_factory.mktemp("media")) as settings:
        ports = {"phone": free_port(), "destination": free_port()}
        engine = make_engine(settings.database_url)
        with transaction(session_factory(engine)) as session:
            session.execute(update(Gateway).values(enabled=False))
            for name, port in ports.items():
                provisioning.add_gateway(session, provisioning.GatewaySpec(name=name, uri=f"sip:127.0.0.1:{port}"))
        engine.dispose()
        time.sleep(5.5)  # gateway cache
        yield settings, ports


class ControllerHarness:
    """The controller's two links, with the events and digits that arrive, for one test's callback."""

    def __init__(self, settings) -> None:
        self.events: list[dict] = []
        self.digits: list[tuple[str, str, str]] = []
        self.kamailio = KamailioChannel(settings.controller_evapi_listen, on_message=self.events.append)
        self.ng = NgClient(settings.rtpengine_ng_tcp_listen, on_notify=self._on_notify)

    def _on_notify(self, notification) -> None:
        found = dtmf_digit(notification)
        if found:
            self.digits.append(found)

    async def __aenter__(self):
        self.tasks = [asyncio.create_task(self.kamailio.run()), asyncio.create_task(self.ng.run())]
        await asyncio.wait_for(asyncio.gather(self.kamailio.connected.wait(), self.ng.connected.wait()), 5)
        return self

    async def __aexit__(self, *exc) -> None:
        for task in self.tasks:
            task.cancel()

    async def event(self, leg: str, kind: str, timeout: float = 10) -> dict:
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            for event in self.events:
                if event.get("leg") == leg and event["type"] == kind:
                    return event
            await asyncio.sleep(0.02)
        raise TimeoutError(f"no {kind} for {leg}: {self.events}")

    async def digits_until(self, last: str, count: int, timeout: float = 15) -> list[str]:
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            if len(self.digits) >= count and self.digits[-1][2] == last:
                break
            await asyncio.sleep(0.05)
        return [digit for _, _, digit in self.digits]

    def originate(self, leg: str, target: str, gateway: str, sdp: str) -> None:
        self.kamailio.send({"type": "originate", "leg": leg, "target": target, "caller_id": "123333333",
                            "sdp": sdp, "max_seconds": 60, "gateways": [gateway]})  # fmt: skip


def test_leg_a_hears_a_prompt_and_its_digits_are_collected(edge, tmp_path):
    settings, ports = edge
    phone = GatewaySim(phone_scenario(tmp_path, "4321#"), ports["phone"], tmp_path)
    prompts = SpeechCache(tmp_path / "prompts")

    async def callback():
        async with ControllerHarness(settings) as controller:
            media = MediaSession(controller.ng, "callback-1")
            controller.originate("A1", "447700900123", "phone", await media.sdp_for_a())
            answered = await controller.event("A1", "leg_answered")
            await media.a_answered(answered["sdp"])
            duration = await media.play(str(await prompts.render(sentence(Prompt.ENTER_PIN), "en")))
            digits = await controller.digits_until("#", 5)
            statistics = await media.statistics()
            controller.kamailio.send({"type": "hangup", "leg": "A1"})
            await controller.event("A1", "leg_ended")
            await media.delete()
            return duration, digits, controller.digits, statistics

    duration, digits, sources, statistics = asyncio.run(callback())
    assert 2000 < duration < 6000  # "Please enter your PIN, followed by the hash key."
    assert digits == ["4", "3", "2", "1", "#"]
    assert {(call, party) for call, party, _ in sources} == {("callback-1", "A")}
    # The phone's audio and digits reached rtpengine on A's stream, and nothing reached the placeholder.
    assert statistics["tags"]["A"]["medias"][0]["codec"] == "PCMA/8000"
    assert statistics["tags"]["A"]["medias"][0]["streams"][0]["stats"]["packets"] >= 40  # 5 key presses at least
    assert statistics["tags"]["ivr"]["medias"][0]["streams"][0]["stats"]["packets"] == 0
    code, messages = phone.finish()
    assert code == 0, messages[-3000:]


def test_leg_b_is_bridged_to_a_and_a_keeps_its_keypad(edge, tmp_path):
    settings, ports = edge
    phone = GatewaySim(phone_scenario(tmp_path, "#11", wait_ms=5000), ports["phone"], tmp_path)
    destination = GatewaySim("gw_answer_talk.xml", ports["destination"], tmp_path)

    async def callback():
        async with ControllerHarness(settings) as controller:
            media = MediaSession(controller.ng, "callback-2")
            controller.originate("A2", "447700900123", "phone", await media.sdp_for_a())
            await media.a_answered((await controller.event("A2", "leg_answered"))["sdp"])
            controller.originate("B2", "12025550143", "destination", media.sdp_for_b)
            await media.b_answered((await controller.event("B2", "leg_answered"))["sdp"])
            digits = await controller.digits_until("1", 3)
            statistics = await media.statistics()
            for leg in ("B2", "A2"):
                controller.kamailio.send({"type": "hangup", "leg": leg})
                await controller.event(leg, "leg_ended")
            await media.delete()
            return digits, statistics

    digits, statistics = asyncio.run(callback())
    assert digits == ["#", "1", "1"]  # "#11" while bridged: the way back to the destination prompt
    a_stream = statistics["tags"]["A"]["medias"][0]["streams"][0]
    b_stream = statistics["tags"]["ivr"]["medias"][0]["streams"][0]  # the second party, now leg B
    assert a_stream["stats"]["packets"] > 100 and b_stream["stats"]["packets"] > 100  # both sides talked
    assert b_stream["endpoint"]["port"] != 9  # latched on to B's real media address, not the placeholder
    for sim in (phone, destination):
        code, messages = sim.finish()
        assert code == 0, messages[-3000:]
