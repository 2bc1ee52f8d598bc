"""
The wire protocol's pure functions and codecs (C{prism.wire}), checked
against C{docs/protocol.md}.
"""

import json

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prism import wire
from prism.errors import ProtocolError
from prism.testing import PrismTestServer
from prism.services.rpc import RPCService


# -- parse


@pytest.mark.parametrize(
    "frame, expected",
    [
        ("1|hello", (1, None, False, "hello")),
        ("1!oops", (1, None, True, "oops")),
        ("17|x", (1, 7, False, "x")),
        ("a123|", (10, 123, False, "")),
        ("Z999999999!{}", (61, 999999999, True, "{}")),
        ("0|", (0, None, False, "")),
        # a "|" or "!" inside the payload belongs to the payload
        ("2|a|b!c", (2, None, False, "a|b!c")),
        ("25!a|b", (2, 5, True, "a|b")),
        ("25|a!b", (2, 5, False, "a!b")),
        (b"3|\x00\xff", (3, None, False, b"\x00\xff")),
        (b"342!\x81", (3, 42, True, b"\x81")),
        (b"Z1|", (61, 1, False, b"")),
    ],
)
def test_parse(frame, expected):
    result = wire.parse(frame)
    assert result == expected
    assert type(result[3]) is type(frame)


@pytest.mark.parametrize(
    "frame",
    [
        "",
        b"",
        "-|x",  # not a service id character
        " 1|x",
        "\u00e9|x",
        b"\xff|x",
        b"-|x",
        "1",  # no separator at all
        "12",
        "1abc",
        b"12345",
        "101|x",  # leading zero in the callback id
        "10|x",
        b"10|x",
        "11234567890|x",  # a 10-digit callback id
        "1" + "9" * 10 + "|x",
        b"1" + b"9" * 10 + b"|x",
        "1\u00b2|x",  # superscript two: str.isdigit() is true for it
        "1\u0661|x",  # ARABIC-INDIC DIGIT ONE
        "1\uff11|x",  # FULLWIDTH DIGIT ONE
        "1+5|x",
        "1 5|x",
        "1-5|x",
        "15a|x",
        b"1\xb2|x",
    ],
)
def test_parseMalformed(frame):
    with pytest.raises(ProtocolError) as info:
        wire.parse(frame)
    assert info.value.kind == "malformed"


def test_parseNineDigitsIsTheLimit():
    assert wire.parse("1" + "9" * 9 + "|x") == (1, wire.MAX_CALLBACK_ID, False, "x")


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.binary()))
def test_parseTotal(frame):
    """
    For any text or bytes, parse returns a well-formed 4-tuple or raises
    ProtocolError("malformed"); never anything else.
    """
    try:
        result = wire.parse(frame)
    except ProtocolError as e:
        assert e.kind == "malformed"
        return
    assert isinstance(result, tuple) and len(result) == 4
    sid, cb, isError, payload = result
    assert 0 <= sid < wire.MAX_SERVICES
    assert cb is None or 1 <= cb <= wire.MAX_CALLBACK_ID
    assert isinstance(isError, bool)
    assert type(payload) is type(frame)
    # re-assembling the parts gives the frame back
    head = wire.header(sid, cb, isError)
    rebuilt = head + payload if isinstance(frame, str) else head.encode("ascii") + payload
    assert rebuilt == frame


@settings(max_examples=200, deadline=None)
@given(
    st.integers(0, wire.MAX_SERVICES - 1),
    st.one_of(st.none(), st.integers(1, wire.MAX_CALLBACK_ID)),
    st.booleans(),
    st.one_of(st.text(), st.binary()),
)
def test_headerParseRoundTrip(sid, cb, isError, payload):
    head = wire.header(sid, cb, isError)
    frame = head + payload if isinstance(payload, str) else head.encode("ascii") + payload
    assert wire.parse(frame) == (sid, cb, isError, payload)


# -- header, frame, errors


def test_header():
    assert wire.header(0) == "0|"
    assert wire.header(1, 1) == "11|"
    assert wire.header(10, 42, error=True) == "a42!"
    assert wire.header(61, wire.MAX_CALLBACK_ID) == "Z999999999|"
    assert wire.header(35, None, True) == "z!"


def test_byteCountsFromTheProtocolDocument():
    """docs/protocol.md: call add(2, 3) is 14 bytes, the reply 4."""
    call, isBinary = wire.frame(1, 1, ["add", 2, 3], wire.JSONCodec)
    assert (call, isBinary) == ('11|["add",2,3]', False)
    assert len(call.encode("utf-8")) == 14
    reply, _ = wire.frame(1, 1, 5, wire.JSONCodec)
    assert reply == "11|5"
    assert len(reply.encode("utf-8")) == 4


def test_byteCountsOverLoopback():
    """The same exchange, end to end through a real server."""
    ts = PrismTestServer(services={"rpc": RPCService({"add": lambda a, b: a + b})})
    raw = ts.raw()
    raw.hello()
    raw.send('11|["add",2,3]')
    assert raw.frames[-1] == "11|5"


@pytest.mark.parametrize(
    "value",
    [None, 0, -1, 1.5, "", "h\u00e9llo \u2603", [1, "two", None], {"a": [1, {"b": True}]}, "a|b!c"],
)
def test_jsonFrameRoundTrip(value):
    frame, isBinary = wire.frame(4, 9, value, wire.JSONCodec)
    assert isBinary is False and isinstance(frame, str)
    sid, cb, isError, payload = wire.parse(frame)
    assert (sid, cb, isError) == (4, 9, False)
    assert wire.JSONCodec.decode(payload) == value


def test_jsonIsCompact():
    frame, _ = wire.frame(1, None, {"a": [1, 2], "b": "\u00e9"}, wire.JSONCodec)
    assert frame == '1|{"a":[1,2],"b":"\u00e9"}'


def test_jsonDecodesUTF8Bytes():
    assert wire.JSONCodec.decode('{"a":"\u00e9"}'.encode("utf-8")) == {"a": "\u00e9"}


@pytest.mark.parametrize(
    "value",
    [None, 0, 2**40, -3, 1.25, "", "h\u00e9llo", b"\x00\xff", [1, [2, [3]]], {"k": b"v", 1: "int key"}],
)
def test_msgpackFrameRoundTrip(value):
    frame, isBinary = wire.frame(5, 12, value, wire.MsgpackCodec)
    assert isBinary is True and isinstance(frame, bytes)
    assert frame.startswith(b"512|")
    sid, cb, isError, payload = wire.parse(frame)
    assert (sid, cb, isError) == (5, 12, False)
    assert wire.MsgpackCodec.decode(payload) == value


def test_rawFrames():
    assert wire.frame(2, None, "text", wire.RawCodec) == ("2|text", False)
    assert wire.frame(2, 3, b"\x00bin", wire.RawCodec) == (b"23|\x00bin", True)
    assert wire.frame(2, 3, bytearray(b"ba"), wire.RawCodec) == (b"23|ba", True)
    assert wire.RawCodec.decode("x") == "x"
    assert wire.RawCodec.decode(b"x") == b"x"
    with pytest.raises(TypeError):
        wire.RawCodec.encode(42)


def test_encodeErrorRoundTrip():
    frame = wire.encodeError(1, 7, "handler", "boom")
    assert frame == '17!{"error":"handler","message":"boom"}'
    sid, cb, isError, payload = wire.parse(frame)
    assert (sid, cb, isError) == (1, 7, True)
    assert wire.decodeError(payload) == ("handler", "boom", None)


def test_encodeErrorOptionalMembers():
    frame = wire.encodeError(0, None, "malformed", "bad \u00e9", traceback="Traceback…", service="rpc")
    assert frame.startswith("0!")
    body = json.loads(frame[2:])
    assert body == {"error": "malformed", "message": "bad \u00e9", "traceback": "Traceback…", "service": "rpc"}
    assert wire.decodeError(frame[2:]) == ("malformed", "bad \u00e9", "Traceback…")
    assert wire.decodeError(frame[2:].encode("utf-8")) == ("malformed", "bad \u00e9", "Traceback…")


def test_errorFramesAreTextEvenForBinaryServices():
    """Error payloads are always JSON text (docs/protocol.md, Errors)."""
    assert isinstance(wire.encodeError(5, 1, "decode", "x"), str)


@pytest.mark.parametrize("payload", ["", "not json", "[1,2]", b"\xff\xfe", "null"])
def test_decodeErrorIsTolerant(payload):
    kind, message, tb = wire.decodeError(payload)
    assert isinstance(kind, str) and isinstance(message, str)


# -- codecs


def test_codecLookup():
    assert wire.codec("raw") is wire.RawCodec
    assert wire.codec("json") is wire.JSONCodec
    assert wire.codec("msgpack") is wire.MsgpackCodec
    with pytest.raises(ValueError) as info:
        wire.codec("xml")
    assert "json" in str(info.value)


def test_msgpackRefusesText():
    with pytest.raises(ValueError):
        wire.MsgpackCodec.decode(msgpack.packb("x").decode("latin-1"))


@pytest.mark.parametrize(
    "payload",
    [
        b"\xdd\xff\xff\xff\xff",  # array32 announcing 4 G elements
        b"\xdf\xff\xff\xff\xff",  # map32
        b"\xdb\xff\xff\xff\xff",  # str32 announcing 4 GB
        b"\xc6\xff\xff\xff\xff",  # bin32
        b"\xc9\xff\xff\xff\xff\x01",  # ext32
        b"\xdc\x00\x10",  # array16 of 16 elements in a 3-byte payload
    ],
)
def test_msgpackUnpackingIsBounded(payload):
    """A tiny frame cannot announce a huge allocation."""
    with pytest.raises(ValueError):
        wire.MsgpackCodec.decode(payload)


def test_msgpackLargeButHonestValues():
    value = {"items": list(range(1000)), "blob": b"x" * 70000, "text": "y" * 70000}
    assert wire.MsgpackCodec.decode(msgpack.packb(value, use_bin_type=True)) == value


def test_msgpackRefusesExtensionTypes():
    with pytest.raises(ValueError):
        wire.MsgpackCodec.decode(msgpack.packb(msgpack.ExtType(3, b"abc")))


@pytest.mark.parametrize("payload", [b"", b"\xc1", b"\x92\x01", b"\x01\x02"])
def test_msgpackMalformed(payload):
    with pytest.raises(ValueError):
        wire.MsgpackCodec.decode(payload)


def test_msgpackEncodesBinType():
    payload, isBinary = wire.MsgpackCodec.encode({"b": b"\x00", "s": "t"})
    assert isBinary is True
    assert msgpack.unpackb(payload, raw=False) == {"b": b"\x00", "s": "t"}
