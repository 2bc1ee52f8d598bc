"""
The C{pubsub} service: channels, glob patterns, presence, history and
recovery, on one process (C{engine="memory"}) or many (C{engine="redis"}).

For example::

    from prism.services.pubsub import PubSubService

    def authorize(request, action, channel):       # "subscribe", "publish", "presence"
        return action != "publish" or channel.startswith("chat.")

    server.service("pubsub", PubSubService(authorize=authorize, historySize=100, presence=True))
    server.start()
    server.api.pubsub.publish("news", {"title": "…"})      # a Deferred

Clients subscribe to channels (C{news}) and patterns (C{room.*}; C{*} and
C{?} as in Redis globs); they may publish only where the C{authorize} hook
allows it (without a hook: subscribe and presence allowed, publish denied).
A publication is encoded once and the same bytes are written to every
subscriber (L{prism.server.Server.prepareFrame}).

Wire format: C{docs/pubsub.md} and the pubsub section of
C{docs/protocol.md}.
"""

import re
from fnmatch import fnmatchcase

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.logger import Logger

from prism import wire
from prism.errors import PrismConfigError
from prism.server import PreparedFrame, ServiceError
from prism.services.base import Service, checkAllowed, resolveCallable, then

__all__ = ["PubSubService", "PubSubAPI", "validChannel", "validPattern", "isPattern", "ENGINES"]

ENGINES = ("memory", "redis")

_CHANNEL = re.compile(r"\A[A-Za-z0-9_\-.:@/=+,]+\Z")
_PATTERN = re.compile(r"\A[A-Za-z0-9_\-.:@/=+,*?]+\Z")
MAX_NAME = 200

_encode = wire._jsonEncode


def isPattern(name):
    """@return: whether a (valid) subscription name is a glob pattern."""
    return "*" in name or "?" in name


def validChannel(name):
    """A channel: 1-200 of C{A-Z a-z 0-9 _ - . : @ / = + ,}."""
    return type(name) is str and 0 < len(name) <= MAX_NAME and _CHANNEL.match(name) is not None


def validPattern(name):
    """A pattern: a channel name that may also contain C{*} and C{?}."""
    return type(name) is str and 0 < len(name) <= MAX_NAME and _PATTERN.match(name) is not None






class PubSubService(Service):
    """
    @param engine: C{"memory"} (one process) or C{"redis"} (scale-out).
    @param redisUrl: C{redis://host:port[/db]} for the redis engine.
    @param redisPrefix: the prefix of every Redis key and channel.
    @param authorize: C{authorize(request, action, channel)} returning a
        true value (or a L{Deferred}/coroutine of one) to allow C{action}
        (C{"subscribe"}, C{"publish"} or C{"presence"}) on C{channel} (for
        C{"subscribe"}, possibly a pattern); or a dotted name of such a
        function. Without it: subscribe and presence allowed, publish denied.
    @param presenceInfo: C{presenceInfo(request)} returning the JSON value
        that stands for a subscriber in presence (default C{{"id":
        connection id}}); or a dotted name.
    @param maxSubscriptions: channels plus patterns per connection.
    @param excludeSender: do not echo a client's publication to itself
        (a publish may override it with C{{"exclude": bool}}).
    @param presence: track who is subscribed to each channel.
    @param presenceTtl: seconds before the members of a crashed node expire
        (redis engine; nodes refresh theirs every third of it).
    @param historySize: publications kept per channel (0: no history).
    @param historyTtl: seconds a channel's history lives after its last
        publication.
    @param historyChannels: glob patterns of the channels with history
        (default: all, when C{historySize} > 0).
    @param sessions: load the session for every message (for C{authorize}
        hooks that read C{request.session}).
    @param redisRetry: C{(initial, maximum)} reconnection delays to Redis.

    @ivar published: C{{"client": n, "server": n}}: publications made on
        this node by clients and through C{server.api.pubsub} (C{publish},
        C{publishTo}, C{publishToSession}, C{broadcast}); for metrics.
    @ivar delivered: messages written to this node's subscribers (one per
        connection); for metrics.
    """

    codec = "json"
    callbacks = True
    namedRequests = True  # logs report the command ("sub", "pub", …) as the method
    log = Logger()

    def __init__(
        self,
        engine="memory",
        redisUrl="redis://127.0.0.1:6379",
        redisPrefix="prism:",
        authorize=None,
        presenceInfo=None,
        maxSubscriptions=100,
        excludeSender=False,
        presence=False,
        presenceTtl=30.0,
        historySize=0,
        historyTtl=300.0,
        historyChannels=None,
        sessions=False,
        redisRetry=(0.2, 5.0),
    ):
        if not (isinstance(engine, str) and engine in ENGINES) and not hasattr(engine, "publish"):
            raise PrismConfigError("pubsub: engine must be one of {}".format(", ".join(ENGINES)))
        for name, value in (("maxSubscriptions", maxSubscriptions), ("historySize", historySize)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise PrismConfigError("pubsub: {} must be an integer >= 0".format(name))
        for name, value in (("presenceTtl", presenceTtl), ("historyTtl", historyTtl)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise PrismConfigError("pubsub: {} must be a number of seconds > 0".format(name))
        if historyChannels is not None and (
            isinstance(historyChannels, str) or not all(validPattern(p) for p in historyChannels)
        ):
            raise PrismConfigError("pubsub: historyChannels must be a list of channel patterns")
        if isinstance(redisPrefix, str) and not _CHANNEL.match(redisPrefix):
            raise PrismConfigError("pubsub: redisPrefix may hold only A-Z a-z 0-9 _ - . : @ / = + ,")
        self.engineName = engine if isinstance(engine, str) else getattr(engine, "name", "custom")
        self._engineSpec = engine
        self.redisUrl = redisUrl
        self.redisPrefix = redisPrefix
        self.redisRetry = tuple(redisRetry)
        self._authorize = resolveCallable(authorize, "authorize", "pubsub")
        self._presenceInfo = resolveCallable(presenceInfo, "presenceInfo", "pubsub")
        self.maxSubscriptions = maxSubscriptions
        self.excludeSender = bool(excludeSender)
        self.presence = bool(presence)
        self.presenceTtl = presenceTtl
        self.historySize = historySize
        self.historyTtl = historyTtl
        self.historyChannels = list(historyChannels) if historyChannels is not None else None
        self.sessions = bool(sessions)
        self.engine = None
        self._channels = {}  # channel -> {connection id: connection}
        self._patterns = {}  # pattern -> {connection id: connection}
        self._events = {}  # channel -> {connection id: connection} wanting join/leave
        self._subs = {}  # connection id -> {channel or pattern: True}
        self.local = {}  # channel -> {connection id: presence info} of this node
        self._head = None
        self.published = {"client": 0, "server": 0}
        self.delivered = 0

    # -- lifecycle

    def start(self, server, serviceId, name):
        Service.start(self, server, serviceId, name)
        self._head = wire.header(serviceId)
        spec = self._engineSpec
        if spec == "memory":
            from prism.pubsub.memory import MemoryEngine

            self.engine = MemoryEngine()
        elif spec == "redis":
            from prism.pubsub.redis import RedisEngine  # imports txredisapi: only now

            self.engine = RedisEngine(self.redisUrl, self.redisPrefix, retry=self.redisRetry)
        else:
            self.engine = spec
        self.engine.start(self)
        return PubSubAPI(self)

    def stop(self):
        return self.engine.stop() if self.engine is not None else None

    def disconnected(self, connection):
        subs = self._subs.pop(connection.id, None)
        if subs:
            for key in subs:
                self._remove(connection, key)

    def historyFor(self, channel):
        """@return: whether C{channel} keeps a history."""
        if not self.historySize:
            return False
        globs = self.historyChannels
        return globs is None or any(fnmatchcase(channel, g) for g in globs)

    # -- client commands

    def messageReceived(self, request):
        message = request.payload
        if type(message) is not list or len(message) < 2 or type(message[0]) is not str:
            raise ServiceError("malformed", 'a pubsub command is ["sub"|"unsub"|"pub"|"presence", channel, …]')
        command, name = message[0], message[1]
        if command == "pub":
            if not validChannel(name):
                raise ServiceError("invalid", "bad channel name {!r}".format(name))
            if len(message) < 3:
                raise ServiceError("malformed", '["pub", channel, data, options?]')
            options = message[3] if len(message) > 3 and type(message[3]) is dict else {}
            return self._authorized(request, "publish", name, self._clientPublish, request, name, message[2], options)
        if command == "sub":
            if not validPattern(name):
                raise ServiceError("invalid", "bad channel or pattern {!r}".format(name))
            options = message[2] if len(message) > 2 and type(message[2]) is dict else {}
            return self._authorized(request, "subscribe", name, self._subscribe, request, name, options)
        if command == "unsub":
            if not validPattern(name):
                raise ServiceError("invalid", "bad channel or pattern {!r}".format(name))
            conn = request.connection
            subs = self._subs.get(conn.id)
            if subs is not None and subs.pop(name, None) is not None:
                self._remove(conn, name)
            return True
        if command == "presence":
            if not validChannel(name):
                raise ServiceError("invalid", "bad channel name {!r}".format(name))
            if not self.presence:
                raise ServiceError("disabled", "presence is not enabled on this server")
            return self._authorized(request, "presence", name, self._presenceOf, name)
        raise ServiceError("unknown_command", "no pubsub command {!r}".format(command))

    def _authorized(self, request, action, channel, proceed, *args):
        hook = self._authorize
        if hook is None:
            if action == "publish":
                raise ServiceError("forbidden", "clients may not publish to {!r}".format(channel))
            return proceed(*args)
        return then(hook(request, action, channel), checkAllowed, action, channel, proceed, args)

    def _clientPublish(self, request, channel, data, options):
        conn = request.connection
        exclude = conn.id if options.get("exclude", self.excludeSender) else None
        self.published["client"] += 1
        return then(self.engine.publish(channel, data, exclude), _position)

    def _subscribe(self, request, name, options):
        conn = request.connection
        if not conn.open:
            return None
        pattern = isPattern(name)
        subs = self._subs.get(conn.id)
        if subs is None:
            subs = self._subs[conn.id] = {}
        if name not in subs:
            if len(subs) >= self.maxSubscriptions:
                raise ServiceError("limit", "at most {} subscriptions per connection".format(self.maxSubscriptions))
            subs[name] = True
            table = self._patterns if pattern else self._channels
            members = table.get(name)
            if members is None:
                members = table[name] = {}
            members[conn.id] = conn
        if not pattern and options.get("events"):
            self._events.setdefault(name, {})[conn.id] = conn
        ready = self.engine.listen(name, pattern)
        if self.presence and not pattern and conn.id not in self.local.get(name, ()):
            info = self._presenceInfo(request) if self._presenceInfo is not None else {"id": conn.id}
            self.local.setdefault(name, {})[conn.id] = info
            self._guard(self.engine.join(name, conn.id, info), "join")
        return then(ready, self._subscribed, name, pattern, options)

    def _subscribed(self, _, name, pattern, options):
        if pattern or not self.historyFor(name):
            return {}
        recover = options.get("recover")
        if type(recover) is dict and type(recover.get("offset")) is int and type(recover.get("epoch")) is str:
            return then(self.engine.recover(name, recover["offset"], recover["epoch"]), _recovered)
        return then(self.engine.position(name), _position)

    def _presenceOf(self, channel):
        return self.engine.presence(channel)

    def _remove(self, conn, key):
        pattern = isPattern(key)
        table = self._patterns if pattern else self._channels
        members = table.get(key)
        if members is not None:
            members.pop(conn.id, None)
            if not members:
                del table[key]
                self._guard(self.engine.unlisten(key, pattern), "unlisten")
        listeners = self._events.get(key)
        if listeners is not None:
            listeners.pop(conn.id, None)
            if not listeners:
                del self._events[key]
        local = self.local.get(key)
        if local is not None and local.pop(conn.id, None) is not None:
            if not local:
                del self.local[key]
            self._guard(self.engine.leave(key, conn.id), "leave")

    def _guard(self, result, what):
        if isinstance(result, Deferred):
            result.addErrback(lambda f: self.log.failure("pubsub {what} failed", failure=f, what=what))

    # -- delivery (called by the engine)

    def _matchingPatterns(self, channel, match):
        return [p for p in self._patterns if match(channel, p)]

    def _deliverExact(self, channel, data, offset, epoch, exclude):
        members = self._channels.get(channel)
        if members:
            value = ["m", channel, data] if offset is None else ["m", channel, data, offset, epoch]
            self._fanOut(members, value, exclude)

    def _deliverPattern(self, pattern, channel, data, offset, epoch, exclude):
        members = self._patterns.get(pattern)
        if members:
            value = ["p", pattern, channel, data] if offset is None else ["p", pattern, channel, data, offset, epoch]
            self._fanOut(members, value, exclude)

    def _fanOut(self, members, value, exclude):
        prepared = PreparedFrame(self._head + _encode(value))  # encoded once, for every subscriber
        targets = list(members.values())
        self.delivered += len(targets) - 1 if exclude is not None and exclude in members else len(targets)
        for conn in targets:
            if conn.id != exclude:
                conn.sendPrepared(prepared)

    def _control(self, kind, target, channel, data):
        connections = self.server.connections
        if kind == "c":
            conn = connections.get(target)
            targets = [conn] if conn is not None and conn.welcomed else []
        elif kind == "s":
            targets = [c for c in connections.values() if c.welcomed and c.sessionId == target]
        else:
            targets = [c for c in connections.values() if c.welcomed]
        if targets:
            prepared = PreparedFrame(self._head + _encode(["m", channel, data]))
            self.delivered += len(targets)
            for conn in targets:
                conn.sendPrepared(prepared)

    def _presenceEvent(self, kind, channel, info):
        listeners = self._events.get(channel)
        if listeners:
            prepared = PreparedFrame(self._head + _encode([kind, channel, info]))
            for conn in list(listeners.values()):
                conn.sendPrepared(prepared)
        if self.server.events.has(self.name + "." + kind):
            self.emit(kind, channel, info)

    def clientScript(self):
        """@return: C{prism/js/pubsub.js}: subscribe, unsubscribe, publish, presence, recovery."""
        from prism.builder import jsSource

        return jsSource("pubsub.js")


def _position(result):
    offset, epoch = result
    return {} if offset is None else {"offset": offset, "epoch": epoch}


def _recovered(result):
    recovered, publications, offset, epoch = result
    return {
        "offset": offset,
        "epoch": epoch,
        "recovered": recovered,
        "publications": [[o, d] for o, d in publications],
    }


class PubSubAPI:
    """
    The server-side API of the C{pubsub} service (C{server.api.pubsub}).
    Every method returns a L{Deferred}.
    """

    def __init__(self, service):
        self._service = service

    @property
    def engine(self):
        return self._service.engine

    def publish(self, channel, data):
        """
        Publish C{data} (any JSON value) to the subscribers of C{channel}
        (and of the patterns matching it), on every node.

        @return: a L{Deferred} firing with C{{"offset": n, "epoch": e}} when
            the channel has history, else C{{}}; failing with
            L{ServiceError} (kind C{"unavailable"}) while Redis is down.
        """
        if not validChannel(channel):
            raise ServiceError("invalid", "bad channel name {!r}".format(channel))
        self._service.published["server"] += 1
        return maybeDeferred(self._service.engine.publish, channel, data, None).addCallback(_position)

    def publishTo(self, connectionId, channel, data):
        """Send a message on C{channel} to one connection (subscribed or not), on any node."""
        return self._control("c", connectionId, channel, data)

    def publishToSession(self, sessionId, channel, data):
        """Send a message on C{channel} to every connection of a session, on every node."""
        return self._control("s", sessionId, channel, data)

    def broadcast(self, channel, data):
        """Send a message on C{channel} to every connection, on every node."""
        return self._control("a", None, channel, data)

    def _control(self, kind, target, channel, data):
        if not validChannel(channel):
            raise ServiceError("invalid", "bad channel name {!r}".format(channel))
        self._service.published["server"] += 1
        return maybeDeferred(self._service.engine.control, kind, target, channel, data)

    def presence(self, channel):
        """@return: a L{Deferred} firing with the list of presence infos of C{channel}."""
        return maybeDeferred(self._service.engine.presence, channel)

    def channels(self):
        """@return: the channels and patterns with subscribers on this node."""
        return sorted(list(self._service._channels) + list(self._service._patterns))
