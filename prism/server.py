"""
The Prism server: the kernel that multiplexes services over one connection
per client, runs the middleware chain on every incoming message and manages
sessions.

For example::

    from prism.server import Server
    from prism.services.rpc import RPCService

    server = Server()                                  # WebSocket transport
    server.service("rpc", RPCService(handlers="myapp.rpc"))
    server.start()
    server.listen("tcp:3001")

The per-message path is synchronous: a frame is parsed, decoded, passed
through the middleware and handed to its service without allocating a
L{Deferred}, unless a middleware, a session load or a handler is actually
asynchronous.
"""

import secrets
import traceback as _traceback
from collections import deque
from inspect import iscoroutine

from twisted.internet.defer import Deferred, DeferredList, maybeDeferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from prism import wire
from prism.errors import NoSuchSession, PrismConfigError, PrismError, ProtocolError
from prism.events import EventBus
from prism.interfaces import IConnection, IRequest
from prism.middleware import Chain, Drop, _requestFields, _requestLog
from prism.sessioncodecs import sessionCodec as _sessionCodec
from prism.sessions import MemorySessionStore, Session, newSessionId, sign

__all__ = ["Server", "Connection", "Request", "EventBus", "PreparedFrame", "GOING_AWAY", "SYSTEM"]

GOING_AWAY = 1001
SYSTEM = 0
PROTOCOL_VERSION = 1

_PLAIN = frozenset([str, bytes, int, float, bool, list, dict, tuple, type(None)])

NO_REPLY = object()
"""Returned by a service with callbacks that has sent its reply itself."""

REFUSED_COOKIE = "refused a session cookie with a bad signature"
SESSION_STORE_UNAVAILABLE = "session store unavailable"


def _defaultReactor():
    from twisted.internet import reactor  # resolved at call time, after twistd installed one

    return reactor


class ServiceError(PrismError):
    """Raise from a service or handler to send an error of a specific kind."""

    def __init__(self, kind, message):
        PrismError.__init__(self, message)
        self.kind = kind
        self.message = message


class ErrorEvent:
    """
    What the C{error} event carries.

    @ivar kind: the error kind (see C{docs/protocol.md}).
    @ivar message: a human readable message.
    @ivar connection: the L{Connection}, or L{None}.
    @ivar service: the service name, or L{None}.
    @ivar callbackId: the request's callback id, or L{None}.
    @ivar failure: the L{Failure}, for exceptions, else L{None}.
    """

    __slots__ = ("kind", "message", "connection", "service", "callbackId", "failure")

    def __init__(self, kind, message, connection=None, service=None, callbackId=None, failure=None):
        self.kind = kind
        self.message = message
        self.connection = connection
        self.service = service
        self.callbackId = callbackId
        self.failure = failure

    def __repr__(self):
        return "<ErrorEvent {} {!r} service={}>".format(self.kind, self.message, self.service)


@implementer(IRequest)
class Request:
    """One incoming message; see L{prism.interfaces.IRequest}."""

    # received: the reactor time it arrived, set only while requests are
    # logged (Server.logRequests); left unset otherwise.
    __slots__ = ("server", "connection", "service", "serviceId", "callbackId", "payload", "size", "session", "received")

    def __init__(self, server, connection, service, serviceId, callbackId, payload, size, session=None):
        self.server = server
        self.connection = connection
        self.service = service
        self.serviceId = serviceId
        self.callbackId = callbackId
        self.payload = payload
        self.size = size
        self.session = session

    @property
    def peer(self):
        return self.connection.peer

    @property
    def transport(self):
        return self.connection.transport

    @property
    def method(self):
        """
        The method this request names (the RPC method, the pubsub command)
        for services that declare C{namedRequests}, else L{None}; for logs
        and metrics (at most 100 characters).
        """
        return _methodOf(self.server._entries[self.serviceId], self.payload)

    def __repr__(self):
        return "<Request {} cb={} from {}>".format(self.service, self.callbackId, self.connection.peer)


def _methodOf(entry, payload):
    if entry.namedRequests and type(payload) is list and payload and type(payload[0]) is str:
        return payload[0][:100]
    return None


class _Entry:
    """A registered service with everything the hot path needs precomputed."""

    __slots__ = (
        "name", "id", "service", "codec", "decode", "callbacks", "sessions", "private", "prefix", "namedRequests",
        "received", "receivedBytes", "sent", "sentBytes",
    )

    def __init__(self, name, serviceId, service):
        self.name = name
        self.id = serviceId
        self.service = service
        self.codec = wire.codec(getattr(service, "codec", "raw"))
        self.decode = self.codec.decode
        self.callbacks = bool(getattr(service, "callbacks", False))
        self.sessions = bool(getattr(service, "sessions", False))
        self.private = bool(getattr(service, "private", False))
        self.prefix = wire.ALPHABET[serviceId]
        # The payload is ["method", …] (rpc, pubsub): logs report the method.
        self.namedRequests = bool(getattr(service, "namedRequests", False))
        # Traffic: messages and their size, counted only while metrics are on.
        self.received = self.receivedBytes = self.sent = self.sentBytes = 0

    def describe(self):
        return [self.name, self.id, self.codec.name, self.callbacks]


@implementer(IConnection)
class Connection:
    """
    The server side of one client connection; see
    L{prism.interfaces.IConnection}. Created by L{Server.connectionMade}.
    """

    def __init__(self, server, link, transport, peer, sessionId, newSession, headers=None):
        self.server = server
        self.id = secrets.token_urlsafe(12)
        self.transport = transport
        self.peer = peer
        self.headers = headers or {}
        self.sessionId = sessionId
        self._link = link
        self._write = link.write
        self._writePrepared = getattr(link, "writePrepared", None)
        self._metrics = server.metrics  # counts what is sent (prism.metrics), or None
        self._newSession = newSession  # issued for this connection, not yet stored
        self._session = None  # the cached Session (cache_sessions on)
        self._queue = None  # frames held while the session is being bound
        self._holds = 0
        self.open = True
        self.welcomed = False
        self.refusedCookie = False  # the handshake's cookie had a bad signature

    def __repr__(self):
        return "<Connection {} {} via {}>".format(self.id, self.peer, self.transport)

    @property
    def sessionToken(self):
        return sign(self.server.secret, self.sessionId)

    @property
    def sessionCookieValue(self):
        """The session cookie's value in the server's codec's format."""
        server = self.server
        return server.sessionCodec.cookieValue(server.secret, self.sessionId)

    # -- what services call

    def send(self, serviceId, value, callbackId=None):
        entry = self.server._entries[serviceId]
        payload, isBinary = entry.codec.encode(value)
        head = entry.prefix + "|" if callbackId is None else entry.prefix + str(callbackId) + "|"
        if isBinary:
            self._write(head.encode("ascii") + payload, True)
        else:
            self._write(head + payload, False)
        if self._metrics is not None:
            entry.sent += 1
            entry.sentBytes += len(head) + len(payload)

    def sendFrame(self, frame, isBinary=False):
        if self.open:
            self._write(frame, isBinary)
            if self._metrics is not None:
                self._metrics._sent(frame)

    def sendPrepared(self, prepared):
        """
        Send a L{PreparedFrame} (from L{Server.prepareFrame}): the same bytes,
        encoded and framed once, go to every connection it is sent on.
        """
        if self.open:
            if self._writePrepared is not None:
                self._writePrepared(prepared)
            else:
                self._write(prepared.frame, prepared.isBinary)
            metrics = self._metrics
            if metrics is not None:
                if prepared.meter is not metrics:  # once per fan-out
                    metrics._prepared(prepared)
                entry = prepared.entry
                entry.sent += 1
                entry.sentBytes += len(prepared.frame)

    def sendError(self, serviceId, callbackId, kind, message, tb=None):
        if self.open:
            frame = wire.encodeError(serviceId, callbackId, kind, message, tb)
            self._write(frame, False)
            if self._metrics is not None:
                self._metrics._sent(frame)

    def close(self, code=1000, reason=""):
        if self.open:
            self._link.close(code, reason)

    address = None
    """The client's address (a host, without port) as the transport sees it,
    trusted-proxy headers applied; L{None} when the transport does not say
    (use C{peer})."""

    def pauseReading(self, seconds):
        """
        Stop reading this client's messages for C{seconds} (flood control),
        if the transport can; otherwise do nothing.
        """
        pause = getattr(self._link, "pauseReading", None)
        if pause is not None and self.open:
            pause(seconds)

    # -- what the transport calls

    def frameReceived(self, frame, isBinary=False):
        if self._queue is not None:
            self._queue.append((frame, isBinary))
            return
        self.server._frameReceived(self, frame, isBinary)

    def connectionLost(self, code=None, reason=None):
        if not self.open:
            return
        self.open = False
        self.server._connectionLost(self, code, reason)

    # -- sessions

    def _hold(self):
        """
        Hold this connection's later frames until L{_release} (session
        binding, asynchronous middleware), so that messages keep their order.
        Holds nest.
        """
        self._holds += 1
        if self._queue is None:
            self._queue = deque()

    def _release(self, result=None):
        self._holds -= 1
        if self._holds > 0:
            return result
        queue, self._queue = self._queue, None
        while queue and self.open:
            frame, isBinary = queue.popleft()
            self.server._frameReceived(self, frame, isBinary)
            if self._queue is not None:  # held again while draining
                queue.extend(self._queue)
                self._queue = queue
                return result
        return result

    def _replaceSession(self):
        """Issue a fresh session id (the presented one no longer exists)."""
        self.sessionId = newSessionId()
        self._newSession = True
        self._session = None
        if self.welcomed:
            self.sendFrame(wire.header(SYSTEM) + wire._jsonEncode(["session", self.sessionToken]))

    def _storeNewSession(self):
        """
        Store the session issued for this connection as soon as it is handed
        out (cookie, welcome) or first used: a client presenting it later, and
        the next message when the cache is off, must find it.

        @return: the new L{Session}.
        """
        server = self.server
        session = Session(self.sessionId, {}, server.sessionStore)
        session.dirty = True
        self._newSession = False
        if server.cacheSessions:
            self._session = session
        server._saveSession(session)
        return session

    def getSession(self):
        """
        @return: the L{Session} (from the connection's cache when
            C{cache_sessions} is on) or a L{Deferred} firing with it.
        """
        server = self.server
        if self._session is not None:
            return self._session
        if self._newSession:
            return self._storeNewSession()
        sessionId = self.sessionId

        def loaded(data):
            session = Session(sessionId, data, server.sessionStore)
            if server.cacheSessions and self.sessionId == sessionId:
                self._session = session
            return session

        def missing(f):
            f.trap(NoSuchSession)
            if self.sessionId == sessionId:
                self._replaceSession()
            return self.getSession()

        def load(_=None):
            return server.sessionStore.load(sessionId).addCallbacks(loaded, missing)

        # Without the cache, the reply to the previous message may reach the
        # client before the store acknowledged that message's session write;
        # a load racing it (on another pooled store connection) would read the
        # old data. Read after the write.
        pending = server._pendingSaves.get(sessionId)
        if pending is not None:
            waiter = Deferred()
            pending.addBoth(_fireThenPass, waiter)
            return waiter.addCallback(load)
        return load()


class Server:
    """
    A Prism server.

    @param transport: the default L{prism.interfaces.ITransport} (a
        L{prism.transports.websocket.WebSocketTransport} by default).
    @param debug: send error details (and tracebacks) to clients.
    @param sessionStore: an L{prism.interfaces.ISessionStore}; in memory by
        default.
    @param secret: the key that signs session tokens and cookies (L{str} or
        L{bytes}). Share it with the web app and every node. When omitted a
        random one is generated, so sessions do not survive a restart.
    @param sessionCookie: the name of the session cookie read from (and set
        in) the WebSocket handshake; the codec's by default (C{prism.sid}).
    @param sessionCodec: the cookie and storage format shared with a web
        app: C{"prism"} (the default), C{"express"}, C{"flask"} or an
        L{prism.sessioncodecs.ISessionCodec}.
    @param cacheSessions: keep each connection's session in RAM and write
        changes back (the default; needs sticky sessions behind a load
        balancer), or read the store on every message.
    @param logRequests: log every request through L{twisted.logger} when
        it is done (event namespace C{prism.request}, with its latency; see
        C{docs/logging.md}).
    @param reactor: the reactor; the global one by default, resolved lazily.
    """

    log = Logger()

    shutdownTimeout = 10.0
    """Seconds L{stop} waits for requests in flight (asynchronous handlers)
    to finish before it closes the connections."""

    _stopping = False
    draining = False
    """Whether the server is draining (L{drain}); see L{state}."""
    drainedAt = None  # reactor time the current drain began
    _inflight = 0  # requests whose handler returned a Deferred, not yet answered
    _drained = None  # a Deferred L{stop} waits on while _inflight > 0

    def __init__(
        self,
        transport=None,
        debug=False,
        sessionStore=None,
        secret=None,
        sessionCookie=None,
        cacheSessions=True,
        logRequests=False,
        reactor=None,
        sessionCodec=None,
    ):
        self._reactor = reactor
        self._transport = transport
        self.debug = debug
        self.sessionStore = sessionStore if sessionStore is not None else MemorySessionStore(reactor=reactor)
        if secret is None:
            secret = secrets.token_bytes(32)
            self._randomSecret = True
        else:
            self._randomSecret = False
        self.secret = secret
        self.sessionCodec = _sessionCodec(sessionCodec)
        self.sessionCookie = sessionCookie if sessionCookie is not None else self.sessionCodec.cookieName
        self.cacheSessions = cacheSessions
        self.logRequests = logRequests
        self.metrics = None  # a prism.metrics.Metrics once enableMetrics() was called
        self.events = EventBus()
        self.sessionStoreDown = False  # set by a shared store while it cannot reach its server
        bind = getattr(self.sessionStore, "bind", None)
        if bind is not None:  # a shared store: takes the codec, reports its state on self.events
            bind(self)
        self.api = _API()
        self.connections = {}
        self._entries = []
        self._byName = {}
        self._chain = Chain()
        self._listening = []
        self._saving = set()  # session writes not yet acknowledged by the store
        self._pendingSaves = {}  # session id -> its latest unacknowledged write
        self.running = False
        self.usesSessions = False
        from prism.services.system import SystemService

        self.service("system", SystemService())

    # -- configuration

    @property
    def reactor(self):
        if self._reactor is None:
            self._reactor = _defaultReactor()
        return self._reactor

    @property
    def transport(self):
        if self._transport is None:
            from prism.transports.websocket import WebSocketTransport

            self._transport = WebSocketTransport()
        return self._transport

    def service(self, name, service):
        """
        Register a service under a short identifier name.

        @return: its numeric id (registration order; the system service is 0).
        @raise PrismConfigError: for a bad or duplicate name, too many
            services, or a service with an unknown codec.
        """
        if self.running:
            raise PrismConfigError("register services before the server starts")
        if not isinstance(name, str) or not name.isidentifier() or len(name) > 32:
            raise PrismConfigError("service name {!r} must be a short identifier".format(name))
        if name in self._byName:
            raise PrismConfigError("a service named {!r} is already registered".format(name))
        if len(self._entries) >= wire.MAX_SERVICES:
            raise PrismConfigError("a server carries at most {} services".format(wire.MAX_SERVICES))
        if not hasattr(service, "messageReceived"):
            raise PrismConfigError("service {!r} has no messageReceived method".format(name))
        try:
            entry = _Entry(name, len(self._entries), service)
        except ValueError as e:
            raise PrismConfigError("service {!r}: {}".format(name, e)) from None
        self._entries.append(entry)
        self._byName[name] = entry
        return entry.id

    def use(self, middleware):
        """
        Append a middleware (see L{prism.interfaces.IMiddleware}) to the
        chain. A middleware with an C{attach(server)} method is attached
        first (it may subscribe to C{server.events}, e.g. to forget a
        connection's state when it closes).
        """
        if not callable(middleware):
            raise PrismConfigError("middleware {!r} is not callable".format(middleware))
        attach = getattr(middleware, "attach", None)
        if attach is not None:
            attach(self)
        self._chain.append(middleware)
        return middleware

    def services(self):
        """@return: the public service table, C{[[name, id, codec, callbacks], …]}."""
        return [e.describe() for e in self._entries if not e.private]

    def serviceId(self, name):
        """@return: the numeric id of the service called C{name}."""
        return self._byName[name].id

    def enableMetrics(self, **options):
        """
        Start counting what C{prism.metrics} reports (connections, messages
        and bytes per service, errors, middleware drops, RPC latency,
        pubsub, the session store; C{docs/metrics.md}). Before or after
        L{start}; later calls return the same object and ignore C{options}.
        Serve the figures with L{prism.metrics.MetricsResource}.

        @param options: for L{prism.metrics.Metrics} (C{rpcBuckets},
            C{process}).
        @return: the L{prism.metrics.Metrics}, also C{server.metrics}.
        """
        if self.metrics is None:
            from prism.metrics import Metrics

            self.metrics = Metrics(self, **options)
        return self.metrics

    # -- lifecycle

    def start(self):
        """
        Start every service and publish its server-side API on C{self.api}.

        @return: C{self.api}.
        """
        if self.running:
            return self.api
        if self._randomSecret:
            self.log.info("no session secret configured: using a random one (sessions end with this process)")
        for entry in self._entries:
            start = getattr(entry.service, "start", None)
            api = start(self, entry.id, entry.name) if start is not None else None
            if api is not None:
                setattr(self.api, entry.name, api)
        self.usesSessions = any(e.sessions for e in self._entries)
        self.running = True
        return self.api

    def listen(self, endpoint, transport=None):
        """
        Accept connections on a Twisted endpoint string (C{"tcp:3001"},
        C{"unix:/run/prism.sock"}, C{"ssl:…"}).

        @param transport: the transport for this endpoint (the server's
            default when omitted).
        @return: a L{Deferred} firing with the
            L{IListeningPort <twisted.internet.interfaces.IListeningPort>}.
        """
        if not self.running:
            self.start()
        transport = transport if transport is not None else self.transport
        d = transport.listen(self, endpoint)

        def listening(port):
            self._listening.append(port)
            return port

        return d.addCallback(listening)

    def resource(self, transport=None):
        """
        @return: a L{twisted.web.resource.IResource} that serves this server,
            to mount on a path of an existing L{twisted.web.server.Site}.
        """
        transport = transport if transport is not None else self.transport
        return transport.resource(self)

    def build_client(self, format="esm", minify=False, url=None):
        """
        Build the JavaScript client for this server's transport and public
        services (see L{prism.builder.buildClient} and
        C{docs/javascript-client.md}).

        @param format: C{"esm"}, C{"script"} (defines the global C{Prism})
            or C{"cjs"}.
        @param minify: minify with esbuild (blocking; needs C{npm ci}).
        @param url: the default server URL baked into the client.
        @return: the JavaScript source (L{str}).
        @raise prism.builder.ClientBuildError: (a L{PrismConfigError}) if no
            client can be built for this configuration.
        """
        from prism.builder import buildClient

        return buildClient(self, format=format, minify=minify, url=url)

    @staticmethod
    def prepareFrame(frame, isBinary=False):
        """
        Prepare a frame for fan-out: send the result with
        L{Connection.sendPrepared} to any number of connections; each
        transport encodes (and, for WebSocket, frames) it only once.

        @param frame: a complete Prism frame (L{str}, or L{bytes} when
            C{isBinary}).
        @return: a L{PreparedFrame}.
        """
        return PreparedFrame(frame, isBinary)

    def browser_assets(self):
        """
        @return: the extra static files browsers need (dicts with C{name},
            C{path} or C{url}, C{type}): the union of the transport's and the
            public services' C{browserAssets()}.
        """
        from prism.builder import browserAssets

        return browserAssets(self)

    @property
    def state(self):
        """
        C{"running"}, C{"draining"} (L{drain}), C{"stopping"} (L{stop} under
        way) or C{"stopped"} (not started, or stopped). Health checks
        (L{prism.admin}) answer 200 only while C{"running"}.
        """
        if self._stopping:
            return "stopping"
        if not self.running:
            return "stopped"
        return "draining" if self.draining else "running"

    def drain(self):
        """
        Start draining: health checks fail (503), so that a load balancer
        sends new clients to other nodes; everything else goes on (the
        ports accept, connected clients are served). Emits C{drain}.
        L{stop} ends it; so does L{undrain}.
        """
        if not self.draining:
            self.draining = True
            self.drainedAt = self.reactor.seconds()
            self.log.info("Prism draining: health checks now fail; {count} client(s) connected", count=len(self.connections))
            self.events.emit("drain")

    def undrain(self):
        """Stop draining (health checks pass again). Emits C{undrain}."""
        if self.draining:
            self.draining = False
            self.drainedAt = None
            self.log.info("Prism no longer draining")
            self.events.emit("undrain")

    def stop(self, reason="server shutting down", timeout=None):
        """
        Stop gracefully: stop listening, tell every client the server is going
        away (C{0|["going_away", reason]}), refuse new requests (kind
        C{going_away}) while the requests in flight finish (at most
        C{timeout} seconds, L{shutdownTimeout} by default; their replies are
        sent before the connections close), close the connections with code
        1001, write back cached sessions, then stop the services.

        @return: a L{Deferred} firing when done.
        """
        if timeout is None:
            timeout = self.shutdownTimeout
        ports, self._listening = self._listening, []
        stopped = [maybeDeferred(p.stopListening) for p in ports]
        self._stopping = True
        goingAway = wire.header(SYSTEM) + wire._jsonEncode(["going_away", reason])
        for conn in list(self.connections.values()):
            conn.sendFrame(goingAway)
        d = DeferredList(stopped + [self._waitInFlight(timeout)], consumeErrors=True)

        def closeAll(_):
            for conn in list(self.connections.values()):
                if conn._session is not None and conn._session.dirty:
                    self._saveSession(conn._session)
                conn.close(GOING_AWAY, reason)
            # Every session write still in flight, including those started
            # by handlers that finished before the stop.
            return DeferredList(list(self._saving), consumeErrors=True)

        d.addCallback(closeAll)

        def stopServices(_):
            stops = []
            for entry in reversed(self._entries):
                stop = getattr(entry.service, "stop", None)
                if stop is not None:
                    stops.append(maybeDeferred(stop))
            self.running = False
            self._stopping = False
            self.draining = False
            self.drainedAt = None
            return DeferredList(stops, consumeErrors=True)

        return d.addCallback(stopServices).addCallback(lambda _: None)

    def _waitInFlight(self, timeout):
        """
        @return: a L{Deferred} firing when no request is in flight, or after
            C{timeout} seconds (logging how many were cut off).
        """
        if not self._inflight:
            return succeed(None)
        if self._drained is None:
            self._drained = Deferred()
        done = Deferred()
        self._drained.addBoth(lambda _: done.called or done.callback(None))

        def overdue():
            if not done.called:
                self.log.warn(
                    "stopping with {count} request(s) still in flight after {timeout} s",
                    count=self._inflight,
                    timeout=timeout,
                )
                done.callback(None)

        timer = self.reactor.callLater(timeout, overdue)
        done.addBoth(lambda r: timer.cancel() if timer.active() else None)
        return done

    def _settled(self, result):
        """An asynchronous request has been answered (or failed)."""
        self._inflight -= 1
        if not self._inflight and self._drained is not None:
            drained, self._drained = self._drained, None
            drained.callback(None)
        return result

    # -- connections (called by transports)

    def connectionMade(self, link, transport, peer, token=None, headers=None):
        """
        A transport accepted a connection.

        @param link: the transport side, an
            L{prism.interfaces.ITransportConnection}.
        @param transport: the transport's name.
        @param peer: the client's address.
        @param token: the session token from the handshake's cookie, if any.
        @return: the L{Connection} to feed frames to.
        """
        sessionId = self.sessionCodec.parseCookie(self.secret, token) if token else None
        newSession = sessionId is None
        conn = Connection(
            self, link, transport, peer, sessionId or newSessionId(), newSession, headers
        )
        conn.cookieIssued = newSession
        self.connections[conn.id] = conn
        if self.metrics is not None:
            self.metrics._connectionMade(conn)
        if token and sessionId is None:
            # Not sent now: the transport may still be in its handshake. The
            # system service tells a debug-mode client when it says hello.
            conn.refusedCookie = True
            self._error("session", REFUSED_COOKIE, conn, None, None, None, send=False)
        return conn

    def _connectionOpened(self, conn):
        """The handshake completed (called by the system service)."""
        conn.welcomed = True
        if self.usesSessions and conn._newSession:
            # Otherwise a browser keeping the cookie would get a new session
            # on every connection.
            conn._storeNewSession()
        self._notifyServices("connected", conn)
        self.events.emit("connect", conn)

    def _notifyServices(self, hook, conn):
        """Call every service's C{connected} or C{disconnected}, containing failures."""
        for entry in self._entries:
            method = getattr(entry.service, hook, None)
            if method is not None:
                try:
                    method(conn)
                except Exception:
                    self._error("handler", "{}() failed".format(hook), conn, entry, None, Failure(), send=False)

    def _connectionLost(self, conn, code, reason):
        self.connections.pop(conn.id, None)
        if self.metrics is not None:
            self.metrics._connectionLost(conn, code)
        if conn.welcomed:
            self._notifyServices("disconnected", conn)
        session, conn._session = conn._session, None
        if session is not None and session.dirty:
            self._saveSession(session)
        self.events.emit("disconnect", conn, code, reason)

    # -- the per-message path

    def _frameReceived(self, conn, frame, isBinary):
        try:
            sid, cb, isError, payload = wire.parse(frame)
        except ProtocolError as e:
            return self._error(e.kind, e.message, conn, None, None, None)
        entries = self._entries
        if sid >= len(entries):
            return self._error("unknown_service", "no service has id {}".format(sid), conn, None, cb, None, sid=sid)
        entry = entries[sid]
        if self.metrics is not None:
            entry.received += 1
            entry.receivedBytes += len(frame)
        if isError:
            return self._error("malformed", "clients may not send error frames", conn, entry, cb, None)
        try:
            value = entry.decode(payload)
        except Exception as e:
            try:
                message = "cannot decode {} payload: {}".format(entry.codec.name, e)
            except Exception:
                # PyPy 3.9's _pypyjson can build an error message that
                # str.format then fails on (SystemError; tests/test_fuzz.py).
                message = "cannot decode {} payload".format(entry.codec.name)
            return self._error("decode", message, conn, entry, cb, None)
        request = Request(self, conn, entry.name, sid, cb, value, len(frame))
        if sid == SYSTEM:
            return self._handle(entry, request)
        if self.logRequests:
            request.received = self.reactor.seconds()  # logged when done (_requestDone)
        if self._stopping:
            return self._error("going_away", "the server is shutting down", conn, entry, cb, None, request=request)
        if self._chain._steps:  # (a list: no Python-level __bool__ per message)
            try:
                result = self._chain.run(request)
            except Exception:
                return self._middlewareFailed(Failure(), conn, entry, cb, request)
            if isinstance(result, Deferred):
                # Asynchronous middleware: later frames of this connection
                # wait, so that messages reach their services in order.
                conn._hold()
                args = (conn, entry, cb, request)
                result.addCallbacks(self._afterMiddleware, self._middlewareFailed, args, None, args)
                result.addBoth(conn._release)
                return
            return self._afterMiddleware(result, conn, entry, cb, request)
        if entry.sessions:
            return self._withSession(entry, request)
        return self._handle(entry, request)

    def _middlewareFailed(self, failure, conn, entry, cb, request=None):
        if self.metrics is not None:
            self.metrics._dropped(self._chain.droppedBy, failure)
        self._error("handler", None, conn, entry, cb, failure, request=request)

    def _afterMiddleware(self, result, conn, entry, cb, request=None):
        if isinstance(result, Drop):
            return self._drop(conn, entry, cb, result, request)
        if entry.sessions:
            return self._withSession(entry, result)
        return self._handle(entry, result)

    def _withSession(self, entry, request):
        conn = request.connection
        if self.sessionStoreDown:
            return self._error(
                "session", SESSION_STORE_UNAVAILABLE, conn, entry, request.callbackId, None, request=request
            )
        session = conn.getSession()
        if not isinstance(session, Deferred):
            request.session = session
            return self._handle(entry, request)
        # Hold later frames of this connection until the session is bound,
        # so that messages stay in order.
        conn._hold()

        def bound(session):
            request.session = session
            self._handle(entry, request)

        def failed(f):
            message = "cannot load the session: {}".format(f.getErrorMessage())
            self._error("session", message, conn, entry, request.callbackId, f, request=request)

        session.addCallbacks(bound, failed).addBoth(lambda _: conn._release())
        return None

    def _handle(self, entry, request):
        conn = request.connection
        try:
            result = entry.service.messageReceived(request)
        except Exception:
            return self._error("handler", None, conn, entry, request.callbackId, Failure(), request=request)
        cb = request.callbackId
        if result.__class__ not in _PLAIN:  # skip two checks for plain values
            if iscoroutine(result):
                result = Deferred.fromCoroutine(result)
            if isinstance(result, Deferred):
                return self._handleDeferred(result, conn, entry, request, cb)
        if entry.callbacks and cb is not None and conn.open and result is not NO_REPLY:
            try:
                payload, isBinary = entry.codec.encode(result)
            except Exception:
                return self._error("handler", "cannot encode the result", conn, entry, cb, Failure(), request=request)
            if isBinary:
                frame = (entry.prefix + str(cb) + "|").encode("ascii") + payload
            else:
                frame = entry.prefix + str(cb) + "|" + payload
            conn._write(frame, isBinary)
            if self.metrics is not None:
                entry.sent += 1
                entry.sentBytes += len(frame)
        session = request.session
        if session is not None and session.dirty:
            self._saveSession(session)
        if self.logRequests:
            self._requestDone(request, entry, None, entry.callbacks and cb is not None and conn.open)
        return None

    def _handleDeferred(self, result, conn, entry, request, cb):
        self._inflight += 1  # stop() waits for it
        if entry.callbacks and cb is not None:
            args = (conn, entry, cb, request)
            result.addCallbacks(self._reply, self._handlerFailed, args, None, args)
        else:
            if self.logRequests:
                result.addCallback(self._doneWithoutReply, entry, request)
            result.addErrback(self._handlerFailed, conn, entry, None, request)
        if request.session is not None:
            result.addBoth(self._afterHandler, request.session)
        result.addBoth(self._settled)
        return None

    def _reply(self, result, conn, entry, cb, request=None):
        if result is not NO_REPLY and conn.open:
            try:
                conn.send(entry.id, result, cb)
            except Exception:
                self._error("handler", "cannot encode the result", conn, entry, cb, Failure(), request=request)
                return None
        if request is not None and self.logRequests:
            self._requestDone(request, entry, None, conn.open)
        return None

    def _doneWithoutReply(self, result, entry, request):
        self._requestDone(request, entry, None, False)
        return result

    def _handlerFailed(self, failure, conn, entry, cb, request=None):
        self._error("handler", None, conn, entry, cb, failure, request=request)
        return None

    def _requestDone(self, request, entry, kind, replied):
        """
        Log a request that is done (C{logRequests}): one C{prism.request}
        event with the fields of C{docs/logging.md}; C{latency} when it got
        a reply (or an error reply), C{kind} when it failed.
        """
        received = getattr(request, "received", None)
        if received is None:  # the system service; or logging began after it arrived
            return
        request.received = None  # one event per request
        latency = self.reactor.seconds() - received if replied else None
        fields = _requestFields(request)
        text = "{peer} -> {service}"
        if fields["method"] is not None:
            text += " {method}"
        text += " cb={callbackId} ({size} bytes)"
        if kind is not None:
            text += ": {kind} error" if latency is None else ": {kind} error in {latency:.6f} s"
        elif latency is not None:
            text += ": replied in {latency:.6f} s"
        _requestLog.info(text, latency=latency, kind=kind, **fields)

    def _afterHandler(self, result, session):
        if session.dirty:
            self._saveSession(session)
        return result

    def _saveSession(self, session):
        d = session.save()
        d.addErrback(
            lambda f: self._error("session", "cannot save the session: {}".format(f.getErrorMessage()), None, None, None, f, send=False)
        )
        if not d.called:
            # Remember writes still on their way to the store, so that a
            # graceful stop waits for them (see stop()) and the next load of
            # the same session reads after them (see Connection.getSession).
            self._saving.add(d)
            self._pendingSaves[session.id] = d
            d.addBoth(self._saved, d, session.id)
        return d

    def _saved(self, result, d, sessionId):
        self._saving.discard(d)
        if self._pendingSaves.get(sessionId) is d:
            del self._pendingSaves[sessionId]
        return result

    # -- errors

    def _error(self, kind, message, conn, entry, cb, failure, send=True, sid=None, request=None):
        """
        Contain an error: log it, emit it on the event bus, and tell the
        client when it answers a request (always) or, in debug mode, when it
        concerns a frame without callback id. The log event carries the
        fields of C{docs/logging.md} (C{kind}, C{message}, C{connection},
        C{peer}, C{transport}, C{service}, C{method}, C{callbackId}); with
        C{logRequests}, the C{request} is also logged as done.
        """
        if failure is not None:
            exc = failure.value
            if message is None:
                message = str(exc) or type(exc).__name__
            kind = getattr(exc, "kind", kind) if isinstance(exc, (ServiceError, ProtocolError)) else kind
        service = entry.name if entry is not None else None
        if self.metrics is not None:
            self.metrics._error(kind, service)
        fields = {
            "kind": kind,
            "message": message,
            "connection": conn.id if conn is not None else None,
            "peer": conn.peer if conn is not None else None,
            "transport": conn.transport if conn is not None else None,
            "service": service,
            "method": _methodOf(entry, request.payload) if request is not None and entry is not None else None,
            "callbackId": cb,
        }
        if failure is not None and kind == "handler":
            self.log.failure("{service} handler failed for {peer}: {message}", failure=failure, **fields)
        else:
            self.log.warn("prism {kind} error from {peer}: {message}", **fields)
        if self.events.has("error"):
            self.events.emit("error", ErrorEvent(kind, message, conn, service, cb, failure))
        replied = False
        if send and conn is not None and conn.open:
            tb = None
            if self.debug and failure is not None and not isinstance(failure.value, (ServiceError, ProtocolError)):
                tb = "".join(_traceback.format_exception(failure.type, failure.value, failure.getTracebackObject()))
            if cb is not None and (entry is not None or sid is not None):
                conn.sendError(entry.id if entry is not None else sid, cb, kind, message, tb)
                replied = True
            elif self.debug:
                conn.sendError(SYSTEM, None, kind, message, tb)
        if request is not None and self.logRequests:
            self._requestDone(request, entry, kind, replied)
        return None

    def _drop(self, conn, entry, cb, drop, request=None):
        """
        Report a request dropped by middleware: L{prism.middleware.DROP}
        silently (a C{drop} event and a debug log line); a C{Drop(reason)} as
        an error of kind C{dropped} (or the drop's C{kind}), contained like
        any other (logged, emitted as C{error}, answered when the request
        has a callback id, and otherwise only in debug mode, on the system
        service).
        """
        if self.metrics is not None:
            self.metrics._dropped(self._chain.droppedBy, drop)
        if self.events.has("drop"):
            self.events.emit("drop", conn, entry.name, drop.reason)
        if drop.reason is None:
            self.log.debug("dropped a request for {service}", service=entry.name, connection=conn.id, peer=conn.peer)
            if request is not None and self.logRequests:
                self._requestDone(request, entry, drop.kind or "dropped", False)
            return None
        return self._error(drop.kind or "dropped", drop.reason, conn, entry, cb, None, request=request)


class PreparedFrame:
    """
    A frame to send, unchanged, to many connections (see
    L{Server.prepareFrame}). The WebSocket transport keeps its Autobahn
    C{PreparedMessage} in C{cache} on first use, so that fan-out to N
    connections encodes and frames the message once.

    @ivar frame: the frame (L{str} for text, L{bytes} for binary).
    @ivar isBinary: L{bool}.
    @ivar meter: the L{prism.metrics.Metrics} that counts this frame's
        deliveries, once one did (else L{None}); C{entry} then holds the
        counters of its service.
    """

    __slots__ = ("frame", "isBinary", "cache", "meter", "entry")

    def __init__(self, frame, isBinary=False):
        self.frame = frame
        self.isBinary = isBinary
        self.cache = None
        self.meter = None
        self.entry = None


def _serviceIdOf(frame):
    """@return: the service id a frame starts with; -1 when it starts with none."""
    try:
        return wire._SID.get(frame[0], -1) if frame.__class__ is str else wire._SID_BYTE[frame[0]]
    except (IndexError, TypeError):
        return -1


def _fireThenPass(result, waiter):
    waiter.callback(None)
    return result


class _API:
    """The namespace of server-side service APIs (C{server.api.rpc}, …)."""

    def __repr__(self):
        return "<prism API: {}>".format(", ".join(sorted(vars(self))))
