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
  - permessage-deflate is off unless C{compression} is true. When it is on,
    the inflated size of every message is bounded here too (not only by
    Autobahn, whose releases before 26.7.1 checked the compressed size:
    GHSA-hxp9-w8x3-p566): each inflation step is capped, and the message
    fails with 1009 as soon as its inflated length passes the hard limit.
  - connection limits: C{maxConnections} in total (HTTP 503 in the
    handshake beyond it) and C{maxConnectionsPerAddress} per client address
    (HTTP 429); the client address is the TCP peer, or, for connections from
    C{trustedProxies} only, the last untrusted entry of C{proxyHeader}
    (C{X-Forwarded-For}).
  - C{idleTimeout}: a connection that sends no message for that long is
    closed with 4000 (off by default: pings already detect dead peers).
  - backpressure: the protocol registers a streaming producer on its TCP
    transport; once the transport's buffer is full (Twisted pauses the
    producer), further outgoing bytes are counted, and past
    C{maxOutgoingBuffer} the client is a slow consumer: what is queued stays
    bounded, later writes are discarded, the connection leaves the server at
    once (code 4008 in the C{disconnect} event) and gets a 4008 close frame
    behind what is already queued. Writes never block the reactor.
  - C{pauseReading(seconds)} on the link stops reading a client's socket
    for a while (the C{ratelimit} middleware uses it against floods).
"""

import ipaddress
import secrets
from fnmatch import fnmatchcase
from urllib.parse import urlsplit

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.types import ConnectionDeny
from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from zope.interface import implementer

from prism.errors import NoSuchSession, PrismConfigError, SessionError
from prism.sessions import newSessionId
from prism.interfaces import ITransport, ITransportConnection

__all__ = ["WebSocketTransport"]

TOO_BIG = 1009
IDLE_TIMEOUT = 4000
"""Close code: the client sent nothing for C{idleTimeout} seconds."""
SLOW_CONSUMER = 4008
"""Close code: the client did not read fast enough (C{maxOutgoingBuffer} passed)."""


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
    __slots__ = ("peer", "write", "close", "writePrepared", "pauseReading")

    def __init__(self, protocol, peer):
        self.peer = peer
        self.write = protocol._prismWrite
        self.close = protocol._prismClose
        self.pauseReading = protocol._prismPauseReading
        self.writePrepared = protocol._prismWritePrepared


@implementer(IPushProducer)
class _Backpressure:
    """
    Registered on a connection's TCP transport as a streaming producer: the
    transport pauses it when its write buffer is full and resumes it when
    the buffer has drained. While paused, C{queued} counts the bytes
    written anyway (see C{PrismWebSocketProtocol.sendData}).
    """

    __slots__ = ("paused", "queued")

    def __init__(self):
        self.paused = False
        self.queued = 0

    def pauseProducing(self):
        self.paused = True

    def resumeProducing(self):
        self.paused = False
        self.queued = 0

    def stopProducing(self):
        self.paused = True


class PrismWebSocketProtocol(WebSocketServerProtocol):
    _prismLog = Logger()  # not "log": that would replace Autobahn's (no-op) debug logger and cost ~15% per frame
    connection = None
    _pingCall = None
    _pingPayload = None
    _prismCounted = False
    _prismAddress = None  # counted in the transport's per-address table
    _prismProducer = None
    _prismDiscard = False  # a slow consumer: outgoing bytes are dropped
    _prismResumeCall = None
    _prismClosedWith = None  # (code, reason) of a close the server started
    _idleCall = None
    _lastRead = 0.0
    _inflated = 0

    # -- connection limits and backpressure

    def connectionMade(self):
        WebSocketServerProtocol.connectionMade(self)
        # Autobahn's connectionMade tries setTcpNoDelay(self.tcpNoDelay)
        # before it copies its options onto the protocol, so the attribute
        # is missing and a bare except hides it: Nagle stays on, and a frame
        # written while the previous one is unacknowledged waits for the
        # peer's delayed ACK (~40 ms; e.g. a models reply after a push).
        try:
            self.transport.setTcpNoDelay(True)
        except (AttributeError, OSError):  # not TCP (unix sockets; a twisted.web channel's wrapper)
            pass
        self.factory.prismTransport._opened(self)
        producer = _Backpressure()
        try:
            self.transport.registerProducer(producer, True)
        except RuntimeError:
            # Mounted in a twisted.web site: the HTTP channel that handed the
            # socket over is still registered; it no longer uses it.
            self.transport.unregisterProducer()
            self.transport.registerProducer(producer, True)
        self._prismProducer = producer

    def connectionLost(self, reason):
        try:
            WebSocketServerProtocol.connectionLost(self, reason)
        finally:
            self._cancelPing()
            self._cancelIdle()
            call, self._prismResumeCall = self._prismResumeCall, None
            if call is not None and call.active():
                call.cancel()
            self.factory.prismTransport._closed(self)
            if self.connection is not None:  # (onClose has normally done this)
                self.connection.connectionLost(1006, "connection lost")

    def sendData(self, data, sync=False, chopsize=None):
        producer = self._prismProducer
        if producer is not None and producer.paused:
            if self._prismDiscard:
                return
            producer.queued += len(data)
            if producer.queued > self.factory.prismTransport.maxOutgoingBuffer:
                self._prismSlowConsumer()
                return
        WebSocketServerProtocol.sendData(self, data, sync, chopsize)

    def _prismSlowConsumer(self):
        self._prismDiscard = True
        conn = self.connection
        limit = self.factory.prismTransport.maxOutgoingBuffer
        self._prismLog.warn(
            "slow consumer {peer}: more than {limit} bytes queued; closing with 4008",
            peer=conn.peer if conn is not None else None,
            limit=limit,
        )
        reactor = self.factory.prismServer.reactor
        # Not now: this runs inside a write, perhaps inside a service's loop
        # over its connections.
        reactor.callLater(0, self._prismCloseSlowConsumer)

    def _prismCloseSlowConsumer(self):
        from autobahn.websocket.protocol import WebSocketProtocol

        conn = self.connection
        if conn is not None:
            conn.connectionLost(SLOW_CONSUMER, "slow consumer")
        if self.state == WebSocketProtocol.STATE_OPEN:
            # The close frame goes behind what is queued (a client that
            # reads again sees it); Autobahn's close timeout then drops the
            # TCP connection.
            self._prismDiscard = False
            self._prismProducer.paused = False
            try:
                closeProtocol(self, SLOW_CONSUMER, "slow consumer")
            finally:
                self._prismDiscard = True
                self._prismProducer.paused = True

    def _prismPauseReading(self, seconds):
        """Stop reading this client's socket for C{seconds} (floods)."""
        if self._prismResumeCall is not None or self.transport is None:
            return
        self.transport.pauseProducing()
        self._prismResumeCall = self.factory.prismServer.reactor.callLater(seconds, self._prismResumeReading)

    def _prismResumeReading(self):
        self._prismResumeCall = None
        if self.transport is not None and self.connection is not None and self.connection.open:
            self.transport.resumeProducing()

    # -- the inflated size of compressed messages (see the module docstring)

    def onMessageBegin(self, isBinary):
        self._inflated = 0
        WebSocketServerProtocol.onMessageBegin(self, isBinary)

    def onMessageFrameData(self, payload):
        self._inflated += len(payload)
        hard = self.factory.prismHardLimit
        if self._inflated > hard:
            if not self.failedByMe:
                self.wasMaxMessagePayloadSizeExceeded = True
                self._max_message_size_exceeded(
                    self._inflated, hard, "message exceeds {} octets (after decompression)".format(hard)
                )
                compress = self._perMessageCompress
                if compress is not None:
                    # The connection is failing (1009): inflate nothing more.
                    # (Autobahn < 26 would also raise zlib.error at the end of
                    # the capped frame, out of dataReceived, instead of
                    # sending the close frame.)
                    compress.decompress_message_data = lambda data, *args, **kwargs: b""
                    compress.end_decompress_message = lambda: None
            return
        WebSocketServerProtocol.onMessageFrameData(self, payload)

    def onConnect(self, request):
        factory = self.factory
        transport = factory.prismTransport
        origin = request.headers.get("origin")
        if origin is not None and not transport.originAllowed(origin, request.headers.get("host", "")):
            factory.prismServer._error(
                "origin", "refused a connection from origin {!r}".format(origin), None, None, None, None, send=False
            )
            raise ConnectionDeny(ConnectionDeny.FORBIDDEN, "origin not allowed")
        address = transport.clientAddress(self.transport.getPeer(), request.headers)
        refusal = transport._admit(self, address)
        if refusal is not None:
            factory.prismServer._error("limit", refusal[1] + " ({})".format(address), None, None, None, None, send=False)
            raise ConnectionDeny(*refusal)
        server = factory.prismServer
        token = None
        cookie = request.headers.get("cookie")
        if cookie:
            token = parseCookies(cookie).get(server.sessionCookie)
        peer = _peer(self.transport)
        self.connection = conn = server.connectionMade(_Link(self, peer), "websocket", peer, token, request.headers)
        conn.address = address
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
            if f.check(SessionError):  # the store is down: no traceback per connection
                self._prismLog.warn("cannot check the session of {peer}: {message}", peer=peer, message=f.getErrorMessage())
            else:
                self._prismLog.failure("cannot check the session of {peer}", failure=f, peer=peer)
            return None  # the hello checks again and reports it

        return server.sessionStore.touch(conn.sessionId).addCallback(lambda _: None).addErrback(missing).addErrback(failed)

    def _setCookie(self, conn):
        server = conn.server
        return (
            None,
            {"Set-Cookie": "{}={}; Path=/; HttpOnly; SameSite=Lax".format(server.sessionCookie, conn.sessionCookieValue)},
        )

    # -- server pings (see the module docstring)

    def onOpen(self):
        self._schedulePing()
        idle = self.factory.prismTransport.idleTimeout
        if idle:
            self._lastRead = self.factory.prismServer.reactor.seconds()
            self._idleCall = self.factory.prismServer.reactor.callLater(idle, self._idleCheck)

    def _idleCheck(self):
        self._idleCall = None
        reactor = self.factory.prismServer.reactor
        idle = self.factory.prismTransport.idleTimeout
        left = self._lastRead + idle - reactor.seconds()
        if left > 0:
            self._idleCall = reactor.callLater(left, self._idleCheck)
            return
        conn = self.connection
        self._prismLog.info("{peer} idle for {idle} s: closing", peer=conn.peer if conn is not None else None, idle=idle)
        self._prismClose(IDLE_TIMEOUT, "idle timeout")

    def _cancelIdle(self):
        call, self._idleCall = self._idleCall, None
        if call is not None and call.active():
            call.cancel()

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
        if self._idleCall is not None:
            self._lastRead = self.factory.prismServer.reactor.seconds()
        if not conn.open:  # closed by the server (slow consumer): ignore what still arrives
            return
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
        self._cancelIdle()
        conn = self.connection
        if self._prismClosedWith is not None:  # we closed it: report our code, not the echo
            code, reason = self._prismClosedWith
        if conn is not None:
            conn.connectionLost(code, reason)

    def _prismWrite(self, frame, isBinary):
        if self.state != 3:  # WebSocketProtocol.STATE_OPEN (Autobahn raises otherwise)
            return
        if isBinary:
            self.sendMessage(frame, True)
        else:
            self.sendMessage(frame.encode("utf-8"), False)

    def _prismWritePrepared(self, prepared):
        # One Autobahn PreparedMessage per Prism PreparedFrame: the payload is
        # encoded and framed once for every connection it fans out to.
        if self.state != 3:  # WebSocketProtocol.STATE_OPEN, as _prismWrite
            return
        message = prepared.cache
        if message is None:
            frame = prepared.frame
            message = prepared.cache = self.factory.prepareMessage(
                frame if prepared.isBinary else frame.encode("utf-8"), prepared.isBinary
            )
        self.sendPreparedMessage(message)

    def _prismClose(self, code=1000, reason=""):
        if self._prismClosedWith is None:
            self._prismClosedWith = (code, reason)
        closeProtocol(self, code, reason)


def _checkCompressionSupport():
    """
    permessage-deflate needs an inflater that can stop at a limit: zlib's
    C{decompressobj().decompress(data, max_length)}, which Autobahn's
    C{PerMessageDeflate} uses when given C{max_message_size} (every release
    Prism supports, 24.4.2 included). Prism caps every inflation step with
    it and counts the inflated bytes of each message itself, so a bomb is
    refused after at most one capped step, whatever Autobahn checks.

    @raise PrismConfigError: if this Autobahn's deflate cannot be capped.
    """
    import inspect

    from autobahn.websocket.compress import PerMessageDeflateOfferAccept

    try:
        parameters = inspect.signature(PerMessageDeflateOfferAccept.__init__).parameters
    except (TypeError, ValueError):
        parameters = {}
    if "max_message_size" not in parameters:
        import autobahn

        raise PrismConfigError(
            "websocket: compression needs an Autobahn whose permessage-deflate takes max_message_size "
            "(this is {}); leave compression off".format(autobahn.__version__)
        )


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
    @param maxConnections: the most connections open at once (handshakes
        included); further handshakes get HTTP 503. C{0}: no limit.
    @param maxConnectionsPerAddress: the most connections from one client
        address; further handshakes get HTTP 429. C{0}: no limit.
    @param idleTimeout: close (4000) a connection that sent no message for
        this many seconds; C{0} (the default) disables it.
    @param maxOutgoingBuffer: bytes a connection may queue beyond a full
        transport buffer before it is closed as a slow consumer (4008).
    @param trustedProxies: addresses or networks (C{"10.0.0.0/8"}) of
        reverse proxies whose C{proxyHeader} is believed.
    @param proxyHeader: the header a trusted proxy puts the client's
        address in (C{X-Forwarded-For} syntax: the last untrusted entry
        counts).

    @ivar connectionCount: connections open now (handshakes included).
    @ivar addressCounts: C{{address: connections open}}, emptied as they
        close.
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
        maxConnections=10000,
        maxConnectionsPerAddress=100,
        idleTimeout=0,
        maxOutgoingBuffer=4 * 1024 * 1024,
        trustedProxies=(),
        proxyHeader="x-forwarded-for",
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
        for option, value in (
            ("maxConnections", maxConnections),
            ("maxConnectionsPerAddress", maxConnectionsPerAddress),
            ("maxOutgoingBuffer", maxOutgoingBuffer),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise PrismConfigError("websocket: {} must be an integer >= 0".format(option))
        if not maxOutgoingBuffer:
            raise PrismConfigError("websocket: maxOutgoingBuffer must be positive")
        if isinstance(idleTimeout, bool) or not isinstance(idleTimeout, (int, float)) or idleTimeout < 0:
            raise PrismConfigError("websocket: idleTimeout must be a number of seconds >= 0")
        if isinstance(trustedProxies, str):
            raise PrismConfigError("websocket: trustedProxies must be a list of addresses or networks")
        networks = []
        for entry in trustedProxies:
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except (TypeError, ValueError):
                raise PrismConfigError(
                    "websocket: trustedProxies: {!r} is not an IP address or network".format(entry)
                ) from None
        if not isinstance(proxyHeader, str) or not proxyHeader:
            raise PrismConfigError("websocket: proxyHeader must be a header name")
        if compression:
            _checkCompressionSupport()
        self.maxMessageSize = maxMessageSize
        self.allowedOrigins = list(allowedOrigins) if allowedOrigins is not None else None
        self.pingInterval = pingInterval
        self.pingTimeout = pingTimeout
        self.handshakeTimeout = handshakeTimeout
        self.compression = compression
        self.maxConnections = maxConnections
        self.maxConnectionsPerAddress = maxConnectionsPerAddress
        self.idleTimeout = idleTimeout
        self.maxOutgoingBuffer = maxOutgoingBuffer
        self.trustedProxies = networks
        self.proxyHeader = proxyHeader.lower()
        self.connectionCount = 0
        self.addressCounts = {}

    # -- client addresses and connection limits

    def _trusted(self, host):
        if not self.trustedProxies:
            return False
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(ip in network for network in self.trustedProxies)

    def clientAddress(self, peer, headers):
        """
        @param peer: the TCP peer (an
            L{IAddress <twisted.internet.interfaces.IAddress>}).
        @param headers: the handshake's request headers (lower-case names).
        @return: the client's address: the peer's host (C{"unix"} for UNIX
            sockets), or, when the peer is a trusted proxy, the last entry
            of C{proxyHeader} that is not itself a trusted proxy.
        """
        host = getattr(peer, "host", None)
        if host is None:
            host = "unix"
            if not self.trustedProxies:
                return host
        elif not self._trusted(host):
            return host
        value = headers.get(self.proxyHeader)
        if not value:
            return host
        hops = [hop.strip() for hop in value.split(",") if hop.strip()]
        for hop in reversed(hops):
            if not self._trusted(hop):
                try:
                    return str(ipaddress.ip_address(hop))
                except ValueError:
                    return host  # garbage from the proxy's side: keep the proxy's address
        return hops[0] if hops else host

    def _opened(self, protocol):
        protocol._prismCounted = True
        self.connectionCount += 1

    def _admit(self, protocol, address):
        """
        Count a handshake against the limits.

        @return: L{None}, or C{(HTTP status, reason)} to refuse it.
        """
        if self.maxConnections and self.connectionCount > self.maxConnections:
            return (503, "too many connections")
        count = self.addressCounts.get(address, 0)
        if self.maxConnectionsPerAddress and count >= self.maxConnectionsPerAddress:
            return (429, "too many connections from this address")
        self.addressCounts[address] = count + 1
        protocol._prismAddress = address
        return None

    def _closed(self, protocol):
        if protocol._prismCounted:
            protocol._prismCounted = False
            self.connectionCount -= 1
        address, protocol._prismAddress = protocol._prismAddress, None
        if address is not None:
            count = self.addressCounts.get(address, 0) - 1
            if count > 0:
                self.addressCounts[address] = count
            else:
                self.addressCounts.pop(address, None)

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
        factory.prismHardLimit = hard
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
                        # Caps each inflation step (hard + 1, so that a capped
                        # step is seen as too big rather than silently cut).
                        return PerMessageDeflateOfferAccept(offer, max_message_size=hard + 1)
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
