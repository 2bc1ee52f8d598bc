"""
The C{redis} session store: sessions in Redis (6.2 or newer), shared by every
Prism node and by web applications (see L{prism.sessioncodecs}).

For example::

    from prism.stores.redis import RedisSessionStore

    store = RedisSessionStore(host="127.0.0.1", port=6379, db=0, ttl=86400)
    server = Server(sessionStore=store, sessionCodec="express", secret=…)

Each session is one string key, C{<prefix><id>}, holding the codec's
serialization, with a Redis expiry of C{ttl} seconds refreshed by every
load (C{GETEX … EX}), touch (C{EXPIRE}) and save (C{SET … EX}).

Nothing connects before the first use, and txredisapi is imported only then:
importing it installs the default reactor (C{STYLE.md} section 4). The store
keeps a pool of C{poolSize} connections, reconnecting by itself (txredisapi's
back-off: 1 s, growing to 10 s). While no connection is up, every call fails
at once with L{SessionStoreUnavailable} instead of waiting; a call that gets
no reply within C{replyTimeout} fails the same way. A save is reported as
done only once Redis has answered C{OK}.

The store reports its state to every server it is bound to (L{bind}): the
events C{session_store.down} and C{session_store.up} on C{server.events},
each with a L{StoreStateEvent}, and a log line for each.
"""

from twisted.internet.defer import Deferred, fail
from twisted.logger import Logger
from zope.interface import implementer

from prism.errors import NoSuchSession, PrismConfigError, SessionError, SessionStoreUnavailable
from prism.interfaces import ISessionStore
from prism.sessioncodecs import sessionCodec

__all__ = ["RedisSessionStore", "SessionStoreUnavailable", "StoreStateEvent"]

class StoreStateEvent:
    """
    What C{session_store.down} and C{session_store.up} carry.

    @ivar store: the L{RedisSessionStore}.
    @ivar address: where it connects (C{"redis://host:port/db"} or
        C{"unix:/path"}).
    @ivar reason: why it went down (L{str}), or L{None}.
    """

    __slots__ = ("store", "address", "reason")

    def __init__(self, store, address, reason=None):
        self.store = store
        self.address = address
        self.reason = reason

    def __repr__(self):
        return "<StoreStateEvent {} {}>".format(self.address, self.reason or "")


def _factoryClass():
    """A txredisapi factory that tells the store when the pool empties and fills."""
    import txredisapi

    class _Factory(txredisapi.RedisFactory):
        store = None

        def addConnection(self, conn):
            txredisapi.RedisFactory.addConnection(self, conn)
            if self.size and self.store is not None:
                self.store._poolUp()

        def delConnection(self, conn):
            txredisapi.RedisFactory.delConnection(self, conn)
            if not self.size and self.store is not None:
                self.store._poolDown("connection lost")

        def retryDelay(self, attempt):
            # Called when a connection attempt failed.
            if not self.size and self.store is not None:
                self.store._poolDown("cannot connect")
            return txredisapi.RedisFactory.retryDelay(self, attempt)

    return _Factory, txredisapi


@implementer(ISessionStore)
class RedisSessionStore:
    """
    Sessions in Redis; see the module docstring.

    @param host: the Redis host (TCP), ignored when C{unix} is set.
    @param port: the Redis port.
    @param unix: the path of Redis's unix socket, instead of TCP.
    @param db: the database number (C{SELECT}).
    @param password: Redis's password (C{AUTH}), or L{None}.
    @param prefix: the key prefix; by default the codec's (C{prism:sess:},
        C{sess:} for express, C{session:} for flask).
    @param ttl: seconds of inactivity after which a session expires.
    @param codec: the storage format: a L{prism.sessioncodecs} name or
        codec; by default the codec of the server the store is bound to.
    @param poolSize: connections kept open.
    @param connectTimeout: seconds a connection attempt, and a call made
        before the first connection is up, may take.
    @param replyTimeout: seconds Redis has to answer a command.
    @param reactor: the reactor (the global one by default, resolved when
        the store first connects).
    """

    log = Logger()

    def __init__(
        self,
        host="127.0.0.1",
        port=6379,
        unix=None,
        db=0,
        password=None,
        prefix=None,
        ttl=86400,
        codec=None,
        poolSize=4,
        connectTimeout=2.0,
        replyTimeout=5.0,
        reactor=None,
    ):
        if not isinstance(host, str) or not host:
            raise PrismConfigError("redis: host must be a non-empty string")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise PrismConfigError("redis: port must be an integer from 1 to 65535")
        if unix is not None and (not isinstance(unix, str) or not unix):
            raise PrismConfigError("redis: unix must be a socket path")
        if isinstance(db, bool) or not isinstance(db, int) or db < 0:
            raise PrismConfigError("redis: db must be an integer >= 0")
        if password is not None and not isinstance(password, str):
            raise PrismConfigError("redis: password must be a string")
        if prefix is not None and not isinstance(prefix, str):
            raise PrismConfigError("redis: prefix must be a string")
        if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or ttl < 1:
            raise PrismConfigError("redis: ttl must be a number of seconds >= 1")
        if isinstance(poolSize, bool) or not isinstance(poolSize, int) or poolSize < 1:
            raise PrismConfigError("redis: poolSize must be a positive integer")
        for name, value in (("connectTimeout", connectTimeout), ("replyTimeout", replyTimeout)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise PrismConfigError("redis: {} must be a number of seconds > 0".format(name))
        self.host = host
        self.port = port
        self.unix = unix
        self.db = db
        self._password = password
        self._prefix = prefix
        self.ttl = int(ttl) if ttl == int(ttl) else int(ttl) + 1  # EX takes whole seconds
        self.codec = sessionCodec(codec) if codec is not None else None
        self.poolSize = poolSize
        self.connectTimeout = connectTimeout
        self.replyTimeout = replyTimeout
        self._reactor = reactor
        self._factory = None
        self._txredisapi = None
        self._state = "idle"  # idle (not connected yet), connecting, up, down
        self._reason = None
        self._waiting = set()
        self._servers = []
        self.stats = None  # a prism.metrics.StoreStats once enableStats() was called

    def __repr__(self):
        return "<RedisSessionStore {} {}>".format(self.address, self._state)

    @property
    def address(self):
        if self.unix is not None:
            return "unix:{}".format(self.unix)
        return "redis://{}:{}/{}".format(self.host, self.port, self.db)

    @property
    def prefix(self):
        if self._prefix is not None:
            return self._prefix
        return (self.codec or sessionCodec()).keyPrefix

    @property
    def available(self):
        """L{False} while the store knows Redis is unreachable (reconnecting)."""
        return self._state != "down"

    @property
    def reactor(self):
        if self._reactor is None:
            from twisted.internet import reactor

            self._reactor = reactor
        return self._reactor

    # -- binding to servers

    def bind(self, server):
        """
        Called by L{prism.server.Server} with itself: take its session codec
        (unless one was given) and report state changes on its event bus.
        """
        if self.codec is None:
            self.codec = server.sessionCodec
        if server not in self._servers:
            self._servers.append(server)
            server.sessionStoreDown = self._state == "down"

    def enableStats(self):
        """
        Time every operation and count the failures from now on (called by
        L{prism.server.Server.enableMetrics} of a server using this store;
        C{prism_session_store_*} in C{docs/metrics.md}).

        @return: the L{prism.metrics.StoreStats} (the same on every call).
        """
        if self.stats is None:
            from prism.metrics import StoreStats

            self.stats = StoreStats()
        return self.stats

    def _timed(self, operation, d):
        stats = self.stats
        if stats is None:
            return d
        return stats.track(operation, d, self.reactor.seconds)

    def _emit(self, event, reason=None):
        payload = StoreStateEvent(self, self.address, reason)
        for server in self._servers:
            # While it is set, messages to services with sessions get a
            # "session store unavailable" error without waiting.
            server.sessionStoreDown = event == "session_store.down"
            server.events.emit(event, payload)

    # -- the connection pool

    def connect(self):
        """Start connecting now (otherwise the first call does)."""
        if self._factory is not None:
            return
        factoryClass, txredisapi = _factoryClass()
        self._txredisapi = txredisapi
        factory = factoryClass(
            self.address,
            self.db or None,
            self.poolSize,
            isLazy=True,
            charset=None,  # values are bytes (msgpack for flask)
            password=self._password,
            replyTimeout=self.replyTimeout,
            convertNumbers=False,
        )
        factory.store = self
        factory.reconnect = True
        self._factory = factory
        self._state = "connecting"
        if self.unix is not None:
            from twisted.internet.endpoints import UNIXClientEndpoint

            endpoint = UNIXClientEndpoint(self.reactor, self.unix, timeout=self.connectTimeout)
        else:
            from twisted.internet.endpoints import HostnameEndpoint

            endpoint = HostnameEndpoint(self.reactor, self.host, self.port, timeout=self.connectTimeout)
        factory.startConnecting(endpoint)

    def close(self):
        """
        Close every connection and stop reconnecting.

        @return: a L{Deferred} firing when the pool is empty.
        """
        from twisted.internet.defer import succeed

        factory, self._factory = self._factory, None
        self._state = "idle"
        self._failWaiting("store closed")
        if factory is None:
            return succeed(None)
        factory.store = None
        # On the next turn: close() may be called from a callback that the
        # connection's state machine is still running (a load that failed
        # because Redis is unreachable), and automat refuses re-entry.
        from twisted.internet.defer import Deferred

        done = Deferred()
        self.reactor.callLater(0, lambda: factory.disconnect().chainDeferred(done))
        return done

    def _poolUp(self):
        if self._state != "up":
            wasDown = self._state == "down"
            self._state = "up"
            self._reason = None
            if wasDown:
                self.log.info("session store {address} is back up", address=self.address)
            else:
                self.log.info("session store connected to {address}", address=self.address)
            self._emit("session_store.up")

    def _poolDown(self, reason):
        if self._state in ("connecting", "up"):
            self._state = "down"
            self._reason = reason
            self.log.warn(
                "session store {address} is down ({reason}); reconnecting", address=self.address, reason=reason
            )
            self._emit("session_store.down", reason)
            self._failWaiting(reason)

    def _failWaiting(self, reason):
        waiting, self._waiting = self._waiting, set()
        for d in waiting:
            if not d.called:
                d.errback(SessionStoreUnavailable(reason))

    def _command(self, *args):
        """
        Run one command on a pooled connection.

        @return: a L{Deferred} firing with the reply, or failing with
            L{SessionStoreUnavailable} (Redis is down, the connection was
            lost before the reply, or no reply came in time).
        """
        if self._factory is None:
            self.connect()
        factory = self._factory
        if self._state == "down":
            return fail(SessionStoreUnavailable(self._reason))
        result = Deferred()
        if not factory.size:
            # Connecting (the first call): wait, but not for ever.
            self._waiting.add(result)
            timer = self.reactor.callLater(
                self.connectTimeout,
                lambda: None if result.called else result.errback(SessionStoreUnavailable("cannot connect")),
            )
            result.addBoth(self._stopTimer, timer, result)

        def run(connection):
            if result.called:  # gave up waiting: never run a write the caller was told failed
                return None
            return connection.execute_command(*args)

        def done(reply):
            if not result.called:
                result.callback(reply)

        def failed(f):
            if not result.called:
                if f.check(self._txredisapi.ResponseError):
                    result.errback(SessionError("redis: {}".format(f.getErrorMessage())))
                else:
                    result.errback(SessionStoreUnavailable(f.getErrorMessage()))

        d = factory.getConnection(peek=True)
        d.addCallback(run).addCallbacks(done, failed)
        return result

    def _stopTimer(self, value, timer, result):
        self._waiting.discard(result)
        if timer.active():
            timer.cancel()
        return value

    # -- ISessionStore

    def _key(self, sessionId):
        return self.prefix + sessionId

    def _codec(self):
        if self.codec is None:
            self.codec = sessionCodec()
        return self.codec

    def load(self, sessionId):
        codec = self._codec()

        def loaded(raw):
            if raw is None:
                raise NoSuchSession(sessionId)
            try:
                return codec.decode(raw)
            except (ValueError, UnicodeDecodeError) as e:
                raise SessionError("cannot decode the stored session ({} format): {}".format(codec.name, e))

        return self._timed("load", self._command("GETEX", self._key(sessionId), "EX", self.ttl).addCallback(loaded))

    def save(self, sessionId, data):
        try:
            raw = self._codec().encode(data)
        except (TypeError, ValueError) as e:
            return self._timed("save", fail(TypeError(str(e))))

        def stored(reply):
            if reply not in ("OK", b"OK"):
                raise SessionStoreUnavailable("unexpected reply {!r}".format(reply))
            return None

        return self._timed("save", self._command("SET", self._key(sessionId), raw, "EX", self.ttl).addCallback(stored))

    def touch(self, sessionId):
        def touched(reply):
            if not reply:
                raise NoSuchSession(sessionId)
            return None

        return self._timed("touch", self._command("EXPIRE", self._key(sessionId), self.ttl).addCallback(touched))

    def delete(self, sessionId):
        return self._timed("delete", self._command("DEL", self._key(sessionId)).addCallback(lambda _: None))
