"""
The C{sockjs} transport: a SockJS protocol server (protocol 0.3.3, as spoken
by the npm C{sockjs-client} 1.x) on L{twisted.web}, so that browsers behind
proxies that break WebSocket still reach Prism.

Under a mount (C{/ws} in a site, or C{/} when listening directly):

  - C{GET /info}: C{{"websocket", "cookie_needed", "origins", "entropy"}};
    C{OPTIONS /info}: CORS preflight.
  - C{/iframe.html}, C{/iframe-<anything>.html}: the iframe page of the
    iframe-based transports (cached, with an C{ETag}).
  - C{/websocket}: raw WebSocket (messages as they are, no SockJS framing).
  - C{/<server>/<session>/<transport>}: C{websocket} (framed), C{xhr},
    C{xhr_streaming}, C{eventsource}, C{htmlfile}, C{jsonp} (receiving) and
    C{xhr_send}, C{jsonp_send} (sending).

SockJS frames: C{o} (open), C{h} (heartbeat, every C{heartbeatDelay}
seconds), C{a[...]} (messages) and C{c[code,"reason"]} (close). A session
whose receiving request has gone for C{disconnectDelay} seconds is closed and
forgotten; a second receiving request while one is attached gets
C{c[2010,"Another connection still open"]}; a receiving request that the
client aborts closes its session with C{c[1002,"Connection interrupted"]}; a
streaming response is ended after C{responseLimit} bytes (the client opens
the next one).

The protocol layer stands on its own: each mount has a I{handler}, C{"prism"}
(the server's pipeline: one SockJS message is one Prism frame) or C{"echo"}
(every message is sent back as it is, for checking the protocol against other
implementations), or any object with C{opened(session)}, C{messageReceived(
session, message)} and C{closed(session, code, reason)}.

The same guarantees as the C{websocket} transport: C{allowedOrigins} (same
origin by default) is checked on every request, C{maxMessageSize} bounds
every request body (HTTP 413 beyond it) and every WebSocket message, the
session cookie (C{prism.sid}) is read from every request that opens a
session, a streaming response whose client does not read is closed as a slow
consumer (4008) once C{maxOutgoingBuffer} bytes are queued, and the limits on
connections count SockJS sessions. Sessions live in the memory of one
process: behind a load balancer, polling needs sticky sessions (the
C{jsessionid} option sets the C{JSESSIONID} cookie many balancers stick on);
a request for a session this node does not know gets HTTP 404 with a text
saying so.

SockJS carries text only: Prism's binary frames (msgpack services) cannot be
sent over it and are dropped with an error event.
"""

import hashlib
import json
import random
import re
import time
from email.utils import formatdate
from urllib.parse import parse_qs

from autobahn.twisted.resource import WebSocketResource
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.types import ConnectionDeny
from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET
from zope.interface import implementer

from prism.errors import PrismConfigError
from prism.interfaces import ITransport, ITransportConnection
from prism.transports.websocket import SLOW_CONSUMER, WebSocketTransport, _peer, closeProtocol, parseCookies

__all__ = ["SockJSTransport", "SockJSResource", "EchoHandler", "DEFAULT_SOCKJS_URL"]

_log = Logger()

DEFAULT_SOCKJS_URL = "https://cdn.jsdelivr.net/npm/sockjs-client@1.6.1/dist/sockjs.min.js"

CONNECTING, OPEN, CLOSING, CLOSED = range(4)

ANOTHER_CONNECTION = (2010, "Another connection still open")
INTERRUPTED = (1002, "Connection interrupted")
GO_AWAY = (3000, "Go away!")
TIMED_OUT = (1006, "session timed out")

_NO_CACHE = b"no-store, no-cache, no-transform, must-revalidate, max-age=0"
_CACHE_SECONDS = 365 * 24 * 60 * 60

# Characters sockjs-node escapes in frames (some browsers and proxies mangle
# them): JSON escapes the control characters already.
_ESCAPABLE = re.compile("[\u200c-\u200f\u2028-\u202f\u2060-\u206f\ufeff\ufff0-\uffff\ud800-\udfff]")
_CALLBACK = re.compile(r"^[a-zA-Z0-9_.\-]{1,32}$")
_SEGMENT = re.compile(r"^[^/.]+$")


def _quote(text):
    return _ESCAPABLE.sub(lambda m: "\\u{:04x}".format(ord(m.group(0))), text)


_EVENTSOURCE_ESCAPES = {"%": "%25", "\r": "%0D", "\n": "%0A", "\x00": "%00"}
_EVENTSOURCE_ESCAPABLE = re.compile("[%\r\n\x00]")


def _escapeSelected(frame):
    """Escape as sockjs-node does for eventsource (the client decodeURI()s each event)."""
    return _EVENTSOURCE_ESCAPABLE.sub(lambda m: _EVENTSOURCE_ESCAPES[m.group(0)], frame)


def messageFrame(messages):
    """@return: the C{a[...]} frame carrying C{messages} (strings)."""
    return "a" + _quote(json.dumps(messages, ensure_ascii=False, separators=(",", ":")))


def closeFrame(code, reason):
    return "c" + json.dumps([code, reason], ensure_ascii=False, separators=(",", ":"))


_HTMLFILE = """
<!doctype html>
<html><head>
  <meta http-equiv="X-UA-Compatible" content="IE=edge" />
  <meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />
</head><body><h2>Don't panic!</h2>
  <script>
    document.domain = document.domain;
    var c = parent.{{ callback }};
    c.start();
    function p(d) {c.message(d);};
    window.onload = function() {c.stop();};
  </script>
"""
_HTMLFILE += " " * (1024 - len(_HTMLFILE) + 13) + "\r\n\r\n"

_IFRAME = """<!DOCTYPE html>
<html>
<head>
  <meta http-equiv="X-UA-Compatible" content="IE=edge" />
  <meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />
  <script src="{{ sockjs_url }}"></script>
  <script>
    document.domain = document.domain;
    SockJS.bootstrap_iframe();
  </script>
</head>
<body>
  <h2>Don't panic!</h2>
  <p>This is a SockJS hidden iframe. It's used for cross domain magic.</p>
</body>
</html>"""


class _Error(Exception):
    def __init__(self, status, message):
        Exception.__init__(self, message)
        self.status = status
        self.message = message


# -- handlers


class EchoHandler:
    """The raw echo handler: every message goes back as it is."""

    def opened(self, session):
        pass

    def messageReceived(self, session, message):
        session.send(message)

    def closed(self, session, code, reason):
        pass


@implementer(ITransportConnection)
class _Link:
    __slots__ = ("peer", "session")
    transport = None  # (no socket of its own: tests' clean-up looks for one)

    def __init__(self, session, peer):
        self.peer = peer
        self.session = session

    def write(self, frame, isBinary=False):
        if isBinary:
            conn = self.session.connection
            if conn is not None:
                conn.server._error(
                    "encode", "sockjs carries text only: a binary frame was dropped", conn, None, None, None, send=False
                )
            return
        self.session.send(frame)

    def close(self, code=1000, reason=""):
        self.session.close(code, reason)

    def pauseReading(self, seconds):
        pass  # polling clients are not read from a socket; the rate limiter drops instead


class PrismHandler:
    """One SockJS session is one Prism connection; one message one frame."""

    def __init__(self, server):
        self.server = server

    def opened(self, session):
        server = self.server
        headers = session.headers
        token = None
        cookie = headers.get("cookie")
        if cookie:
            token = parseCookies(cookie).get(server.sessionCookie)
        conn = server.connectionMade(_Link(session, session.peer), "sockjs", session.peer, token, headers)
        conn.address = session.address
        session.connection = conn
        if conn.cookieIssued and server.usesSessions:
            # Sent by the transport with the response that opens the session.
            session.setCookie = "{}={}; Path=/; HttpOnly; SameSite=Lax".format(server.sessionCookie, conn.sessionCookieValue)

    def messageReceived(self, session, message):
        conn = session.connection
        if conn is None or not conn.open:
            return
        conn.frameReceived(message, False)

    def closed(self, session, code, reason):
        conn, session.connection = session.connection, None
        if conn is not None:
            conn.connectionLost(code, reason)


# -- sessions


class Session:
    """
    One SockJS session: a queue of outgoing messages, at most one attached
    receiver (a polling/streaming response or a WebSocket), and the timers.
    """

    connection = None
    openedBy = None
    setCookie = None  # a Set-Cookie value the handler wants sent
    _announced = False

    def __init__(self, mount, sid, handler, peer, address, headers):
        self.mount = mount
        self.id = sid
        self.handler = handler
        self.peer = peer
        self.address = address
        self.headers = headers
        self.state = CONNECTING
        self.buffer = []
        self.receiver = None
        self.closeFrame = None
        self._timer = None
        self._heartbeat = None
        self._startTimeout()

    # timers

    def _startTimeout(self):
        self._cancelTimeout()
        self._timer = self.mount.reactor.callLater(self.mount.disconnectDelay, self._timedOut)

    def _cancelTimeout(self):
        call, self._timer = self._timer, None
        if call is not None and call.active():
            call.cancel()

    def _startHeartbeat(self):
        self._stopHeartbeat()
        if self.mount.heartbeatDelay:
            self._heartbeat = self.mount.reactor.callLater(self.mount.heartbeatDelay, self._beat)

    def _stopHeartbeat(self):
        call, self._heartbeat = self._heartbeat, None
        if call is not None and call.active():
            call.cancel()

    def _beat(self):
        self._heartbeat = None
        if self.receiver is not None:
            self.receiver.sendFrame("h")
            if self.receiver is not None:
                self._startHeartbeat()

    def _timedOut(self):
        """No receiver for C{disconnectDelay}: forget the session."""
        self._timer = None
        self._stopHeartbeat()
        state, self.state = self.state, CLOSED
        self.mount._forget(self)
        if state == OPEN:
            self._notifyClosed(*TIMED_OUT)

    def _notifyClosed(self, code, reason):
        try:
            self.handler.closed(self, code, reason)
        except Exception:
            _log.failure("sockjs: the handler failed on close")

    # receivers

    def start(self, request=None):
        """Open the session: the handler sees it before any byte is sent (cookies)."""
        if self.state != CONNECTING:
            return
        self.state = OPEN
        self.openedBy = request
        try:
            self.handler.opened(self)
        except Exception:
            _log.failure("sockjs: the handler failed on open")
            self.close(3000, "internal error")
        self.openedBy = None

    def register(self, receiver, request=None):
        if self.state == CONNECTING:
            self.start(request)
        if self.receiver is not None:
            receiver.sendFrame(closeFrame(*ANOTHER_CONNECTION))
            receiver.finish()
            return
        self._cancelTimeout()
        if self.state == CLOSING or self.state == CLOSED:
            self._flushTo(receiver)
            receiver.sendFrame(self.closeFrame or closeFrame(*GO_AWAY))
            receiver.finish()
            if self.state == CLOSING:
                self._startTimeout()
            return
        self.receiver = receiver
        receiver.session = self
        if not self._announced:
            self._announced = True
            receiver.sendFrame("o")
        if self.receiver is receiver:
            self._flush()

    def unregister(self, receiver, aborted=False):
        if self.receiver is not receiver:
            return
        self.receiver = None
        receiver.session = None
        self._stopHeartbeat()
        if aborted and self.state == OPEN:
            self.close(*INTERRUPTED)
        if self.state != CLOSED:
            self._startTimeout()

    def _flushTo(self, receiver):
        if self.buffer:
            messages, self.buffer = self.buffer, []
            receiver.sendBulk(messages)

    def _flush(self):
        receiver = self.receiver
        if receiver is None:
            return
        if self.buffer:
            self._flushTo(receiver)
        if self.receiver is not None:
            self._startHeartbeat()

    # the handler's side

    def send(self, message):
        if self.state != OPEN:
            return False
        self.buffer.append(message)
        if self.receiver is not None and self.receiver.writable():
            self._flush()
        return True

    def didMessage(self, message):
        if self.state == OPEN:
            self.handler.messageReceived(self, message)

    def close(self, code=3000, reason="Go away!"):
        if self.state not in (OPEN, CONNECTING):
            return False
        self.state = CLOSING
        self.closeFrame = closeFrame(code, reason)
        receiver = self.receiver
        if receiver is not None:
            self._flushTo(receiver)
            receiver.sendFrame(self.closeFrame, code=code, reason=reason)
            receiver.finish(code, reason)
            self.unregister(receiver)
        self._notifyClosed(code, reason)
        return True


# -- receivers


@implementer(IPushProducer)
class _ResponseReceiver:
    """
    A receiving HTTP response: polling (one frame, then finish) or streaming
    (frames until C{responseLimit} bytes). Registered as the request's
    streaming producer, for backpressure.
    """

    session = None

    def __init__(self, mount, request, formatter, limit):
        self.mount = mount
        self.request = request
        self.formatter = formatter
        self.limit = limit
        self.written = 0
        self.done = False
        self.paused = False
        self.queued = 0
        request.registerProducer(self, True)
        request.notifyFinish().addErrback(self._lost)

    # IPushProducer (the request's transport calls these)
    def pauseProducing(self):
        self.paused = True

    def resumeProducing(self):
        self.paused = False
        self.queued = 0
        if self.session is not None and not self.done:
            self.session._flush()

    def stopProducing(self):
        self.paused = True

    def writable(self):
        return not self.done

    def sendBulk(self, messages):
        self.sendFrame(messageFrame(messages))

    def sendFrame(self, frame, code=None, reason=None):
        if self.done:
            return
        data = self.formatter(frame).encode("utf-8")
        self.written += len(data)
        if self.paused:
            self.queued += len(data)
            if self.queued > self.mount.maxOutgoingBuffer:
                session = self.session
                _log.warn("sockjs: slow consumer {peer}: closing with 4008", peer=session.peer if session else None)
                self.done = True
                if session is not None:
                    session.unregister(self)
                    self.mount.reactor.callLater(0, session.close, SLOW_CONSUMER, "slow consumer")
                self._end()
                return
        self.request.write(data)
        if self.written >= self.limit:
            self.finish()

    def finish(self, code=None, reason=None):
        if self.done:
            return
        self.done = True
        session = self.session
        if session is not None:
            session.unregister(self)
        self._end()

    def _end(self):
        request = self.request
        try:
            request.unregisterProducer()
        except Exception:
            pass
        if not request.finished and not request._disconnected:
            request.finish()

    def _lost(self, failure):
        if self.done:
            return
        self.done = True
        session = self.session
        if session is not None:
            session.unregister(self, aborted=True)


class _WebSocketReceiver:
    session = None

    def __init__(self, protocol):
        self.protocol = protocol

    def writable(self):
        return True

    def sendBulk(self, messages):
        self.protocol._writeMessages(messages)

    def sendFrame(self, frame, code=None, reason=None):
        self.protocol._write(frame)

    def finish(self, code=None, reason=None):
        session = self.session
        if session is not None:
            session.unregister(self)
        self.protocol._closeSoon(code or 1000, reason or "")


class SockJSWebSocketProtocol(WebSocketServerProtocol):
    """SockJS over WebSocket, framed (C{raw} false) or raw."""

    raw = False
    session = None
    receiver = None
    _counted = None

    def onConnect(self, request):
        mount = self.factory.mount
        headers = request.headers
        origin = headers.get("origin")
        if origin is not None and not mount.originAllowed(origin, headers.get("host", "")):
            mount._refuse("origin", "refused a connection from origin {!r}".format(origin))
            raise ConnectionDeny(ConnectionDeny.FORBIDDEN, "origin not allowed")
        address = mount.clientAddress(self.transport.getPeer(), headers)
        refusal = mount._admit(address)
        if refusal is not None:
            mount._refuse("limit", refusal[1] + " ({})".format(address))
            raise ConnectionDeny(*refusal)
        self._counted = address
        self.session = session = Session(mount, None, mount.makeHandler(), _peer(self.transport), address, dict(headers))
        session.start()  # now, while the handshake response can still carry a cookie
        cookie, session.setCookie = session.setCookie, None
        return (None, {"Set-Cookie": cookie}) if cookie else None

    def onOpen(self):
        self.receiver = receiver = _WebSocketReceiver(self)
        self.session.register(receiver)

    def _write(self, frame):
        if self.state != 3 or self.raw:  # raw: no o, h or c frames (the close frame says it)
            return
        self.sendMessage(frame.encode("utf-8"), False)

    def _writeMessages(self, messages):
        if self.state != 3:
            return
        if self.raw:
            for message in messages:
                self.sendMessage(message.encode("utf-8"), False)
        else:
            self.sendMessage(messageFrame(messages).encode("utf-8"), False)

    def _closeSoon(self, code, reason):
        if not self.raw or not (3000 <= code < 5000 or code in (1000, 1001, 1008, 1009, 1011)):
            code = 1000  # framed: the c frame carried the code
        closeProtocol(self, code, reason)

    def onMessage(self, payload, isBinary):
        session = self.session
        if session is None:
            return
        mount = self.factory.mount
        if len(payload) > mount.maxMessageSize:
            mount._tooLarge(session, len(payload))
            return
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            closeProtocol(self, 1007, "invalid UTF-8")
            return
        if self.raw:
            session.didMessage(text)
            return
        if not text:
            return
        try:
            messages = json.loads(text)
        except ValueError:
            closeProtocol(self, 1000, "broken JSON encoding")
            return
        if not isinstance(messages, list):
            messages = [messages]
        for message in messages:
            session.didMessage(message if isinstance(message, str) else json.dumps(message))

    def onClose(self, wasClean, code, reason):
        session = self.session
        if session is not None:
            if self.receiver is not None and session.receiver is self.receiver:
                session.unregister(self.receiver)
            session.close(code or 1006, reason or "connection lost")
            session._cancelTimeout()
            session._stopHeartbeat()
            session.state = CLOSED

    def connectionLost(self, reason):
        try:
            WebSocketServerProtocol.connectionLost(self, reason)
        finally:
            if self._counted is not None:
                self.factory.mount._release(self._counted)
                self._counted = None


class RawSockJSWebSocketProtocol(SockJSWebSocketProtocol):
    raw = True


# -- the resource


def _header(request, name):
    value = request.getHeader(name)
    return value.decode("latin-1") if value is not None else None


class SockJSResource(Resource):
    """
    A SockJS endpoint: mount it at any path of a L{twisted.web} site.
    L{SockJSTransport.resource} builds one for a Prism server;
    C{SockJSResource(transport, handlerFactory, reactor)} serves any handler.
    """

    isLeaf = True

    def __init__(self, transport, makeHandler, reactor, server=None):
        Resource.__init__(self)
        self.transport = transport
        self.makeHandler = makeHandler
        self.reactor = reactor
        self.server = server
        self.sessions = {}
        for name in (
            "maxMessageSize", "heartbeatDelay", "disconnectDelay", "responseLimit", "websocket",
            "jsessionid", "sockjsUrl", "maxOutgoingBuffer",
        ):
            setattr(self, name, getattr(transport, name))
        self._iframe = _IFRAME.replace("{{ sockjs_url }}", self.sockjsUrl).encode("utf-8")
        self._etag = '"{}"'.format(hashlib.md5(self._iframe).hexdigest()).encode("ascii")
        self._wsFactories = {}

    # shared with the transport's limits
    def originAllowed(self, origin, host):
        return self.transport.originAllowed(origin, host)

    def clientAddress(self, peer, headers):
        return self.transport.clientAddress(peer, headers)

    def _admit(self, address):
        t = self.transport
        if t.maxConnections and t.connectionCount >= t.maxConnections:
            return (503, "too many connections")
        count = t.addressCounts.get(address, 0)
        if t.maxConnectionsPerAddress and count >= t.maxConnectionsPerAddress:
            return (429, "too many connections from this address")
        t.addressCounts[address] = count + 1
        t.connectionCount += 1
        return None

    def _release(self, address):
        t = self.transport
        t.connectionCount -= 1
        count = t.addressCounts.get(address, 0) - 1
        if count > 0:
            t.addressCounts[address] = count
        else:
            t.addressCounts.pop(address, None)

    def _refuse(self, kind, message):
        if self.server is not None:
            self.server._error(kind, message, None, None, None, None, send=False)
        else:
            _log.info("sockjs: {message}", message=message)

    def _tooLarge(self, session, size):
        message = "message of {} bytes exceeds the limit of {}".format(size, self.maxMessageSize)
        conn = session.connection
        if conn is not None:
            conn.server._error("too_large", message, conn, None, None, None)
        else:
            _log.info("sockjs: {message}", message=message)

    def closeAll(self, code=1001, reason="going away"):
        """
        Close every session and forget it at once (the mount is going away:
        no later poll will come for the close frame).
        """
        for session in list(self.sessions.values()):
            session.close(code, reason)
            session._cancelTimeout()
            session._stopHeartbeat()
            session.state = CLOSED
            self._forget(session)

    def _forget(self, session):
        if session.id is not None and self.sessions.get(session.id) is session:
            del self.sessions[session.id]
            if session.address is not None:
                self._release(session.address)
                session.address = None

    # -- dispatch

    def render(self, request):
        try:
            return self._render(request)
        except _Error as e:
            return self._error(request, e.status, e.message)

    def _error(self, request, status, message):
        request.setResponseCode(status)
        request.setHeader(b"content-type", b"text/plain; charset=UTF-8")
        return message.encode("utf-8")

    def _render(self, request):
        try:  # small frames must not wait for the client's delayed ACK (Nagle)
            request.channel.transport.setTcpNoDelay(True)
        except Exception:
            pass
        path = [p.decode("utf-8", "replace") for p in request.postpath]
        while path and path[-1] == "" and len(path) > 1:
            path.pop()
        method = request.method.decode("ascii", "replace")
        origin = _header(request, b"origin")
        if origin is not None and origin != "null":
            host = _header(request, b"host") or ""
            if not self.originAllowed(origin, host):
                self._refuse("origin", "refused a request from origin {!r}".format(origin))
                raise _Error(403, "origin not allowed")
        if path in ([], [""]):
            if method not in ("GET", "HEAD"):
                return self._notAllowed(request, "GET")
            request.setHeader(b"content-type", b"text/plain; charset=UTF-8")
            return b"Welcome to SockJS!\n"
        if path == ["info"]:
            return self._info(request, method)
        if len(path) == 1 and re.match(r"^iframe[0-9\-.a-z_]*\.html$", path[0]):
            return self._iframePage(request, method)
        if path == ["websocket"]:
            if not self.websocket:
                raise _Error(404, "404 Error: Page not found\n")
            return self._websocket(request, method, raw=True)
        if len(path) == 3 and _SEGMENT.match(path[0]) and _SEGMENT.match(path[1]):
            kind = path[2]
            sid = path[1]
            if kind == "websocket":
                if not self.websocket:
                    raise _Error(404, "404 Error: Page not found\n")
                return self._websocket(request, method, raw=False)
            handler = self._TRANSPORTS.get(kind)
            if handler is not None:
                return handler(self, request, method, sid)
        raise _Error(404, "404 Error: Page not found\n")

    def _notAllowed(self, request, methods):
        request.setResponseCode(405)
        request.setHeader(b"allow", methods.encode("ascii"))
        return b""

    # -- headers

    def _noCache(self, request):
        request.setHeader(b"cache-control", _NO_CACHE)

    def _cacheFor(self, request):
        request.setHeader(b"cache-control", "public, max-age={}".format(_CACHE_SECONDS).encode("ascii"))
        request.setHeader(b"expires", formatdate(time.time() + _CACHE_SECONDS, usegmt=True).encode("ascii"))
        request.setHeader(b"access-control-max-age", str(_CACHE_SECONDS).encode("ascii"))

    def _cors(self, request):
        origin = request.getHeader(b"origin")
        if not origin or origin == b"null":
            origin = b"*"
        else:
            request.setHeader(b"access-control-allow-credentials", b"true")
        request.setHeader(b"access-control-allow-origin", origin)
        request.setHeader(b"vary", b"Origin")
        wanted = request.getHeader(b"access-control-request-headers")
        if wanted:
            request.setHeader(b"access-control-allow-headers", wanted)

    def _jsessionid(self, request):
        if self.jsessionid:
            value = request.getCookie(b"JSESSIONID") or b"dummy"
            request.setHeader(b"set-cookie", b"JSESSIONID=" + value + b"; path=/")

    def _options(self, request, methods):
        request.setResponseCode(204)
        self._cacheFor(request)
        request.setHeader(b"access-control-allow-methods", methods)
        self._cors(request)
        self._jsessionid(request)
        return b""

    # -- /info and the iframe page

    def _info(self, request, method):
        if method == "OPTIONS":
            return self._options(request, b"OPTIONS, GET")
        if method != "GET":
            return self._notAllowed(request, "OPTIONS, GET")
        self._noCache(request)
        self._cors(request)
        request.setHeader(b"content-type", b"application/json; charset=UTF-8")
        body = {
            "websocket": bool(self.websocket),
            "cookie_needed": bool(self.jsessionid),
            "origins": ["*:*"],
            "entropy": random.SystemRandom().randint(0, 2**32 - 1),
        }
        return json.dumps(body).encode("utf-8")

    def _iframePage(self, request, method):
        if method != "GET":
            return self._notAllowed(request, "GET")
        if request.getHeader(b"if-none-match") == self._etag:
            request.setResponseCode(304)
            return b""
        self._cacheFor(request)
        request.setHeader(b"content-type", b"text/html; charset=UTF-8")
        request.setHeader(b"etag", self._etag)
        return self._iframe

    # -- WebSocket

    def _wsFactory(self, raw):
        factory = self._wsFactories.get(raw)
        if factory is None:
            factory = WebSocketServerFactory(None, reactor=self.reactor)
            factory.protocol = RawSockJSWebSocketProtocol if raw else SockJSWebSocketProtocol
            factory.mount = self
            hard = max(self.maxMessageSize * 2, self.maxMessageSize + 65536)
            factory.setProtocolOptions(
                maxMessagePayloadSize=hard,
                maxFramePayloadSize=hard,
                autoPingInterval=0,
                openHandshakeTimeout=10,
                closeHandshakeTimeout=5,
                failByDrop=False,
            )
            self._wsFactories[raw] = factory = (factory, WebSocketResource(factory))
        return factory[1]

    def _websocket(self, request, method, raw):
        if method != "GET":
            return self._notAllowed(request, "GET")
        upgrade = (request.getHeader(b"upgrade") or b"").lower()
        if upgrade != b"websocket":
            raise _Error(400, 'Can "Upgrade" only to "WebSocket".')
        connection = (request.getHeader(b"connection") or b"").lower()
        if b"upgrade" not in [part.strip() for part in connection.split(b",")]:
            raise _Error(400, '"Connection" must be "Upgrade".')
        return self._wsFactory(raw).render(request)

    # -- HTTP transports

    def _body(self, request):
        request.content.seek(0, 2)
        size = request.content.tell()
        if size > self.maxMessageSize:
            raise _Error(413, "Payload too large.")
        request.content.seek(0)
        return request.content.read()

    def _session(self, request, sid, create):
        session = self.sessions.get(sid)
        if session is None and create:
            headers = {}
            for name, values in request.requestHeaders.getAllRawHeaders():
                headers[name.decode("latin-1").lower()] = values[0].decode("latin-1")
            address = self.clientAddress(request.getClientAddress(), headers)
            refusal = self._admit(address)
            if refusal is not None:
                self._refuse("limit", refusal[1] + " ({})".format(address))
                raise _Error(refusal[0], refusal[1])
            session = Session(self, sid, self.makeHandler(), _peer(request.transport), address, headers)
            self.sessions[sid] = session
        return session

    def _receive(self, request, sid, prelude, formatter, limit):
        session = self._session(request, sid, create=True)
        session.start(request)  # before the first byte: the handler may set a cookie
        cookie, session.setCookie = session.setCookie, None
        if cookie:
            request.responseHeaders.addRawHeader(b"set-cookie", cookie.encode("latin-1"))
        if prelude:
            request.write(prelude)
        receiver = _ResponseReceiver(self, request, formatter, limit)
        session.register(receiver, request)
        return NOT_DONE_YET

    def _xhr(self, request, method, sid, streaming=False):
        if method == "OPTIONS":
            return self._options(request, b"OPTIONS, POST")
        if method != "POST":
            return self._notAllowed(request, "OPTIONS, POST")
        self._noCache(request)
        self._cors(request)
        self._jsessionid(request)
        request.setHeader(b"content-type", b"application/javascript; charset=UTF-8")
        if streaming:
            return self._receive(request, sid, b"h" * 2048 + b"\n", lambda f: f + "\n", self.responseLimit)
        return self._receive(request, sid, None, lambda f: f + "\n", 1)

    def _xhrStreaming(self, request, method, sid):
        return self._xhr(request, method, sid, streaming=True)

    def _eventsource(self, request, method, sid):
        if method != "GET":
            return self._notAllowed(request, "GET")
        self._noCache(request)
        self._jsessionid(request)
        request.setHeader(b"content-type", b"text/event-stream")
        return self._receive(request, sid, b"\r\n", lambda f: "data: " + _escapeSelected(f) + "\r\n\r\n", self.responseLimit)

    def _callback(self, request):
        args = request.args
        values = args.get(b"c") or args.get(b"callback")
        if not values:
            raise _Error(500, '"callback" parameter required')
        callback = values[0].decode("utf-8", "replace")
        if not _CALLBACK.match(callback):
            raise _Error(500, 'invalid "callback" parameter')
        return callback

    def _htmlfile(self, request, method, sid):
        if method != "GET":
            return self._notAllowed(request, "GET")
        callback = self._callback(request)
        self._noCache(request)
        self._jsessionid(request)
        request.setHeader(b"content-type", b"text/html; charset=UTF-8")
        prelude = _HTMLFILE.replace("{{ callback }}", callback).encode("utf-8")
        return self._receive(
            request, sid, prelude, lambda f: "<script>\np(" + json.dumps(f) + ");\n</script>\r\n", self.responseLimit
        )

    def _jsonp(self, request, method, sid):
        if method != "GET":
            return self._notAllowed(request, "GET")
        callback = self._callback(request)
        self._noCache(request)
        self._jsessionid(request)
        request.setHeader(b"x-content-type-options", b"nosniff")
        request.setHeader(b"content-type", b"application/javascript; charset=UTF-8")
        return self._receive(request, sid, None, lambda f: "/**/" + callback + "(" + json.dumps(f) + ");\r\n", 1)

    def _deliver(self, session, messages):
        for message in messages:
            if not isinstance(message, str):
                message = json.dumps(message)
            if len(message.encode("utf-8")) > self.maxMessageSize:
                self._tooLarge(session, len(message.encode("utf-8")))
                continue
            session.didMessage(message)

    def _missing(self, sid):
        return _Error(
            404,
            "session not found: no SockJS session {!r} on this node (it expired, or the load balancer "
            "sent this request to another node: polling needs sticky sessions)".format(sid),
        )

    def _xhrSend(self, request, method, sid):
        if method == "OPTIONS":
            return self._options(request, b"OPTIONS, POST")
        if method != "POST":
            return self._notAllowed(request, "OPTIONS, POST")
        body = self._body(request)
        session = self.sessions.get(sid)
        if session is None:
            raise self._missing(sid)
        self._noCache(request)
        self._cors(request)
        self._jsessionid(request)
        if not body:
            raise _Error(500, "Payload expected.")
        try:
            messages = json.loads(body.decode("utf-8"))
        except ValueError:
            raise _Error(500, "Broken JSON encoding.")
        if not isinstance(messages, list):
            raise _Error(500, "Payload expected.")
        self._deliver(session, messages)
        request.setResponseCode(204)
        request.setHeader(b"content-type", b"text/plain; charset=UTF-8")
        return b""

    def _jsonpSend(self, request, method, sid):
        if method != "POST":
            return self._notAllowed(request, "POST")
        body = self._body(request)
        session = self.sessions.get(sid)
        if session is None:
            raise self._missing(sid)
        self._noCache(request)
        self._jsessionid(request)
        kind = (request.getHeader(b"content-type") or b"").split(b";")[0].strip().lower()
        if kind == b"application/x-www-form-urlencoded":
            values = parse_qs(body.decode("utf-8", "replace")).get("d")
            data = values[0] if values else ""
        else:
            data = body.decode("utf-8", "replace")
        if not data:
            raise _Error(500, "Payload expected.")
        try:
            messages = json.loads(data)
        except ValueError:
            raise _Error(500, "Broken JSON encoding.")
        if not isinstance(messages, list):
            raise _Error(500, "Payload expected.")
        self._deliver(session, messages)
        request.setHeader(b"content-type", b"text/plain; charset=UTF-8")
        return b"ok"

    _TRANSPORTS = {
        "xhr": _xhr,
        "xhr_streaming": _xhrStreaming,
        "xhr_send": _xhrSend,
        "eventsource": _eventsource,
        "htmlfile": _htmlfile,
        "jsonp": _jsonp,
        "jsonp_send": _jsonpSend,
    }


@implementer(ITransport)
class SockJSTransport(WebSocketTransport):
    """
    @param handler: C{"prism"} (the server's pipeline) or C{"echo"} (every
        message back as it is), or a callable returning a handler object per
        session (C{opened}, C{messageReceived}, C{closed}).
    @param heartbeatDelay: seconds between C{h} frames on an idle receiver.
    @param disconnectDelay: seconds a session lives without a receiver.
    @param responseLimit: bytes after which a streaming response is ended.
    @param websocket: offer the WebSocket transports (C{/info} says so).
    @param jsessionid: set the C{JSESSIONID} cookie (for sticky balancers).
    @param sockjsUrl: the SockJS client the iframe page loads.

    The other options (C{maxMessageSize}, C{allowedOrigins},
    C{maxConnections}, C{maxConnectionsPerAddress}, C{maxOutgoingBuffer},
    C{trustedProxies}, C{proxyHeader}) are the C{websocket} transport's.
    """

    name = "sockjs"

    def __init__(
        self,
        handler="prism",
        heartbeatDelay=25.0,
        disconnectDelay=5.0,
        responseLimit=128 * 1024,
        websocket=True,
        jsessionid=False,
        sockjsUrl=DEFAULT_SOCKJS_URL,
        maxMessageSize=1024 * 1024,
        allowedOrigins=None,
        maxConnections=10000,
        maxConnectionsPerAddress=100,
        maxOutgoingBuffer=4 * 1024 * 1024,
        trustedProxies=(),
        proxyHeader="x-forwarded-for",
    ):
        WebSocketTransport.__init__(
            self,
            maxMessageSize=maxMessageSize,
            allowedOrigins=allowedOrigins,
            pingInterval=0,
            maxConnections=maxConnections,
            maxConnectionsPerAddress=maxConnectionsPerAddress,
            maxOutgoingBuffer=maxOutgoingBuffer,
            trustedProxies=trustedProxies,
            proxyHeader=proxyHeader,
        )
        if handler not in ("prism", "echo") and not callable(handler):
            raise PrismConfigError('sockjs: handler must be "prism", "echo" or a callable')
        for option, value, zero in (
            ("heartbeatDelay", heartbeatDelay, True),
            ("disconnectDelay", disconnectDelay, False),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or (not zero and not value):
                raise PrismConfigError("sockjs: {} must be a number of seconds > 0".format(option))
        if isinstance(responseLimit, bool) or not isinstance(responseLimit, int) or responseLimit <= 0:
            raise PrismConfigError("sockjs: responseLimit must be a positive integer")
        if not isinstance(sockjsUrl, str) or not sockjsUrl:
            raise PrismConfigError("sockjs: sockjsUrl must be a URL")
        self.handler = handler
        self.heartbeatDelay = heartbeatDelay
        self.disconnectDelay = disconnectDelay
        self.responseLimit = responseLimit
        self.websocket = bool(websocket)
        self.jsessionid = bool(jsessionid)
        self.sockjsUrl = sockjsUrl

    def _handlerFactory(self, server):
        if self.handler == "echo":
            return EchoHandler
        if self.handler == "prism":
            return lambda: PrismHandler(server)
        return self.handler

    def resource(self, server):
        return SockJSResource(self, self._handlerFactory(server), server.reactor, server)

    def listen(self, server, endpoint):
        from twisted.internet.endpoints import serverFromString
        from twisted.web.server import Site

        site = Site(self.resource(server))
        site.displayTracebacks = False
        site.log = lambda request: None
        return serverFromString(server.reactor, endpoint).listen(site)

    def clientScript(self):
        """@return: C{prism/js/sockjs.js} (the official C{sockjs-client})."""
        from prism.builder import jsSource

        return jsSource("sockjs.js")

    def browserAssets(self):
        return [{"name": "sockjs-client", "url": self.sockjsUrl, "type": "script"}]
