"""
The C{redis} store of the C{models} service: documents in Redis, shared
by every node and kept across restarts.

A change is one Lua script: it compares the document's version with the
version the change was made against, and only if they match stores the new
value, appends the patch to the document's log and publishes it, so that
two writers can never both win. The notification travels through the
pubsub engine's Redis connection (L{prism.pubsub.redis.RedisEngine}, which
reconnects and resubscribes by itself); every node pushes it to its own
subscribers. A node remembers the last version it saw of each document it
listens to: after a gap (a lost Redis connection) it fetches what it missed
and pushes it, as patches when the log still has them, else as a snapshot.

Keys and channels (C{P} is the prefix, C{prism:models:} by default)::

    P d:<name>     hash: "v" the version, "d" the value (JSON)
    P l:<name>     list: the last changes, newest first, each "[version,ops]"
    P ch:<name>    pub/sub channel: the changes, as pubsub engine envelopes

Keys never expire: delete them to delete a document.
"""

import copy
import json

import jsonpatch
from twisted.logger import Logger

from prism.patching import PATCH_ERRORS
from prism.pubsub.redis import RedisEngine
from prism.services.models import _INITIAL

__all__ = ["RedisModelStore"]

_decode = json.loads
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode

# KEYS: doc, log. ARGV: base version, value JSON, ops JSON, log size, channel.
_COMMIT = """
local v = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
if v ~= tonumber(ARGV[1]) then return {0, v} end
v = v + 1
redis.call('HSET', KEYS[1], 'v', v, 'd', ARGV[2])
local entry = '[' .. string.format('%d', v) .. ',' .. ARGV[3] .. ']'
local size = tonumber(ARGV[4])
if size > 0 then
  redis.call('LPUSH', KEYS[2], entry)
  redis.call('LTRIM', KEYS[2], 0, size - 1)
end
redis.call('PUBLISH', ARGV[5], '["m",null,null,null,' .. entry .. ']')
return {1, v}
"""

# KEYS: doc, log. ARGV: the version the caller holds ('' for none).
# Returns {version, 'p', entry, entry, ...} (oldest first) when the log
# covers everything since, else {version, 's', value JSON or false}.
_SINCE = """
local h = redis.call('HMGET', KEYS[1], 'v', 'd')
local v = tonumber(h[1] or '0')
local s = tonumber(ARGV[1])
if s and s <= v then
  if s == v then return {v, 'p'} end
  if v - s <= redis.call('LLEN', KEYS[2]) then
    local out = {v, 'p'}
    local entries = redis.call('LRANGE', KEYS[2], 0, v - s - 1)
    for i = #entries, 1, -1 do table.insert(out, entries[i]) end
    return out
  end
end
return {v, 's', h[2]}
"""

_LOAD = "return redis.call('HMGET', KEYS[1], 'v', 'd')"


class RedisModelStore:
    """
    See the module docstring; the interface is
    L{prism.models.memory.MemoryModelStore}'s.

    @param url: C{redis://host:port[/db]}.
    @param prefix: of every key and channel.
    @param historySize: changes kept per document.
    @param retry: C{(initial, maximum)} reconnection delays, in seconds.
    """

    name = "redis"
    log = Logger()

    # what the pubsub engine asks of the service it serves
    presence = False
    presenceTtl = 30.0
    local = {}

    def __init__(self, url, prefix="prism:models:", historySize=100, retry=(0.2, 5.0)):
        self.engine = RedisEngine(url, prefix, retry=retry)
        self.prefix = prefix
        self.historySize = historySize
        self._seen = {}  # listened document -> the last version pushed (or None)
        self._cache = {}  # listened document -> [version, value]: commits skip the read
        self._service = None
        self.server = None
        self._again = None  # the second catch-up after an outage

    def start(self, service):
        self._service = service
        self.server = service.server
        self.engine.start(self)

    def stop(self):
        again, self._again = self._again, None
        if again is not None and again.active():
            again.cancel()
        return self.engine.stop()

    def _keys(self, name):
        return [self.prefix + "d:" + name, self.prefix + "l:" + name]

    # -- what the engine calls

    def historyFor(self, channel):
        return False

    def emit(self, event, *args):
        self._service.emit(event, *args)
        if event == "redis_up":
            self._resyncAll()
            # The engine subscribes again without telling when Redis
            # confirmed it: a change committed before then reaches this node
            # only with the next one. A second catch-up a moment later
            # closes that window.
            if self._again is None or not self._again.active():
                self._again = self.server.reactor.callLater(self.RESYNC_AGAIN, self._resyncAll)

    RESYNC_AGAIN = 1.0
    """Seconds after Redis came back when documents are caught up a second time."""

    def _resyncAll(self):
        self._cache.clear()  # changes may have been missed while Redis was away
        if self._service is None or self.engine._cmdFactory.disconnectCalled:
            return
        for name in list(self._seen):
            self._resync(name)

    def _deliverExact(self, channel, data, offset, epoch, exclude):
        try:
            version, ops = data
        except (TypeError, ValueError):
            self.log.warn("models: ignored a bad change notification for {name}", name=channel)
            return
        if channel not in self._seen:
            return
        seen = self._seen[channel]
        if seen is not None:
            if version <= seen:
                if version == 1:  # the document started again (its keys deleted)? A resync tells
                    self._cache.pop(channel, None)
                    self._resync(channel)
                return  # else pushed already (after a resync)
            if version > seen + 1:
                self._resync(channel)
                return
        self._seen[channel] = version
        self._follow(channel, version, ops)
        self._service._changed(channel, version, _encode(ops))

    def _follow(self, name, version, ops):
        """Keep the cached value of C{name} at C{version} by applying its change, or forget it."""
        cached = self._cache.get(name)
        if cached is None or cached[0] >= version:
            return
        if cached[0] == version - 1:
            try:
                cached[1] = jsonpatch.JsonPatch(ops).apply(cached[1], in_place=True)
                cached[0] = version
                return
            except PATCH_ERRORS:
                pass
        del self._cache[name]

    def _deliverPattern(self, *args):
        pass

    def _control(self, *args):
        pass

    def _presenceEvent(self, *args):
        pass

    def _resync(self, name):
        """Push what this node missed of C{name} (after a gap or an outage)."""
        seen = self._seen.get(name)
        self._cache.pop(name, None)

        def got(result):
            if name not in self._seen:
                return
            version, patches, value = result
            last = self._seen.get(name)
            back = seen is not None and version < seen and last == seen  # went back: start again from a snapshot
            if not back and last is not None and version <= last:
                return
            if patches is not None:
                for v, ops in patches:
                    if last is None or v > last:
                        self._service._changed(name, v, _encode(ops))
            else:
                self._service._reset(name, version, value)
            self._seen[name] = version

        d = self.since(name, seen)
        d.addCallback(got)
        d.addErrback(lambda f: self.log.warn("models: cannot resync {name}: {why}", name=name, why=f.getErrorMessage()))

    # -- the store interface

    def listen(self, name):
        """Idempotent: called for every new subscriber; the first one subscribes in Redis."""
        self._seen.setdefault(name, None)
        return self.engine.listen(name, False)

    def unlisten(self, name):
        self._seen.pop(name, None)
        self._cache.pop(name, None)
        return self.engine.unlisten(name, False)

    def load(self, name, base):
        """
        From the cache when this node follows C{name} and holds version
        C{base} (no round trip to Redis); else from Redis. Either way the
        compare-and-set in L{commit} is what decides.
        """
        cached = self._cache.get(name)
        if cached is not None and cached[0] == base:
            self.cacheHits += 1
            return (base, cached[1])

        def got(r):
            version, text = r
            if version is None:
                return (0, _INITIAL)
            version, value = int(version), _decode(text)
            if name in self._seen:
                cached = self._cache.get(name)
                if cached is None or cached[0] < version:
                    self._cache[name] = [version, value]
            return (version, value)

        return self.engine._call(_LOAD, self._keys(name)[:1], []).addCallback(got)

    cacheHits = 0
    """How many commits took the document from this node's cache (for tests and benchmarks)."""

    def since(self, name, version):
        def got(r):
            current = int(r[0])
            if name in self._seen and self._seen[name] is None:
                self._seen[name] = current
            if r[1] == "p":
                return current, [_decode(e) for e in r[2:]], None
            text = r[2] if len(r) > 2 else None
            if text is None:
                return current, None, _INITIAL
            value = _decode(text)
            if name in self._seen:
                cached = self._cache.get(name)
                if cached is None or cached[0] < current:
                    self._cache[name] = [current, copy.deepcopy(value)]  # value goes to a reply; ours is private
            return current, None, value

        arg = "" if version is None else str(version)
        return self.engine._call(_SINCE, self._keys(name), [arg]).addCallback(got)

    def commit(self, name, base, ops, value, text):
        args = [base, text, _encode(ops), self.historySize, self.engine._chPrefix + name]

        def got(r):
            ok, version = int(r[0]) == 1, int(r[1])
            cached = self._cache.get(name)
            if ok and cached is not None and cached[0] == base:
                cached[0], cached[1] = version, value  # the service keeps no reference to value
            return ("ok" if ok else "conflict", version)

        return self.engine._call(_COMMIT, self._keys(name), args).addCallback(got)
