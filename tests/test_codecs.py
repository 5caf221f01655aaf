"""The wire encodings of the controller's links: bencode (rtpengine ng) and netstrings (evapi)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callback import bencode, netstring

values = st.recursive(
    st.integers() | st.binary(max_size=40),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=20,
)


@given(values)
def test_bencode_round_trip(value):
    assert bencode.decode(bencode.encode(value)) == value


@given(values, st.integers(min_value=0, max_value=200))
def test_bencode_reports_a_truncated_value_as_incomplete(value, cut):
    data = bencode.encode(value)
    if cut >= len(data):
        return
    with pytest.raises(bencode.Incomplete):
        bencode.decode_prefix(data[:cut])


def test_bencode_matches_rtpengine_wire_format():
    assert bencode.encode({"command": "ping"}) == b"d7:command4:pinge"
    assert bencode.encode({"b": 1, "a": ["x"]}) == b"d1:al1:xe1:bi1ee"  # keys sorted
    assert bencode.decode_text(bencode.decode(b"d6:result4:ponge")) == {"result": "pong"}


@pytest.mark.parametrize("data", [b"x", b"d1:ae", b"di1ei2ee", b"i12x4e", b"3:abcde"])
def test_bencode_rejects_garbage(data):
    with pytest.raises(bencode.BencodeError):
        bencode.decode(data)


@given(st.lists(st.binary(max_size=300), max_size=10), st.integers(min_value=1, max_value=50))
def test_netstrings_survive_any_split_of_the_stream(payloads, chunk):
    stream = b"".join(netstring.encode(p) for p in payloads)
    decoder = netstring.Decoder()
    received = []
    for start in range(0, len(stream), chunk):
        received += decoder.feed(stream[start : start + chunk])
    assert received == payloads


@pytest.mark.parametrize("data", [b"abc:hello,", b"5:hello;", b"99999999999:x"])
def test_netstring_errors(data):
    with pytest.raises(netstring.NetstringError):
        netstring.Decoder().feed(data)
