"""Text from carriers' bytes: by the charset named, else UTF-8, else Latin-1; never an error."""

import pytest

from boomerang.charsets import charset_of, decode_text


@pytest.mark.parametrize(
    ("data", "charset", "text"),
    [
        ("Café €5".encode(), None, "Café €5"),
        ("Café".encode("latin-1"), None, "Café"),  # not UTF-8: Latin-1
        ("Café".encode("latin-1"), "ISO-8859-1", "Café"),
        ("Café".encode("utf-16-be"), "UCS-2", "Café"),  # SMPP's UCS-2: big-endian, no BOM
        ("Café".encode("utf-16"), "utf-16", "Café"),  # with a BOM, in either order
        ("Café".encode("utf-16-le").join([b"\xff\xfe", b""]), "UCS2", "Café"),
        (b"caf\xc3", "utf-8", "caf\ufffd"),  # cut short: replaced, not refused
        ("Café".encode("latin-1"), "x-unheard-of", "Café"),
        (b"", "UCS-2", ""),
    ],
)
def test_decode_text(data, charset, text):
    assert decode_text(data, charset) == text


def test_charset_of():
    assert charset_of('text/plain; charset="UTF-16"') == "UTF-16"
    assert decode_text("é".encode("utf-16-be"), charset_of('text/plain; charset="UCS-2"')) == "é"
    assert charset_of("text/plain") is None
    assert charset_of("text/plain;format=flowed;CHARSET=iso-8859-1") == "iso-8859-1"
