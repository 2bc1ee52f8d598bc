"""
Fixtures for the real-socket tests (STYLE.md section 6, layer 4).

pytest-twisted runs the global reactor; every fixture here takes it *inside*
the fixture (pytest-twisted has installed it by then), listens only on
C{tcp:0:interface=127.0.0.1}, and cleans up in teardown: clients are closed,
servers stopped, listening ports closed. pytest-twisted has no dirty-reactor
check and no default timeout, so every wait goes through L{within}.
"""

import platform

import pytest
import pytest_twisted
from twisted.internet.defer import Deferred, DeferredList, ensureDeferred, succeed
from twisted.internet.protocol import Protocol

PYPY = platform.python_implementation() == "PyPy"

# The headless-Chromium tests drive the page from Node.js; they say nothing
# about the interpreter, so only the CPython run collects them (the header
# below says so in every PyPy run's output). collect_ignore covers directory
# runs; a file named on the command line is collected anyway, so its tests
# are deselected too (and a run of nothing else still passes).
BROWSER_TESTS = (
    "test_browser.py",
    "test_browser_fallback.py",
    "test_sockjs_browser.py",
    "test_todo_example.py",
    "test_status_browser.py",
)
collect_ignore = list(BROWSER_TESTS) if PYPY else []


def pytest_report_header(config):
    if PYPY:
        return "browser tests: {} are not collected under PyPy (the CPython run covers them)".format(
            ", ".join("tests/" + name for name in BROWSER_TESTS)
        )
    return None


def pytest_collection_modifyitems(config, items):
    if not PYPY:
        return
    browser = [item for item in items if item.path.name in BROWSER_TESTS]
    if browser:
        config.hook.pytest_deselected(items=browser)
        items[:] = [item for item in items if item.path.name not in BROWSER_TESTS]
        config._prismOnlyBrowser = not items


def pytest_sessionfinish(session, exitstatus):
    if getattr(session.config, "_prismOnlyBrowser", False) and exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
        session.exitstatus = pytest.ExitCode.OK


WAIT = 5.0
"""Seconds any single wait in these tests may take."""


def _reactor():
    from twisted.internet import reactor  # installed by pytest-twisted by now

    return reactor


def within(d, seconds=WAIT):
    """Bound a wait: C{d} fails with L{twisted.internet.defer.TimeoutError}."""
    if not isinstance(d, Deferred):
        d = ensureDeferred(d)
    return d.addTimeout(seconds, _reactor())


def sleep(seconds):
    """@return: a L{Deferred} firing after C{seconds}."""
    from twisted.internet.task import deferLater

    return deferLater(_reactor(), seconds, lambda: None)


async def waitUntil(predicate, seconds=WAIT, step=0.01):
    """Poll C{predicate()} until it is true; fail after C{seconds}."""
    reactor = _reactor()
    deadline = reactor.seconds() + seconds
    while not predicate():
        if reactor.seconds() > deadline:
            raise AssertionError("condition not met within {} s: {!r}".format(seconds, predicate))
        await sleep(step)


def nextEvent(emitter, event):
    """
    @param emitter: anything with C{on(event, handler)} and C{off(…)} (a
        L{prism.client.Client} or a server's C{events}).
    @return: a L{Deferred} firing with the arguments of the next C{event}
        (one value, or a tuple of several), bounded by L{within}.
    """
    d = Deferred()

    def handler(*args):
        emitter.off(event, handler)
        if not d.called:
            d.callback(args[0] if len(args) == 1 else args)

    emitter.on(event, handler)
    return within(d)


class Served:
    """A Prism server listening on 127.0.0.1: C{server}, C{port}, C{url}."""

    def __init__(self, server, port, path="/"):
        self.server = server
        self.port = port
        self.portNumber = port.getHost().port
        self.host = "127.0.0.1:{}".format(self.portNumber)
        self.url = "ws://{}{}".format(self.host, path)


class Harness:
    """
    Starts servers and clients for one test and tears all of them down.
    """

    def __init__(self):
        self.reactor = _reactor()
        self._servers = []
        self._ports = []
        self._clients = []
        self._raw = []

    async def serve(self, services=None, transport=None, **serverOptions):
        """
        Start a L{prism.server.Server} with C{services} (C{{name: service}},
        in order) on the WebSocket transport (C{transport} may be a
        L{WebSocketTransport} or a dict of its options).

        @return: a L{Served}.
        """
        from prism.server import Server
        from prism.transports.websocket import WebSocketTransport

        if transport is None or isinstance(transport, dict):
            transport = WebSocketTransport(**(transport or {}))
        serverOptions.setdefault("secret", b"prism-test-secret")
        server = Server(transport=transport, reactor=self.reactor, **serverOptions)
        for name, service in (services or {}).items():
            server.service(name, service)
        self._servers.append(server)
        port = await within(server.listen("tcp:0:interface=127.0.0.1:backlog=1024"))
        self._ports.append(port)
        return Served(server, port)

    def track(self, port):
        """Stop listening on C{port} in teardown."""
        self._ports.append(port)
        return port

    def client(self, url, **options):
        """@return: an unconnected L{prism.client.Client}, closed in teardown."""
        from prism.client import Client

        options.setdefault("reactor", self.reactor)
        options.setdefault("timeout", WAIT)
        client = Client(url, **options)
        self._clients.append(client)
        return client

    async def connect(self, url, **options):
        """@return: a L{prism.client.Client} that has completed the handshake."""
        client = self.client(url, **options)
        await within(client.connect())
        return client

    async def raw(self, port, request):
        """
        Open a raw TCP connection to C{port} on 127.0.0.1 and send
        C{request} (bytes).

        @return: a connected L{RawTCP}.
        """
        from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

        proto = RawTCP()
        await within(connectProtocol(TCP4ClientEndpoint(self.reactor, "127.0.0.1", port), proto))
        self._raw.append(proto)
        proto.transport.write(request)
        return proto

    async def cleanup(self):
        for client in self._clients:
            closed = None
            if client._link is not None:
                closed = nextEvent(client, "close")
            client.close()
            if closed is not None:
                await DeferredList([closed], consumeErrors=True)
        for proto in self._raw:
            if proto.transport is not None and not proto.lost.called:
                proto.transport.abortConnection()
        waits = [server.stop() for server in self._servers]
        waits += [port.stopListening() for port in self._ports]
        waits = [within(d) for d in waits if isinstance(d, Deferred)]
        await DeferredList(waits, consumeErrors=True)
        leftover = [c for server in self._servers for c in server.connections.values()]
        for conn in leftover:  # never leak a socket into the next test
            protocol = getattr(conn._link.close, "__self__", None)
            if protocol is not None and protocol.transport is not None:
                protocol.transport.abortConnection()


class RawTCP(Protocol):
    """
    A TCP client that records everything it receives and answers nothing:
    used to read the HTTP response of a WebSocket handshake, and as a peer
    that never answers pings.
    """

    def __init__(self):
        self.data = b""
        self.reason = None
        self.lost = Deferred()
        self._waiting = []

    def dataReceived(self, data):
        self.data += data
        waiting, self._waiting = self._waiting, []
        for predicate, d in waiting:
            if predicate(self.data):
                d.callback(self.data)
            else:
                self._waiting.append((predicate, d))

    def connectionLost(self, reason):
        self.reason = reason
        if not self.lost.called:
            self.lost.callback(None)
        for _, d in self._waiting:
            d.errback(reason)
        self._waiting = []

    def until(self, predicate):
        """@return: a bounded L{Deferred} firing with all data once C{predicate(data)}."""
        if predicate(self.data):
            return succeed(self.data)
        d = Deferred()
        self._waiting.append((predicate, d))
        return within(d)

    async def response(self):
        """@return: C{(status, {lowercased header: [values]})} of the HTTP response."""
        data = await self.until(lambda data: b"\r\n\r\n" in data)
        head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
        status = int(head[0].split()[1])
        headers = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers.setdefault(name.strip().lower(), []).append(value.strip())
        return status, headers


def handshakeRequest(host, path="/", origin=None, cookie=None):
    """@return: the bytes of a WebSocket opening handshake request."""
    lines = [
        "GET {} HTTP/1.1".format(path),
        "Host: {}".format(host),
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version: 13",
    ]
    if origin is not None:
        lines.append("Origin: {}".format(origin))
    if cookie is not None:
        lines.append("Cookie: {}".format(cookie))
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


@pytest_twisted.async_yield_fixture
async def prism():
    """A L{Harness}: servers, clients and raw sockets, all torn down."""
    harness = Harness()
    try:
        yield harness
    finally:
        await harness.cleanup()


@pytest.fixture
def reactor():
    return _reactor()


@pytest.fixture(scope="session")
def redis_url():
    """
    The private Redis that scripts/test starts on a free port
    (PRISM_TEST_REDIS_URL, e.g. redis://127.0.0.1:PORT). Tests that need a
    real Redis fail loudly without it; they never skip. Tests must use their
    own key prefix (or FLUSHDB only a database number they own).
    """
    import os

    url = os.environ.get("PRISM_TEST_REDIS_URL")
    if not url:
        pytest.fail(
            "PRISM_TEST_REDIS_URL is not set: run the suite with scripts/test, which starts a private "
            "redis-server, or export PRISM_TEST_REDIS_URL=redis://127.0.0.1:PORT"
        )
    return url
