"""SIP torture messages in the spirit of RFC 4475: well-formed but unusual, and malformed.

Each message is (name, text, what the RFC expects). `{target}`, `{local}` and `{n}` are filled in
by the test. A well-formed message must be processed normally (here: our policy answer, never 400) unless
Kamailio's parser drops it (noted per message); a malformed one must be rejected with a 4xx/5xx or
silently dropped, and never accepted.
"""

from __future__ import annotations

from dataclasses import dataclass

WELL_FORMED = "well-formed"
MALFORMED = "malformed"


@dataclass(frozen=True)
class Torture:
    name: str
    text: str
    kind: str
    expected: tuple[int, ...] = ()  # the response codes the RFC allows
    # Set where Kamailio 5.6's own parser discards the message before any routing logic runs: then
    # silence is the outcome (the RFC's answer stays allowed, should a later Kamailio parse it).
    dropped_by_parser: str = ""


def _crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode("utf-8", "surrogateescape")


_SDP = "v=0\no=- 1 1 IN IP4 127.0.0.2\ns=-\nc=IN IP4 127.0.0.2\nt=0 0\nm=audio 49170 RTP/AVP 0\n"

MESSAGES = [
    Torture(
        "wsinv: whitespace, line folding, compact and mixed-case header names",
        "INVITE sip:vivekg@{target};unknownparam SIP/2.0\n"
        "TO :\n sip:vivekg@{target} ;   tag    = 1918181833n\n"
        'from   : "J Rosenberg \\\\\\""       <sip:jdrosen@{local}>\n  ;\n  tag = 98asjd8\n'
        "MaX-fOrWaRdS: 0068\n"
        "Call-ID: wsinv.{n}@{local}\n"
        "Content-Length   : 0\n"
        "cseq: 0009\n  INVITE\n"
        "Via  : SIP  /   2.0\n /UDP\n    {local};branch=z9hG4bKwsinv{n}\n"
        "s :\n"
        "NewFangledHeader:   newfangled value\n continued newfangled value\n"
        "UnknownHeaderWithUnusualValue: ;;,,;;,;\n"
        'm:"Quoted string \\"\\"" <sip:jdrosen@{local}> ; newparam =\n      newvalue ;\n  secondparam ; q = 0.33\n\n',
        WELL_FORMED,
        (403, 481),
        dropped_by_parser="line folding inside the CSeq value is not parsed by Kamailio 5.6",
    ),
    Torture(
        "intmeth: an unknown method with unusual token characters",
        "!interesting-Method0123456789_*+`.%indeed'~ sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
        ":&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@{target} SIP/2.0\n"
        "Via: SIP/2.0/UDP {local};branch=z9hG4bK-.!%66*_+`'~{n}\n"
        'To: "BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f" <sip:1_unusual.URI~(to-be!sure)&isn\'t+it$/crazy?,/;;*@{target}>\n'
        "From: token1~` token2'+_ token3*%!.- <sip:mundane@{local}>;fromParam''~+*_!.-%="
        '"\xd1\x80\xd0\xb0\xd0\xb1\xd0\xbe\xd1\x82\xd0\xb0\xd1\x8e\xd1\x89\xd0\xb8\xd0\xb9";tag=_token~1\'+`*%!-.\n'
        "Call-ID: intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{{\n"
        "CSeq: 139122385 !interesting-Method0123456789_*+`.%indeed'~\n"
        "Max-Forwards: 255\n"
        "extensionHeader-!.%*+_`'~:\xef\xbb\xbf\xe5\xa4\xa7\xe5\x81\x9c\xe9\x9b\xbb\n"
        "Content-Length: 0\n\n",
        WELL_FORMED,
        (403,),
        dropped_by_parser="a header value starting with a UTF-8 byte order mark is refused by Kamailio 5.6",
    ),
    Torture(
        "esc01: escaped characters in the request URI and headers",
        "INVITE sip:sips%3Auser%40example.com@{target} SIP/2.0\n"
        "To: sip:%75se%72@{target}\n"
        "From: <sip:I%20have%20spaces@{local}>;tag=938\n"
        "Max-Forwards: 87\n"
        "i: esc01.{n}@{local}\n"
        "Via: SIP/2.0/UDP {local};branch=z9hG4bKkdjuw{n}\n"
        "CSeq: 1 INVITE\n"
        "Contact: <sip:cal%6Cer@{local};%6C%72;n%61me=v%61lue%25%34%31>\n"
        "Content-Type: application/sdp\n"
        "l: {len}\n\n" + _SDP,
        WELL_FORMED,
        (403,),
    ),
    Torture(
        "longreq: very long header values and many Via entries",
        "INVITE sip:user@{target} SIP/2.0\n"
        'To: "I have a user name of ' + "extreme" * 60 + ' proportion" <sip:user@{target}>\n'
        "From: sip:caller@{local};tag=12345\n"
        "Call-ID: longreq.{n}@{local}\n"
        "CSeq: 1 INVITE\n"
        "Max-Forwards: 70\n"
        "Via: SIP/2.0/UDP {local};branch=z9hG4bKlong{n}\n"
        + "".join(f"Via: SIP/2.0/UDP sip{i}.example.com;branch=z9hG4bK{i}x\n" for i in range(40))
        + "X-Long: "
        + "a" * 4000
        + "\n"
        "Content-Length: 0\n\n",
        WELL_FORMED,
        (403,),
    ),
    Torture(
        "zeromf: Max-Forwards of zero",
        "OPTIONS sip:user@{target} SIP/2.0\n"
        "Via: SIP/2.0/UDP {local};branch=z9hG4bKzero{n}\n"
        "To: sip:user@{target}\n"
        "From: sip:caller@{local};tag=3ghsd41\n"
        "Call-ID: zeromf.{n}@{local}\n"
        "CSeq: 1 OPTIONS\n"
        "Max-Forwards: 0\n"
        "Content-Length: 0\n\n",
        WELL_FORMED,
        (483, 403),
    ),
    Torture(
        "mpart01: a multipart body",
        "MESSAGE sip:user@{target} SIP/2.0\n"
        "Via: SIP/2.0/UDP {local};branch=z9hG4bKmp{n}\n"
        "To: sip:user@{target}\n"
        "From: sip:caller@{local};tag=mp1\n"
        "Call-ID: mpart01.{n}@{local}\n"
        "CSeq: 1 MESSAGE\n"
        "Max-Forwards: 70\n"
        'Content-Type: multipart/mixed;boundary="7a9cbec02ceef655"\n'
        "Content-Length: {len}\n\n"
        "--7a9cbec02ceef655\nContent-Type: text/plain\n\nhello\n--7a9cbec02ceef655\n"
        "Content-Type: text/plain\n\nworld\n--7a9cbec02ceef655--\n",
        WELL_FORMED,
        (403,),
    ),
    Torture(
        "mismatch01: CSeq method differs from the request method",
        "OPTIONS sip:user@{target} SIP/2.0\n"
        "To: sip:j.user@{target}\n"
        "From: sip:caller@{local};tag=34525\n"
        "Max-Forwards: 6\n"
        "Call-ID: mismatch01.{n}@{local}\n"
        "CSeq: 8 INVITE\n"
        "Via: SIP/2.0/UDP {local};branch=z9hG4bKmismatch{n}\n"
        "l: 0\n\n",
        MALFORMED,
        (400,),
    ),
    Torture(
        "clerr: Content-Length larger than the body",
        "INVITE sip:user@{target} SIP/2.0\n"
        "Max-Forwards: 80\n"
        "To: sip:j.user@{target}\n"
        "From: sip:caller@{local};tag=93942939o2\n"
        "Contact: <sip:caller@{local}>\n"
        "Call-ID: clerr.{n}@{local}\n"
        "CSeq: 8 INVITE\n"
        "Via: SIP/2.0/UDP {local};branch=z9hG4bKclerr{n}\n"
        "Content-Type: application/sdp\n"
        "Content-Length: 9999\n\n" + _SDP,
        MALFORMED,
        (400,),
    ),
    Torture(
        "ncl: negative Content-Length",
        "INVITE sip:user@{target} SIP/2.0\n"
        "Max-Forwards: 254\n"
        "To: sip:j.user@{target}\n"
        "From: sip:caller@{local};tag=32394234\n"
        "Call-ID: ncl.{n}@{local}\n"
        "CSeq: 0 INVITE\n"
        "Via: SIP/2.0/UDP {local};branch=z9hG4bKncl{n}\n"
        "Contact: <sip:caller@{local}>\n"
        "Content-Type: application/sdp\n"
        "Content-Length: -999\n\n" + _SDP,
        MALFORMED,
        (400,),
    ),
    Torture(
        "scalar02: CSeq number beyond 2**32-1 and an absurd Max-Forwards",
        "REGISTER sip:{target} SIP/2.0\n"
        "Via: SIP/2.0/UDP {local};branch=z9hG4bKscalar{n}\n"
        "Max-Forwards: 300\n"
        "From: <sip:user@{target}>;tag=239232jh3\n"
        "To: <sip:user@{target}>\n"
        "Call-ID: scalar02.{n}@{local}\n"
        "CSeq: 36893488147419103232 REGISTER\n"
        "Contact: <sip:user@{local}:3890;transport=udp>\n"
        "l: 0\n\n",
        MALFORMED,
        (400,),
    ),
    Torture(
        "insuf: required headers missing (no Call-ID, From or To)",
        "INVITE sip:user@{target} SIP/2.0\n"
        "CSeq: 193942 INVITE\n"
        "Via: SIP/2.0/UDP {local};branch=z9hG4bKinsuf{n}\n"
        "Max-Forwards: 70\n"
        "Content-Length: 0\n\n",
        MALFORMED,
        (400,),
    ),
    Torture(
        "badvers: an unknown SIP version",
        "OPTIONS sip:t.watson@{target} SIP/7.0\n"
        "Via: SIP/7.0/UDP {local};branch=z9hG4bKbadvers{n}\n"
        "Max-Forwards: 70\n"
        "From: A. Bell <sip:a.g.bell@{local}>;tag=qweoiqpe\n"
        "To: T. Watson <sip:t.watson@{target}>\n"
        "Call-ID: badvers.{n}@{local}\n"
        "CSeq: 1 OPTIONS\n"
        "l: 0\n\n",
        MALFORMED,
        (505, 400),
    ),
    Torture(
        "escnull: a NUL byte inside a header",
        "REGISTER sip:{target} SIP/2.0\n"
        "To: sip:null-\x00-null@{target}\n"
        "From: sip:null-\x00-null@{target};tag=839923423\n"
        "Max-Forwards: 70\n"
        "Call-ID: escnull.{n}@{local}\n"
        "CSeq: 39292 REGISTER\n"
        "Via: SIP/2.0/UDP {local};branch=z9hG4bKescnull{n}\n"
        "Contact: <sip:%00@{local}>\n"
        "l: 0\n\n",
        MALFORMED,
        (400, 403),
    ),
    Torture(
        "garbage: bytes that are not SIP at all",
        "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + "\xff" * 200,
        MALFORMED,
        (),
    ),
]


def render(torture: Torture, target: str, local: str, n: int) -> bytes:
    text = torture.text.replace("{target}", target).replace("{local}", local).replace("{n}", str(n))
    message = _crlf(text.replace("{{", "{"))
    head, _, body = message.partition(b"\r\n\r\n")
    return head.replace(b"{len}", str(len(body)).encode()) + b"\r\n\r\n" + body
