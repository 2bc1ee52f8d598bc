"""
The Redis session store beyond the contract suite (which tests/test_sessions.py
runs against it): key layout and options, the framework codecs' formats,
configuration, and Redis failures, proved by stopping and restarting a
redis-server process each test starts itself.
"""

import base64
import hashlib
import hmac
import json
import signal
import sys
from urllib.parse import quote

import msgpack
import pytest
import pytest_twisted
from zope.interface.verify import verifyObject

from conftest import nextEvent, waitUntil, within
from prism.errors import NoSuchSession, PrismConfigError, RemoteError, SessionError, SessionStoreUnavailable
from prism.sessioncodecs import ExpressCodec, FlaskCodec, ISessionCodec, PrismCodec, sessionCodec
from prism.sessions import Session, sign
from prism.testing import failureOf
from redisutil import RedisProcess, hostPort, redisCli, redisHarnessStore, waitFailure, waitResult

SECRET = "redis-store-test-secret"


# -- importing is free


def test_importingTheStoreDoesNotImportTxredisapi():
    import subprocess

    code = (
        "import sys, prism.stores.redis, prism.sessioncodecs, prism.config;"
        "from prism.stores.redis import RedisSessionStore; RedisSessionStore();"
        "assert 'txredisapi' not in sys.modules, 'txredisapi imported';"
        "assert 'twisted.internet.reactor' not in sys.modules, 'reactor installed'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_storeOptionsAreValidated():
    from prism.stores.redis import RedisSessionStore

    for bad in [dict(port=0), dict(port="6379"), dict(db=-1), dict(ttl=0), dict(poolSize=0), dict(unix=""),
                dict(host=""), dict(replyTimeout=0), dict(prefix=3), dict(password=1)]:
        with pytest.raises(PrismConfigError):
            RedisSessionStore(**bad)


# -- key layout, codecs, options, on the run's private Redis


@pytest_twisted.ensureDeferred
async def test_keyLayoutAndTTL(request):
    store = redisHarnessStore(request, ttl=123)
    assert verifyObject(__import__("prism.interfaces", fromlist=["ISessionStore"]).ISessionStore, store)
    await waitResult(store.save("abc", {"user": "ada"}))
    port = hostPort(request.getfixturevalue("redis_url"))[1]
    raw = redisCli(port, "GET", store.prefix + "abc")
    assert json.loads(raw) == {"user": "ada"}
    assert 120 <= int(redisCli(port, "TTL", store.prefix + "abc")) <= 123
    redisCli(port, "EXPIRE", store.prefix + "abc", 5)
    await waitResult(store.load("abc"))  # GETEX refreshes the expiry
    assert int(redisCli(port, "TTL", store.prefix + "abc")) > 100


def test_defaultPrefixesFollowTheCodec():
    from prism.stores.redis import RedisSessionStore

    assert RedisSessionStore().prefix == "prism:sess:"
    assert RedisSessionStore(codec="express").prefix == "sess:"
    assert RedisSessionStore(codec="flask").prefix == "session:"
    assert RedisSessionStore(codec="flask", prefix="app1:").prefix == "app1:"


def test_theServerGivesTheStoreItsCodec():
    from prism.server import Server
    from prism.stores.redis import RedisSessionStore

    store = RedisSessionStore()
    server = Server(sessionStore=store, sessionCodec="express", secret=SECRET)
    assert store.codec is server.sessionCodec and store.prefix == "sess:"
    assert server.sessionCookie == "connect.sid"
    assert Server(sessionCodec="flask").sessionCookie == "session"
    assert Server(sessionCodec="flask", sessionCookie="mysession").sessionCookie == "mysession"
    assert Server().sessionCookie == "prism.sid"


@pytest_twisted.ensureDeferred
async def test_databaseNumber(request):
    store = redisHarnessStore(request, db=3)
    await waitResult(store.save("in-db-3", {"a": 1}))
    port = hostPort(request.getfixturevalue("redis_url"))[1]
    assert redisCli(port, "-n", 3, "EXISTS", store.prefix + "in-db-3") == "1"
    assert redisCli(port, "EXISTS", store.prefix + "in-db-3") == "0"
    redisCli(port, "-n", 3, "DEL", store.prefix + "in-db-3")


@pytest_twisted.ensureDeferred
async def test_unixSocketAndPassword():
    from prism.stores.redis import RedisSessionStore

    redis = RedisProcess(unix=True)
    try:
        redis.start()
        redisCli(redis.port, "CONFIG", "SET", "requirepass", "hunter2hunter2")
        store = RedisSessionStore(unix=redis.unix, password="hunter2hunter2", ttl=60)
        assert store.address == "unix:" + redis.unix
        await waitResult(store.save("u", {"over": "unix"}))
        assert await waitResult(store.load("u")) == {"over": "unix"}
        await within(store.close())
    finally:
        redis.cleanup()


@pytest_twisted.ensureDeferred
async def test_undecodableDataIsAnErrorNotASession(request):
    store = redisHarnessStore(request, codec="flask")
    port = hostPort(request.getfixturevalue("redis_url"))[1]
    import pickle

    redisCli(port, "SET", store.prefix + "pickled", pickle.dumps({"a": 1}, protocol=0).decode("latin-1"))
    f = await waitFailure(store.load("pickled"), SessionError)
    assert not f.check(NoSuchSession)


# -- codecs: the formats, checked against the libraries' definitions


def test_codecsProvideTheInterface():
    for codec in (PrismCodec(), ExpressCodec(), FlaskCodec(), FlaskCodec(signed=False)):
        assert verifyObject(ISessionCodec, codec)
    with pytest.raises(PrismConfigError):
        sessionCodec("django")


def test_expressCookieIsCookieSignatureFormat():
    codec = ExpressCodec()
    sessionId = "Hx6-w3w_aVd8yA3OJbW7b_U9Nk3gq1bq"
    mac = base64.b64encode(hmac.new(SECRET.encode(), sessionId.encode(), hashlib.sha256).digest()).decode().rstrip("=")
    assert codec.cookieValue(SECRET, sessionId) == quote("s:{}.{}".format(sessionId, mac), safe="")
    assert codec.cookieValue(SECRET, sessionId).startswith("s%3A")
    value = codec.cookieValue(SECRET, sessionId)
    assert codec.parseCookie(SECRET, value) == sessionId
    assert codec.parseCookie(SECRET, "s:{}.{}".format(sessionId, mac)) == sessionId  # not URL-encoded
    assert codec.parseCookie("other secret", value) is None
    assert codec.parseCookie(SECRET, sessionId) is None  # unsigned
    assert codec.parseCookie(SECRET, quote("s:" + sessionId, safe="")) is None
    assert codec.parseCookie(SECRET, value[:-3] + "AAA") is None
    for garbage in ["", "s:", "s:.", "s%3A.abc", "\u00e9", "x" * 5000]:
        assert codec.parseCookie(SECRET, garbage) is None


def test_expressDataKeepsAndAddsTheCookieMember():
    codec = ExpressCodec()
    stored = {"cookie": {"originalMaxAge": 3600000, "expires": "2030-01-01T00:00:00.000Z", "httpOnly": True, "path": "/"}, "user": "a"}
    assert codec.decode(codec.encode(stored)) == stored
    created = codec.decode(codec.encode({"user": "b"}))
    assert created["cookie"] == {"originalMaxAge": None, "expires": None, "httpOnly": True, "path": "/"}


def test_flaskCookieIsItsdangerousFormat():
    codec = FlaskCodec()
    sessionId = "n7DP3-NcXG4c2Tb5oZ4R0i6vX5ZCCEWHAeFEfh7TT8c"
    key = hmac.new(SECRET.encode(), b"flask-session", hashlib.sha1).digest()
    mac = base64.urlsafe_b64encode(hmac.new(key, sessionId.encode(), hashlib.sha1).digest()).decode().rstrip("=")
    assert codec.cookieValue(SECRET, sessionId) == sessionId + "." + mac
    assert codec.parseCookie(SECRET, sessionId + "." + mac) == sessionId
    assert codec.parseCookie(SECRET, sessionId) is None
    assert codec.parseCookie("other", sessionId + "." + mac) is None
    unsigned = FlaskCodec(signed=False)
    assert unsigned.cookieValue(SECRET, sessionId) == sessionId
    assert unsigned.parseCookie(SECRET, sessionId) == sessionId
    assert unsigned.parseCookie(SECRET, "bad;id") is None


def test_flaskCookieMatchesTheRealItsdangerous():
    """When itsdangerous is installed (the CPython run), compare with it directly."""
    try:
        from itsdangerous import Signer
    except ImportError:
        from test_session_interop import _flaskPython
        import subprocess

        script = (
            "import sys; from itsdangerous import Signer;"
            "print(Signer(sys.argv[1], salt='flask-session', key_derivation='hmac').sign(b'abc').decode())"
        )
        expected = subprocess.run([_flaskPython(), "-c", script, SECRET], capture_output=True, text=True, check=True).stdout.strip()
    else:
        expected = Signer(SECRET, salt="flask-session", key_derivation="hmac").sign(b"abc").decode()
    assert FlaskCodec().cookieValue(SECRET, "abc") == expected
    assert FlaskCodec().parseCookie(SECRET, expected) == "abc"


def test_flaskDataIsMsgpackAndNeverUnpickled():
    import pickle

    codec = FlaskCodec()
    raw = codec.encode({"user": "a", "_permanent": True, "n": [1, 2.5]})
    assert msgpack.unpackb(raw) == {"user": "a", "_permanent": True, "n": [1, 2.5]}
    assert codec.decode(raw) == {"user": "a", "_permanent": True, "n": [1, 2.5]}
    assert codec.decode(b'{"json": true}') == {"json": True}  # SESSION_SERIALIZATION_FORMAT = "json"

    class Boom:
        def __reduce__(self):
            return (exec, ("raise SystemExit('unpickled!')",))

    with pytest.raises(ValueError):
        codec.decode(pickle.dumps(Boom()))
    with pytest.raises(TypeError):
        codec.encode({"x": object()})


def test_prismCodecIsTheTokenFormat():
    assert PrismCodec().cookieValue(SECRET, "abc") == sign(SECRET, "abc")
    assert PrismCodec().parseCookie(SECRET, sign(SECRET, "abc")) == "abc"


# -- configuration


def test_configSelectsStoreAndCodec():
    from prism.config import configFromDict

    data = {
        "secret": "x" * 20,
        "services": [{"name": "echo"}],
        "session": {
            "codec": "flask",
            "signed": False,
            "cache": False,
            "store": "redis",
            "options": {"host": "10.0.0.5", "port": 6380, "db": 2, "prefix": "app:", "password": "pw", "ttl": 600,
                        "pool_size": 2, "connect_timeout": 1, "reply_timeout": 3},
        },
    }
    config = configFromDict(data)
    assert config.sessionCookie == "session" and config.sessionCodec == "flask" and config.sessionSigned is False
    server = config.buildServer()
    store = server.sessionStore
    assert (store.host, store.port, store.db, store.prefix, store.ttl, store.poolSize) == ("10.0.0.5", 6380, 2, "app:", 600, 2)
    assert isinstance(server.sessionCodec, FlaskCodec) and server.sessionCodec.signed is False
    assert store.codec is server.sessionCodec
    assert "codec flask (unsigned)" in "\n".join(config.summary())
    assert "pw" not in "\n".join(config.summary()).replace("password", "")


def test_configRejectsBadSessionKeys():
    from prism.config import configFromDict

    data = {
        "services": [{"name": "echo"}],
        "session": {"codec": "django", "signed": "yes", "store": "redis", "options": {"port": 0, "colour": 1}},
    }
    with pytest.raises(PrismConfigError) as e:
        configFromDict(data, "prism.toml")
    text = str(e.value)
    assert "session.codec" in text and '"express"' in text
    assert "session.signed" in text
    assert "session.options.port" in text
    assert "session.options.colour" in text


def test_configSignedFalseOnlyForFlask():
    from prism.config import configFromDict

    with pytest.raises(PrismConfigError) as e:
        configFromDict({"services": [{"name": "echo"}], "session": {"codec": "express", "signed": False}})
    assert "session.signed" in str(e.value)


# -- a failed save stays dirty


def test_aFailedSaveLeavesTheSessionDirty():
    class Down:
        def save(self, sessionId, data):
            from twisted.internet.defer import fail

            return fail(SessionStoreUnavailable("test"))

    session = Session("sid", {}, Down())
    session["a"] = 1
    failureOf(session.save(), SessionStoreUnavailable)
    assert session.dirty  # written again later, never counted as saved


# -- failures, with a redis-server of the test's own


def _handlers():
    from prism.services.rpc import withRequest

    @withRequest
    def count(request):
        request.session["n"] = request.session.get("n", 0) + 1
        return request.session["n"]

    return {"count": count}


async def _serve(prism, port, cache=True):
    from prism.services.echo import EchoService
    from prism.services.rpc import RPCService
    from prism.stores.redis import RedisSessionStore

    store = RedisSessionStore(port=port, ttl=60, connectTimeout=1.0, replyTimeout=1.0)
    served = await prism.serve(
        {"rpc": RPCService(handlers=_handlers(), sessions=True), "echo": EchoService(codec="json")},
        sessionStore=store,
        cacheSessions=cache,
    )
    return served, store


@pytest.fixture
def ownRedis():
    redis = RedisProcess()
    yield redis
    redis.cleanup()


async def _echo(client, value):
    return await within(client.api.echo.request(value))


@pytest.mark.parametrize("cache", [True, False], ids=["cache", "nocache"])
@pytest_twisted.ensureDeferred
async def test_redisDownMidRunThenBack(prism, ownRedis, cache):
    ownRedis.start()
    served, store = await _serve(prism, ownRedis.port, cache=cache)
    events = []
    for name in ("session_store.down", "session_store.up"):
        served.server.events.on(name, lambda payload, name=name: events.append((name, payload.reason)))
    errors = []
    served.server.events.on("error", errors.append)
    try:
        client = await prism.connect(served.url)
        assert await within(client.api.rpc.call("count")) == 1
        assert await within(client.api.rpc.call("count")) == 2

        down = nextEvent(served.server.events, "session_store.down")
        ownRedis.stop()
        await down
        assert not store.available and served.server.sessionStoreDown
        # Services with sessions: a clear error, at once.
        with pytest.raises(RemoteError) as e:
            await within(client.api.rpc.call("count"), 2)
        assert e.value.kind == "session" and "session store unavailable" in e.value.message
        assert any(ev.kind == "session" for ev in errors)
        # Services without sessions keep working.
        assert await _echo(client, {"still": "here"}) == {"still": "here"}
        # A save while down fails; it is never reported as saved.
        await waitFailure(store.save("x", {"a": 1}), SessionStoreUnavailable)

        up = nextEvent(served.server.events, "session_store.up")
        ownRedis.start()
        await within(up, 15)
        assert store.available and not served.server.sessionStoreDown
        # Redis came back empty (nothing on disk): the session is gone, so a
        # fresh one is issued, never the old id adopted; with the cache on,
        # the connection's copy is written back.
        result = await within(client.api.rpc.call("count"))
        assert result in (1, 3)
        names = [name for name, _ in events]
        assert names[-2:] == ["session_store.down", "session_store.up"] and names.count("session_store.down") == 1
        assert events[-2][1] == "connection lost"
    finally:
        await within(store.close())


@pytest_twisted.ensureDeferred
async def test_redisUnreachableAtStart(prism, ownRedis):
    served, store = await _serve(prism, ownRedis.port)  # nothing listens there yet
    try:
        down = nextEvent(served.server.events, "session_store.down")
        client = await prism.connect(served.url)  # the welcome does not need the store
        await down
        with pytest.raises(RemoteError) as e:
            await within(client.api.rpc.call("count"), 2)
        assert e.value.kind == "session" and "session store unavailable" in e.value.message
        assert await _echo(client, [1, 2]) == [1, 2]

        up = nextEvent(served.server.events, "session_store.up")
        ownRedis.start()
        await within(up, 15)
        assert await within(client.api.rpc.call("count")) == 1
    finally:
        await within(store.close())


@pytest_twisted.ensureDeferred
async def test_aWriteWithoutReplyIsNotSaved(ownRedis):
    """Redis frozen (SIGSTOP): the save times out and fails; it is not reported as saved."""
    from prism.stores.redis import RedisSessionStore

    ownRedis.start()
    store = RedisSessionStore(port=ownRedis.port, replyTimeout=0.5, connectTimeout=0.5)
    try:
        await waitResult(store.save("s", {"v": 1}))
        ownRedis.process.send_signal(signal.SIGSTOP)
        try:
            await waitFailure(store.save("s", {"v": 2}), SessionStoreUnavailable)
        finally:
            ownRedis.process.send_signal(signal.SIGCONT)
        await waitUntil(lambda: store.available, 15)

        async def loaded():
            try:
                return await waitResult(store.load("s"))
            except SessionStoreUnavailable:
                return None

        for _ in range(100):
            value = await loaded()
            if value is not None:
                break
            await __import__("conftest").sleep(0.1)
        assert value in ({"v": 1}, {"v": 2})  # Redis may still apply it: only "saved" was never claimed
    finally:
        await within(store.close())


@pytest_twisted.ensureDeferred
async def test_close_from_the_callback_of_a_failed_load():
    """
    A load fails (Redis unreachable) from inside the connection's state
    machine; closing the store right there, in the load's errback, works
    (it once raised automat's "reentrantly run" error).
    """
    from redisutil import freePort

    from prism.stores.redis import RedisSessionStore

    store = RedisSessionStore(port=freePort(), connectTimeout=0.5)
    closed = []

    def failed(failure):
        failure.trap(SessionStoreUnavailable)
        closed.append(store.close())

    await within(store.load("nosuch").addCallbacks(lambda _: pytest.fail("loaded"), failed))
    assert len(closed) == 1
    assert await within(closed[0]) is None
