"""
The C{websocket} transport: native WebSocket through Autobahn, on any Twisted
endpoint string (C{tcp:3001}, C{ssl:…}, C{unix:…}) or mounted as a
L{twisted.web} resource.

Autobahn's defaults are permissive (unlimited payloads, any origin, no
pings); this transport replaces each with a safe default:

  - C{maxMessageSize} (1 MiB): larger messages get a C{too_large} error and
    are dropped, the connection carries on; messages beyond twice that size
    (or 64 KiB more, whichever is larger) close the connection with 1009
    before they are buffered whole. The check applies to the decompressed
    message.
  - C{allowedOrigins}: by default only same-origin browsers (the C{Origin}
    header's host equals the C{Host} header) and clients that send no
    C{Origin} (non-browser clients); a list of patterns (C{fnmatch}, e.g.
    C{"https://*.example.com"}; C{"*"} allows all) replaces that.
  - server pings every C{pingInterval} seconds, closing the connection when
    no pong arrives within C{pingTimeout}. Prism runs these timers itself on
    the server's reactor: Autobahn's auto-ping goes through txaio's batched
    timer, which quantizes every deadline down to a whole second (txaio
    C{_BatchedTimer.call_later}: C{int(now + delay)}), so a sub-second
    timeout fired before any pong could arrive, and a 20 s one could fire
    after 19; it also ignored the server's (possibly fake) reactor.
  - permessage-deflate is off unless C{compression} is true.
"""

import secrets
from fnmatch import fnmatchcase
from urllib.parse import urlsplit

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.types import ConnectionDeny
from twisted.logger import Logger
from zope.interface import implementer

from prism.errors import NoSuchSession, PrismConfigError
from prism.sessions import newSessionId
from prism.interfaces import ITransport, ITransportConnection

__all__ = ["WebSocketTransport"]

TOO_BIG = 1009


def parseCookies(header):
    """@return: a C{{name: value}} dict from a C{Cookie} header."""
    cookies = {}
    for part in header.split(";"):
        name, eq, value = part.strip().partition("=")
        if eq and name and name not in cookies:
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            cookies[name] = value
    return cookies


def closeProtocol(protocol, code=1000, reason=""):
    """
    Start the closing handshake of an Autobahn protocol with any valid close
    code. Autobahn's public C{sendClose} refuses everything but 1000 and
    3000-4999, yet a server must send 1001 (going away) and 1009 (too big);
    C{sendCloseFrame} is the documented-as-internal method that takes them.
    A connection still in its opening handshake is dropped instead.
    """
    from autobahn.util import encode_truncate
    from autobahn.websocket.protocol import WebSocketProtocol

    if protocol.state == WebSocketProtocol.STATE_OPEN:
        protocol.sendCloseFrame(
            code=code, reasonUtf8=encode_truncate(reason, 123) if reason else None, isReply=False
        )
    elif protocol.state != WebSocketProtocol.STATE_CLOSED and protocol.transport is not None:
        protocol.dropConnection(abort=True)


def _peer(transport):
    address = transport.getPeer()
    host = getattr(address, "host", None)
    if host is None:
        return "unix"
    return "{}:{}".format(host, address.port)


@implementer(ITransportConnection)
class _Link:
    __slots__ = ("peer", "write", "close")

    def __init__(self, protocol, peer):
        self.peer = peer
        self.write = protocol._prismWrite
        self.close = protocol._prismClose


class PrismWebSocketProtocol(WebSocketServerProtocol):
    _prismLog = Logger()  # not "log": that would replace Autobahn's (no-op) debug logger and cost ~15% per frame
    connection = None
    _pingCall = None
    _pingPayload = None

    def onConnect(self, request):
        factory = self.factory
        transport = factory.prismTransport
        origin = request.headers.get("origin")
        if origin is not None and not transport.originAllowed(origin, request.headers.get("host", "")):
            factory.prismServer._error(
                "origin", "refused a connection from origin {!r}".format(origin), None, None, None, None, send=False
            )
            raise ConnectionDeny(ConnectionDeny.FORBIDDEN, "origin not allowed")
        server = factory.prismServer
        token = None
        cookie = request.headers.get("cookie")
        if cookie:
            token = parseCookies(cookie).get(server.sessionCookie)
        peer = _peer(self.transport)
        self.connection = conn = server.connectionMade(_Link(self, peer), "websocket", peer, token, request.headers)
        if not server.usesSessions:
            return None
        if conn.cookieIssued:
            return self._setCookie(conn)
        # The cookie is genuine, but its session may be gone (expired, or
        # never stored): then issue a new one and replace the cookie now,
        # while there is still an HTTP response to carry it. Otherwise the
        # browser would keep presenting the dead id, and each of its
        # connections would get a session of its own. (onConnect may return
        # a Deferred; Autobahn completes the handshake when it fires.)
        def missing(f):
            f.trap(NoSuchSession)
            if conn.open and not conn.welcomed:
                conn.sessionId = newSessionId()
                conn._newSession = True
                conn._session = None
                conn.cookieIssued = True
                return self._setCookie(conn)
            return None

        def failed(f):
            self._prismLog.failure("cannot check the session of {peer}", failure=f, peer=peer)
            return None  # the hello checks again and reports it

        return server.sessionStore.touch(conn.sessionId).addCallback(lambda _: None).addErrback(missing).addErrback(failed)

    def _setCookie(self, conn):
        server = conn.server
        return (
            None,
            {"Set-Cookie": "{}={}; Path=/; HttpOnly; SameSite=Lax".format(server.sessionCookie, conn.sessionToken)},
        )

    # -- server pings (see the module docstring)

    def onOpen(self):
        self._schedulePing()

    def _schedulePing(self):
        interval = self.factory.prismTransport.pingInterval
        if interval and interval > 0:
            self._pingPayload = None
            self._pingCall = self.factory.prismServer.reactor.callLater(interval, self._sendPrismPing)

    def _sendPrismPing(self):
        from autobahn.websocket.protocol import WebSocketProtocol

        self._pingCall = None
        if self.state != WebSocketProtocol.STATE_OPEN:
            return
        self._pingPayload = payload = secrets.token_bytes(8)
        self.sendPing(payload)
        self._pingCall = self.factory.prismServer.reactor.callLater(
            self.factory.prismTransport.pingTimeout, self._pingTimedOut
        )

    def onPong(self, payload):
        if self._pingPayload is not None and payload == self._pingPayload:
            self._cancelPing()
            self._schedulePing()

    def _pingTimedOut(self):
        self._pingCall = None
        self._prismLog.info(
            "no pong from {peer} within {timeout} s: dropping the connection",
            peer=self.connection.peer if self.connection is not None else None,
            timeout=self.factory.prismTransport.pingTimeout,
        )
        self.dropConnection(abort=True)

    def _cancelPing(self):
        call, self._pingCall = self._pingCall, None
        if call is not None and call.active():
            call.cancel()

    def onMessage(self, payload, isBinary):
        conn = self.connection
        if len(payload) > self.factory.prismTransport.maxMessageSize:
            conn.server._error(
                "too_large",
                "message of {} bytes exceeds the limit of {}".format(len(payload), self.factory.prismTransport.maxMessageSize),
                conn,
                None,
                None,
                None,
            )
            return
        if not isBinary:
            payload = payload.decode("utf-8")  # Autobahn has validated it
        if conn._queue is None:  # the hot path: straight to the kernel
            conn.server._frameReceived(conn, payload, isBinary)
        else:
            conn.frameReceived(payload, isBinary)

    def onClose(self, wasClean, code, reason):
        self._cancelPing()
        conn = self.connection
        if conn is not None:
            conn.connectionLost(code, reason)

    def _prismWrite(self, frame, isBinary):
        if isBinary:
            self.sendMessage(frame, True)
        else:
            self.sendMessage(frame.encode("utf-8"), False)

    def _prismClose(self, code=1000, reason=""):
        closeProtocol(self, code, reason)


@implementer(ITransport)
class WebSocketTransport:
    """
    @param maxMessageSize: the largest message accepted, in bytes (after
        decompression).
    @param allowedOrigins: L{None} for same-origin only, or a list of
        C{fnmatch} patterns matched against the C{Origin} header.
    @param pingInterval: seconds between server pings (0 disables them).
    @param pingTimeout: seconds to wait for a pong.
    @param handshakeTimeout: seconds a client has to complete the opening
        handshake.
    @param compression: accept permessage-deflate offers.
    """

    name = "websocket"

    def __init__(
        self,
        maxMessageSize=1024 * 1024,
        allowedOrigins=None,
        pingInterval=25.0,
        pingTimeout=20.0,
        handshakeTimeout=10.0,
        compression=False,
    ):
        if not isinstance(maxMessageSize, int) or maxMessageSize <= 0:
            raise PrismConfigError("websocket: maxMessageSize must be a positive integer")
        if allowedOrigins is not None and (
            isinstance(allowedOrigins, str) or not all(isinstance(o, str) for o in allowedOrigins)
        ):
            raise PrismConfigError("websocket: allowedOrigins must be a list of strings")
        for option, value in (("pingInterval", pingInterval), ("pingTimeout", pingTimeout)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise PrismConfigError("websocket: {} must be a number of seconds >= 0".format(option))
        if pingInterval and not pingTimeout:
            raise PrismConfigError("websocket: pingTimeout must be positive when pingInterval is")
        self.maxMessageSize = maxMessageSize
        self.allowedOrigins = list(allowedOrigins) if allowedOrigins is not None else None
        self.pingInterval = pingInterval
        self.pingTimeout = pingTimeout
        self.handshakeTimeout = handshakeTimeout
        self.compression = compression

    def originAllowed(self, origin, host):
        if self.allowedOrigins is None:
            try:
                return urlsplit(origin).netloc.lower() == host.lower()
            except ValueError:
                return False
        return any(fnmatchcase(origin, pattern) for pattern in self.allowedOrigins)

    def factory(self, server, url=None):
        """@return: the Autobahn factory serving C{server}."""
        factory = WebSocketServerFactory(url, reactor=server.reactor)
        factory.protocol = PrismWebSocketProtocol
        factory.prismServer = server
        factory.prismTransport = self
        hard = max(self.maxMessageSize * 2, self.maxMessageSize + 65536)
        options = dict(
            maxMessagePayloadSize=hard,
            maxFramePayloadSize=hard,
            autoPingInterval=0,  # Prism sends the pings itself (see the module docstring)
            openHandshakeTimeout=self.handshakeTimeout,
            closeHandshakeTimeout=5,
            failByDrop=False,
        )
        if self.compression:
            from autobahn.websocket.compress import PerMessageDeflateOffer, PerMessageDeflateOfferAccept

            def accept(offers):
                for offer in offers:
                    if isinstance(offer, PerMessageDeflateOffer):
                        return PerMessageDeflateOfferAccept(offer)
                return None

            options["perMessageCompressionAccept"] = accept
        factory.setProtocolOptions(**options)
        return factory

    def listen(self, server, endpoint):
        from twisted.internet.endpoints import serverFromString

        return serverFromString(server.reactor, endpoint).listen(self.factory(server))

    def resource(self, server):
        from autobahn.twisted.resource import WebSocketResource

        return WebSocketResource(self.factory(server))

    def clientScript(self):
        """
        @return: C{prism/js/websocket.js}: the browser's C{WebSocket}, or the
            C{ws} package under Node.js (loaded on first use).
        """
        from prism.builder import jsSource

        return jsSource("websocket.js")

    def browserAssets(self):
        return []
