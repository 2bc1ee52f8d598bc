"""
The middleware chain (C{prism.middleware.Chain}) on its own and inside a
server over the loopback transport: pass-through, transformation, drops,
asynchronous steps, contained failures, the synchronous fast path (no
L{Deferred} at all) and message ordering.
"""

import json

import pytest
from twisted.internet import defer
from twisted.internet.defer import Deferred, succeed

from prism.middleware import DROP, Chain, Drop, LogRequests
from prism.server import Request
from prism.services.base import Service
from prism.services.rpc import RPCService
from prism.testing import EventRecorder, PrismTestServer, failureOf, resultOf


class Recorder(Service):
    """A JSON service with callbacks that records and returns each payload."""

    codec = "json"
    callbacks = True

    def __init__(self):
        self.received = []

    def messageReceived(self, request):
        self.received.append(request.payload)
        return request.payload


def passThrough(request):
    return request


def makeServer(*middleware, **options):
    recorder = Recorder()
    ts = PrismTestServer(
        services={"rec": recorder, "rpc": RPCService({"add": lambda a, b: a + b})},
        middleware=middleware,
        **options
    )
    raw = ts.raw()
    raw.hello()
    raw.frames.clear()
    return ts, raw, recorder


def assertStillWorks(raw):
    raw.send('2999|["add",40,2]')
    assert raw.frames[-1] == "2999|42"


def errorBody(frame, prefix):
    assert frame.startswith(prefix), frame
    return json.loads(frame[len(prefix) :])


# -- Chain on its own


def test_emptyChain():
    chain = Chain()
    assert not chain and len(chain) == 0
    request = object()
    assert chain.run(request) is request


def test_chainPassThroughAndOrder():
    calls = []

    def step(name):
        def mw(request):
            calls.append(name)
            return request

        return mw

    chain = Chain([step("a"), step("b")])
    chain.append(step("c"))
    request = object()
    assert chain.run(request) is request
    assert calls == ["a", "b", "c"]
    assert len(chain) == 3


def test_chainReplacesRequest():
    chain = Chain([lambda r: r + 1, lambda r: r * 10])
    assert chain.run(1) == 20


def test_chainStopsAtDrop():
    later = []
    chain = Chain([lambda r: Drop("no"), lambda r: later.append(r) or r])
    result = chain.run("req")
    assert isinstance(result, Drop) and result.reason == "no"
    assert later == []
    assert Chain([lambda r: DROP]).run("req") is DROP
    assert DROP.reason is None


def test_chainNoneIsAnError():
    with pytest.raises(TypeError):
        Chain([lambda r: None]).run("req")


def test_chainAsyncResumes():
    d = Deferred()
    seen = []
    chain = Chain([lambda r: d, lambda r: seen.append(r) or r + "!"])
    result = chain.run("req")
    assert isinstance(result, Deferred)
    assert seen == []
    d.callback("new")
    assert resultOf(result) == "new!"
    assert seen == ["new"]


def test_chainCoroutine():
    async def mw(request):
        return request + "?"

    assert resultOf(Chain([mw, lambda r: r + "!"]).run("req")) == "req?!"


def test_chainAsyncDrop():
    assert resultOf(Chain([lambda r: succeed(Drop("later")), lambda r: 1 / 0]).run("r")).reason == "later"


def test_chainAsyncNoneFails():
    failureOf(Chain([lambda r: succeed(None)]).run("r"), TypeError)


def test_chainAsyncFailurePropagates():
    failureOf(Chain([lambda r: defer.fail(KeyError("k"))]).run("r"), KeyError)


# -- in a server


def test_passThrough():
    ts, raw, recorder = makeServer(passThrough, passThrough)
    raw.send('15|{"a":1}')
    assert raw.frames == ['15|{"a":1}']
    assert recorder.received == [{"a": 1}]


def test_transformPayload():
    def upper(request):
        if request.service == "rec":
            request.payload = request.payload.upper()
        return request

    ts, raw, recorder = makeServer(upper)
    raw.send('13|"shout"')
    assert raw.frames == ['13|"SHOUT"']
    assert recorder.received == ["SHOUT"]


def test_returnNewRequest():
    def replace(request):
        return Request(
            request.server,
            request.connection,
            request.service,
            request.serviceId,
            request.callbackId,
            ["replaced", request.payload],
            request.size,
        )

    ts, raw, recorder = makeServer(replace)
    raw.send("14|1")
    assert recorder.received == [["replaced", 1]]
    assert raw.frames == ['14|["replaced",1]']


def test_middlewareSeesRequestFields():
    seen = []

    def look(request):
        seen.append((request.service, request.serviceId, request.callbackId, request.payload, request.size))
        return request

    ts, raw, recorder = makeServer(look)
    raw.send('17|"x"')
    raw.send('1|"y"')
    assert seen == [("rec", 1, 7, "x", 6), ("rec", 1, None, "y", 5)]


def test_systemServiceBypassesMiddleware():
    seen = []
    ts, raw, recorder = makeServer(lambda r: seen.append(r.service) or DROP)
    raw.send('02|["ping"]')
    assert raw.frames == ['02|"pong"']
    assert seen == []


@pytest.mark.parametrize("debug", [False, True])
def test_dropSilently(debug):
    ts, raw, recorder = makeServer(lambda r: DROP if r.service == "rec" else r, debug=debug)
    drops = EventRecorder(ts.server, "drop")
    raw.send('15|"a"')
    raw.send('1|"b"')
    assert raw.frames == []
    assert recorder.received == []
    assert ts.errors == []
    assert [(c is raw.connection, name, reason) for c, name, reason in drops.named("drop")] == [
        (True, "rec", None),
        (True, "rec", None),
    ]
    assertStillWorks(raw)


@pytest.mark.parametrize("debug", [False, True])
def test_dropWithReasonAnswersRequests(debug):
    ts, raw, recorder = makeServer(lambda r: Drop("slow down") if r.service == "rec" else r, debug=debug)
    raw.send('15|"a"')
    assert recorder.received == []
    body = errorBody(raw.frames[-1], "15!")
    assert body["error"] == "dropped"
    assert body["message"] == "slow down"
    assert "traceback" not in body
    [event] = ts.errors
    assert (event.kind, event.message, event.service, event.callbackId) == ("dropped", "slow down", "rec", 5)
    assert event.connection is raw.connection
    assertStillWorks(raw)


def test_dropWithReasonWithoutCallbackId():
    """No callback id: nothing is sent unless debug is on."""
    ts, raw, recorder = makeServer(lambda r: Drop("nope") if r.service == "rec" else r)
    raw.send('1|"a"')
    assert raw.frames == []
    assert [e.kind for e in ts.errors] == ["dropped"]

    ts, raw, recorder = makeServer(lambda r: Drop("nope") if r.service == "rec" else r, debug=True)
    raw.send('1|"a"')
    body = errorBody(raw.frames[-1], "0!")
    assert (body["error"], body["message"]) == ("dropped", "nope")
    assertStillWorks(raw)


def test_asyncMiddlewareDeferred():
    pending = []

    def later(request):
        d = Deferred()
        pending.append((d, request))
        return d

    ts, raw, recorder = makeServer(later, passThrough)
    raw.send('16|"x"')
    assert raw.frames == []
    assert recorder.received == []
    d, request = pending.pop()
    d.callback(request)
    assert raw.frames == ['16|"x"']
    assert recorder.received == ["x"]


def test_asyncMiddlewareDeferredDrop():
    pending = []
    ts, raw, recorder = makeServer(lambda r: pending.append(Deferred()) or pending[-1])
    raw.send('16|"x"')
    pending.pop().callback(Drop("denied"))
    assert recorder.received == []
    assert errorBody(raw.frames[-1], "16!")["error"] == "dropped"


def test_asyncMiddlewareCoroutine():
    gate = Deferred()

    async def check(request):
        allowed = await gate
        if not allowed:
            return Drop("not allowed")
        request.payload = "checked:" + request.payload
        return request

    ts, raw, recorder = makeServer(check)
    raw.send('18|"x"')
    assert raw.frames == []
    gate.callback(True)
    assert raw.frames == ['18|"checked:x"']
    assert recorder.received == ["checked:x"]


def test_coroutineMiddlewareReturningImmediately():
    async def noop(request):
        return request

    ts, raw, recorder = makeServer(noop, passThrough)
    raw.send('18|"x"')
    assert raw.frames == ['18|"x"']


def boom(request):
    if request.service == "rec":
        raise RuntimeError("middleware exploded")
    return request


async def asyncBoom(request):
    if request.service == "rec":
        raise RuntimeError("middleware exploded")
    return request


def deferredBoom(request):
    if request.service == "rec":
        return defer.fail(RuntimeError("middleware exploded"))
    return request


@pytest.mark.parametrize("mw", [boom, asyncBoom, deferredBoom])
@pytest.mark.parametrize("debug", [False, True])
def test_middlewareExceptionIsContained(mw, debug):
    ts, raw, recorder = makeServer(mw, debug=debug)
    raw.send('13|"x"')
    assert recorder.received == []
    body = errorBody(raw.frames[-1], "13!")
    assert body["error"] == "handler"
    assert ("traceback" in body) is debug
    if debug:
        assert "middleware exploded" in body["traceback"]
    [event] = ts.errors
    assert event.kind == "handler" and event.service == "rec" and event.callbackId == 3
    assert event.failure.check(RuntimeError)
    assert event.connection is raw.connection
    # a notification: no reply without debug
    raw.frames.clear()
    raw.send('1|"y"')
    if debug:
        assert errorBody(raw.frames[-1], "0!")["error"] == "handler"
    else:
        assert raw.frames == []
    assert len(ts.errors) == 2
    assertStillWorks(raw)


def test_middlewareReturningNoneIsContained():
    ts, raw, recorder = makeServer(lambda r: None)
    raw.send('13|"x"')
    assert errorBody(raw.frames[-1], "13!")["error"] == "handler"
    assert ts.errors[0].failure.check(TypeError)


def test_logRequestsMiddleware():
    from twisted.logger import globalLogPublisher

    events = []
    globalLogPublisher.addObserver(events.append)
    try:
        ts, raw, recorder = makeServer(LogRequests())
        raw.send('14|"x"')
    finally:
        globalLogPublisher.removeObserver(events.append)
    assert raw.frames == ['14|"x"']
    [event] = [e for e in events if e.get("log_namespace") == "prism.request"]
    assert (event["service"], event["callbackId"], event["size"]) == ("rec", 4, 6)
    assert event["connectionId"] == raw.connection.id


def test_syncPathAllocatesNoDeferred(monkeypatch):
    """
    100 round trips through two synchronous middleware and a synchronous
    handler create no Deferred at all (STYLE.md section 4).
    """
    ts, raw, recorder = makeServer(passThrough, lambda r: r)
    created = []
    original = Deferred.__init__

    def counting(self, *args, **kwargs):
        created.append(type(self))
        original(self, *args, **kwargs)

    monkeypatch.setattr(Deferred, "__init__", counting)
    for i in range(1, 101):
        raw.send("2{}|[\"add\",{},1]".format(i, i))
        assert raw.frames[-1] == "2{}|{}".format(i, i + 1)
        raw.send("1{}|{}".format(i, i))
        assert raw.frames[-1] == "1{}|{}".format(i, i)
    assert created == []
    # and the counter does count: an asynchronous step is seen
    ts.server.use(lambda r: succeed(r))
    raw.send("1|1")
    assert created != []


def test_orderingWithAsyncMiddleware():
    """
    Messages of one connection reach their services in the order they
    arrived, even when a middleware goes asynchronous: the connection's later
    frames wait until the asynchronous step has finished (other connections
    are not held).
    """
    first = Deferred()
    calls = []

    def slowFirst(request):
        calls.append(request.payload)
        if len(calls) == 1:
            return first.addCallback(lambda _: request)
        return request

    ts, raw, recorder = makeServer(slowFirst)
    other = ts.raw()
    other.hello()
    raw.send('11|"one"')
    raw.send('12|"two"')
    raw.send('13|"three"')
    assert recorder.received == []
    assert raw.frames[-1:] != ['12|"two"']
    # another connection is not held
    other.send('14|"other"')
    assert recorder.received == ["other"]
    first.callback(None)
    assert recorder.received == ["other", "one", "two", "three"]
    assert raw.frames[-3:] == ['11|"one"', '12|"two"', '13|"three"']
