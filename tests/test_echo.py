"""
The C{echo} service over the loopback transport, with every codec, with and
without callback ids, through raw frames and through the Python client.
"""

import pytest

from prism.errors import PrismConfigError
from prism.services.echo import EchoService
from prism.testing import PrismTestServer, resultOf


@pytest.fixture
def ts():
    return PrismTestServer(
        services={"echo": EchoService(), "jecho": EchoService("json"), "mecho": EchoService("msgpack")}
    )


def rawClient(ts):
    """A raw client recording C{(frame, isBinary)}."""
    raw = ts.raw()
    raw.hello()
    received = []
    raw.end.onFrame = lambda frame, isBinary: received.append((frame, isBinary))
    return raw, received


def test_serviceTable(ts):
    raw = ts.raw()
    assert '["echo",1,"raw",true],["jecho",2,"json",true],["mecho",3,"msgpack",true]' in raw.hello()


@pytest.mark.parametrize("text", ["hello", "", "h\u00e9llo \u2603 \U0001f600", "a|b!c", '["not","parsed"]'])
def test_rawText(ts, text):
    raw, received = rawClient(ts)
    raw.send("1|" + text)
    raw.send("17|" + text)
    assert received == [("1|" + text, False), ("17|" + text, False)]


@pytest.mark.parametrize("data", [b"bytes", b"", b"\x00\xff\xfe", bytes(range(256))])
def test_rawBytes(ts, data):
    raw, received = rawClient(ts)
    raw.send(b"1|" + data)
    raw.send(b"142|" + data)
    assert received == [(b"1|" + data, True), (b"142|" + data, True)]


@pytest.mark.parametrize(
    "payload, compact",
    [
        ('{"a": [1, 2]}', '{"a":[1,2]}'),
        ("5", "5"),
        ('"h\\u00e9"', '"h\u00e9"'),
        ("null", "null"),
        ("[ ]", "[]"),
    ],
)
def test_json(ts, payload, compact):
    raw, received = rawClient(ts)
    raw.send("2|" + payload)
    raw.send("29|" + payload)
    assert received == [("2|" + compact, False), ("29|" + compact, False)]


@pytest.mark.parametrize("payload", [b"\x92\x01\xa1x", b"\xc0", b"\x81\xa1k\xc4\x01\x00", b"\x01"])
def test_msgpack(ts, payload):
    raw, received = rawClient(ts)
    raw.send(b"3|" + payload)
    raw.send(b"35|" + payload)
    assert received == [(b"3|" + payload, True), (b"35|" + payload, True)]


def test_clientRequests(ts):
    client = ts.client()
    assert resultOf(client.api.echo.request("hi")) == "hi"
    assert resultOf(client.api.echo.request(b"\x00bin")) == b"\x00bin"
    assert resultOf(client.api.jecho.request({"a": [1, None]})) == {"a": [1, None]}
    assert resultOf(client.api.mecho.request({"b": b"\x00", "n": 2**40})) == {"b": b"\x00", "n": 2**40}


def test_clientPushes(ts):
    client = ts.client()
    pushes = []
    for name in ("echo", "jecho", "mecho"):
        getattr(client.api, name).on(lambda value, _name=name: pushes.append((_name, value)))
    client.api.echo.send("text")
    client.api.echo.send(b"bytes")
    client.api.jecho.send([1, {"x": "y"}])
    client.api.mecho.send({"k": b"v"})
    assert pushes == [("echo", "text"), ("echo", b"bytes"), ("jecho", [1, {"x": "y"}]), ("mecho", {"k": b"v"})]


def test_echoGoesOnlyToTheSender(ts):
    a, receivedA = rawClient(ts)
    b, receivedB = rawClient(ts)
    a.send("1|for a")
    assert receivedA == [("1|for a", False)]
    assert receivedB == []


def test_echoWithSessions():
    ts = PrismTestServer(services={"echo": EchoService(sessions=True)})
    raw, received = rawClient(ts)
    raw.send("13|x")
    assert received == [("13|x", False)]


def test_unknownCodec():
    with pytest.raises(PrismConfigError):
        EchoService("xml")
