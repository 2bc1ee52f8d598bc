"""
Backpressure: a client that stops reading while the server pushes to it is
closed as a slow consumer (4008) once its queue passes maxOutgoingBuffer;
what the server holds for it stays bounded, pushes never block, and a client
that reads keeps up and stays connected.
"""

import socket

import pytest_twisted
from twisted.internet.protocol import Protocol

from conftest import handshakeRequest, nextEvent, sleep, waitUntil, within
from prism.services.echo import EchoService
from prism.transports.websocket import SLOW_CONSUMER

KiB = 1024
LIMIT = 256 * KiB


class Reader(Protocol):
    """Counts what arrives (a fast reader); C{stop()} stops reading."""

    def __init__(self):
        self.received = 0

    def dataReceived(self, data):
        self.received += len(data)


async def _connect(prism, served, reader):
    from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

    await within(connectProtocol(TCP4ClientEndpoint(prism.reactor, "127.0.0.1", served.portNumber), reader))
    prism._raw.append(_Closable(reader))
    reader.transport.write(handshakeRequest(served.host))
    await waitUntil(lambda: reader.received > 0)


class _Closable:
    """Lets the harness abort our readers in teardown."""

    def __init__(self, proto):
        self.transport = proto.transport
        self.lost = type("L", (), {"called": False})()


def _buffered(protocol):
    """Bytes waiting in a Twisted TCP transport's write buffer."""
    t = protocol.transport
    return len(getattr(t, "dataBuffer", b"")) + getattr(t, "_tempDataLen", 0)


@pytest_twisted.ensureDeferred
async def test_slow_consumer_is_closed_and_memory_stays_bounded(prism, reactor):
    served = await prism.serve({"echo": EchoService()}, transport={"maxOutgoingBuffer": LIMIT})
    server = served.server
    slow, fast = Reader(), Reader()
    await _connect(prism, served, slow)
    # Stop reading, with a small receive buffer so the kernel holds little.
    slow.transport.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.transport.pauseProducing()
    await _connect(prism, served, fast)
    await waitUntil(lambda: len(server.connections) == 2)
    conns = list(server.connections.values())
    protocols = {conn.id: conn._link.close.__self__ for conn in conns}
    probe = await prism.connect(served.url, reconnect=False)

    frame = "1|" + "x" * (64 * KiB)
    closed = nextEvent(server.events, "disconnect")
    pushed = 0
    peak = 0
    longest = 0.0
    while pushed < 64 * 1024 * KiB and not closed.called:
        started = reactor.seconds()
        for conn in conns:
            conn.sendFrame(frame)  # what a service does: never blocks
        longest = max(longest, reactor.seconds() - started)
        pushed += len(frame)
        for protocol in protocols.values():
            peak = max(peak, _buffered(protocol))
        await sleep(0)
    conn, code, reason = await closed
    slowProtocol = protocols[conn.id]
    print("slow consumer closed after {} KiB pushed; largest write buffer {} KiB; limit {} KiB".format(
        pushed // KiB, peak // KiB, LIMIT // KiB))
    assert code == SLOW_CONSUMER and reason == "slow consumer"
    assert slowProtocol.transport is not None and slowProtocol._prismProducer.paused
    # Bounded: the transport's own 64 KiB buffer, one frame, and the limit.
    assert peak <= LIMIT + 2 * (64 * KiB + 16), peak
    assert pushed > 4 * LIMIT
    assert longest < 0.05
    # The fast reader was not closed, and the others are served as usual.
    assert list(server.connections) != [] and conns[1].open
    assert await within(probe.api.echo.request("unaffected")) == "unaffected"
    await waitUntil(lambda: fast.received >= pushed * 0.9, seconds=10)
    # More pushes to the closed connection are discarded, not queued.
    before = _buffered(slowProtocol)
    for _ in range(10):
        conn.sendFrame(frame)
    assert _buffered(slowProtocol) == before
