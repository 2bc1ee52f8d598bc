"""
Test helpers for Prism and for authors of external services.

Run a real Prism server (every protocol layer: framing, middleware, sessions,
services, the Python client) in memory, without sockets or a running reactor,
with time driven by a fake clock::

    from prism.testing import PrismTestServer, resultOf

    def test_greeter():
        ts = PrismTestServer(services={"greeter": GreeterService()})
        client = ts.client()
        assert resultOf(client.api.greeter.request("Ada")) == "Hello, Ada"

A raw client sends and records frames by hand, for wire-level tests::

    raw = ts.raw()
    raw.hello()
    raw.send('11|["add",2,3]')
    assert raw.frames[-1] == "11|5"
"""

from twisted.internet.defer import Deferred, succeed
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from zope.interface.verify import verifyObject

from prism.client import Client
from prism.server import Server
from prism.sessions import MemorySessionStore
from prism.transports.loopback import LoopbackTransport

__all__ = [
    "PrismTestServer",
    "RawClient",
    "resultOf",
    "failureOf",
    "verifyPlugin",
    "MemorySessionStore",
    "MemoryReactorClock",
    "EventRecorder",
]


def resultOf(d):
    """
    @return: the result a L{Deferred} has already fired with.
    @raise Exception: the failure's exception, if it failed;
        C{AssertionError} if it has not fired.
    """
    if not isinstance(d, Deferred):
        return d
    results = []
    d.addBoth(results.append)
    if not results:
        raise AssertionError("{!r} has not fired".format(d))
    result = results[0]
    if isinstance(result, Failure):
        result.raiseException()
    return result


def failureOf(d, *expected):
    """
    @return: the L{Failure} a L{Deferred} has already failed with, checking
        it is one of C{expected} (when given).
    """
    results = []
    d.addBoth(results.append)
    if not results:
        raise AssertionError("{!r} has not fired".format(d))
    result = results[0]
    if not isinstance(result, Failure):
        raise AssertionError("{!r} succeeded with {!r}".format(d, result))
    if expected and not result.check(*expected):
        raise AssertionError("{!r} failed with {!r}, not {!r}".format(d, result.value, expected))
    return result


def verifyPlugin(obj, interface):
    """Check C{obj} provides C{interface} completely (zope's verifyObject)."""
    return verifyObject(interface, obj)


class EventRecorder:
    """Records every emission of some server events: C{recorder.events}."""

    def __init__(self, server, *names):
        self.events = []
        for name in names:
            server.events.on(name, lambda *args, _name=name: self.events.append((_name,) + args))

    def named(self, name):
        return [e[1:] for e in self.events if e[0] == name]


class RawClient:
    """
    A loopback connection driven frame by frame.

    @ivar frames: every frame the server sent, in order.
    @ivar closed: C{(code, reason)} once closed, else L{None}.
    """

    def __init__(self, end):
        self.end = end
        self.frames = []
        self.closed = None
        end.onFrame = lambda frame, isBinary: self.frames.append(frame)
        end.onClose = lambda code, reason: setattr(self, "closed", (code, reason))

    @property
    def connection(self):
        return self.end.connection

    def send(self, frame, isBinary=None):
        if isBinary is None:
            isBinary = isinstance(frame, bytes)
        self.end.send(frame, isBinary)

    def hello(self, session=None):
        """Perform the handshake; @return: the welcome frame."""
        import json

        body = {"v": 1}
        if session:
            body["session"] = session
        self.send("01|" + json.dumps(["hello", body]))
        return self.frames[-1]

    def close(self, code=1000, reason=""):
        self.end.close(code, reason)


class PrismTestServer:
    """
    A started L{Server} on the loopback transport and a fake clock.

    @param services: C{{name: service}} to register, in order.
    @param middleware: middleware to C{use()}, in order.
    @param serverOptions: passed to L{Server} (C{debug}, C{sessionStore}, …).
    @ivar server: the L{Server}.
    @ivar clock: the L{MemoryReactorClock}; C{clock.advance(s)} drives timers.
    @ivar errors: every C{error} event's L{prism.server.ErrorEvent}.
    """

    def __init__(self, services=None, middleware=(), clock=None, **serverOptions):
        self.clock = clock if clock is not None else MemoryReactorClock()
        self.transport = LoopbackTransport()
        serverOptions.setdefault("secret", b"prism-testing-secret")
        self.server = Server(transport=self.transport, reactor=self.clock, **serverOptions)
        if "sessionStore" not in serverOptions:
            self.server.sessionStore = MemorySessionStore(reactor=self.clock)
        for name, service in (services or {}).items():
            self.server.service(name, service)
        for step in middleware:
            self.server.use(step)
        self.errors = []
        self.server.events.on("error", self.errors.append)
        self.api = self.server.start()

    def connect(self, cookie=None, peer="loopback"):
        """@return: a raw L{prism.transports.loopback.LoopbackEnd}."""
        return self.transport.connect(self.server, peer=peer, cookie=cookie)

    def raw(self, cookie=None, peer="loopback"):
        """@return: a L{RawClient} (not yet handshaken)."""
        return RawClient(self.connect(cookie, peer))

    def client(self, cookie=None, **options):
        """
        @return: a connected L{prism.client.Client} (the handshake has run).
        """
        options.setdefault("reactor", self.clock)
        client = Client(connector=lambda: succeed(self.connect(cookie)), **options)
        resultOf(client.connect())
        return client

    def stop(self):
        return resultOf(self.server.stop())
