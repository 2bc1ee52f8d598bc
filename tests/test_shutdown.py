"""
Graceful shutdown: clients are told the server is going away, new requests
are refused, requests in flight finish (their replies arrive before the
close), up to a timeout; then connections close with 1001. In process, and
with the real C{twistd} on SIGTERM.
"""

import signal

import pytest_twisted
from twisted.internet.task import deferLater

from conftest import nextEvent, waitUntil, within
from prism.errors import ConnectionLost, RemoteError
from prism.services.rpc import RPCService
from test_tap import Collect, _env, run  # noqa: F401  (the run fixture)


@pytest_twisted.ensureDeferred
async def test_stop_finishes_calls_in_flight(prism, reactor):
    handlers = {"slow": lambda x: deferLater(reactor, 0.3, lambda: x * 2), "fast": lambda: 1}
    served = await prism.serve({"rpc": RPCService(handlers)})
    client = await prism.connect(served.url, reconnect=False)
    goingAway = []
    client.on("going_away", goingAway.append)
    closed = nextEvent(served.server.events, "disconnect")
    pending = client.api.rpc.call("slow", 21)
    await waitUntil(lambda: served.server._inflight == 1)
    stopped = served.server.stop()
    await waitUntil(lambda: goingAway)
    refused = client.api.rpc.call("fast")
    try:
        await within(refused)
    except RemoteError as e:
        assert e.kind == "going_away"
    else:
        raise AssertionError("a call during the drain was accepted")
    assert await within(pending) == 42  # answered before the close
    await within(stopped)
    conn, code, reason = await closed
    assert code == 1001


@pytest_twisted.ensureDeferred
async def test_stop_gives_up_on_calls_after_the_timeout(prism, reactor):
    from twisted.internet.defer import Deferred

    never = Deferred()
    served = await prism.serve({"rpc": RPCService({"never": lambda: never})})
    client = await prism.connect(served.url, reconnect=False)
    pending = client.api.rpc.call("never")
    await waitUntil(lambda: served.server._inflight == 1)
    started = reactor.seconds()
    await within(served.server.stop(timeout=0.2))
    assert 0.2 <= reactor.seconds() - started < 2
    try:
        await within(pending)
    except ConnectionLost:
        pass
    never.callback(None)  # late: nobody listens, nothing breaks
    assert served.server._inflight == 0


SLOW_HANDLERS = (
    "from twisted.internet.task import deferLater\n\n"
    "def slow(x):\n"
    "    from twisted.internet import reactor\n"
    "    return deferLater(reactor, 1.0, lambda: x * 2)\n"
)


@pytest_twisted.ensureDeferred
async def test_twistd_sigterm_finishes_calls_in_flight(prism, run, tmp_path):  # noqa: F811
    (tmp_path / "shutdown_handlers.py").write_text(SLOW_HANDLERS)
    path = tmp_path / "prism.toml"
    path.write_text(
        'pythonpath = ["."]\nlisten = "tcp:0:interface=127.0.0.1"\nshutdown_timeout = 5\n'
        '[[services]]\nname = "rpc"\nhandlers = "shutdown_handlers"\n'
    )
    proto, transport = run("twistd", "-n", "--pidfile=", "prism", "--config", str(path))
    await waitUntil(lambda: proto.listeningPort() is not None or proto.ended.called, seconds=20)
    assert not proto.ended.called, proto.text
    client = await prism.connect("ws://127.0.0.1:{}/".format(proto.listeningPort()), reconnect=False)
    goingAway = []
    client.on("going_away", goingAway.append)
    pending = client.api.rpc.call("shutdown_handlers.slow", 4)
    await waitUntil(lambda: proto.listeningPort() is not None)
    from conftest import sleep

    await sleep(0.2)  # the call is in flight
    transport.signalProcess("TERM")
    assert await within(pending, 10) == 8
    assert goingAway == ["server shutting down"]
    await within(proto.ended, 15)
    assert proto.exitCode == 0 or (proto.exitCode is None and proto.signal == signal.SIGTERM), proto.text
    assert "Main loop terminated" in proto.text
    assert "Traceback (most recent call last)" not in proto.text, proto.text
    assert "still in flight" not in proto.text
    await waitUntil(lambda: not client.connected)


def test_stopWaitsForSessionWritesInFlight():
    """
    A session write started by a handler before the stop (and not yet
    acknowledged by the store) is waited for: stop() fires only after it.
    """
    from twisted.internet.defer import Deferred

    from prism.services.rpc import RPCService, withRequest
    from prism.sessions import MemorySessionStore
    from prism.testing import PrismTestServer, resultOf

    class SlowStore(MemorySessionStore):
        def __init__(self, **kw):
            MemorySessionStore.__init__(self, **kw)
            self.pending = []

        def save(self, sessionId, data):
            d = Deferred()
            self.pending.append((d, sessionId, dict(data)))
            return d

    @withRequest
    def remember(request, value):
        request.session["value"] = value
        return "ok"

    ts = PrismTestServer(services={"rpc": RPCService(handlers={"remember": remember}, sessions=True)})
    store = SlowStore(reactor=ts.clock)
    ts.server.sessionStore = store
    client = ts.client()
    assert resultOf(client.api.rpc.call("remember", 42)) == "ok"
    writes = [p for p in store.pending if p[2].get("value") == 42]
    assert writes, store.pending
    done = []
    ts.server.stop().addBoth(done.append)
    assert done == []  # still waiting for the store
    for d, _, _ in list(store.pending):
        if not d.called:
            d.callback(None)
    assert done == [None]
