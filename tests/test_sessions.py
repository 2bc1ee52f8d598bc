"""
Sessions (C{prism.sessions}): signed tokens, the L{Session} mapping, and the
L{ISessionStore} contract suite.

The contract suite runs once per entry of L{STORE_HARNESSES}. A store joins
it by adding a harness factory there: a function taking pytest's
C{request} and returning a L{StoreHarness} whose C{store} is fresh, whose
C{ttl} is its expiry, whose C{passTime(seconds)} makes that much time pass
for the store, and whose C{result}/C{failure} wait for a L{Deferred}; the
contract tests are asynchronous and await all three, so a store talking to a
real server (Redis) runs them on the real reactor.
"""

import string

import pytest
import pytest_twisted
from twisted.internet.defer import Deferred
from zope.interface.verify import verifyObject

from prism.errors import NoSuchSession, SessionError
from prism.interfaces import ISession, ISessionStore
from prism.sessions import MemorySessionStore, Session, newSessionId, sign, verify
from prism.testing import MemoryReactorClock, failureOf, resultOf

SECRET = b"s3cret"
URLSAFE = set(string.ascii_letters + string.digits + "-_")


# -- ids and tokens


def test_newSessionIdHasAtLeast128Bits():
    ids = {newSessionId() for _ in range(2000)}
    assert len(ids) == 2000
    for sessionId in ids:
        assert len(sessionId) == 32  # 32 base64url characters: 192 bits
        assert set(sessionId) <= URLSAFE
    assert len(next(iter(ids))) * 6 >= 128


def test_signVerifyRoundTrip():
    sessionId = newSessionId()
    token = sign(SECRET, sessionId)
    assert token.startswith(sessionId + ".")
    assert "=" not in token  # no base64 padding
    assert set(token) <= URLSAFE | {"."}
    assert verify(SECRET, token) == sessionId


def test_strAndBytesSecretsAgree():
    sessionId = newSessionId()
    assert sign("s3cret", sessionId) == sign(b"s3cret", sessionId)
    assert verify("s3cret", sign(b"s3cret", sessionId)) == sessionId


def test_signatureIsHMACSHA256():
    import base64
    import hashlib
    import hmac

    digest = hmac.new(SECRET, b"abc", hashlib.sha256).digest()
    assert sign(SECRET, "abc") == "abc." + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _flip(c):
    return "A" if c != "A" else "B"


def test_verifyRefusesTamperedId():
    sessionId = newSessionId()
    token = sign(SECRET, sessionId)
    assert verify(SECRET, _flip(token[0]) + token[1:]) is None
    assert verify(SECRET, newSessionId() + token[len(sessionId) :]) is None


def test_verifyRefusesTamperedSignature():
    token = sign(SECRET, newSessionId())
    assert verify(SECRET, token[:-1] + _flip(token[-1])) is None
    assert verify(SECRET, token[:-1]) is None
    assert verify(SECRET, token + "A") is None
    assert verify(SECRET, token[:-1] + "\u00e9") is None


def test_verifyRefusesWrongSecret():
    token = sign(SECRET, newSessionId())
    assert verify(b"other", token) is None
    assert verify("", token) is None


@pytest.mark.parametrize(
    "token",
    [None, 42, b"abc.def", "", ".", "abc", "abc.", ".abc", "\u00e9\u00e9.abc", "\x00.\x00", "a.b.c", ["a", "b"]],
)
def test_verifyRefusesGarbage(token):
    assert verify(SECRET, token) is None


def test_verifyRefusesOverlongTokens():
    longId = "a" * 300
    assert verify(SECRET, sign(SECRET, longId)) is None


def test_verifyNonASCIIId():
    """A signature computed over non-ASCII bytes cannot be produced by sign()."""
    assert verify(SECRET, "\u00e9t\u00e9.AAAA") is None


# -- Session


def test_sessionProvidesISession():
    session = Session("id", {}, MemorySessionStore(reactor=MemoryReactorClock()))
    assert verifyObject(ISession, session)


def test_sessionDirtyTracking():
    store = MemorySessionStore(reactor=MemoryReactorClock())
    session = Session("sid", {"a": 1}, store)
    assert not session.dirty
    assert session["a"] == 1 and session.get("b") is None and list(session) == ["a"] and len(session) == 1
    assert "a" in session and dict(session) == {"a": 1}
    assert not session.dirty  # reading never dirties

    resultOf(session.save())  # clean: nothing written
    failureOf(store.load("sid"), NoSuchSession)

    session["b"] = 2
    assert session.dirty
    assert resultOf(session.save()) is None
    assert not session.dirty
    assert resultOf(store.load("sid")) == {"a": 1, "b": 2}

    del session["a"]
    assert session.dirty
    resultOf(session.save())
    assert resultOf(store.load("sid")) == {"b": 2}

    session.update(c=[1])
    assert session.dirty
    resultOf(session.save())

    session["c"].append(2)  # nested: not tracked…
    assert not session.dirty
    session.touch()  # …until touched
    assert session.dirty
    resultOf(session.save())
    assert resultOf(store.load("sid")) == {"b": 2, "c": [1, 2]}


def test_sessionSaveFailureIsReported():
    session = Session("sid", {}, MemorySessionStore(reactor=MemoryReactorClock()))
    session["x"] = object()
    failureOf(session.save(), TypeError)


# -- the ISessionStore contract suite


class StoreHarness:
    """
    What the contract suite needs to drive one store.

    @ivar store: a fresh, empty L{ISessionStore}.
    @ivar ttl: its expiry, in seconds.
    """

    def __init__(self, store, ttl, passTime, result=None, failure=None):
        self.store = store
        self.ttl = ttl
        self._passTime = passTime
        self._result = result
        self._failure = failure

    async def passTime(self, seconds):
        result = self._passTime(seconds)
        if isinstance(result, Deferred) or hasattr(result, "__await__"):
            await result

    async def result(self, d):
        """Wait for C{d}; @return: its result (raising its failure)."""
        if self._result is not None:
            return await self._result(d)
        return resultOf(d)  # a store that answers synchronously (memory) must still do so

    async def failure(self, d, *expected):
        """Wait for C{d} to fail with one of C{expected}; @return: the L{Failure}."""
        if self._failure is not None:
            return await self._failure(d, *expected)
        return failureOf(d, *expected)


def memoryStore(request):
    clock = MemoryReactorClock()
    store = MemorySessionStore(ttl=60, reactor=clock)
    return StoreHarness(store, 60, clock.advance)


def redisStore(request):
    """The Redis store on the test run's private Redis; time passes by shortening TTLs (PEXPIRE)."""
    from redisutil import passTime, redisHarnessStore, waitFailure, waitResult

    store = redisHarnessStore(request, ttl=60)
    return StoreHarness(store, 60, lambda seconds: passTime(store, seconds), waitResult, waitFailure)


STORE_HARNESSES = [memoryStore, redisStore]
"""Harness factories, one per L{ISessionStore} implementation."""


@pytest.fixture(params=STORE_HARNESSES, ids=lambda f: f.__name__)
def harness(request):
    return request.param(request)


@pytest_twisted.ensureDeferred
async def test_contractProvidesInterface(harness):
    assert verifyObject(ISessionStore, harness.store)


@pytest_twisted.ensureDeferred
async def test_contractSaveLoad(harness):
    store = harness.store
    data = {"user": "ada", "n": 1, "nested": {"list": [1, 2, None]}, "f": 1.5, "t": True}
    d = store.save("sid-1", data)
    assert isinstance(d, Deferred)
    assert await harness.result(d) is None
    d = store.load("sid-1")
    assert isinstance(d, Deferred)
    assert await harness.result(d) == data


@pytest_twisted.ensureDeferred
async def test_contractEmptySession(harness):
    await harness.result(harness.store.save("empty", {}))
    assert await harness.result(harness.store.load("empty")) == {}


@pytest_twisted.ensureDeferred
async def test_contractSaveReplaces(harness):
    store = harness.store
    await harness.result(store.save("sid", {"a": 1, "b": 2}))
    await harness.result(store.save("sid", {"c": 3}))
    assert await harness.result(store.load("sid")) == {"c": 3}


@pytest_twisted.ensureDeferred
async def test_contractSessionsAreIndependent(harness):
    store = harness.store
    await harness.result(store.save("one", {"v": 1}))
    await harness.result(store.save("two", {"v": 2}))
    assert await harness.result(store.load("one")) == {"v": 1}
    assert await harness.result(store.load("two")) == {"v": 2}


@pytest_twisted.ensureDeferred
async def test_contractLoadReturnsCopies(harness):
    store = harness.store
    saved = {"list": [1], "map": {"k": "v"}}
    await harness.result(store.save("sid", saved))
    saved["list"].append("changed after save")
    saved["new"] = True
    loaded = await harness.result(store.load("sid"))
    assert loaded == {"list": [1], "map": {"k": "v"}}
    loaded["list"].append(2)
    loaded["map"]["k"] = "changed after load"
    loaded["other"] = 1
    assert await harness.result(store.load("sid")) == {"list": [1], "map": {"k": "v"}}


@pytest_twisted.ensureDeferred
async def test_contractLoadUnknown(harness):
    f = await harness.failure(harness.store.load("no-such-id"), NoSuchSession)
    assert isinstance(f.value, SessionError)


@pytest_twisted.ensureDeferred
async def test_contractTouchUnknown(harness):
    await harness.failure(harness.store.touch("no-such-id"), NoSuchSession)


@pytest_twisted.ensureDeferred
async def test_contractTouchKnown(harness):
    await harness.result(harness.store.save("sid", {"a": 1}))
    assert await harness.result(harness.store.touch("sid")) is None
    assert await harness.result(harness.store.load("sid")) == {"a": 1}


@pytest_twisted.ensureDeferred
async def test_contractDeleteUnknownIsFine(harness):
    assert await harness.result(harness.store.delete("no-such-id")) is None


@pytest_twisted.ensureDeferred
async def test_contractDelete(harness):
    store = harness.store
    await harness.result(store.save("sid", {"a": 1}))
    await harness.result(store.save("keep", {"b": 2}))
    assert await harness.result(store.delete("sid")) is None
    await harness.failure(store.load("sid"), NoSuchSession)
    await harness.failure(store.touch("sid"), NoSuchSession)
    assert await harness.result(store.load("keep")) == {"b": 2}


@pytest_twisted.ensureDeferred
async def test_contractExpiry(harness):
    store = harness.store
    await harness.result(store.save("sid", {"a": 1}))
    await harness.passTime(harness.ttl + 1)
    await harness.failure(store.load("sid"), NoSuchSession)
    await harness.failure(store.touch("sid"), NoSuchSession)


@pytest_twisted.ensureDeferred
async def test_contractTouchAfterExpiry(harness):
    store = harness.store
    await harness.result(store.save("sid", {"a": 1}))
    await harness.passTime(harness.ttl + 1)
    await harness.failure(store.touch("sid"), NoSuchSession)


@pytest_twisted.ensureDeferred
async def test_contractLoadRefreshesExpiry(harness):
    store = harness.store
    await harness.result(store.save("sid", {"a": 1}))
    for _ in range(3):
        await harness.passTime(harness.ttl * 0.75)
        assert await harness.result(store.load("sid")) == {"a": 1}
    await harness.passTime(harness.ttl + 1)
    await harness.failure(store.load("sid"), NoSuchSession)


@pytest_twisted.ensureDeferred
async def test_contractTouchRefreshesExpiry(harness):
    store = harness.store
    await harness.result(store.save("sid", {"a": 1}))
    for _ in range(3):
        await harness.passTime(harness.ttl * 0.75)
        await harness.result(store.touch("sid"))
    assert await harness.result(store.load("sid")) == {"a": 1}


@pytest_twisted.ensureDeferred
async def test_contractSaveRefreshesExpiry(harness):
    store = harness.store
    await harness.result(store.save("sid", {"a": 1}))
    await harness.passTime(harness.ttl * 0.75)
    await harness.result(store.save("sid", {"a": 2}))
    await harness.passTime(harness.ttl * 0.75)
    assert await harness.result(store.load("sid")) == {"a": 2}


@pytest_twisted.ensureDeferred
async def test_contractSaveAfterExpiryRecreates(harness):
    store = harness.store
    await harness.result(store.save("sid", {"a": 1}))
    await harness.passTime(harness.ttl + 1)
    await harness.result(store.save("sid", {"a": 2}))
    assert await harness.result(store.load("sid")) == {"a": 2}


def _circular():
    data = {"list": []}
    data["list"].append(data)
    return data


@pytest.mark.parametrize(
    "bad",
    [
        {"x": object()},
        {"x": {1, 2}},
        {"x": b"bytes"},
        {"x": float("nan")},  # json.dumps writes NaN, which is not JSON
        {"x": float("inf")},
        _circular(),
    ],
    ids=["object", "set", "bytes", "nan", "inf", "circular"],
)
@pytest_twisted.ensureDeferred
async def test_contractRefusesNonJSON(harness, bad):
    store = harness.store
    await harness.failure(store.save("sid", bad), TypeError, ValueError)
    await harness.failure(store.load("sid"), NoSuchSession)


@pytest_twisted.ensureDeferred
async def test_contractRefusedSaveKeepsOldData(harness):
    store = harness.store
    await harness.result(store.save("sid", {"ok": 1}))
    await harness.failure(store.save("sid", {"bad": object()}), TypeError, ValueError)
    assert await harness.result(store.load("sid")) == {"ok": 1}


@pytest_twisted.ensureDeferred
async def test_contractDataComesBackAsJSON(harness):
    """Whatever the store, data comes back as JSON gives it back."""
    await harness.result(harness.store.save("sid", {"tuple": (1, 2), "keys": {1: "int key"}, "u": "\u00e9\u2603"}))
    assert await harness.result(harness.store.load("sid")) == {"tuple": [1, 2], "keys": {"1": "int key"}, "u": "\u00e9\u2603"}


@pytest_twisted.ensureDeferred
async def test_contractSessionIdsAreOpaqueStrings(harness):
    store = harness.store
    for sessionId in [newSessionId(), "a-b_c", "x" * 64]:
        await harness.result(store.save(sessionId, {"id": sessionId}))
        assert await harness.result(store.load(sessionId)) == {"id": sessionId}


# -- MemorySessionStore specifics


def test_memoryStoreLengthSweepsExpired():
    clock = MemoryReactorClock()
    store = MemorySessionStore(ttl=10, reactor=clock)
    resultOf(store.save("a", {}))
    clock.advance(5)
    resultOf(store.save("b", {}))
    assert len(store) == 2
    clock.advance(6)
    assert len(store) == 1
    clock.advance(5)
    assert len(store) == 0


def test_memoryStoreSweepsWhileSaving():
    """Expired sessions do not pile up in a busy store."""
    clock = MemoryReactorClock()
    store = MemorySessionStore(ttl=10, reactor=clock)
    for i in range(500):
        resultOf(store.save("old{}".format(i), {}))
    clock.advance(11)
    for i in range(500):
        resultOf(store.save("new{}".format(i), {}))
    assert len(store._sessions) == 500
