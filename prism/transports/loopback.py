"""
The C{loopback} transport: client and server in one process, no sockets.

Frames are delivered synchronously, in order, through a small queue per
direction (a frame sent while one is being delivered waits its turn instead
of recursing). It is the transport of L{prism.testing} and of the in-process
benchmarks — the equivalent of the original's mock transport::

    transport = LoopbackTransport()
    server = Server(transport=transport)
    server.start()
    end = transport.connect(server)         # a raw client end
    end.onFrame = lambda frame, isBinary: print(frame)
    end.send('01|["hello",{}]')
"""

from collections import deque

from zope.interface import implementer

from prism.errors import PrismConfigError
from prism.interfaces import ITransport, ITransportConnection

__all__ = ["LoopbackTransport", "LoopbackEnd"]


class _Pipe:
    """One direction: delivers frames to a target, never re-entrantly."""

    __slots__ = ("target", "_queue", "_busy")

    def __init__(self):
        self.target = None
        self._queue = deque()
        self._busy = False

    def __call__(self, frame, isBinary):
        if self._busy:
            self._queue.append((frame, isBinary))
            return
        self._busy = True
        try:
            self.target(frame, isBinary)
            queue = self._queue
            while queue:
                f, b = queue.popleft()
                self.target(f, b)
        finally:
            self._busy = False


class LoopbackEnd:
    """
    The client end of a loopback connection.

    @ivar onFrame: called with C{(frame, isBinary)} for every frame the server
        sends.
    @ivar onClose: called with C{(code, reason)} when the connection closes.
    """

    def __init__(self):
        self.onFrame = None
        self.onClose = None
        self.open = True
        self._toServer = _Pipe()
        self._server = None

    def send(self, frame, isBinary=False):
        """Send one frame to the server."""
        if self.open:
            self._toServer(frame, isBinary)

    def close(self, code=1000, reason=""):
        """Close from the client side."""
        if not self.open:
            return
        self.open = False
        self._server._closed(code, reason)
        if self.onClose is not None:
            self.onClose(code, reason)


@implementer(ITransportConnection)
class _ServerEnd:
    def __init__(self, end, peer):
        self.peer = peer
        self._end = end
        self._toClient = _Pipe()
        self._toClient.target = self._deliver
        self.write = self._toClient
        self.connection = None

    def writePrepared(self, prepared):
        """Fan-out (L{prism.server.PreparedFrame}): the frame as it is."""
        self._toClient(prepared.frame, prepared.isBinary)

    def _deliver(self, frame, isBinary):
        end = self._end
        if end.open and end.onFrame is not None:
            end.onFrame(frame, isBinary)

    def close(self, code=1000, reason=""):
        end = self._end
        if not end.open:
            return
        end.open = False
        self._closed(code, reason)
        if end.onClose is not None:
            end.onClose(code, reason)

    def _closed(self, code, reason):
        if self.connection is not None:
            self.connection.connectionLost(code, reason)


@implementer(ITransport)
class LoopbackTransport:
    """In-process transport; see the module docstring."""

    name = "loopback"

    def __init__(self):
        pass

    def connect(self, server, peer="loopback", cookie=None, headers=None):
        """
        Open a connection to C{server}.

        @param cookie: a session token, as a browser's cookie would carry it.
        @return: the client's L{LoopbackEnd}.
        """
        end = LoopbackEnd()
        serverEnd = _ServerEnd(end, peer)
        end._server = serverEnd
        conn = server.connectionMade(serverEnd, self.name, peer, cookie, headers)
        serverEnd.connection = conn
        end._toServer.target = conn.frameReceived
        end.connection = conn
        return end

    def listen(self, server, endpoint):
        raise PrismConfigError("the loopback transport does not listen on sockets; use connect()")

    def resource(self, server):
        return None

    def clientScript(self):
        """The loopback transport is in-process only: no JavaScript client half."""
        return None

    def browserAssets(self):
        return []
