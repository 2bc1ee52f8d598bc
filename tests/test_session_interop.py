"""
Prism shares sessions with real web applications through the Redis store:
an Express app (express-session + connect-redis, under Node.js) and a Flask
app (Flask-Session's Redis backend), both on the test run's private Redis.

An HTTP client logs in to the web app, connects to Prism over WebSocket with
the cookie it got, and a Prism RPC handler reads the logged-in user from the
session and writes a value that the web app then reads; and the other way
round. The Flask app runs under CPython (the .venv's interpreter when the
tests run under PyPy, where Flask-Session's msgspec does not install).
"""

import json
import os
import secrets
import subprocess
import sys
import urllib.parse
import urllib.request

import pytest
import pytest_twisted
from twisted.internet.threads import deferToThread

from conftest import within
from redisutil import deleteKeys, hostPort

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INTEROP = os.path.join(ROOT, "tests", "interop")
SECRET = "interop-secret-" + secrets.token_hex(8)
STARTUP = 20.0


# -- the web apps


class WebApp:
    """A web app in a subprocess: C{url}, C{prefix} (its Redis key prefix)."""

    def __init__(self, name, args, env, prefix):
        self.name = name
        self.prefix = prefix
        self.process = subprocess.Popen(
            args, env=dict(os.environ, **env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        line = self._readLine()
        if not line.startswith("listening "):
            self.stop()
            pytest.fail("the {} app did not start: {!r}\n{}".format(name, line, self.process.stderr.read()))
        self.url = "http://127.0.0.1:{}".format(int(line.split()[1]))

    def _readLine(self):
        import selectors

        selector = selectors.DefaultSelector()
        selector.register(self.process.stdout, selectors.EVENT_READ)
        if not selector.select(STARTUP):
            return "(no output within {} s)".format(STARTUP)
        return self.process.stdout.readline().strip()

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def _flaskPython():
    """A CPython that has Flask-Session: this interpreter, or the .venv's."""
    candidates = [sys.executable, os.path.join(ROOT, ".venv", "bin", "python")]
    for python in candidates:
        if os.path.exists(python):
            probe = subprocess.run([python, "-c", "import flask_session, redis"], capture_output=True)
            if probe.returncode == 0:
                return python
    pytest.fail(
        "no interpreter with Flask and Flask-Session (tried {}); run scripts/test, which installs the "
        "test extra into .venv".format(", ".join(candidates))
    )


@pytest.fixture(scope="module")
def expressApp(redis_url):
    if not os.path.isdir(os.path.join(ROOT, "node_modules", "express-session")):
        pytest.fail("node_modules lacks express-session: run npm ci at the repository root (scripts/test does)")
    prefix = "sess-{}:".format(secrets.token_hex(4))
    app = WebApp(
        "express",
        ["node", os.path.join(INTEROP, "express_app.js")],
        {"PORT": "0", "REDIS_URL": redis_url, "SECRET": SECRET, "PREFIX": prefix},
        prefix,
    )
    yield app
    app.stop()
    host, port = hostPort(redis_url)
    deleteKeys(port, prefix + "*", host)


def _flaskApp(redis_url, signed):
    prefix = "session-{}:".format(secrets.token_hex(4))
    app = WebApp(
        "flask",
        [_flaskPython(), os.path.join(INTEROP, "flask_app.py")],
        {"PORT": "0", "REDIS_URL": redis_url, "SECRET": SECRET, "PREFIX": prefix, "SIGNED": "1" if signed else "0"},
        prefix,
    )
    app.signed = signed
    return app


@pytest.fixture(scope="module", params=[True, False], ids=["signed", "unsigned"])
def flaskApp(request, redis_url):
    app = _flaskApp(redis_url, request.param)
    yield app
    app.stop()
    host, port = hostPort(redis_url)
    deleteKeys(port, app.prefix + "*", host)


# -- an HTTP client (blocking urllib, in a thread)


def _http(method, url, form=None, cookie=None):
    data = urllib.parse.urlencode(form).encode("ascii") if form is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    if cookie:
        request.add_header("Cookie", cookie)
    with urllib.request.urlopen(request, timeout=5) as response:
        setCookie = response.headers.get("Set-Cookie")
        return json.loads(response.read().decode("utf-8")), setCookie


def http(method, url, form=None, cookie=None):
    """@return: a L{Deferred} firing with C{(json body, Set-Cookie header or None)}."""
    return within(deferToThread(_http, method, url, form, cookie))


async def login(app, user="alice"):
    """Log in to the web app; @return: the C{Cookie} header to send back."""
    body, setCookie = await http("POST", app.url + "/login", {"user": user})
    assert body == {"ok": True, "user": user}
    assert setCookie, "the {} app set no cookie".format(app.name)
    return setCookie.split(";", 1)[0]


# -- Prism


def handlers():
    from prism.services.rpc import withRequest

    @withRequest
    def whoami(request):
        return request.session.get("user")

    @withRequest
    def getValue(request):
        return request.session.get("value")

    @withRequest
    def setValue(request, value):
        request.session["value"] = value
        return True

    @withRequest
    def sessionKeys(request):
        return sorted(request.session)

    return {"whoami": whoami, "getValue": getValue, "setValue": setValue, "sessionKeys": sessionKeys}


async def servePrism(prism, redis_url, app, codec, cache=True, **codecOptions):
    from prism.services.rpc import RPCService
    from prism.sessioncodecs import sessionCodec
    from prism.stores.redis import RedisSessionStore

    host, port = hostPort(redis_url)
    store = RedisSessionStore(host=host, port=port, prefix=app.prefix)
    served = await prism.serve(
        {"rpc": RPCService(handlers=handlers(), sessions=True)},
        sessionStore=store,
        sessionCodec=sessionCodec(codec, **codecOptions),
        secret=SECRET,
        cacheSessions=cache,
    )
    prism.stores = getattr(prism, "stores", []) + [store]
    return served


@pytest.fixture
def closeStores(prism):
    yield
    for store in getattr(prism, "stores", []):
        store.close()


def _codecFor(app):
    if app.name == "express":
        return "express", {}
    return "flask", {"signed": app.signed}


async def _roundTrip(prism, redis_url, app):
    codec, options = _codecFor(app)
    cookie = await login(app, "alice")
    served = await servePrism(prism, redis_url, app, codec, cache=False, **options)
    client = await prism.connect(served.url, headers={"Cookie": cookie})
    rpc = client.api.rpc

    # The web app's login is the socket's user.
    assert await within(rpc.call("whoami")) == "alice"

    # Prism -> web app.
    assert await within(rpc.call("setValue", "written by prism")) is True

    async def webSees(value):
        body, _ = await http("GET", app.url + "/value", cookie=cookie)
        return body == {"user": "alice", "value": value}

    seen = []

    async def poll():
        seen.append(await webSees("written by prism"))

    for _ in range(50):
        await poll()
        if seen[-1]:
            break
    assert seen[-1], "the {} app did not see Prism's write".format(app.name)

    # Web app -> Prism, seen by the very next message (cache off).
    body, _ = await http("POST", app.url + "/value", {"value": "written by the web app"}, cookie=cookie)
    assert body == {"ok": True}
    assert await within(rpc.call("getValue")) == "written by the web app"
    assert await within(rpc.call("whoami")) == "alice"
    return client


@pytest_twisted.ensureDeferred
async def test_expressSharesSessionsBothWays(prism, closeStores, redis_url, expressApp):
    client = await _roundTrip(prism, redis_url, expressApp)
    # express-session's own "cookie" member survives Prism's writes.
    keys = await within(client.api.rpc.call("sessionKeys"))
    assert "cookie" in keys and "user" in keys


@pytest_twisted.ensureDeferred
async def test_flaskSharesSessionsBothWays(prism, closeStores, redis_url, flaskApp):
    await _roundTrip(prism, redis_url, flaskApp)


async def _cacheOnKeepsTheConnectionsCopy(prism, redis_url, app):
    codec, options = _codecFor(app)
    cookie = await login(app, "bob")
    served = await servePrism(prism, redis_url, app, codec, cache=True, **options)
    client = await prism.connect(served.url, headers={"Cookie": cookie})
    rpc = client.api.rpc
    assert await within(rpc.call("getValue")) is None  # loaded and cached now
    await http("POST", app.url + "/value", {"value": "changed behind Prism's back"}, cookie=cookie)
    # Cache on: this connection keeps its copy (use sticky sessions, or turn the cache off)…
    assert await within(rpc.call("getValue")) is None
    # …a new connection loads the session again and sees the change.
    other = await prism.connect(served.url, headers={"Cookie": cookie})
    assert await within(other.api.rpc.call("getValue")) == "changed behind Prism's back"


@pytest_twisted.ensureDeferred
async def test_expressCacheOnKeepsTheConnectionsCopy(prism, closeStores, redis_url, expressApp):
    await _cacheOnKeepsTheConnectionsCopy(prism, redis_url, expressApp)


@pytest_twisted.ensureDeferred
async def test_flaskCacheOnKeepsTheConnectionsCopy(prism, closeStores, redis_url, flaskApp):
    await _cacheOnKeepsTheConnectionsCopy(prism, redis_url, flaskApp)


async def _prismIssuedSessionWorksInTheWebApp(prism, redis_url, app):
    """A session Prism creates (and the cookie it sets) is one the web app accepts."""
    codec, options = _codecFor(app)
    served = await servePrism(prism, redis_url, app, codec, cache=True, **options)
    client = await prism.connect(served.url)  # no cookie: Prism issues a session
    assert await within(client.api.rpc.call("setValue", "from a prism session")) is True
    conn = next(iter(served.server.connections.values()))
    cookie = "{}={}".format(served.server.sessionCookie, conn.sessionCookieValue)

    async def seen():
        body, _ = await http("GET", app.url + "/value", cookie=cookie)
        return body

    for _ in range(50):
        body = await seen()
        if body["value"] is not None:
            break
    assert body == {"user": None, "value": "from a prism session"}


@pytest_twisted.ensureDeferred
async def test_expressAcceptsPrismIssuedSessions(prism, closeStores, redis_url, expressApp):
    await _prismIssuedSessionWorksInTheWebApp(prism, redis_url, expressApp)


@pytest_twisted.ensureDeferred
async def test_flaskAcceptsPrismIssuedSessions(prism, closeStores, redis_url, flaskApp):
    await _prismIssuedSessionWorksInTheWebApp(prism, redis_url, flaskApp)


# -- security, with the real apps' cookies


def _tamper(cookie):
    name, _, value = cookie.partition("=")
    last = value[-1]
    return "{}={}{}".format(name, value[:-1], "A" if last != "A" else "B")


async def _refused(prism, redis_url, app, cookie):
    codec, options = _codecFor(app)
    served = await servePrism(prism, redis_url, app, codec, cache=False, **options)
    errors = []
    served.server.events.on("error", errors.append)
    client = await prism.connect(served.url, headers={"Cookie": cookie})
    assert await within(client.api.rpc.call("whoami")) is None  # a fresh, empty session
    conn = next(iter(served.server.connections.values()))
    return conn, errors


@pytest_twisted.ensureDeferred
async def test_tamperedCookiesAreRefused(prism, closeStores, redis_url, expressApp, flaskApp):
    for app in (expressApp, flaskApp):
        cookie = await login(app, "mallory")
        if app.name == "flask" and not app.signed:
            continue  # unsigned: the cookie is the bare id; see the unknown-id test
        conn, errors = await _refused(prism, redis_url, app, _tamper(cookie))
        assert [e.kind for e in errors] == ["session"]
        assert "mallory" not in json.dumps(conn.sessionId)


@pytest_twisted.ensureDeferred
async def test_unsignedCookiesAreRefusedWhenSigningIsRequired(prism, closeStores, redis_url, expressApp):
    cookie = await login(expressApp, "mallory")
    name, _, value = cookie.partition("=")
    sessionId = urllib.parse.unquote(value)[2:].rpartition(".")[0]  # s:<id>.<sig> -> <id>
    for bare in (sessionId, urllib.parse.quote("s:" + sessionId, safe="")):
        conn, errors = await _refused(prism, redis_url, expressApp, "{}={}".format(name, bare))
        assert conn.sessionId != sessionId
        assert [e.kind for e in errors] == ["session"]


@pytest_twisted.ensureDeferred
async def test_unknownIdsAreNeverAdopted(prism, closeStores, redis_url, expressApp, flaskApp):
    """A validly formed (even validly signed) id the store does not know gets a fresh id."""
    from prism.sessioncodecs import sessionCodec

    for app in (expressApp, flaskApp):
        codec, options = _codecFor(app)
        chosen = "chosen-by-the-client-" + secrets.token_hex(4)
        value = sessionCodec(codec, **options).cookieValue(SECRET, chosen)
        cookieName = "connect.sid" if codec == "express" else "session"
        conn, errors = await _refused(prism, redis_url, app, "{}={}".format(cookieName, value))
        assert conn.sessionId != chosen
        assert errors == []  # nothing forged: just unknown


@pytest_twisted.ensureDeferred
async def test_sessionDataIsNotSentToTheClient(prism, closeStores, redis_url, expressApp):
    """The welcome carries a token, never the session's contents."""
    cookie = await login(expressApp, "secret-user-name")
    served = await servePrism(prism, redis_url, expressApp, "express")
    frames = []
    client = prism.client(served.url, headers={"Cookie": cookie})
    original = client._frameReceived

    def record(frame, isBinary=False):
        frames.append(frame)
        return original(frame, isBinary)

    client._frameReceived = record
    await within(client.connect())
    assert await within(client.api.rpc.call("setValue", 1)) is True
    assert frames and not any("secret-user-name" in (f if isinstance(f, str) else f.decode("latin-1")) for f in frames)
