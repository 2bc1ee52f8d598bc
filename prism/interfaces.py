"""
Prism's public contract: the interfaces every service, transport, middleware
and session store implements, and the plugin interfaces through which each
kind is discovered by name with L{twisted.plugin.getPlugins}.

A Prism server is a kernel: it multiplexes L{IService}s over one connection
per client (carried by an L{ITransport}), runs an L{IMiddleware} chain on every
incoming message, and keeps sessions in an L{ISessionStore}. Everything users
see is one of these plugins.

Importing this module is cheap and never imports the reactor.
"""

from zope.interface import Attribute, Interface

__all__ = [
    "IService",
    "IRequest",
    "IConnection",
    "ITransport",
    "ITransportConnection",
    "IMiddleware",
    "ISession",
    "ISessionStore",
    "IPrismPlugin",
    "IServicePlugin",
    "ITransportPlugin",
    "IMiddlewarePlugin",
    "ISessionStorePlugin",
]


class IService(Interface):
    """
    A Realtime Service: one feature (RPC, echo, PubSub, …) multiplexed with
    the others over each client's single connection.

    A service declares how its payloads are encoded and what it needs from the
    kernel; the server then calls it for every message addressed to it. A
    service registered on a server is given a compact numeric id (see
    C{docs/protocol.md}); it never sees frames, only decoded requests.
    """

    codec = Attribute(
        """
        How payloads are encoded on the wire: C{"raw"} (text or bytes, passed
        as is), C{"json"} (one compact JSON value in a text frame) or
        C{"msgpack"} (one msgpack value in a binary frame).
        """
    )

    callbacks = Attribute(
        """
        L{bool}: whether clients send requests with callback ids and expect
        replies. When true, the value returned by L{messageReceived} is sent
        back as the result (or error) of the request.
        """
    )

    sessions = Attribute(
        """
        L{bool}: whether L{messageReceived} needs C{request.session}. Services
        that do not declare it never cause a session-store access.
        """
    )

    private = Attribute(
        """
        L{bool}: private services are left out of the service table sent to
        clients and of the generated client (the system service is private).
        """
    )

    def start(server, serviceId, name):
        """
        Called once when the server starts.

        @param server: the L{prism.server.Server}.
        @param serviceId: the service's numeric id on this server.
        @param name: the name the service was registered under.
        @return: the server-side API object application code uses to drive
            the service (published as C{server.api.<name>}), or L{None}.
        """

    def stop():
        """
        Called once when the server stops.

        @return: L{None}, or a L{Deferred} that fires when the service has
            released its resources.
        """

    def connected(connection):
        """
        A client connected (after its handshake).

        @param connection: the L{IConnection}.
        """

    def disconnected(connection):
        """
        A client's connection closed.

        @param connection: the L{IConnection}.
        """

    def messageReceived(request):
        """
        A decoded message arrived for this service and passed the middleware.

        @param request: the L{IRequest}.
        @return: for services with C{callbacks}, the result to send back: a
            plain value, a L{Deferred} or a coroutine. Raising (or failing)
            sends an error reply. Ignored for services without callbacks.
            Keep synchronous work synchronous: returning a plain value costs
            no L{Deferred}.
        """

    def clientScript():
        """
        @return: the client half of the service as JavaScript source (an
            expression evaluating to a factory, see C{docs/services.md}), used
            by the client builder, or L{None} if the service has no client
            half.
        """

    def browserAssets():
        """
        @return: a list of dicts (C{name}, C{path} or C{url}, C{type}) naming
            extra static files the browser needs for this service.
        """


class IConnection(Interface):
    """
    The server side of one client's connection, as services see it.
    """

    id = Attribute("L{str}: an unguessable id, unique on this server.")
    transport = Attribute("L{str}: the name of the transport it came through.")
    peer = Attribute("L{str}: the client's address (C{host:port} or C{unix}).")
    sessionId = Attribute(
        "L{str} or L{None}: the id of the session bound to this connection."
    )

    def send(serviceId, value, callbackId=None):
        """
        Encode C{value} with the service's codec and push it to the client.

        @return: L{None}. Never blocks and never returns a L{Deferred}.
        """

    def sendFrame(frame, isBinary=False):
        """
        Push an already-encoded frame (see L{prism.wire}); used to write the
        same bytes to many connections without re-encoding.
        """

    def close(code=1000, reason=""):
        """
        Close the connection.
        """


class IRequest(Interface):
    """
    One incoming message, as middleware and services see it.

    Middleware may replace C{payload} (transform) or return a new request.
    """

    server = Attribute("The L{prism.server.Server}.")
    connection = Attribute("The L{IConnection} it arrived on.")
    service = Attribute("L{str}: the name of the service it is addressed to.")
    serviceId = Attribute("L{int}: the service's numeric id.")
    callbackId = Attribute("L{int} or L{None}: the request's callback id.")
    payload = Attribute("The decoded payload.")
    size = Attribute("L{int}: the size of the frame on the wire, in bytes.")
    method = Attribute(
        """
        L{str} or L{None}: the method the request names (the RPC method,
        the pubsub command) when its service declares C{namedRequests};
        reported in logs (C{docs/logging.md}).
        """
    )
    session = Attribute(
        """
        The L{ISession} bound to the connection, loaded for services that
        declare C{sessions}; L{None} otherwise.
        """
    )


class ITransportConnection(Interface):
    """
    What a transport provides for one client connection; the server calls
    these, the transport calls L{prism.server.Server.connectionMade}, then
    C{frameReceived} and C{connectionLost} on what that returned.
    """

    peer = Attribute("L{str}: the client's address.")

    def write(frame, isBinary):
        """
        Send one frame (L{str} for text, L{bytes} for binary).
        """

    def close(code, reason):
        """
        Close the connection with a close code and reason.
        """


class ITransport(Interface):
    """
    Carries Prism frames between clients and a server (WebSocket, loopback,
    and fallbacks). A transport is configured with its options when it is
    created, then bound to one server.
    """

    name = Attribute("L{str}: the transport's plugin name.")

    def listen(server, endpoint):
        """
        Accept connections for C{server} on C{endpoint}.

        @param endpoint: a Twisted server endpoint string
            (C{"tcp:3001:interface=127.0.0.1"}, C{"unix:/run/prism.sock"},
            C{"ssl:…"}).
        @return: a L{Deferred} firing with the
            L{IListeningPort <twisted.internet.interfaces.IListeningPort>}.
        @raise PrismConfigError: if the transport cannot listen on sockets.
        """

    def resource(server):
        """
        @return: a L{twisted.web.resource.IResource} serving C{server}, to
            mount in an existing L{twisted.web.server.Site}, or L{None}.
        """

    def clientScript():
        """
        @return: the client half of the transport as JavaScript source, or
            L{None}.
        """

    def browserAssets():
        """
        @return: a list of dicts naming extra static files the browser needs.
        """


class IMiddleware(Interface):
    """
    A step in the chain every incoming message passes before reaching its
    service. Each step can pass the request on, transform it, or drop it.
    """

    def __call__(request):
        """
        @param request: the L{IRequest}.
        @return: the request to pass on (the same one, possibly with a new
            C{payload}, or another L{IRequest}); L{prism.middleware.DROP} or a
            L{prism.middleware.Drop} (with a reason for the client) to drop it;
            or a L{Deferred} or coroutine resolving to one of those.
            Synchronous middleware should return plain values: the chain then
            allocates no L{Deferred}. Raising is contained like a service
            failure: the request is answered with an error and dropped.
        """


class ISession(Interface):
    """
    A session: a mutable mapping of JSON-compatible values, shared by every
    connection (and web request) that presents the same session id.
    """

    id = Attribute("L{str}: the session id (never the signed token).")
    dirty = Attribute("L{bool}: whether the data changed since it was loaded.")

    def save():
        """
        Write the data back to the store if it changed.

        @return: a L{Deferred} firing with L{None} once saved.
        """


class ISessionStore(Interface):
    """
    Where sessions live between connections and across Prism nodes.
    """

    def load(sessionId):
        """
        @param sessionId: an id this server (or a web app sharing the store)
            issued.
        @return: a L{Deferred} firing with the session data (a L{dict}), and
            refreshing its expiry; or failing with
            L{prism.errors.NoSuchSession} if there is no unexpired session with
            that id.
        """

    def save(sessionId, data):
        """
        Create or replace a session.

        @param data: a L{dict} of JSON-compatible values.
        @return: a L{Deferred} firing with L{None} once stored.
        """

    def touch(sessionId):
        """
        Refresh a session's expiry without reading it.

        @return: a L{Deferred} firing with L{None}; failing with
            L{prism.errors.NoSuchSession} if it does not exist.
        """

    def delete(sessionId):
        """
        Remove a session; deleting an unknown id is not an error.

        @return: a L{Deferred} firing with L{None}.
        """


class IPrismPlugin(Interface):
    """
    Common attributes of every Prism plugin descriptor. A dropin in
    C{twisted/plugins/} instantiates a descriptor; the descriptor names its
    implementation by dotted path and imports it only when it is used.
    """

    name = Attribute("L{str}: the name users select the plugin by.")
    description = Attribute("L{str}: one line for help texts.")

    def load():
        """
        @return: the implementation (a class or factory) the descriptor names.
        """


class IServicePlugin(IPrismPlugin):
    """A plugin that provides an L{IService} factory."""


class ITransportPlugin(IPrismPlugin):
    """A plugin that provides an L{ITransport} factory."""


class IMiddlewarePlugin(IPrismPlugin):
    """A plugin that provides an L{IMiddleware} factory."""


class ISessionStorePlugin(IPrismPlugin):
    """A plugin that provides an L{ISessionStore} factory."""
