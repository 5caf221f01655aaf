"""The media of one callback in rtpengine: leg A alone with the IVR first, then bridged to a leg B.

rtpengine is the only media engine; the controller drives it over the ng protocol. A callback is
one rtpengine call (its Call-ID) with two parties: "A" (the user's phone) and a second party that is
first a placeholder for the IVR and later the destination leg B:

- `sdp_for_a()`: an offer from the IVR placeholder gives the SDP to INVITE leg A with.
- `a_answered(sdp)`: A's answer completes the one-legged call: prompts can play to A and A's DTMF is
  reported.
- `play()` / `stop()`: prompts to A.
- `b_answered(sdp)`: leg B (INVITEd with `sdp_for_b`) answered: the second party becomes B and A and B
  hear each other, transcoded to A's codec where they differ. With port latching A's ports do not
  change, so A needs no re-INVITE. A's digits keep being reported while bridged.
- `b_ended()`: A is alone with the IVR again, ready for another destination.
Party tags double as rtpengine from-tags; "from-tag" names the party that hears a played file.
"""

from __future__ import annotations

import asyncio
from typing import Any

from callback.ng import NgClient

A = "A"
IVR = "ivr"
# An SDP for the not-yet-existing second party: rtpengine only needs a well-formed offer.
PLACEHOLDER_SDP = (
    "v=0\r\no=boomerang 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 9 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=sendrecv\r\n"
)
INJECTED_DTMF_VOLUME = 63  # rtpengine reports the digits it generates itself with this volume


class MediaSession:
    def __init__(self, ng: NgClient, call_id: str) -> None:
        self.ng = ng
        self.call_id = call_id
        self.a_sdp = ""
        self.held = False  # rtpengine holds this call: it answered our offer, and it is not deleted
        self.sdp_for_b = ""  # what leg B is INVITEd with: rtpengine's side facing the second party

    async def _command(self, command: str, **params: Any) -> dict[str, Any]:
        return await self.ng.request(command, **{"call-id": self.call_id, **params})

    async def sdp_for_a(self) -> str:
        reply = await self._command("offer", **{"from-tag": IVR, "sdp": PLACEHOLDER_SDP, "ICE": "remove"})
        self.held = True
        return reply["sdp"]

    async def a_answered(self, sdp: str) -> None:
        reply = await self._command("answer", **{"from-tag": IVR, "to-tag": A, "sdp": sdp, "ICE": "remove"})
        self.a_sdp, self.sdp_for_b = sdp, reply["sdp"]
        # The placeholder must not receive A's audio or digits (nothing listens there).
        await self._command("block media", **{"from-tag": A})

    async def b_answered(self, sdp: str) -> None:
        await self._command(
            "offer",
            **{
                "from-tag": IVR,
                "to-tag": A,
                "sdp": sdp,
                "ICE": "remove",
                "flags": ["port latching"],
                "codec": {"transcode": [first_codec(self.a_sdp)]},
            },
        )
        await self._command("answer", **{"from-tag": IVR, "to-tag": A, "sdp": self.a_sdp, "ICE": "remove"})
        await self._command("unblock media", **{"from-tag": A})

    async def play_over_bridge(self, path: str) -> int:
        """A prompt to A while bridged: B's audio is held back for its duration (rtpengine does not mix)."""
        await self._command("block media", **{"from-tag": IVR})
        duration = await self.play(path)
        asyncio.get_running_loop().call_later(duration / 1000, self._unblock_second_party)
        return duration

    def _unblock_second_party(self) -> None:
        asyncio.ensure_future(self._command("unblock media", **{"from-tag": IVR}))

    async def b_ended(self) -> None:
        await self._command("block media", **{"from-tag": A})

    async def play(self, path: str) -> int:
        """Start playing a WAV file to A; returns its duration in milliseconds."""
        reply = await self._command("play media", **{"from-tag": A, "file": path})
        return int(reply.get("duration", 0))

    async def stop(self) -> None:
        await self._command("stop media", **{"from-tag": A})

    async def statistics(self) -> dict[str, Any]:
        return await self._command("query")

    async def delete(self) -> None:
        """The whole call, by its Call-ID alone (naming a party would miss a call that never got as
        far as A's answer: it holds only the IVR placeholder), at once: rtpengine otherwise keeps a
        deleted call's ports 30 s, which a burst of short calls runs out of."""
        self.held = False
        await self._command("delete", **{"delete-delay": 0})


_STATIC_CODECS = {"0": "PCMU", "8": "PCMA", "9": "G722", "18": "G729"}


def first_codec(sdp: str) -> str:
    """The preferred codec of an SDP's audio stream, by name (PCMA, PCMU, opus...)."""
    lines = sdp.replace("\r\n", "\n").split("\n")
    media = next((line.split() for line in lines if line.startswith("m=audio")), [])
    if len(media) < 4:
        return "PCMU"
    payload = media[3]
    for line in lines:
        if line.startswith(f"a=rtpmap:{payload} "):
            return line.split(" ", 1)[1].split("/")[0]
    return _STATIC_CODECS.get(payload, "PCMU")


def dtmf_digit(notification: dict[str, Any]) -> tuple[str, str, str] | None:
    """(call-id, party tag, digit) from an rtpengine onDTMF notification; None for what to ignore."""
    if notification.get("notify") != "onDTMF":
        return None
    data = notification.get("data") or {}
    if int(data.get("volume", 0)) == INJECTED_DTMF_VOLUME:
        return None
    event = int(data.get("event", -1))
    digit = {10: "*", 11: "#"}.get(event, str(event) if 0 <= event <= 9 else None)
    if digit is None:
        return None
    return str(data.get("callid", "")), str(data.get("source_tag", "")), digit
