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
from tests.servicekit import GatewaySim, free_port, running_edge

pytestmark = pytest.mark.sip


@pytest.fixture(scope="module")
def edge(tmp_path_factory):
    with running_edge(tmp_path_factory.mktemp("media")) as settings:
        phone_port = free_port()
        engine = make_engine(settings.database_url)
        with transaction(session_factory(engine)) as session:
            session.execute(update(Gateway).values(enabled=False))
            provisioning.add_gateway(session, provisioning.GatewaySpec(name="phone", uri=f"sip:127.0.0.1:{phone_port}"))
        engine.dispose()
        time.sleep(5.5)  # gateway cache
        yield settings, phone_port


def test_leg_a_hears_a_prompt_and_its_digits_are_collected(edge, tmp_path):
    settings, phone_port = edge
    phone = GatewaySim("phone_answer_dtmf.xml", phone_port, tmp_path)
    prompt = SpeechCache(tmp_path / "prompts")

    async def callback():
        digits: list[tuple[str, str, str]] = []
        events: dict[str, asyncio.Future] = {}
        loop = asyncio.get_running_loop()

        def on_event(message):
            future = events.get(message["type"])
            if future is not None and not future.done():
                future.set_result(message)

        def on_notify(notification):
            found = dtmf_digit(notification)
            if found:
                digits.append(found)

        kamailio = KamailioChannel(settings.controller_evapi_listen, on_message=on_event)
        ng = NgClient(settings.rtpengine_ng_tcp_listen, on_notify=on_notify)
        tasks = [asyncio.create_task(kamailio.run()), asyncio.create_task(ng.run())]
        await asyncio.wait_for(asyncio.gather(kamailio.connected.wait(), ng.connected.wait()), 5)
        try:
            media = MediaSession(ng, "callback-1")
            events["leg_answered"] = loop.create_future()
            events["leg_ended"] = loop.create_future()
            kamailio.send({"type": "originate", "leg": "A1", "target": "447700900123", "caller_id": "123333333",
                           "sdp": await media.sdp_for_a(), "max_seconds": 60})  # fmt: skip
            answered = await asyncio.wait_for(events["leg_answered"], 10)
            await media.a_answered(answered["sdp"])
            path = await prompt.render(sentence(Prompt.ENTER_PIN), "en")
            duration = await media.play(str(path))
            deadline = loop.time() + 10
            while loop.time() < deadline and (not digits or digits[-1][2] != "#"):
                await asyncio.sleep(0.05)
            statistics = await media.statistics()
            kamailio.send({"type": "hangup", "leg": "A1"})
            await asyncio.wait_for(events["leg_ended"], 5)
            await media.delete()
            return duration, digits, statistics
        finally:
            for task in tasks:
                task.cancel()

    duration, digits, statistics = asyncio.run(callback())
    assert 2000 < duration < 6000  # "Please enter your PIN, followed by the hash key."
    assert [d[2] for d in digits] == ["4", "3", "2", "1", "#"]
    assert {d[0] for d in digits} == {"callback-1"} and {d[1] for d in digits} == {"A"}
    # The phone's audio and digits reached rtpengine on A's stream, and nothing reached the placeholder.
    assert statistics["tags"]["A"]["medias"][0]["codec"] == "PCMA/8000"
    assert statistics["tags"]["A"]["medias"][0]["streams"][0]["stats"]["packets"] >= 100
    assert statistics["tags"]["ivr"]["medias"][0]["streams"][0]["stats"]["packets"] == 0
    code, messages = phone.finish()
    assert code == 0, messages[-3000:]
