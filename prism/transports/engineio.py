"""
The C{engineio} transport: an Engine.IO protocol v4 server on L{twisted.web},
so that the official clients (npm C{engine.io-client} 6, python-engineio)
connect unmodified, through networks that break WebSockets.

One Engine.IO session carries one Prism connection (one Engine.IO message is
one Prism frame), or, with the C{echo} handler, just sends every message back
(no Prism framing: for checking the protocol layer on its own).

What it speaks (protocol v4, as the reference server C{engine.io} does):

  - HTTP long-polling: C{GET} polls (packets joined by C{\\x1e}, binary
    messages as C{b} + base64), C{POST} sends; a poll answered with at most
    C{maxPacketsPerPoll} packets (16: python-engineio's client refuses
    longer payloads), the rest waiting for the next poll.
  - WebSocket (Autobahn), straight away or as an upgrade of a polling
    session (C{2probe}/C{3probe}, C{noop} to release the pending poll,
    C{5} to switch).
  - heartbeat: the server sends C{2} every C{pingInterval} seconds and
    closes the session when the C{3} does not come within C{pingTimeout};
    this is also how abandoned polling sessions are cleaned up.
  - errors as the reference server answers them: HTTP 400 with
    C{{"code": n, "message": ...}} for an unknown transport (0), an unknown
    session id (1), a bad handshake method (2), a bad request (3) and an
    unsupported protocol version (5); 403 (code 4) for a refused origin.
    Overlapping polls close the session (the second poll gets 400), a body
    larger than C{maxPayload} gets 413 and closes it.

Safety, as the C{websocket} transport: the C{Origin} check on every request
(polling and WebSocket), C{maxPayload} on every body and WebSocket message,
a bounded outgoing buffer per session (C{maxOutgoingBuffer}: a client that
does not poll fast enough is closed as a slow consumer, 4008),
C{maxSessions}, and the session cookie read from every handshake. Polling
sessions live in one process: behind a load balancer, polling needs sticky
sessions (see C{docs/transports.md}); a request for a session of another
node (named by C{nodeName}) is answered with a clear error.
"""

import base64
import json
import secrets
from fnmatch import fnmatchcase
from urllib.parse import urlsplit

from autobahn.twisted.resource import WebSocketResource
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.types import ConnectionDeny
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET
from zope.interface import implementer

from prism.errors import PrismConfigError
from prism.interfaces import ITransport, ITransportConnection
from prism.transports.websocket import _Backpressure, closeProtocol, parseCookies

__all__ = ["EngineIOTransport", "EngineIOResource", "EchoHandler", "PrismHandler"]

log = Logger()

OPEN, CLOSE, PING, PONG, MESSAGE, UPGRADE, NOOP = "0123456"
SEPARATOR = "\x1e"

# Error codes of the reference server (engine.io lib/server.ts).
UNKNOWN_TRANSPORT, UNKNOWN_SID, BAD_HANDSHAKE_METHOD, BAD_REQUEST, FORBIDDEN, UNSUPPORTED_PROTOCOL_VERSION = range(6)
_MESSAGES = {
    UNKNOWN_TRANSPORT: "Transport unknown",
    UNKNOWN_SID: "Session ID unknown",
    BAD_HANDSHAKE_METHOD: "Bad handshake method",
    BAD_REQUEST: "Bad request",
    FORBIDDEN: "Forbidden",
    UNSUPPORTED_PROTOCOL_VERSION: "Unsupported protocol version",
}

SLOW_CONSUMER = 4008
TRANSPORTS = ("polling", "websocket")


class _Refused(Exception):
    def __init__(self, code, message=None, status=None):
        Exception.__init__(self, message or _MESSAGES[code])
        self.code = code
        self.message = message or _MESSAGES[code]
        self.status = status or (403 if code == FORBIDDEN else 400)


def encodePacket(kind, data=None, isBinary=False):
    """@return: a packet as it travels in a polling payload (L{str})."""
    if isBinary:
        return "b" + base64.b64encode(data).decode("ascii")
    return kind if data is None else kind + data


def decodePayload(body):
    """
    @param body: a polling payload (L{str}).
    @return: a list of C{(kind, data, isBinary)}.
    @raise ValueError: for a malformed packet.
    """
    packets = []
    for raw in body.split(SEPARATOR):
        if not raw:
            raise ValueError("empty packet")
        kind = raw[0]
        if kind == "b":
            packets.append((MESSAGE, base64.b64decode(raw[1:], validate=True), True))
        elif kind in "0123456":
            packets.append((kind, raw[1:], False))
        else:
            raise ValueError("unknown packet type {!r}".format(kind))
    return packets


# -- handlers: what a session carries


class EchoHandler:
    """Sends every message back as it came (no Prism framing)."""

    name = "echo"

    def opened(self, socket, request):
        return self

    def message(self, socket, data, isBinary):
        socket.send(data, isBinary)

    def closed(self, socket, code, reason):
        pass


@implementer(ITransportConnection)
class _Link:
    __slots__ = ("peer", "write", "close")

    def __init__(self, socket):
        self.peer = socket.peer
        self.write = socket.send
        self.close = socket.close


class PrismHandler:
    """One Prism connection per Engine.IO session."""

    name = "prism"

    def __init__(self, server):
        self.server = server

    def opened(self, socket, headers):
        server = self.server
        token = None
        cookie = headers.get("cookie")
        if cookie:
            token = parseCookies(cookie).get(server.sessionCookie)
        conn = server.connectionMade(_Link(socket), "engineio", socket.peer, token, headers)
        conn.address = socket.peer.rpartition(":")[0] or socket.peer
        socket.connection = conn
        if server.usesSessions and conn.cookieIssued:
            socket.setCookie = "{}={}; Path=/; HttpOnly; SameSite=Lax".format(
                server.sessionCookie, conn.sessionCookieValue
            )
        return self

    def message(self, socket, data, isBinary):
        socket.connection.frameReceived(data, isBinary)

    def closed(self, socket, code, reason):
        conn = socket.connection
        if conn is not None:
            conn.connectionLost(code, reason)


# -- one Engine.IO session


class EngineSocket:
    """
    One Engine.IO session, on polling or WebSocket.

    @ivar kind: C{"polling"} or C{"websocket"}.
    """

    connection = None
    setCookie = None

    @property
    def transport(self):
        """The TCP transport of the WebSocket carrying the session, if any."""
        return self.ws.transport if self.ws is not None else None

    def __init__(self, resource, sid, transportName, peer, headers):
        self.resource = resource
        self.options = resource.options
        self.reactor = resource.reactor
        self.sid = sid
        self.kind = transportName
        self.peer = peer
        self.headers = headers
        self.state = "open"
        self.buffer = []  # polling: encoded packets not yet polled
        self.buffered = 0  # their size, in characters
        self.poll = None  # the pending GET
        self.ws = None  # the WebSocket protocol (once on WebSocket)
        self.probe = None  # the WebSocket being upgraded to
        self.handler = None
        self._pingCall = None
        self._timeoutCall = None
        self._closeCall = None

    def handshake(self):
        options = self.options
        return json.dumps(
            {
                "sid": self.sid,
                "upgrades": ["websocket"]
                if self.kind == "polling" and options.allowUpgrades and "websocket" in options.transports
                else [],
                "pingInterval": int(options.pingInterval * 1000),
                "pingTimeout": int(options.pingTimeout * 1000),
                "maxPayload": options.maxPayload,
            },
            separators=(",", ":"),
        )

    def start(self, handler):
        self.handler = handler.opened(self, self.headers)
        self._schedulePing()

    # -- sending

    def send(self, data, isBinary=False):
        """Send one message (L{str}, or L{bytes} when C{isBinary})."""
        if self.state != "open":
            return
        self._sendPacket(MESSAGE, data, isBinary)

    def _sendPacket(self, kind, data=None, isBinary=False):
        ws = self.ws
        if ws is not None:
            if ws.state != 3:  # WebSocketProtocol.STATE_OPEN (Autobahn raises otherwise)
                return
            if isBinary:
                ws.sendMessage(data, True)
            else:
                ws.sendMessage((kind if data is None else kind + data).encode("utf-8"), False)
            return
        packet = encodePacket(kind, data, isBinary)
        self.buffer.append(packet)
        self.buffered += len(packet)
        if self.buffered > self.options.maxOutgoingBuffer and kind != CLOSE:
            self.buffer = []
            self.buffered = 0
            log.info("engineio: {peer} does not poll fast enough: closing it", peer=self.peer)
            self._closed(SLOW_CONSUMER, "slow consumer")
            self._finishPoll([encodePacket(CLOSE)])
            return
        if self.poll is not None:
            self._flush()

    def _flush(self):
        """Answer the pending poll with what is buffered (at most maxPacketsPerPoll packets)."""
        limit = self.options.maxPacketsPerPoll
        packets, self.buffer = self.buffer[:limit], self.buffer[limit:]
        self.buffered -= sum(len(p) for p in packets)
        self._finishPoll(packets)

    def _finishPoll(self, packets):
        request, self.poll = self.poll, None
        if request is None:
            return
        body = SEPARATOR.join(packets).encode("utf-8")
        request.setHeader(b"content-type", b"text/plain; charset=UTF-8")
        request.setHeader(b"content-length", str(len(body)).encode("ascii"))
        request.write(body)
        request.finish()
        if self.state != "open" and not self.buffer:
            self._forget()

    # -- polling requests

    def pollReceived(self, request):
        if self.poll is not None:
            # Overlapping polls: an error, as in the reference server.
            self.error(1002, "overlap from client")
            return _errorBody(request, 400, BAD_REQUEST)
        if self.kind != "polling":
            return _errorBody(request, 400, BAD_REQUEST)
        self.poll = request
        request.notifyFinish().addBoth(lambda _: self._pollGone(request))
        if self.buffer:
            self._flush()
        elif self.state != "open":
            self._finishPoll([encodePacket(CLOSE)])
            self._forget()
        elif self.probe is not None and self.probe.probed:
            self._finishPoll([NOOP])
        return NOT_DONE_YET

    def _pollGone(self, request):
        if self.poll is request:
            self.poll = None

    def dataReceived(self, request, body):
        if self.kind != "polling":
            return _errorBody(request, 400, BAD_REQUEST)
        try:
            packets = decodePayload(body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            self.error(1002, "parse error")
            return _errorBody(request, 400, BAD_REQUEST)
        for packet in packets:
            if self.state != "open":
                break
            self.packetReceived(*packet)
        request.setHeader(b"content-type", b"text/html")
        return b"ok"

    # -- packets from the client, on either transport

    def packetReceived(self, kind, data, isBinary):
        if kind == MESSAGE:
            self.handler.message(self, data, isBinary)
        elif kind == PONG:
            self._pong()
        elif kind == CLOSE:
            self._closed(1000, "client closed")
            if self.poll is not None:
                self._finishPoll([NOOP])
            self._forget()
        elif kind in (NOOP, PING):
            pass
        else:
            self.error(1002, "unexpected packet {!r}".format(kind))

    # -- heartbeat

    def _schedulePing(self):
        self._pingCall = self.reactor.callLater(self.options.pingInterval, self._ping)

    def _ping(self):
        self._pingCall = None
        if self.state != "open":
            return
        self._sendPacket(PING)
        self._timeoutCall = self.reactor.callLater(self.options.pingTimeout, self._pingTimedOut)

    def _pong(self):
        call, self._timeoutCall = self._timeoutCall, None
        if call is not None and call.active():
            call.cancel()
            self._schedulePing()

    def _pingTimedOut(self):
        self._timeoutCall = None
        log.info("engineio: no pong from {peer}: closing session {sid}", peer=self.peer, sid=self.sid)
        self._closed(1006, "ping timeout")
        if self.ws is not None:
            self.ws.dropConnection(abort=True)
        self._finishPoll([encodePacket(CLOSE)])
        self._forget()

    def _cancelTimers(self):
        for name in ("_pingCall", "_timeoutCall", "_closeCall"):
            call = getattr(self, name)
            setattr(self, name, None)
            if call is not None and call.active():
                call.cancel()

    # -- the upgrade

    def upgradeReceived(self, protocol, kind, data):
        """A text packet on the WebSocket being upgraded to."""
        if kind == PING and data == "probe":
            protocol.probed = True
            protocol.sendMessage(b"3probe", False)
            if self.poll is not None and not self.buffer:
                self._finishPoll([NOOP])
        elif kind == UPGRADE and protocol.probed:
            self.probe = None
            self.kind = "websocket"
            self.ws = protocol
            protocol.socket = self
            packets, self.buffer, self.buffered = self.buffer, [], 0
            if self.poll is not None:
                self._finishPoll([NOOP])
            for packet in packets:
                if packet[0] == "b":
                    protocol.sendMessage(base64.b64decode(packet[1:]), True)
                else:
                    protocol.sendMessage(packet.encode("utf-8"), False)
        else:
            self.probe = None
            closeProtocol(protocol, 1002, "bad upgrade")

    # -- closing

    def close(self, code=1000, reason=""):
        """Close the session from the server (sends the close packet)."""
        if self.state != "open":
            return
        self._closed(code, reason)
        if self.ws is not None:
            closeProtocol(self.ws, 1000 if code in (1000, 1001) else code, reason)
            self._forget()
            return
        self._sendPacketClosing()

    def _sendPacketClosing(self):
        packet = encodePacket(CLOSE)
        self.buffer.append(packet)
        if self.poll is not None:
            self._flush()
        else:
            # Wait for the next poll to deliver the close packet, not forever.
            self._closeCall = self.reactor.callLater(self.options.pingTimeout, self._forget)

    def error(self, code, reason):
        """A protocol error: close the session at once."""
        log.info("engineio: closing session {sid} of {peer}: {reason}", sid=self.sid, peer=self.peer, reason=reason)
        self._closed(code, reason)
        if self.ws is not None:
            closeProtocol(self.ws, code, reason)
        self._finishPoll([encodePacket(CLOSE)])
        self._forget()

    def transportClosed(self, code, reason):
        """The WebSocket carrying the session went away."""
        self._closed(code or 1006, reason or "transport close")
        self._forget()

    def _closed(self, code, reason):
        if self.state != "open":
            return
        self.state = "closed"
        self._cancelTimers()
        if self.probe is not None:
            closeProtocol(self.probe, 1000, "")
            self.probe = None
        if self.handler is not None:
            self.handler.closed(self, code, reason)

    def _forget(self):
        self._cancelTimers()
        self.resource._forget(self)


def _errorBody(request, status, code, message=None):
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"application/json")
    return json.dumps({"code": code, "message": message or _MESSAGES[code]}).encode("utf-8")


# -- WebSocket


class EngineWebSocketProtocol(WebSocketServerProtocol):
    socket = None  # the EngineSocket, once this WebSocket carries it
    target = None  # the EngineSocket being upgraded
    probed = False
    _producer = None

    def connectionMade(self):
        WebSocketServerProtocol.connectionMade(self)
        producer = _Backpressure()
        try:
            self.transport.registerProducer(producer, True)
        except RuntimeError:
            self.transport.unregisterProducer()
            self.transport.registerProducer(producer, True)
        self._producer = producer
        self._queued = 0

    def sendData(self, data, sync=False, chopsize=None):
        producer = self._producer
        if producer is not None and producer.paused:
            producer.queued += len(data)
            if producer.queued > self.factory.engine.options.maxOutgoingBuffer:
                socket = self.socket
                if socket is not None and socket.state == "open":
                    socket._closed(SLOW_CONSUMER, "slow consumer")
                    socket._forget()
                self.dropConnection(abort=True)
                return
        WebSocketServerProtocol.sendData(self, data, sync, chopsize)

    def onConnect(self, request):
        engine = self.factory.engine
        params = {k: v[0] for k, v in request.params.items()}
        try:
            found = engine.verify("GET", params, request.headers, websocket=True)
        except _Refused as e:
            raise ConnectionDeny(e.status, e.message)
        if found is not None:
            if found.kind != "polling" or found.probe is not None or found.state != "open":
                raise ConnectionDeny(400, _MESSAGES[BAD_REQUEST])
            self.target = found
            found.probe = self
            return None
        self.socket = socket = engine.create("websocket", self.transport, request.headers)
        socket.ws = self
        if socket.setCookie:
            return (None, {"Set-Cookie": socket.setCookie})
        return None

    def onOpen(self):
        socket = self.socket
        if socket is not None:
            self.sendMessage((OPEN + socket.handshake()).encode("utf-8"), False)

    def onMessage(self, payload, isBinary):
        socket = self.socket
        if socket is None:
            target = self.target
            if target is None or target.probe is not self or isBinary:
                return closeProtocol(self, 1002, "bad upgrade")
            text = payload.decode("utf-8")
            return target.upgradeReceived(self, text[:1], text[1:])
        if socket.state != "open":
            return
        if isBinary:
            return socket.handler.message(socket, payload, True)
        text = payload.decode("utf-8")
        if not text:
            return socket.error(1002, "empty packet")
        socket.packetReceived(text[0], text[1:], False)

    def onClose(self, wasClean, code, reason):
        socket = self.socket
        if socket is not None and socket.ws is self:
            if socket.state == "open":
                socket.transportClosed(code, reason)
        elif self.target is not None and self.target.probe is self:
            self.target.probe = None  # the upgrade failed: polling goes on


# -- the resource


class EngineIOResource(Resource):
    """
    Serves Engine.IO sessions (polling and WebSocket) at whatever path it is
    mounted on; every session is given to C{handler}.

    @ivar sessions: C{{sid: EngineSocket}}.
    """

    isLeaf = True

    def __init__(self, options, handler, reactor):
        Resource.__init__(self)
        self.options = options
        self.handler = handler
        self.reactor = reactor
        self.sessions = {}
        factory = WebSocketServerFactory(None, reactor=reactor)
        factory.protocol = EngineWebSocketProtocol
        factory.engine = self
        factory.setProtocolOptions(
            maxMessagePayloadSize=options.maxPayload,
            maxFramePayloadSize=options.maxPayload,
            autoPingInterval=0,
            openHandshakeTimeout=options.upgradeTimeout,
            closeHandshakeTimeout=5,
            failByDrop=False,
        )
        self._websocket = WebSocketResource(factory)

    def getChildWithDefault(self, name, request):
        return self

    def _newSid(self):
        sid = secrets.token_urlsafe(15)
        if self.options.nodeName:
            sid += "." + self.options.nodeName
        return sid

    def verify(self, method, params, headers, websocket=False):
        """
        Check a request as the reference server does.

        @return: the L{EngineSocket} it is for, or L{None} for a handshake.
        @raise _Refused: with the error code and HTTP status.
        """
        options = self.options
        transport = params.get("transport")
        if transport not in options.transports or (transport == "websocket") != websocket:
            raise _Refused(UNKNOWN_TRANSPORT)
        if params.get("EIO") != "4":
            raise _Refused(UNSUPPORTED_PROTOCOL_VERSION)
        origin = headers.get("origin")
        if origin is not None and not options.originAllowed(origin, headers.get("host", "")):
            raise _Refused(FORBIDDEN, "Forbidden: origin not allowed")
        sid = params.get("sid")
        if sid is None:
            if method != "GET":
                raise _Refused(BAD_HANDSHAKE_METHOD)
            if len(self.sessions) >= options.maxSessions:
                raise _Refused(FORBIDDEN, "Forbidden: too many sessions", status=503)
            return None
        socket = self.sessions.get(sid)
        if socket is None:
            node = sid.rpartition(".")[2] if "." in sid else None
            if node and node != options.nodeName:
                raise _Refused(
                    UNKNOWN_SID,
                    "Session ID unknown: it belongs to node {!r}, this is {!r}; polling needs sticky "
                    "sessions".format(node, options.nodeName),
                )
            raise _Refused(UNKNOWN_SID)
        if not websocket and socket.kind != "polling":
            raise _Refused(BAD_REQUEST)
        return socket

    def create(self, transportName, tcp, headers):
        address = tcp.getPeer()
        host = getattr(address, "host", None)
        peer = "unix" if host is None else "{}:{}".format(host, address.port)
        socket = EngineSocket(self, self._newSid(), transportName, peer, dict(headers))
        self.sessions[socket.sid] = socket
        socket.start(self.handler)
        return socket

    def _forget(self, socket):
        if self.sessions.get(socket.sid) is socket:
            del self.sessions[socket.sid]

    def render(self, request):
        params = {k.decode("latin-1"): v[0].decode("utf-8", "replace") for k, v in request.args.items()}
        if params.get("transport") == "websocket":
            return self._websocket.render(request)
        headers = {k.decode("latin-1").lower(): v[-1].decode("latin-1") for k, v in request.requestHeaders.getAllRawHeaders()}
        method = request.method.decode("ascii", "replace")
        if method == "OPTIONS":
            return self._cors(request, headers) or b""
        self._cors(request, headers)
        try:
            socket = self.verify(method, params, headers)
        except _Refused as e:
            return _errorBody(request, e.status, e.code, e.message)
        if method == "POST":
            length = request.content.seek(0, 2)
            request.content.seek(0)
            if length > self.options.maxPayload:
                socket.error(1009, "payload too large")
                request.setResponseCode(413)
                return b""
            return socket.dataReceived(request, request.content.read())
        if method != "GET":
            return _errorBody(request, 400, BAD_REQUEST)
        if socket is not None:
            return socket.pollReceived(request)
        # The handshake: open a session, answer with the open packet.
        socket = self.create("polling", request.transport, headers)
        if socket.setCookie:
            request.setHeader(b"set-cookie", socket.setCookie.encode("latin-1"))
        socket.poll = None
        body = (OPEN + socket.handshake()).encode("utf-8")
        request.setHeader(b"content-type", b"text/plain; charset=UTF-8")
        return body

    def _cors(self, request, headers):
        origin = headers.get("origin")
        if origin is None or self.options.allowedOrigins is None:
            return None
        if not self.options.originAllowed(origin, headers.get("host", "")):
            return None
        request.setHeader(b"access-control-allow-origin", origin.encode("latin-1"))
        request.setHeader(b"access-control-allow-credentials", b"true")
        request.setHeader(b"access-control-allow-methods", b"GET, POST")
        request.setHeader(b"access-control-allow-headers", b"content-type")
        request.setResponseCode(204 if request.method == b"OPTIONS" else 200)
        return b""

    def closeAll(self, code=1001, reason="going away"):
        for socket in list(self.sessions.values()):
            socket.close(code, reason)


def _number(option, value, allowZero=False):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or (not allowZero and value == 0):
        raise PrismConfigError("engineio: {} must be a {}number".format(option, "" if allowZero else "positive "))
    return value


@implementer(ITransport)
class EngineIOTransport:
    """
    @param pingInterval: seconds between the server's pings.
    @param pingTimeout: seconds to wait for the pong before closing.
    @param maxPayload: the largest polling body or WebSocket message, in
        bytes (advertised to clients, which batch their sends below it).
    @param allowedOrigins: L{None} for same-origin only (and clients that
        send no C{Origin}), or a list of C{fnmatch} patterns.
    @param transports: the Engine.IO transports offered.
    @param allowUpgrades: offer the upgrade from polling to WebSocket.
    @param upgradeTimeout: seconds a WebSocket has for its handshake.
    @param maxOutgoingBuffer: bytes queued for a session (polling buffer,
        or beyond a full socket buffer) before it is closed as a slow
        consumer (4008).
    @param maxSessions: the most sessions open at once.
    @param maxPacketsPerPoll: the most packets in one poll response.
    @param nodeName: a name put in every session id, so that a request
        that reaches another node is told so.
    @param handler: C{"prism"} (Prism's pipeline) or C{"echo"}.
    """

    name = "engineio"

    def __init__(
        self,
        pingInterval=25.0,
        pingTimeout=20.0,
        maxPayload=1000000,
        allowedOrigins=None,
        transports=TRANSPORTS,
        allowUpgrades=True,
        upgradeTimeout=10.0,
        maxOutgoingBuffer=4 * 1024 * 1024,
        maxSessions=10000,
        maxPacketsPerPoll=16,
        nodeName=None,
        handler="prism",
    ):
        self.pingInterval = _number("pingInterval", pingInterval)
        self.pingTimeout = _number("pingTimeout", pingTimeout)
        self.upgradeTimeout = _number("upgradeTimeout", upgradeTimeout)
        for option, value in (
            ("maxPayload", maxPayload),
            ("maxOutgoingBuffer", maxOutgoingBuffer),
            ("maxSessions", maxSessions),
            ("maxPacketsPerPoll", maxPacketsPerPoll),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise PrismConfigError("engineio: {} must be a positive integer".format(option))
        if allowedOrigins is not None and (
            isinstance(allowedOrigins, str) or not all(isinstance(o, str) for o in allowedOrigins)
        ):
            raise PrismConfigError("engineio: allowedOrigins must be a list of strings")
        transports = tuple(transports)
        if not transports or not set(transports) <= set(TRANSPORTS) or isinstance(transports, str):
            raise PrismConfigError("engineio: transports must be a non-empty list of polling, websocket")
        if nodeName is not None and (not isinstance(nodeName, str) or not nodeName or "." in nodeName):
            raise PrismConfigError("engineio: nodeName must be a non-empty string without dots")
        if handler not in ("prism", "echo"):
            raise PrismConfigError('engineio: handler must be "prism" or "echo"')
        self.maxPayload = maxPayload
        self.allowedOrigins = list(allowedOrigins) if allowedOrigins is not None else None
        self.transports = transports
        self.allowUpgrades = bool(allowUpgrades)
        self.maxOutgoingBuffer = maxOutgoingBuffer
        self.maxSessions = maxSessions
        self.maxPacketsPerPoll = maxPacketsPerPoll
        self.nodeName = nodeName
        self.handler = handler

    def originAllowed(self, origin, host):
        if self.allowedOrigins is None:
            try:
                return urlsplit(origin).netloc.lower() == host.lower()
            except ValueError:
                return False
        return any(fnmatchcase(origin, pattern) for pattern in self.allowedOrigins)

    def resource(self, server):
        handler = EchoHandler() if self.handler == "echo" else PrismHandler(server)
        return EngineIOResource(self, handler, server.reactor)

    def echoResource(self, reactor=None):
        """@return: a resource that sends every message back (no Prism)."""
        if reactor is None:
            from twisted.internet import reactor
        return EngineIOResource(self, EchoHandler(), reactor)

    def listen(self, server, endpoint):
        """Serve Engine.IO at every path of C{endpoint} (clients use C{/engine.io/})."""
        from twisted.internet.endpoints import serverFromString
        from twisted.web.server import Site

        return serverFromString(server.reactor, endpoint).listen(Site(self.resource(server)))

    def clientScript(self):
        from prism.builder import jsSource

        return jsSource("engineio.js")

    def browserAssets(self):
        import os

        import prism

        path = os.path.join(
            os.path.dirname(os.path.dirname(os.path.abspath(prism.__file__))),
            "node_modules",
            "engine.io-client",
            "dist",
            "engine.io.min.js",
        )
        return [{"name": "engine.io.min.js", "path": path, "type": "script", "package": "engine.io-client@6"}]
