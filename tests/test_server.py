"""
The server kernel over the loopback transport: the handshake, the system
service, connection events, and sessions end to end (tokens, cookies,
forged and expired sessions, caching, and services that never touch the
store).
"""

import json

import pytest
from twisted.internet.defer import Deferred
from zope.interface import implementer

from prism import wire
from prism.errors import NoSuchSession, RemoteError
from prism.interfaces import ISessionStore
from prism.server import GOING_AWAY
from prism.services.base import Service
from prism.services.echo import EchoService
from prism.services.rpc import RPCService, withRequest
from prism.sessions import MemorySessionStore, newSessionId, sign, verify
from prism.testing import EventRecorder, MemoryReactorClock, PrismTestServer, failureOf, resultOf

SECRET = b"prism-testing-secret"  # PrismTestServer's default


@implementer(ISessionStore)
class CountingStore:
    """An L{ISessionStore} that counts every call made to it."""

    def __init__(self, clock, ttl=3600):
        self.inner = MemorySessionStore(ttl=ttl, reactor=clock)
        self.calls = []

    def count(self, name):
        return sum(1 for c in self.calls if c[0] == name)

    def load(self, sessionId):
        self.calls.append(("load", sessionId))
        return self.inner.load(sessionId)

    def save(self, sessionId, data):
        self.calls.append(("save", sessionId))
        return self.inner.save(sessionId, data)

    def touch(self, sessionId):
        self.calls.append(("touch", sessionId))
        return self.inner.touch(sessionId)

    def delete(self, sessionId):
        self.calls.append(("delete", sessionId))
        return self.inner.delete(sessionId)


@withRequest
def remember(request, key, value):
    request.session[key] = value
    return True


@withRequest
def recall(request, key):
    return request.session.get(key)


@withRequest
def sessionId(request):
    return request.session.id


SESSION_HANDLERS = {"remember": remember, "recall": recall, "sessionId": sessionId, "add": lambda a, b: a + b}


def sessionServer(cacheSessions=True, ttl=3600, **options):
    clock = MemoryReactorClock()
    store = CountingStore(clock, ttl)
    ts = PrismTestServer(
        services={"rpc": RPCService(SESSION_HANDLERS, sessions=True), "echo": EchoService()},
        clock=clock,
        sessionStore=store,
        cacheSessions=cacheSessions,
        **options
    )
    return ts, store


def welcomeOf(frame):
    assert frame.startswith("01|"), frame
    return json.loads(frame[3:])


def call(raw, cb, *call):
    raw.send("1{}|{}".format(cb, json.dumps(list(call), separators=(",", ":"))))
    frame = raw.frames[-1]
    sid, got, isError, payload = wire.parse(frame)
    assert (sid, got) == (1, cb), frame
    if isError:
        raise RemoteError(*wire.decodeError(payload))
    return json.loads(payload)


# -- the handshake and the system service


def test_welcome():
    ts = PrismTestServer(services={"rpc": RPCService({}), "echo": EchoService(), "bin": EchoService("msgpack")})
    connects = EventRecorder(ts.server, "connect")
    raw = ts.raw()
    assert connects.events == []
    welcome = welcomeOf(raw.hello())
    assert welcome["v"] == 1
    assert welcome["services"] == [["rpc", 1, "json", True], ["echo", 2, "raw", True], ["bin", 3, "msgpack", True]]
    assert verify(SECRET, welcome["session"]) == raw.connection.sessionId
    assert len(raw.connection.sessionId) == 32
    assert connects.named("connect") == [(raw.connection,)]
    assert raw.connection.welcomed


def test_eachConnectionGetsItsOwnSession():
    ts = PrismTestServer(services={"echo": EchoService()})
    tokens = {welcomeOf(ts.raw().hello())["session"] for _ in range(5)}
    assert len(tokens) == 5


def test_discoverAndPing():
    ts = PrismTestServer(services={"echo": EchoService()})
    raw = ts.raw()
    raw.hello()
    raw.send('02|["discover"]')
    assert raw.frames[-1] == '02|[["echo",1,"raw",true]]'
    raw.send('03|["ping"]')
    assert raw.frames[-1] == '03|"pong"'


@pytest.mark.parametrize(
    "frame",
    ['05|["hello",{}]', '05|["nonsense"]', "05|{}", "05|[]", '05|["hello",[]]', "05|[1]"],
)
def test_badSystemMessages(frame):
    ts = PrismTestServer(services={"echo": EchoService()})
    raw = ts.raw()
    raw.hello()
    raw.send(frame)
    sid, cb, isError, payload = wire.parse(raw.frames[-1])
    assert (sid, cb, isError) == (0, 5, True)
    assert wire.decodeError(payload)[0] == "malformed"
    raw.send("17|ok")
    assert raw.frames[-1] == "17|ok"


def test_framesBeforeHelloAreServed():
    """A client that knows the service table may skip the welcome."""
    ts = PrismTestServer(services={"echo": EchoService()})
    raw = ts.raw()
    raw.send("13|early")
    assert raw.frames == ["13|early"]


def test_connectionEventsAndHooks():
    class Hooks(Service):
        def __init__(self):
            self.log = []

        def connected(self, connection):
            self.log.append(("connected", connection))

        def disconnected(self, connection):
            self.log.append(("disconnected", connection))

        def messageReceived(self, request):
            return None

    hooks = Hooks()
    ts = PrismTestServer(services={"hooks": hooks})
    events = EventRecorder(ts.server, "connect", "disconnect")
    raw = ts.raw()
    conn = raw.connection
    assert conn.id in ts.server.connections
    raw.hello()
    raw.close(4000, "bye")
    assert hooks.log == [("connected", conn), ("disconnected", conn)]
    assert events.events == [("connect", conn), ("disconnect", conn, 4000, "bye")]
    assert conn.id not in ts.server.connections
    assert not conn.open


def test_connectionWithoutHelloHasNoHooks():
    class Hooks(Service):
        calls = 0

        def disconnected(self, connection):
            Hooks.calls += 1

        def messageReceived(self, request):
            return None

    ts = PrismTestServer(services={"hooks": Hooks()})
    ts.raw().close()
    assert Hooks.calls == 0


def test_failingHooksAreContained():
    class Bad(Service):
        def connected(self, connection):
            raise RuntimeError("connected broke")

        def disconnected(self, connection):
            raise RuntimeError("disconnected broke")

        def messageReceived(self, request):
            return None

    ts = PrismTestServer(services={"bad": Bad(), "echo": EchoService()})
    raw = ts.raw()
    welcomeOf(raw.hello())
    raw.send("23|still")
    assert raw.frames[-1] == "23|still"
    raw.close()
    assert [(e.kind, e.service) for e in ts.errors] == [("handler", "bad"), ("handler", "bad")]


def test_failingEventHandlersAreContained():
    ts = PrismTestServer(services={"echo": EchoService()})
    seen = []
    ts.server.events.on("connect", lambda conn: 1 / 0)
    ts.server.events.on("connect", seen.append)
    raw = ts.raw()
    raw.hello()
    assert seen == [raw.connection]
    ts.server.events.off("connect", seen.append)
    ts.raw().hello()
    assert len(seen) == 1


def test_stop():
    stopped = []

    class Stoppable(EchoService):
        def stop(self):
            stopped.append(True)

    ts = PrismTestServer(services={"echo": Stoppable()})
    raw = ts.raw()
    raw.hello()
    ts.stop()
    assert raw.frames[-1] == '0|["going_away","server shutting down"]'
    assert raw.closed == (GOING_AWAY, "server shutting down")
    assert stopped == [True]
    assert ts.server.connections == {}


# -- sessions end to end


def firstClientWrites(ts, value="blue"):
    client = ts.client()
    assert resultOf(client.api.rpc.call("remember", "colour", value)) is True
    return client, client.session


def test_sessionSharedThroughHelloToken():
    ts, store = sessionServer()
    first, token = firstClientWrites(ts)
    second = ts.client(session=token)
    assert second.session == token
    assert resultOf(second.api.rpc.call("recall", "colour")) == "blue"
    assert resultOf(second.api.rpc.call("sessionId")) == verify(SECRET, token)
    # and the second client's writes reach the first (through the store)
    resultOf(second.api.rpc.call("remember", "size", 9))
    third = ts.client(session=token)
    assert resultOf(third.api.rpc.call("recall", "size")) == 9


def test_sessionSharedThroughCookie():
    ts, store = sessionServer()
    first, token = firstClientWrites(ts)
    second = ts.client(cookie=token)
    assert second.session == token
    assert resultOf(second.api.rpc.call("recall", "colour")) == "blue"


def test_sessionSharedThroughCookieRaw():
    ts, store = sessionServer()
    first, token = firstClientWrites(ts)
    raw = ts.raw(cookie=token)
    assert raw.connection.sessionId == verify(SECRET, token)
    assert welcomeOf(raw.hello())["session"] == token
    assert call(raw, 7, "recall", "colour") == "blue"


def test_sessionWithoutHello():
    """Frames sent without a hello still get the cookie's session."""
    ts, store = sessionServer()
    first, token = firstClientWrites(ts)
    raw = ts.raw(cookie=token)
    assert call(raw, 1, "recall", "colour") == "blue"


@pytest.mark.parametrize("how", ["hello", "cookie"])
@pytest.mark.parametrize(
    "forge",
    [
        lambda token: newSessionId() + token[32:],  # someone else's signature
        lambda token: token[:32] + ".AAAA",  # a made-up signature
        lambda token: sign(b"another secret", token[:32]),
        lambda token: "garbage",
    ],
    ids=["swapped-id", "bad-signature", "wrong-secret", "garbage"],
)
def test_forgedSessionIsNeverAdopted(how, forge):
    ts, store = sessionServer()
    first, token = firstClientWrites(ts)
    forged = forge(token)
    if how == "hello":
        raw = ts.raw()
        welcome = welcomeOf(raw.hello(session=forged))
    else:
        raw = ts.raw(cookie=forged)
        welcome = welcomeOf(raw.hello())
    fresh = verify(SECRET, welcome["session"])
    assert fresh is not None
    assert fresh not in (verify(SECRET, token), forged.partition(".")[0])
    assert raw.connection.sessionId == fresh
    [event] = ts.errors
    assert event.kind == "session"
    assert event.connection is raw.connection
    # the connection works, on an empty session
    assert call(raw, 2, "recall", "colour") is None
    assert call(raw, 3, "add", 1, 2) == 3
    # the first session is untouched
    assert resultOf(store.inner.load(verify(SECRET, token))) == {"colour": "blue"}


def test_forgedTokenWithClient():
    ts, store = sessionServer()
    first, token = firstClientWrites(ts)
    second = ts.client(session=token[:-2] + "xx")
    assert second.session != token
    assert resultOf(second.api.rpc.call("recall", "colour")) is None
    assert [e.kind for e in ts.errors] == ["session"]


@pytest.mark.parametrize("how", ["hello", "cookie"])
@pytest.mark.parametrize("gone", ["expired", "deleted"])
def test_goneSessionGetsAFreshId(how, gone):
    ts, store = sessionServer(ttl=60)
    first, token = firstClientWrites(ts)
    first.close()
    if gone == "expired":
        ts.clock.advance(61)
    else:
        resultOf(store.inner.delete(verify(SECRET, token)))
    if how == "hello":
        second = ts.client(session=token)
    else:
        second = ts.client(cookie=token)
    assert second.session != token
    fresh = verify(SECRET, second.session)
    assert fresh is not None and fresh != verify(SECRET, token)
    assert resultOf(second.api.rpc.call("sessionId")) == fresh
    assert resultOf(second.api.rpc.call("recall", "colour")) is None
    resultOf(second.api.rpc.call("remember", "colour", "red"))
    failureOf(store.inner.load(verify(SECRET, token)), NoSuchSession)


def test_sessionKeptAliveByUse():
    ts, store = sessionServer(ttl=60)
    first, token = firstClientWrites(ts)
    first.close()
    for _ in range(3):
        ts.clock.advance(45)
        client = ts.client(session=token)
        assert client.session == token
        assert resultOf(client.api.rpc.call("recall", "colour")) == "blue"
        client.close()


def test_cachedSessions():
    ts, store = sessionServer(cacheSessions=True)
    first, token = firstClientWrites(ts)
    raw = ts.raw()
    welcomeOf(raw.hello(session=token))
    sid = verify(SECRET, token)
    del store.calls[:]
    assert call(raw, 2, "recall", "colour") == "blue"
    assert store.count("load") == 1
    # later messages use the connection's cached copy…
    resultOf(store.inner.save(sid, {"colour": "changed in the store"}))
    assert call(raw, 3, "recall", "colour") == "blue"
    assert call(raw, 4, "add", 1, 1) == 2
    assert store.count("load") == 1
    # …and writes go back to the store
    assert call(raw, 5, "remember", "colour", "green") is True
    assert store.count("save") == 1
    assert resultOf(store.inner.load(sid)) == {"colour": "green"}
    # reads do not write
    call(raw, 6, "recall", "colour")
    assert store.count("save") == 1


def test_uncachedSessionsReadTheStoreEveryTime():
    ts, store = sessionServer(cacheSessions=False)
    first, token = firstClientWrites(ts)
    sid = verify(SECRET, token)
    raw = ts.raw()
    welcomeOf(raw.hello(session=token))
    del store.calls[:]
    assert call(raw, 2, "recall", "colour") == "blue"
    resultOf(store.inner.save(sid, {"colour": "changed in the store"}))
    assert call(raw, 3, "recall", "colour") == "changed in the store"
    assert store.count("load") == 2
    assert call(raw, 4, "remember", "colour", "green") is True
    assert resultOf(store.inner.load(sid)) == {"colour": "green"}
    # the first connection sees the change on its next message
    assert resultOf(first.api.rpc.call("recall", "colour")) == "green"


@pytest.mark.parametrize("cacheSessions", [True, False])
def test_newSessionKeepsItsData(cacheSessions):
    """A session issued to this connection keeps what it was given."""
    ts, store = sessionServer(cacheSessions=cacheSessions)
    raw = ts.raw()
    welcomeOf(raw.hello())
    assert call(raw, 2, "recall", "a") is None
    assert call(raw, 3, "remember", "a", 1) is True
    assert call(raw, 4, "remember", "b", 2) is True
    assert call(raw, 5, "recall", "a") == 1
    assert resultOf(store.inner.load(raw.connection.sessionId)) == {"a": 1, "b": 2}


@pytest.mark.parametrize("cacheSessions", [True, False])
def test_newSessionWithoutHelloKeepsItsData(cacheSessions):
    ts, store = sessionServer(cacheSessions=cacheSessions)
    raw = ts.raw()
    assert call(raw, 3, "remember", "a", 1) is True
    assert call(raw, 4, "remember", "b", 2) is True
    assert call(raw, 5, "recall", "a") == 1
    assert call(raw, 6, "sessionId") == raw.connection.sessionId
    assert resultOf(store.inner.load(raw.connection.sessionId)) == {"a": 1, "b": 2}
    # the session exists as soon as a service used it, so the token works
    other = ts.client(session=sign(SECRET, raw.connection.sessionId))
    assert resultOf(other.api.rpc.call("recall", "b")) == 2


def test_newSessionIsStoredAtWelcome():
    ts, store = sessionServer()
    client = ts.client()
    other = ts.client(session=client.session)
    assert other.session == client.session


def test_sessionReplacedWhileConnected():
    """The session vanishes from the store: the client is told its new token."""
    ts, store = sessionServer(cacheSessions=False)
    first, token = firstClientWrites(ts)
    tokens = []
    first.on("session", tokens.append)
    resultOf(store.inner.delete(verify(SECRET, token)))
    assert resultOf(first.api.rpc.call("recall", "colour")) is None
    [newToken] = tokens
    assert first.session == newToken != token
    assert verify(SECRET, newToken) == resultOf(first.api.rpc.call("sessionId"))


def test_asyncStore():
    """A store whose Deferreds fire later: frames wait, in order."""

    @implementer(ISessionStore)
    class SlowStore(CountingStore):
        def __init__(self, clock):
            CountingStore.__init__(self, clock)
            self.pending = []

        def _later(self, d):
            later = Deferred()
            self.pending.append((d, later))
            return later

        def load(self, sessionId):
            return self._later(CountingStore.load(self, sessionId))

        def touch(self, sessionId):
            return self._later(CountingStore.touch(self, sessionId))

        def flush(self):
            while self.pending:
                d, later = self.pending.pop(0)
                d.chainDeferred(later)

    clock = MemoryReactorClock()
    store = SlowStore(clock)
    resultOf(store.inner.save("known", {"colour": "blue"}))
    ts = PrismTestServer(
        services={"rpc": RPCService(SESSION_HANDLERS, sessions=True)}, clock=clock, sessionStore=store
    )
    raw = ts.raw()
    raw.send('01|["hello",{"session":"%s"}]' % sign(SECRET, "known"))
    raw.send('12|["recall","colour"]')
    raw.send('13|["add",1,2]')
    assert raw.frames == []
    store.flush()  # the touch: welcome, then the load
    store.flush()
    assert [f[:3] for f in raw.frames] == ["01|", "12|", "13|"]
    assert raw.frames[1:] == ['12|"blue"', "13|3"]


def test_storeFailureIsContained():
    @implementer(ISessionStore)
    class Broken(CountingStore):
        def load(self, sessionId):
            from twisted.internet.defer import fail

            return fail(RuntimeError("store is down"))

    clock = MemoryReactorClock()
    store = Broken(clock)
    resultOf(store.inner.save("known", {}))
    ts = PrismTestServer(services={"rpc": RPCService(SESSION_HANDLERS, sessions=True)}, clock=clock, sessionStore=store)
    raw = ts.raw(cookie=sign(SECRET, "known"))
    raw.hello()
    with pytest.raises(RemoteError) as info:
        call(raw, 2, "recall", "x")
    assert info.value.kind == "session"
    assert [e.kind for e in ts.errors] == ["session"]


def test_touchFailureIsContained():
    """A store failing the hello's touch does not wedge the connection."""

    @implementer(ISessionStore)
    class Broken(CountingStore):
        down = True

        def touch(self, sessionId):
            from twisted.internet.defer import fail

            if self.down:
                return fail(RuntimeError("store is down"))
            return CountingStore.touch(self, sessionId)

    clock = MemoryReactorClock()
    store = Broken(clock)
    ts = PrismTestServer(
        services={"rpc": RPCService(SESSION_HANDLERS, sessions=True), "echo": EchoService()},
        clock=clock,
        sessionStore=store,
    )
    raw = ts.raw()
    raw.send('01|["hello",{"session":"%s"}]' % sign(SECRET, "known"))
    raw.send("25|alive")  # held behind the hello, then served
    sid, cb, isError, payload = wire.parse(raw.frames[0])
    assert (sid, cb, isError) == (0, 1, True)
    assert wire.decodeError(payload)[:2] == ("session", "cannot check the session: store is down")
    assert raw.frames[1:] == ["25|alive"]
    assert [e.kind for e in ts.errors] == ["session"]
    # the client may say hello again, once the store is back
    store.down = False
    resultOf(store.inner.save("known", {}))
    assert welcomeOf(raw.hello())["session"] == sign(SECRET, "known")


def test_sessionsSavedOnStop():
    ts, store = sessionServer(cacheSessions=True)
    raw = ts.raw()
    raw.hello()
    conn = raw.connection
    session = resultOf(conn.getSession())
    session["late"] = True  # changed outside a handler
    ts.stop()
    assert resultOf(store.inner.load(conn.sessionId)) == {"late": True}


def test_servicesWithoutSessionsNeverTouchTheStore():
    clock = MemoryReactorClock()
    store = CountingStore(clock)
    resultOf(store.inner.save("known", {"a": 1}))
    del store.calls[:]
    ts = PrismTestServer(
        services={
            "rpc": RPCService({"add": lambda a, b: a + b, "who": withRequest(lambda r: r.session)}),
            "echo": EchoService(),
            "bin": EchoService("msgpack"),
        },
        clock=clock,
        sessionStore=store,
    )
    for raw in [ts.raw(), ts.raw(cookie=sign(SECRET, "known")), ts.raw(cookie="forged.token")]:
        raw.hello()
        raw.hello(session=sign(SECRET, "known"))
        for i in range(1, 20):
            assert call(raw, i, "add", i, 1) == i + 1
            raw.send("1|[\"add\",1,1]")
            raw.send("2{}|hi".format(i))
            raw.send("2|hi")
            raw.send(b"3" + str(i).encode() + b"|\x91\x01")
        assert call(raw, 99, "who") is None
        raw.close()
    client = ts.client(session=sign(SECRET, "known"))
    assert resultOf(client.api.rpc.call("add", 1, 2)) == 3
    ts.stop()
    assert store.calls == []


def test_withoutCacheALoadWaitsForThePreviousWrite():
    """
    With cacheSessions off, the reply to a message can reach the client
    before the store acknowledged that message's session write. The next
    message's load must read after that write, not race it (with Redis the
    two may travel on different pooled connections).
    """
    from twisted.internet.defer import Deferred

    from prism.services.rpc import RPCService, withRequest
    from prism.sessions import MemorySessionStore

    class SlowSaves(MemorySessionStore):
        held = None

        def save(self, sessionId, data):
            if self.held is None:
                return MemorySessionStore.save(self, sessionId, data)
            d = Deferred()
            self.held.append(d)
            return d.addCallback(lambda _: MemorySessionStore.save(self, sessionId, data))

    @withRequest
    def count(request):
        request.session["n"] = request.session.get("n", 0) + 1
        return request.session["n"]

    ts = PrismTestServer(
        services={"rpc": RPCService(handlers={"count": count}, sessions=True)}, cacheSessions=False
    )
    store = SlowSaves(reactor=ts.clock)
    ts.server.sessionStore = store
    client = ts.client()
    store.held = []
    assert resultOf(client.api.rpc.call("count")) == 1  # replied; its write is held
    second = client.api.rpc.call("count")
    assert not second.called  # waiting for the write, not reading stale data
    for d in store.held:
        d.callback(None)
    assert resultOf(second) == 2
