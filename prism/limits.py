"""
The protective middleware: C{ratelimit}, C{maxsize} and C{auth}.

For example::

    from prism.limits import Auth, MaxSize, RateLimit

    server.use(RateLimit(rate=50, burst=100, addressRate=200, addressBurst=400))
    server.use(MaxSize(limit=64 * 1024, services={"echo": 1024}))
    server.use(Auth(services=["admin"], methods=["account.*"]))

Each is synchronous on the hot path (no L{Deferred} unless C{auth} has to
load a session from the store) and keeps no state beyond the connections
that are open: they forget a connection when it closes (they subscribe to
the server's C{disconnect} event in C{attach}, which L{Server.use} calls).
Their limits and what happens when one is hit are listed in
C{docs/security.md}.
"""

from fnmatch import fnmatchcase

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from zope.interface import implementer

from prism.errors import PrismConfigError
from prism.interfaces import IMiddleware
from prism.middleware import Drop

__all__ = ["RateLimit", "MaxSize", "Auth", "RATE_LIMITED", "POLICY_VIOLATION"]

POLICY_VIOLATION = 1008
"""Close code of the C{close} action of L{RateLimit}."""

RATE_LIMITED = "rate_limited"
"""The error kind of L{RateLimit}'s warning."""

SYSTEM = 0

_LIMITED = Drop(kind=RATE_LIMITED)
"""What L{RateLimit} returns for a refused message: a silent drop, counted
as C{rate_limited} in C{prism_middleware_drops_total}."""


def _defaultReactor():
    from twisted.internet import reactor

    return reactor


def _number(name, value, allowZero=False):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or (value == 0 and not allowZero):
        raise PrismConfigError("{} must be a number {} 0".format(name, ">=" if allowZero else ">"))
    return float(value)


def _names(option, value):
    if value is None:
        return ()
    if isinstance(value, str) or not all(isinstance(v, str) and v for v in value):
        raise PrismConfigError("{} must be a list of non-empty strings".format(option))
    return tuple(value)


def _errorFrame(kind, message):
    from prism import wire

    return wire.encodeError(SYSTEM, None, kind, message)


def _serviceError(kind, message):
    from prism.server import ServiceError

    return ServiceError(kind, message)


@implementer(IMiddleware)
class RateLimit:
    """
    Token buckets: one per connection (C{rate} messages per second, bursts
    of C{burst}) and, when C{addressRate} is set, one per client address
    (shared by every connection from it; C{connection.address}, which honours
    the transport's trusted proxies, else C{connection.peer}).

    A message finding an empty bucket is refused. With C{action="drop"} (the
    default) the first refused message of a run gets a single warning, kind
    C{rate_limited} (the reply to a request, or a system error frame), and
    the rest of the run is dropped silently; when C{pause} is true the
    client's socket is also not read for the time its bucket takes to
    refill (at most C{maxPause} seconds), so that a flood costs the server
    almost nothing. With C{action="close"} the connection is closed with
    code 1008.

    @param rate: messages per second per connection.
    @param burst: bucket size per connection (defaults to twice C{rate}).
    @param addressRate: messages per second per client address; C{0} turns
        the per-address bucket off.
    @param addressBurst: bucket size per address (twice C{addressRate}).
    @param action: C{"drop"} or C{"close"}.
    @param pause: stop reading a limited client for a while.
    @param maxPause: the longest such pause, in seconds.
    @param services: only limit these services (all by default).
    """

    log = Logger()
    name = "ratelimit"

    def __init__(
        self,
        rate=50,
        burst=None,
        addressRate=200,
        addressBurst=None,
        action="drop",
        pause=True,
        maxPause=2.0,
        services=None,
        reactor=None,
    ):
        self.rate = _number("ratelimit: rate", rate)
        self.burst = _number("ratelimit: burst", burst) if burst is not None else 2 * self.rate
        self.addressRate = _number("ratelimit: address_rate", addressRate, allowZero=True)
        self.addressBurst = (
            _number("ratelimit: address_burst", addressBurst) if addressBurst is not None else 2 * self.addressRate
        )
        if action not in ("drop", "close"):
            raise PrismConfigError('ratelimit: action must be "drop" or "close"')
        self.action = action
        self.pause = bool(pause)
        self.maxPause = _number("ratelimit: max_pause", maxPause)
        self.services = frozenset(_names("ratelimit: services", services)) or None
        self._reactor = reactor
        # connection id -> [tokens, time, warned, address key or None]
        self.connections = {}
        # address -> [tokens, time, connections using it]
        self.addresses = {}
        self._expiries = {}

    @property
    def reactor(self):
        if self._reactor is None:
            self._reactor = _defaultReactor()
        return self._reactor

    def attach(self, server):
        if self._reactor is None:
            self._reactor = server.reactor
        server.events.on("disconnect", self._forget)

    def __call__(self, request):
        if self.services is not None and request.service not in self.services:
            return request
        conn = request.connection
        now = self.reactor.seconds()
        state = self.connections.get(conn.id)
        if state is None:
            key = None
            if self.addressRate:
                key = conn.address or conn.peer
                shared = self.addresses.get(key)
                if shared is None:
                    shared = self.addresses[key] = [self.addressBurst, now, 0]
                    expiry = self._expiries.pop(key, None)
                    if expiry is not None and expiry.active():
                        expiry.cancel()
                shared[2] += 1
            state = self.connections[conn.id] = [self.burst, now, False, key]
        tokens = min(self.burst, state[0] + (now - state[1]) * self.rate)
        state[1] = now
        shared = None
        if state[3] is not None:
            shared = self.addresses[state[3]]
            sharedTokens = min(self.addressBurst, shared[0] + (now - shared[1]) * self.addressRate)
            shared[1] = now
            if tokens >= 1 and sharedTokens >= 1:
                state[0] = tokens - 1
                shared[0] = sharedTokens - 1
                state[2] = False
                return request
            shared[0] = sharedTokens
        elif tokens >= 1:
            state[0] = tokens - 1
            state[2] = False
            return request
        state[0] = tokens
        return self._refuse(request, conn, state, shared)

    def _refuse(self, request, conn, state, shared):
        if self.action == "close":
            self.log.warn("rate limit: closing {peer}", peer=conn.peer)
            conn.close(POLICY_VIOLATION, "rate limit exceeded")
            return _LIMITED
        if self.pause:
            wait = (self.burst - state[0]) / self.rate
            if shared is not None:
                wait = max(wait, (self.addressBurst - shared[0]) / self.addressRate)
            conn.pauseReading(min(wait, self.maxPause))
        if state[2]:
            return _LIMITED
        state[2] = True
        message = "rate limit exceeded ({:g} messages/s); messages are dropped".format(self.rate)
        if request.callbackId is not None:
            raise _serviceError(RATE_LIMITED, message)
        self.log.warn("rate limit: dropping messages from {peer}", peer=conn.peer)
        conn.sendFrame(_errorFrame(RATE_LIMITED, message))
        return _LIMITED

    def _forget(self, conn, code=None, reason=None):
        state = self.connections.pop(conn.id, None)
        if state is None or state[3] is None:
            return
        key = state[3]
        shared = self.addresses.get(key)
        if shared is None:
            return
        shared[2] -= 1
        if shared[2] > 0:
            return
        # Keep a depleted bucket until it has refilled: reconnecting must not
        # reset the limit.
        now = self.reactor.seconds()
        missing = self.addressBurst - min(self.addressBurst, shared[0] + (now - shared[1]) * self.addressRate)
        if missing <= 0:
            del self.addresses[key]
        else:
            self._expiries[key] = self.reactor.callLater(missing / self.addressRate, self._expire, key)

    def _expire(self, key):
        self._expiries.pop(key, None)
        shared = self.addresses.get(key)
        if shared is not None and shared[2] <= 0:
            del self.addresses[key]


@implementer(IMiddleware)
class MaxSize:
    """
    Refuse messages larger than a limit per service (C{size}: bytes on the
    wire), with an error of kind C{too_large}; the connection carries on.
    The transport's C{maxMessageSize} still applies to every message first.

    @param limit: the limit for services not in C{services}; L{None} for
        none.
    @param services: C{{service name: limit in bytes}}.
    """

    name = "maxsize"

    def __init__(self, limit=None, services=None):
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0):
            raise PrismConfigError("maxsize: limit must be a positive integer")
        services = dict(services or {})
        for name, value in services.items():
            if not isinstance(name, str) or isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise PrismConfigError("maxsize: services must map service names to positive integers")
        self.limit = limit
        self.services = services

    def __call__(self, request):
        limit = self.services.get(request.service, self.limit)
        if limit is not None and request.size > limit:
            raise _serviceError(
                "too_large", "message of {} bytes exceeds the {} limit of {}".format(request.size, request.service, limit)
            )
        return request


@implementer(IMiddleware)
class Auth:
    """
    Require an authenticated session: one whose C{key} (default C{"user"})
    is set and true, for every message to the named C{services} and for the
    RPC methods matching C{methods} (C{fnmatch} patterns, like
    C{"admin.*"}, on calls to the service named C{rpc}). Anything else
    passes untouched. A refused request gets an error of kind C{forbidden}
    (message C{"authentication required"}).

    Loads the session when needed (from the connection's cache, or the
    store, asynchronously). Set the key from your login handler
    (C{request.session["user"] = name}).
    """

    name = "auth"

    def __init__(self, services=None, methods=None, key="user", rpc="rpc"):
        self.services = frozenset(_names("auth: services", services))
        self.methods = _names("auth: methods", methods)
        if not isinstance(key, str) or not key:
            raise PrismConfigError("auth: key must be a non-empty string")
        if not isinstance(rpc, str) or not rpc:
            raise PrismConfigError("auth: rpc must be a service name")
        if not self.services and not self.methods:
            raise PrismConfigError("auth: name the services or methods that need a session")
        self.key = key
        self.rpc = rpc
        self._cache = {}

    def _protected(self, request):
        if request.service in self.services:
            return True
        if request.service != self.rpc or not self.methods:
            return False
        call = request.payload
        if type(call) is not list or not call or type(call[0]) is not str:
            return False  # the rpc service refuses it
        method = call[0]
        found = self._cache.get(method)
        if found is None:
            found = any(fnmatchcase(method, pattern) for pattern in self.methods)
            if len(self._cache) < 4096:  # names are client-chosen: keep it bounded
                self._cache[method] = found
        return found

    def __call__(self, request):
        if not self._protected(request):
            return request
        session = request.connection.getSession()
        if isinstance(session, Deferred):
            return session.addCallback(self._check, request)
        return self._check(session, request)

    def _check(self, session, request):
        if session is None or not session.get(self.key):
            raise _serviceError("forbidden", "authentication required")
        request.session = session
        return request
