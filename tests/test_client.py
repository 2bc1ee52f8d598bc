"""
The Python client's reconnection: exponential backoff with jitter (checked
on a fake clock over the loopback transport), and over real sockets on
127.0.0.1: reconnecting after the server drops the connection or stops
listening, presenting the session token again, failing pending calls, and
stopping for good on close().
"""

import pytest
import pytest_twisted
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.task import Clock

from conftest import nextEvent, sleep, waitUntil, within
from prism.client import Client
from prism.errors import ConnectionLost
from prism.services.echo import EchoService
from prism.services.rpc import RPCService, withRequest
from prism.testing import PrismTestServer, failureOf, resultOf


@withRequest
def whoami(request):
    return request.connection.sessionId


def never():
    return Deferred()  # a call that is still pending when the connection drops


def rpcServices():
    return {"rpc": RPCService(handlers={"whoami": whoami, "never": never, "add": lambda a, b: a + b})}


# -- backoff on a fake clock, over the loopback transport -------------------------------


class FlakyConnector:
    """Connects to a L{PrismTestServer} while C{up}, else fails like a refused TCP connect."""

    def __init__(self, testServer):
        self.testServer = testServer
        self.up = True
        self.attempts = 0
        self.ends = []

    def __call__(self):
        self.attempts += 1
        if not self.up:
            return fail(ConnectionRefusedError("down"))
        end = self.testServer.connect()
        self.ends.append(end)
        return succeed(end)


def pendingDelays(clock):
    return [round(call.getTime() - clock.seconds(), 6) for call in clock.getDelayedCalls()]


def loopbackClient(**options):
    ts = PrismTestServer(services=rpcServices())
    connector = FlakyConnector(ts)
    options.setdefault("jitter", 0)
    options.setdefault("timeout", None)
    client = Client(connector=connector, reactor=ts.clock, **options)
    resultOf(client.connect())
    return ts, connector, client


def dropServerSide(ts):
    for conn in list(ts.server.connections.values()):
        conn.close(4000, "dropped by the test")


def test_backoff_grows_exponentially_up_to_the_cap_and_resets():
    ts, connector, client = loopbackClient(initialDelay=1.0, factor=2.0, maxDelay=8.0)
    reconnects = []
    client.on("reconnect", reconnects.append)
    clock = ts.clock

    connector.up = False
    dropServerSide(ts)
    assert not client.connected
    seen = []
    for _ in range(6):
        (delay,) = pendingDelays(clock)  # exactly one attempt is ever scheduled
        seen.append(delay)
        clock.advance(delay)
    assert seen == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert connector.attempts == 1 + 6

    connector.up = True
    clock.advance(pendingDelays(clock)[0])
    assert client.connected
    assert len(reconnects) == 1
    assert pendingDelays(clock) == []

    # A successful reconnection resets the backoff.
    dropServerSide(ts)
    assert pendingDelays(clock) == [1.0]


@pytest.mark.parametrize("jitter", [0.0, 0.25, 0.5])
def test_jitter_stays_within_bounds(jitter):
    client = Client(connector=lambda: None, initialDelay=2.0, factor=3.0, maxDelay=60.0, jitter=jitter)
    client._random.seed(1234)
    for attempt in range(8):
        client._attempt = attempt
        base = min(60.0, 2.0 * 3.0**attempt)
        delays = [client.nextDelay() for _ in range(200)]
        assert all(base * (1 - jitter) <= d <= base * (1 + jitter) for d in delays)
        if jitter:
            assert len(set(delays)) > 100  # actually randomised
            assert min(delays) < base * (1 - jitter / 2) and max(delays) > base * (1 + jitter / 2)


def test_backoff_survives_huge_attempt_counts():
    client = Client(connector=lambda: None, initialDelay=0.5, maxDelay=30.0, jitter=0)
    client._attempt = 5000
    assert client.nextDelay() == 30.0


def test_pending_calls_fail_with_connection_lost_and_reconnect_keeps_session():
    ts, connector, client = loopbackClient(initialDelay=0.5)
    sessionId = resultOf(client.api.rpc.call("whoami"))
    token = client.session
    pending = client.api.rpc.call("never")
    closes = []
    client.on("close", lambda code, reason: closes.append(code))

    dropServerSide(ts)
    failureOf(pending, ConnectionLost)
    assert closes == [4000]
    failureOf(client.api.rpc.call("add", 1, 2), ConnectionLost)  # while disconnected

    reconnected = []
    client.on("reconnect", reconnected.append)
    ts.clock.advance(0.5)
    assert len(reconnected) == 1
    assert client.session == token
    assert resultOf(client.api.rpc.call("whoami")) == sessionId


def test_connection_lost_before_the_welcome_schedules_one_attempt():
    ts, connector, client = loopbackClient(initialDelay=1.0)
    clock = ts.clock

    class Silent:
        """A link that accepts the hello and then drops, never welcoming."""

        onFrame = onClose = None

        def send(self, frame, isBinary=False):
            pass

        def close(self, code=1000, reason=""):
            pass

    silent = Silent()
    client._connector = lambda: succeed(silent)
    dropServerSide(ts)
    clock.advance(1.0)  # the first attempt links and sends its hello...
    silent.onClose(1006, "lost")  # ...then loses the connection
    assert pendingDelays(clock) == [2.0]  # one retry, not two

    client._connector = connector
    clock.advance(2.0)
    assert client.connected


def test_close_stops_reconnecting():
    ts, connector, client = loopbackClient(initialDelay=1.0)
    dropServerSide(ts)
    assert len(pendingDelays(ts.clock)) == 1
    client.close()
    assert pendingDelays(ts.clock) == []
    ts.clock.advance(100)
    assert connector.attempts == 1
    assert not client.connected


def test_close_while_connecting_does_not_connect():
    ts = PrismTestServer(services=rpcServices())
    linking = Deferred()
    client = Client(connector=lambda: linking, reactor=ts.clock)
    connected = client.connect()
    client.close()
    end = ts.connect()
    linking.callback(end)
    failureOf(connected, ConnectionLost)
    assert not client.connected
    assert not end.open
    assert ts.server.connections == {}


# -- over real sockets ------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_reconnects_after_server_side_close(prism):
    served = await prism.serve(rpcServices())
    client = await prism.connect(served.url, initialDelay=0.05, jitter=0.1)
    sessionId = await within(client.api.rpc.call("whoami"))
    token = client.session
    pending = client.api.rpc.call("never")

    reconnected = nextEvent(client, "reconnect")
    (conn,) = served.server.connections.values()
    conn.close(4000, "kicked")

    with pytest.raises(ConnectionLost):
        await within(pending)
    welcome = await reconnected
    assert welcome["session"] == token
    assert client.session == token
    assert await within(client.api.rpc.call("whoami")) == sessionId
    (newConn,) = served.server.connections.values()
    assert newConn is not conn and newConn.sessionId == sessionId


class RecordingClient(Client):
    """Records every reconnection delay it schedules."""

    def __init__(self, *args, **kwargs):
        Client.__init__(self, *args, **kwargs)
        self.delays = []

    def nextDelay(self):
        delay = Client.nextDelay(self)
        self.delays.append(delay)
        return delay


@pytest_twisted.ensureDeferred
async def test_reconnects_when_the_server_listens_again_on_the_same_port(prism, reactor):
    served = await prism.serve(rpcServices())
    client = RecordingClient(served.url, reactor=reactor, timeout=5, initialDelay=0.02, factor=2.0, jitter=0)
    prism._clients.append(client)
    await within(client.connect())
    sessionId = await within(client.api.rpc.call("whoami"))

    # Go away: stop listening and drop every connection.
    await within(served.port.stopListening())
    for conn in list(served.server.connections.values()):
        conn.close(1001, "restarting")
    await waitUntil(lambda: len(client.delays) >= 4)  # refused attempts, backing off
    assert not client.connected
    assert client.delays[:4] == [0.02, 0.04, 0.08, 0.16]

    reconnected = nextEvent(client, "reconnect")
    port = prism.track(await within(served.server.listen("tcp:{}:interface=127.0.0.1".format(served.portNumber))))
    assert port.getHost().port == served.portNumber
    await reconnected
    assert await within(client.api.rpc.call("whoami")) == sessionId

    # The backoff starts over after a successful reconnection.
    before = len(client.delays)
    again = nextEvent(client, "reconnect")
    (conn,) = served.server.connections.values()
    conn.close(4000, "again")
    await again
    assert client.delays[before:] == [0.02]


@pytest_twisted.ensureDeferred
async def test_close_stops_reconnecting_over_sockets(prism):
    served = await prism.serve({"echo": EchoService()})
    client = await prism.connect(served.url, initialDelay=0.2, jitter=0)
    closed = nextEvent(client, "close")
    (conn,) = served.server.connections.values()
    conn.close(4000, "bye")
    await closed
    await waitUntil(lambda: client._retry is not None)  # scheduled right after the close event
    assert client._retry.active()
    client.close()
    assert client._retry is None
    await sleep(0.4)
    assert not client.connected
    assert served.server.connections == {}


def test_clock_drives_the_request_timeout():
    from prism.errors import CallTimeout

    clock = Clock()
    ts = PrismTestServer(services=rpcServices(), clock=clock)
    client = ts.client(timeout=3.0)
    d = client.api.rpc.call("never")
    clock.advance(2.9)
    assert not d.called
    clock.advance(0.2)
    failureOf(d, CallTimeout)
    assert resultOf(client.api.rpc.call("add", 2, 3)) == 5
