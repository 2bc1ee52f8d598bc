"""
The C{redis} engine of the C{pubsub} service: scale-out through Redis.

Every publish goes through Redis (C{PUBLISH}, or a Lua script that also
appends to the channel's history stream), so subscribers on every node
receive it, the publishing node included. A node C{SUBSCRIBE}s (or
C{PSUBSCRIBE}s) only to the channels and patterns that have local
subscribers, and unsubscribes when the last one leaves. After a lost
connection it reconnects with backoff and subscribes again; the outage is
logged and emitted on the server's event bus (C{pubsub.redis_down},
C{pubsub.redis_up}).

Keys and channels (C{P} is the prefix, C{prism:} by default)::

    P ch:<channel>      pub/sub channel; messages are JSON envelopes
                        [kind, offset|null, epoch|null, exclude|null, data]
                        kind "m" (publication), "j"/"l" (join/leave)
    P ctl               pub/sub channel for publishTo/publishToSession/broadcast:
                        [kind "c"|"s"|"a", target, channel, data]
    P h:<channel>       stream: the history (ids <offset>-0, field "d": data JSON)
    P hm:<channel>      hash: "o" the last offset, "e" the epoch
    P p:<channel>       hash: connection id -> presence info JSON
    P pz:<channel>      sorted set: connection id -> expiry (Redis TIME)

With L{prism.stores.redis}, this is one of the two modules of Prism that
import C{txredisapi} (which imports the global reactor): the service imports
it only when a redis engine starts.
"""

import json
from urllib.parse import urlsplit

import txredisapi
from twisted.internet.defer import Deferred, fail
from twisted.internet.endpoints import HostnameEndpoint
from twisted.logger import Logger

from prism.errors import PrismConfigError
from prism.pubsub.history import newEpoch, recovery
from prism.server import ServiceError

__all__ = ["RedisEngine", "parseRedisUrl"]

_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_decode = json.loads

_NOW = "local t = redis.call('TIME') local now = tonumber(t[1]) + tonumber(t[2]) / 1000000 "

# KEYS: stream, meta. ARGV: redis channel, size, ttl, new epoch, exclude JSON, data JSON.
_PUBLISH = """
local o = redis.call('HINCRBY', KEYS[2], 'o', 1)
local e = redis.call('HGET', KEYS[2], 'e')
if not e then e = ARGV[4] redis.call('HSET', KEYS[2], 'e', e) end
redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[2], o .. '-0', 'd', ARGV[6])
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[3])
redis.call('PUBLISH', ARGV[1], '["m",' .. o .. ',"' .. e .. '",' .. ARGV[5] .. ',' .. ARGV[6] .. ']')
return {o, e}
"""

# KEYS: stream, meta. ARGV: first stream id wanted ('' for none), new epoch, ttl.
# A channel without history yet gets its epoch now, so that a subscriber
# can present it later.
_RANGE = """
local e = redis.call('HGET', KEYS[2], 'e')
if not e then
  e = ARGV[2]
  redis.call('HSET', KEYS[2], 'e', e, 'o', 0)
  redis.call('EXPIRE', KEYS[2], ARGV[3])
end
local o = redis.call('HGET', KEYS[2], 'o') or '0'
local out = {o, e}
if ARGV[1] ~= '' then
  for _, entry in ipairs(redis.call('XRANGE', KEYS[1], ARGV[1], '+')) do
    table.insert(out, entry[1])
    table.insert(out, entry[2][2])
  end
end
return out
"""

# Remove expired members and announce their leave. KEYS: info hash, expiry zset.
# ARGV[1]: the redis channel.
_SWEEP = (
    _NOW
    + """
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)) do
  local info = redis.call('HGET', KEYS[1], id)
  redis.call('ZREM', KEYS[2], id)
  redis.call('HDEL', KEYS[1], id)
  if info then redis.call('PUBLISH', ARGV[1], '["l",null,null,null,' .. info .. ']') end
end
"""
)

# Join or refresh members: ARGV: redis channel, ttl, then id, info pairs.
_JOIN = (
    _SWEEP
    + """
local ttl = tonumber(ARGV[2])
for i = 3, #ARGV, 2 do
  local new = redis.call('ZADD', KEYS[2], now + ttl, ARGV[i])
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  if new == 1 then redis.call('PUBLISH', ARGV[1], '["j",null,null,null,' .. ARGV[i + 1] .. ']') end
end
redis.call('EXPIRE', KEYS[1], math.ceil(ttl * 2))
redis.call('EXPIRE', KEYS[2], math.ceil(ttl * 2))
return 1
"""
)

# ARGV: redis channel, id.
_LEAVE = """
local info = redis.call('HGET', KEYS[1], ARGV[2])
redis.call('HDEL', KEYS[1], ARGV[2])
if redis.call('ZREM', KEYS[2], ARGV[2]) == 1 and info then
  redis.call('PUBLISH', ARGV[1], '["l",null,null,null,' .. info .. ']')
end
return 1
"""

_MEMBERS = _SWEEP + "return redis.call('HVALS', KEYS[1])"


def parseRedisUrl(url):
    """
    @param url: C{redis://host[:port][/db]}.
    @return: C{(host, port, db or None)}.
    @raise PrismConfigError: for anything else.
    """
    try:
        parts = urlsplit(url)
        port = parts.port or 6379
    except (ValueError, TypeError, AttributeError):
        raise PrismConfigError("pubsub: bad Redis URL {!r}".format(url)) from None
    if parts.scheme != "redis" or not parts.hostname:
        raise PrismConfigError("pubsub: a Redis URL is redis://host[:port][/db], not {!r}".format(url))
    path = parts.path.strip("/")
    if path and not path.isdigit():
        raise PrismConfigError("pubsub: bad Redis database in {!r}".format(url))
    return parts.hostname, port, int(path) if path else None


class Unavailable(ServiceError):
    """Redis is unreachable: the publication was not sent."""

    def __init__(self, message="the pubsub engine cannot reach Redis"):
        ServiceError.__init__(self, "unavailable", message)


class _Subscriber(txredisapi.SubscriberProtocol):
    engine = None

    def connectionMade(self):
        d = txredisapi.SubscriberProtocol.connectionMade(self)
        self.whenConnected().addCallback(lambda _: self.factory.engine._subscriberUp(self))
        return d

    def connectionLost(self, why):
        txredisapi.SubscriberProtocol.connectionLost(self, why)
        self.factory.engine._subscriberDown(self, why)

    def messageReceived(self, pattern, channel, message):
        self.factory.engine._message(pattern, channel, message)


class _Command(txredisapi.RedisProtocol):
    def connectionMade(self):
        d = txredisapi.RedisProtocol.connectionMade(self)
        self.whenConnected().addCallback(lambda _: self.factory.engine._commandUp(self))
        return d

    def connectionLost(self, why):
        txredisapi.RedisProtocol.connectionLost(self, why)
        self.factory.engine._commandDown(self, why)


class _Factory(txredisapi.RedisFactory):
    def __init__(self, engine, subscriber, dbid):
        txredisapi.RedisFactory.__init__(
            self, None, None if subscriber else dbid, 1, isLazy=True, convertNumbers=False, replyTimeout=None
        )
        self.protocol = _Subscriber if subscriber else _Command
        self.engine = engine
        self.initialDelay, self.maxDelay = engine.retry
        self.factor = 2.0


class RedisEngine:
    """
    See the module docstring and C{docs/pubsub.md}.

    @param url: C{redis://host:port[/db]}.
    @param prefix: of every key and channel.
    @param retry: C{(initial, maximum)} reconnection delays, in seconds.
    """

    name = "redis"
    log = Logger()

    def __init__(self, url, prefix="prism:", retry=(0.2, 5.0)):
        self.host, self.port, self.db = parseRedisUrl(url)
        self.url = url
        self.prefix = prefix
        self.retry = retry
        self._chPrefix = prefix + "ch:"
        self._ctl = prefix + "ctl"
        self._keys = {}  # channel or pattern -> None (confirmed) or [waiting Deferreds]
        self._subscriber = None  # the connected _Subscriber
        self._command = None  # the connected _Command
        self.up = False  # both connections are up
        self.outages = 0
        self._service = None
        self._heartbeat = None

    # -- lifecycle

    def start(self, service):
        self._service = service
        self._server = service.server
        self._reactor = service.server.reactor
        self._cmdFactory = _Factory(self, False, self.db)
        self._subFactory = _Factory(self, True, self.db)
        self._cmdFactory.startConnecting(HostnameEndpoint(self._reactor, self.host, self.port, timeout=5))
        self._subFactory.startConnecting(HostnameEndpoint(self._reactor, self.host, self.port, timeout=5))
        self._cmd = self._cmdFactory.handler
        if service.presence:
            self._heartbeat = self._reactor.callLater(service.presenceTtl / 3.0, self._refreshPresence)

    def stop(self):
        call, self._heartbeat = self._heartbeat, None
        if call is not None and call.active():
            call.cancel()
        return self._cmdFactory.disconnect().addCallback(lambda _: self._subFactory.disconnect())

    # -- the subscriber connection

    def _subscriberUp(self, proto):
        self._subscriber = proto
        proto.subscribe(self._ctl).addErrback(self._logFailure, "SUBSCRIBE ctl")
        for key, waiting in list(self._keys.items()):
            self._sendListen(key, waiting)
        self._checkUp()

    def _commandUp(self, proto):
        self._command = proto
        self._checkUp()

    def _checkUp(self):
        if self.up or self._subscriber is None or self._command is None:
            return
        self.up = True
        if self.outages:
            self.log.info("pubsub: reconnected to Redis at {url}; subscriptions restored", url=self.url)
            self._service.emit("redis_up", self.url)
        else:
            self.log.info("pubsub: connected to Redis at {url}", url=self.url)
        if self._service.presence:
            self._refreshPresence(reschedule=False)

    def _subscriberDown(self, proto, why):
        if self._subscriber is not proto:
            return
        self._subscriber = None
        for key, waiting in list(self._keys.items()):  # subscribed again on reconnection
            if waiting is not None:
                self._keys[key] = None
                for d in waiting:
                    d.callback(None)
        self._down(why)

    def _commandDown(self, proto, why):
        if self._command is proto:
            self._command = None
            self._down(why)

    def _down(self, why):
        if not self.up:
            return
        self.up = False
        self.outages += 1
        if self._subFactory.disconnectCalled or self._cmdFactory.disconnectCalled:
            return
        self.log.warn(
            "pubsub: lost the Redis connection to {url} ({why}); reconnecting", url=self.url, why=why.getErrorMessage()
        )
        self._service.emit("redis_down", self.url, why.getErrorMessage())

    def _sendListen(self, key, waiting):
        pattern = "*" in key or "?" in key
        rkey = self._chPrefix + key
        d = self._subscriber.psubscribe(rkey) if pattern else self._subscriber.subscribe(rkey)

        def done(result):
            if self._keys.get(key) is waiting and waiting is not None:
                self._keys[key] = None
                for w in waiting:
                    w.callback(None)
            return None

        d.addCallbacks(done, self._logFailure, errbackArgs=("SUBSCRIBE " + key,))

    def _logFailure(self, failure, what):
        self.log.warn("pubsub: Redis {what} failed: {why}", what=what, why=failure.getErrorMessage())
        return None

    def listen(self, key, isPattern):
        """@return: L{None}, or a L{Deferred} firing once Redis confirmed the subscription."""
        if key in self._keys:
            waiting = self._keys[key]
            if waiting is None:
                return None
            d = Deferred()
            waiting.append(d)
            return d
        if self._subscriber is None:  # subscribed when Redis is back
            self._keys[key] = None
            return None
        waiting = self._keys[key] = []
        d = Deferred()
        waiting.append(d)
        self._sendListen(key, waiting)
        return d

    def unlisten(self, key, isPattern):
        waiting = self._keys.pop(key, None)
        for d in waiting or ():
            d.callback(None)
        if self._subscriber is not None:
            rkey = self._chPrefix + key
            d = self._subscriber.punsubscribe(rkey) if isPattern else self._subscriber.unsubscribe(rkey)
            d.addErrback(self._logFailure, "UNSUBSCRIBE " + key)
        return None

    def _message(self, pattern, channel, message):
        try:
            if channel == self._ctl:
                kind, target, name, data = _decode(message)
                self._service._control(kind, target, name, data)
                return
            kind, offset, epoch, exclude, data = _decode(message)
        except Exception:
            self.log.failure("pubsub: ignored a bad message on Redis channel {channel}", channel=channel)
            return
        name = channel[len(self._chPrefix):]
        if pattern is not None:
            if kind == "m":
                self._service._deliverPattern(pattern[len(self._chPrefix):], name, data, offset, epoch, exclude)
        elif kind == "m":
            self._service._deliverExact(name, data, offset, epoch, exclude)
        elif kind == "j":
            self._service._presenceEvent("join", name, data)
        elif kind == "l":
            self._service._presenceEvent("leave", name, data)

    # -- commands

    def _call(self, script, keys, args):
        if self._command is None:
            return fail(Unavailable())
        return self._cmd.eval(script, keys, args).addErrback(self._unavailable)

    @staticmethod
    def _unavailable(failure):
        if failure.check(txredisapi.ConnectionError):
            raise Unavailable()
        return failure

    def publish(self, channel, data, exclude=None):
        """@return: a L{Deferred} firing with C{(offset, epoch)} (or C{(None, None)})."""
        if self._command is None:
            return fail(Unavailable())
        rchannel = self._chPrefix + channel
        payload = _encode(data)
        excluded = _encode(exclude)
        service = self._service
        if service.historyFor(channel):
            keys = [self.prefix + "h:" + channel, self.prefix + "hm:" + channel]
            args = [rchannel, service.historySize, int(max(1, round(service.historyTtl))), newEpoch(), excluded, payload]
            return self._call(_PUBLISH, keys, args).addCallback(lambda r: (int(r[0]), r[1]))
        envelope = '["m",null,null,' + excluded + "," + payload + "]"
        d = self._cmd.publish(rchannel, envelope).addErrback(self._unavailable)
        return d.addCallback(lambda _: (None, None))

    def control(self, kind, target, channel, data):
        if self._command is None:
            return fail(Unavailable())
        return self._cmd.publish(self._ctl, _encode([kind, target, channel, data])).addErrback(self._unavailable).addCallback(lambda _: None)

    # -- history

    def _range(self, channel, first):
        keys = [self.prefix + "h:" + channel, self.prefix + "hm:" + channel]
        ttl = int(max(1, round(self._service.historyTtl)))
        return self._call(_RANGE, keys, [first, newEpoch(), ttl])

    def position(self, channel):
        def got(r):
            top, epoch = int(r[0]), r[1]
            return top, epoch or None

        return self._range(channel, "").addCallback(got)

    def recover(self, channel, offset, epoch):
        def got(r):
            top, current = int(r[0]), r[1] or None
            entries = [(int(r[i].split("-")[0]), _decode(r[i + 1])) for i in range(2, len(r), 2)]
            recovered, missed = recovery(entries, top, current, offset, epoch)
            return recovered, missed, top, current

        return self._range(channel, "{}-0".format(offset + 1) if offset >= 0 else "").addCallback(got)

    # -- presence

    def _presenceKeys(self, channel):
        return [self.prefix + "p:" + channel, self.prefix + "pz:" + channel]

    def join(self, channel, connectionId, info):
        ttl = self._service.presenceTtl
        return self._call(_JOIN, self._presenceKeys(channel), [self._chPrefix + channel, ttl, connectionId, _encode(info)])

    def leave(self, channel, connectionId):
        return self._call(_LEAVE, self._presenceKeys(channel), [self._chPrefix + channel, connectionId])

    def presence(self, channel):
        d = self._call(_MEMBERS, self._presenceKeys(channel), [self._chPrefix + channel])
        return d.addCallback(lambda infos: [_decode(i) for i in infos or ()])

    def _refreshPresence(self, reschedule=True):
        """Refresh this node's members (and sweep expired ones) of every channel it has."""
        service = self._service
        if reschedule:
            self._heartbeat = self._reactor.callLater(service.presenceTtl / 3.0, self._refreshPresence)
        if self._command is None:
            return
        for channel, members in list(service.local.items()):
            args = [self._chPrefix + channel, service.presenceTtl]
            for connectionId, info in members.items():
                args += [connectionId, _encode(info)]
            self._call(_JOIN, self._presenceKeys(channel), args).addErrback(self._logFailure, "presence refresh")
