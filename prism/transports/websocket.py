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
    no pong arrives within C{pingTimeout}.
  - permessage-deflate is off unless C{compression} is true.
"""

from fnmatch import fnmatchcase
from urllib.parse import urlsplit

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.types import ConnectionDeny
from twisted.logger import Logger
from zope.interface import implementer

from prism.errors import PrismConfigError
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
    log = Logger()
    connection = None

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
        if conn.cookieIssued and server.usesSessions:
            return (
                None,
                {"Set-Cookie": "{}={}; Path=/; HttpOnly; SameSite=Lax".format(server.sessionCookie, conn.sessionToken)},
            )
        return None

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
        conn.frameReceived(payload, isBinary)

    def onClose(self, wasClean, code, reason):
        conn = self.connection
        if conn is not None:
            conn.connectionLost(code, reason)

    def _prismWrite(self, frame, isBinary):
        if isBinary:
            self.sendMessage(frame, True)
        else:
            self.sendMessage(frame.encode("utf-8"), False)

    def _prismClose(self, code=1000, reason=""):
        self.sendClose(code, reason or None)


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
            autoPingInterval=self.pingInterval,
            autoPingTimeout=self.pingTimeout,
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
        return None

    def browserAssets(self):
        return []
