"""
Bad input over the loopback transport: malformed frames, unknown service
ids, undecodable payloads, bad or forged cookies and tokens, handler
exceptions (raised, failed Deferreds, failing coroutines) and middleware
drops.

For each: with C{debug} on the client gets the documented error frame;
with it off, frames without a callback id get nothing while requests with
one still get their error reply (a message, never a traceback); the
C{error} event fires with the right kind; the log records it; and the same
connection keeps working. (Oversized messages are a WebSocket transport
feature, tested with it.)
"""

import json

import pytest
from twisted.internet import defer
from twisted.logger import globalLogPublisher

from prism import wire
from prism.middleware import Drop
from prism.server import ServiceError
from prism.services.echo import EchoService
from prism.services.rpc import RPCService
from prism.sessions import newSessionId, sign
from prism.testing import PrismTestServer

SECRET = b"prism-testing-secret"


def fail():
    raise RuntimeError("handler exploded")


def failDeferred():
    return defer.fail(RuntimeError("deferred exploded"))


async def failAsync():
    await defer.succeed(None)
    raise RuntimeError("coroutine exploded")


def refuse():
    raise ServiceError("forbidden", "not for you")


HANDLERS = {
    "add": lambda a, b: a + b,
    "fail": fail,
    "failDeferred": failDeferred,
    "failAsync": failAsync,
    "refuse": refuse,
}


@pytest.fixture
def logged():
    """Every log event emitted while the test runs."""
    events = []
    globalLogPublisher.addObserver(events.append)
    yield events
    globalLogPublisher.removeObserver(events.append)


def makeServer(debug, **options):
    ts = PrismTestServer(
        services={"rpc": RPCService(HANDLERS), "echo": EchoService(), "bin": EchoService("msgpack")},
        middleware=[lambda r: Drop("go away") if r.payload == ["drop"] else r],
        debug=debug,
        **options
    )
    raw = ts.raw()
    raw.hello()
    del raw.frames[:]
    return ts, raw


def assertStillWorks(raw):
    raw.send('1999|["add",2,3]')
    assert raw.frames[-1] == "1999|5"
    raw.send(b"3998|\x92\x01\x02")
    assert raw.frames[-1] == b"3998|\x92\x01\x02"


def errorOf(frame, sid, cb):
    assert isinstance(frame, str), frame  # error frames are always text
    got = wire.parse(frame)
    assert got[:3] == (sid, cb, True), frame
    body = json.loads(got[3])
    assert set(body) <= {"error", "message", "traceback", "service"}
    assert isinstance(body["message"], str) and body["message"]
    return body


def loggedErrors(events, kind):
    return [e for e in events if e.get("log_namespace") == "prism.server.Server" and e.get("kind") == kind]


# Frames the server cannot answer as a request: no callback id, or no
# service to answer on.
UNATTRIBUTABLE = [
    ("malformed", ""),
    ("malformed", "-|x"),
    ("malformed", b"\xff|x"),
    ("malformed", "1abc"),
    ("malformed", "10|x"),
    ("malformed", "11234567890|x"),
    ("malformed", "1\u00b2|x"),
    ("malformed", "1\u0661|x"),
    ("malformed", "1!{}"),  # clients may not send error frames
    ("malformed", '1|{"not":"a call"}'),
    ("unknown_service", "z|x"),
    ("decode", "1|{bad json"),
    ("decode", b"1|\xff\xfe"),  # not UTF-8
    ("decode", "3|text for a msgpack service"),
    ("decode", b"3|\xc1"),
    ("decode", b"3|\x92\x01"),  # truncated
    ("decode", b"3|\xdd\xff\xff\xff\xff"),  # announces 4 G elements
    ("handler", '1|["fail"]'),
    ("handler", '1|["failDeferred"]'),
    ("handler", '1|["failAsync"]'),
    ("unknown_method", '1|["nope"]'),
    ("forbidden", '1|["refuse"]'),
    ("dropped", '1|["drop"]'),
]

# Requests with a callback id on a known service: always answered.
REQUESTS = [
    ("malformed", "15!{}", 1, 5),
    ("malformed", '16|{"not":"a call"}', 1, 6),
    ("decode", "17|{bad json", 1, 7),
    ("decode", b"18|\xff\xfe", 1, 8),
    ("decode", b"37|\xc1", 3, 7),
    ("decode", "38|text for a msgpack service", 3, 8),
    ("handler", '111|["fail"]', 1, 11),
    ("handler", '112|["failDeferred"]', 1, 12),
    ("handler", '113|["failAsync"]', 1, 13),
    ("handler", '114|["add",1]', 1, 14),  # wrong arguments: a TypeError
    ("unknown_method", '115|["nope"]', 1, 15),
    ("forbidden", '116|["refuse"]', 1, 16),
    ("dropped", '117|["drop"]', 1, 17),
    # an unknown service id with a callback id: the client's call must not
    # hang until its timeout, so it is answered on that id too
    ("unknown_service", "z5|x", 35, 5),
    ("unknown_service", b"Z7|\x00", 61, 7),
]


def ids(cases):
    return ["{}:{!r}".format(c[0], c[1])[:40] for c in cases]


@pytest.mark.parametrize("kind, frame", UNATTRIBUTABLE, ids=ids(UNATTRIBUTABLE))
def test_unattributableWithoutDebug(kind, frame, logged):
    ts, raw = makeServer(debug=False)
    raw.send(frame)
    assert raw.frames == []
    [event] = ts.errors
    assert event.kind == kind
    assert event.connection is raw.connection
    assert event.callbackId is None
    assert loggedErrors(logged, kind)
    assertStillWorks(raw)
    assert len(ts.errors) == 1


@pytest.mark.parametrize("kind, frame", UNATTRIBUTABLE, ids=ids(UNATTRIBUTABLE))
def test_unattributableWithDebug(kind, frame, logged):
    ts, raw = makeServer(debug=True)
    raw.send(frame)
    [reply] = raw.frames
    body = errorOf(reply, 0, None)
    assert body["error"] == kind
    assert ("traceback" in body) is (kind == "handler")
    [event] = ts.errors
    assert event.kind == kind and event.message == body["message"]
    assert loggedErrors(logged, kind)
    assertStillWorks(raw)


@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize("kind, frame, sid, cb", REQUESTS, ids=ids(REQUESTS))
def test_requestsAreAnswered(kind, frame, sid, cb, debug, logged):
    ts, raw = makeServer(debug=debug)
    raw.send(frame)
    [reply] = raw.frames
    body = errorOf(reply, sid, cb)
    assert body["error"] == kind
    assert ("traceback" in body) is (debug and kind == "handler")
    [event] = ts.errors
    assert (event.kind, event.callbackId, event.message) == (kind, cb, body["message"])
    assert event.service == (["system", "rpc", "echo", "bin"][sid] if sid < 4 else None)
    assert event.connection is raw.connection
    assert loggedErrors(logged, kind)
    assertStillWorks(raw)


@pytest.mark.parametrize(
    "method, message",
    [("fail", "handler exploded"), ("failDeferred", "deferred exploded"), ("failAsync", "coroutine exploded")],
)
@pytest.mark.parametrize("debug", [False, True])
def test_handlerExceptions(method, message, debug, logged):
    ts, raw = makeServer(debug=debug)
    raw.send('17|["{}"]'.format(method))
    body = errorOf(raw.frames[-1], 1, 7)
    assert body == dict(body, error="handler", message=message)
    if debug:
        assert "RuntimeError" in body["traceback"]
        assert message in body["traceback"]
    else:
        assert "traceback" not in body
    [event] = ts.errors
    assert event.failure.check(RuntimeError)
    [record] = loggedErrors(logged, "handler")
    assert record["log_failure"].check(RuntimeError)
    assert record["service"] == "rpc"
    assertStillWorks(raw)


def test_serviceErrorsNeverCarryTracebacks():
    ts, raw = makeServer(debug=True)
    raw.send('17|["refuse"]')
    assert errorOf(raw.frames[-1], 1, 7) == {"error": "forbidden", "message": "not for you"}


def test_unknownMethodMessage():
    ts, raw = makeServer(debug=False)
    raw.send('17|["ad",2,3]')
    assert raw.frames[-1] == '17!{"error":"unknown_method","message":"no RPC method \'ad\'"}'


def test_manyBadFramesInARow():
    ts, raw = makeServer(debug=False)
    for frame in [f for _, f in UNATTRIBUTABLE] * 3:
        raw.send(frame)
    assert raw.frames == []
    assert len(ts.errors) == 3 * len(UNATTRIBUTABLE)
    assertStillWorks(raw)


# -- cookies and tokens


def forgedTokens():
    sessionId = newSessionId()
    return [
        sessionId + "." + sign(SECRET, newSessionId()).partition(".")[2],
        sign(b"wrong secret", sessionId),
        sessionId,
        "garbage",
        "x" * 1000,
    ]


@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize("how", ["cookie", "hello"])
@pytest.mark.parametrize("token", forgedTokens(), ids=["swapped", "wrong-secret", "unsigned", "garbage", "overlong"])
def test_forgedSession(token, how, debug, logged):
    ts, _ = makeServer(debug=debug)
    del ts.errors[:]
    if how == "cookie":
        raw = ts.raw(cookie=token)
        assert [e.kind for e in ts.errors] == ["session"]  # reported at once
        welcome = raw.hello()
    else:
        raw = ts.raw()
        welcome = raw.hello(session=token)
    assert welcome.startswith("01|")
    session = json.loads(welcome[3:])["session"]
    assert session != token and session.partition(".")[0] != token.partition(".")[0]
    assert session == sign(SECRET, raw.connection.sessionId)
    if debug:
        [notice, _] = raw.frames
        body = errorOf(notice, 0, None)
        assert body["error"] == "session"
        assert "traceback" not in body
    else:
        assert raw.frames == [welcome]
    [event] = ts.errors
    assert event.kind == "session" and event.connection is raw.connection
    assert loggedErrors(logged, "session")
    del raw.frames[:]
    assertStillWorks(raw)


def test_emptyCookieIsNoCookie():
    ts, _ = makeServer(debug=True)
    del ts.errors[:]
    raw = ts.raw(cookie="")
    raw.hello()
    assert len(raw.frames) == 1 and ts.errors == []
