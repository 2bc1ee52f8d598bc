"""
The C{models} service: shared, versioned JSON documents kept in sync
across clients and nodes. For example::

    from prism.services.models import ModelsService

    def authorize(request, action, name):          # action: "read" or "write"
        return action == "read" or request.session.get("user") is not None

    server.service("models", ModelsService(
        authorize=authorize,
        types={"todo": {"schema": {"type": "object"}, "initial": {"items": []}}},
    ))
    server.start()
    snapshot = yield server.api.models.update("todo:shared", lambda doc: doc["items"].append("milk"))

A document has a name (C{todo:shared}: its I{type} is the part before the
first C{:}), a JSON value and a version: 0 before its first change, then
1, 2, 3, … A client subscribes and receives a snapshot with its version;
after that every change arrives as a JSON Patch (RFC 6902) with the new
version, in order. Clients submit a patch against the version they hold:
the server applies it atomically when that version is still the current
one, and otherwise answers with a conflict carrying the current version
(and the changes the client missed), so the client can rebase and retry
(the client libraries' C{update} helper does that).

Storage: C{store="memory"} (one process; documents end with it) or
C{store="redis"}, where the compare-and-set is one Lua script and the
change notifications reach every node through the pubsub engine's Redis
connection (L{prism.pubsub.redis.RedisEngine}); documents then survive
restarts.

JSON Patch is applied by the C{jsonpatch} library; JSON Schema validation
(optional, per document type) by C{fastjsonschema}.

Wire format and conflict rules: C{docs/models.md}.
"""

import copy
import json
import re
from collections import namedtuple

import jsonpatch
import jsonpointer
from twisted.internet.defer import Deferred, fail, maybeDeferred
from twisted.logger import Logger

from prism import patching, wire
from prism.errors import PrismConfigError
from prism.server import PreparedFrame, ServiceError
from prism.services.base import Service, checkAllowed, resolveCallable, then

__all__ = ["ModelsService", "ModelsAPI", "Snapshot", "Conflict", "allowAll", "validName", "STORES"]

STORES = ("memory", "redis")

_NAME = re.compile(r"\A[A-Za-z0-9_\-.:@/=+,]+\Z")
MAX_NAME = 200

_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode

Snapshot = namedtuple("Snapshot", ["version", "value"])
Snapshot.__doc__ = "A document's C{version} (L{int}) and C{value} (a JSON value, a private copy)."

_PATCH_ERRORS = (
    jsonpatch.InvalidJsonPatch,
    jsonpatch.JsonPatchConflict,
    jsonpatch.JsonPatchTestFailed,
    jsonpointer.JsonPointerException,
    KeyError,
    IndexError,
    TypeError,
    ValueError,
)


def validName(name):
    """A document name: 1-200 of C{A-Z a-z 0-9 _ - . : @ / = + ,}."""
    return type(name) is str and 0 < len(name) <= MAX_NAME and _NAME.match(name) is not None


def typeOf(name):
    """@return: a document's type: its name up to the first C{:} (or the whole name)."""
    return name.split(":", 1)[0]


def allowAll(request, action, name):
    """An C{authorize} hook that lets every client read and write every document (demos, tests)."""
    return True


class Conflict(ServiceError):
    """
    A patch was based on an old version (server-side API).

    @ivar version: the document's current version.
    """

    def __init__(self, name, base, version):
        ServiceError.__init__(self, "conflict", "{} is at version {}, not {}".format(name, version, base))
        self.version = version






class _Type:
    """What the service knows about one document type."""

    __slots__ = ("name", "initial", "initialJSON", "validate")

    def __init__(self, name, spec):
        if not isinstance(spec, dict):
            raise PrismConfigError("models: types.{} must be a table".format(name))
        unknown = set(spec) - {"schema", "validate", "initial"}
        if unknown:
            raise PrismConfigError("models: types.{}: unknown keys {}".format(name, ", ".join(sorted(unknown))))
        self.name = name
        self.initial = spec.get("initial", {})
        try:
            self.initialJSON = _encode(self.initial)
        except (TypeError, ValueError) as e:
            raise PrismConfigError("models: types.{}.initial is not JSON: {}".format(name, e)) from None
        checks = []
        if "schema" in spec:
            checks.append(_schemaValidator(name, spec["schema"]))
        if spec.get("validate") is not None:
            checks.append(_callableValidator(resolveCallable(spec["validate"], "types.{}.validate".format(name), "models")))
        self.validate = checks
        for check in checks:
            problem = check(self.initial)
            if problem is not None:
                raise PrismConfigError("models: types.{}.initial is invalid: {}".format(name, problem))


def _schemaValidator(typeName, schema):
    try:
        import fastjsonschema
    except ImportError:
        raise PrismConfigError(
            "models: types.{}.schema needs fastjsonschema (pip install 'prism-realtime[schema]')".format(typeName)
        ) from None
    if isinstance(schema, str):
        try:
            with open(schema, encoding="utf-8") as f:
                schema = json.load(f)
        except (OSError, ValueError) as e:
            raise PrismConfigError("models: types.{}.schema: cannot read {}: {}".format(typeName, schema, e)) from None
    try:
        compiled = fastjsonschema.compile(schema)
    except Exception as e:
        raise PrismConfigError("models: types.{}.schema is not a valid JSON Schema: {}".format(typeName, e)) from None

    def check(value):
        try:
            compiled(value)
        except fastjsonschema.JsonSchemaException as e:
            return e.message
        return None

    return check


def _callableValidator(f):
    def check(value):
        try:
            result = f(value)
        except ValueError as e:
            return str(e) or "rejected by the validator"
        if result is False:
            return "rejected by the validator"
        if isinstance(result, str):
            return result
        return None

    return check


class ModelsService(Service):
    """
    @param store: C{"memory"} (one process) or C{"redis"} (scale-out and
        persistence).
    @param redisUrl: C{redis://host:port[/db]} for the redis store.
    @param redisPrefix: the prefix of the Redis keys and channels (the
        service adds C{models:}).
    @param authorize: C{authorize(request, action, name)} returning a true
        value (or a L{Deferred}/coroutine of one) to allow C{action}
        (C{"read"} or C{"write"}) on the document C{name}; or a dotted name
        of such a function. Without it clients may read every document and
        write none (L{allowAll} allows everything).
    @param types: C{{type: {"schema": JSON Schema (or a file path),
        "validate": callable or dotted name, "initial": value}}}; with
        types, only documents of these types exist. A validator gets the
        document's new value and returns L{None}/C{True} to accept it, or
        C{False}, a message, or raises L{ValueError} to refuse it.
    @param initial: the value of a document before its first change (for
        documents of undeclared types, when C{types} is not set).
    @param historySize: changes kept per document, so that a client that
        missed a few catches up with patches rather than a snapshot.
    @param maxDocumentSize: the largest document, in bytes of JSON.
    @param maxPatchOperations: the most operations in one patch.
    @param maxSubscriptions: documents one connection may subscribe to.
    @param sessions: load the session for every message (for
        C{authorize} hooks that read C{request.session}).
    @param redisRetry: C{(initial, maximum)} reconnection delays to Redis.
    """

    codec = "json"
    callbacks = True
    log = Logger()

    def __init__(
        self,
        store="memory",
        redisUrl="redis://127.0.0.1:6379",
        redisPrefix="prism:",
        authorize=None,
        types=None,
        initial=None,
        historySize=100,
        maxDocumentSize=1024 * 1024,
        maxPatchOperations=1000,
        maxSubscriptions=100,
        sessions=False,
        redisRetry=(0.2, 5.0),
    ):
        if not (isinstance(store, str) and store in STORES) and not hasattr(store, "commit"):
            raise PrismConfigError("models: store must be one of {}".format(", ".join(STORES)))
        for name, value in (
            ("historySize", historySize),
            ("maxDocumentSize", maxDocumentSize),
            ("maxPatchOperations", maxPatchOperations),
            ("maxSubscriptions", maxSubscriptions),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise PrismConfigError("models: {} must be an integer >= 0".format(name))
        if isinstance(redisPrefix, str) and not _NAME.match(redisPrefix):
            raise PrismConfigError("models: redisPrefix may hold only A-Z a-z 0-9 _ - . : @ / = + ,")
        if types is not None and not isinstance(types, dict):
            raise PrismConfigError("models: types must be a table of document types")
        self.storeName = store if isinstance(store, str) else getattr(store, "name", "custom")
        self._storeSpec = store
        self.redisUrl = redisUrl
        self.redisPrefix = redisPrefix
        self.redisRetry = tuple(redisRetry)
        self._authorize = resolveCallable(authorize, "authorize", "models")
        self.types = None if types is None else {name: _Type(name, spec) for name, spec in types.items()}
        self._default = _Type("*", {"initial": {} if initial is None else initial})
        self.historySize = historySize
        self.maxDocumentSize = maxDocumentSize
        self.maxPatchOperations = maxPatchOperations
        self.maxSubscriptions = maxSubscriptions
        self.sessions = bool(sessions)
        self.store = None
        self._subscribers = {}  # name -> {connection id: connection}
        self._subs = {}  # connection id -> {name: True}
        self._head = None
        self.stats = {"commits": 0, "conflicts": 0, "invalid": 0}

    # -- lifecycle

    def start(self, server, serviceId, name):
        Service.start(self, server, serviceId, name)
        self._head = wire.header(serviceId)
        spec = self._storeSpec
        if spec == "memory":
            from prism.models.memory import MemoryModelStore

            self.store = MemoryModelStore(self.historySize)
        elif spec == "redis":
            from prism.models.redis import RedisModelStore  # imports txredisapi: only now

            self.store = RedisModelStore(self.redisUrl, self.redisPrefix + "models:", self.historySize, self.redisRetry)
        else:
            self.store = spec
        self.store.start(self)
        return ModelsAPI(self)

    def stop(self):
        return self.store.stop() if self.store is not None else None

    def disconnected(self, connection):
        subs = self._subs.pop(connection.id, None)
        if subs:
            for name in subs:
                self._remove(connection, name)

    def typeFor(self, name):
        """
        @return: the L{_Type} of document C{name}.
        @raise ServiceError: (C{"invalid"}) for a bad name or undeclared type.
        """
        if not validName(name):
            raise ServiceError("invalid", "bad document name {!r}".format(name))
        if self.types is None:
            return self._default
        t = self.types.get(typeOf(name))
        if t is None:
            raise ServiceError("invalid", "no document type {!r} (document {!r})".format(typeOf(name), name))
        return t

    # -- client commands

    def messageReceived(self, request):
        message = request.payload
        if type(message) is not list or len(message) < 2 or type(message[0]) is not str:
            raise ServiceError("malformed", 'a models command is ["sub"|"unsub"|"get"|"patch", name, …]')
        command, name = message[0], message[1]
        if command == "patch":
            if len(message) != 4:
                raise ServiceError("malformed", '["patch", name, version, operations]')
            base, ops = message[2], message[3]
            if type(base) is not int or base < 0:
                raise ServiceError("malformed", "the version must be an integer >= 0")
            self._checkOps(ops)
            self.typeFor(name)
            return self._authorized(request, "write", name, self._clientPatch, name, base, ops)
        if command == "sub":
            since = message[2] if len(message) > 2 else None
            if since is not None and (type(since) is not int or since < 0):
                raise ServiceError("malformed", "the version must be an integer >= 0")
            self.typeFor(name)
            return self._authorized(request, "read", name, self._subscribe, request.connection, name, since)
        if command == "unsub":
            if not validName(name):
                raise ServiceError("invalid", "bad document name {!r}".format(name))
            conn = request.connection
            subs = self._subs.get(conn.id)
            if subs is not None and subs.pop(name, None) is not None:
                self._remove(conn, name)
            return True
        if command == "get":
            self.typeFor(name)
            return self._authorized(request, "read", name, self._snapshotReply, name)
        raise ServiceError("unknown_command", "no models command {!r}".format(command))

    def _authorized(self, request, action, name, proceed, *args):
        hook = self._authorize
        if hook is None:
            if action == "write":
                raise ServiceError("forbidden", "clients may not write {!r} (the server has no authorize hook)".format(name))
            return proceed(*args)
        return then(hook(request, action, name), checkAllowed, action, name, proceed, args)

    def _checkOps(self, ops):
        if type(ops) is not list:
            raise ServiceError("invalid_patch", "a patch is an array of operations (RFC 6902)")
        if len(ops) > self.maxPatchOperations:
            raise ServiceError("too_large", "at most {} operations per patch".format(self.maxPatchOperations))
        for op in ops:
            if type(op) is not dict or type(op.get("op")) is not str or type(op.get("path")) is not str:
                raise ServiceError("invalid_patch", "each operation is an object with op and path: {}".format(_short(op)))

    def _subscribe(self, conn, name, since):
        if not conn.open:
            return None
        subs = self._subs.get(conn.id)
        if subs is None:
            subs = self._subs[conn.id] = {}
        new = name not in subs
        if new:
            if len(subs) >= self.maxSubscriptions:
                raise ServiceError("limit", "at most {} documents per connection".format(self.maxSubscriptions))
            subs[name] = True
            members = self._subscribers.get(name)
            if members is None:
                members = self._subscribers[name] = {}
            members[conn.id] = conn
        # Every new subscriber waits until the store listens for changes
        # (None at once when it already does), then fetches its catch-up.
        result = then(self.store.listen(name), self._catchUp, name, since)
        if new and isinstance(result, Deferred):
            result.addErrback(self._subscribeFailed, conn, name)
        return result

    def _subscribeFailed(self, failure, conn, name):
        """A new subscription whose catch-up failed (Redis down) is undone: the client was told it failed."""
        subs = self._subs.get(conn.id)
        if subs is not None and subs.pop(name, None) is not None:
            self._remove(conn, name)
        return failure

    def _catchUp(self, _, name, since):
        return then(self.store.since(name, since), self._catchUpReply, name)

    def _catchUpReply(self, result, name):
        version, patches, value = result
        if patches is not None:
            return {"v": version, "patches": patches}
        return {"v": version, "value": self._valueOrInitial(name, value)}

    def _snapshotReply(self, name):
        return then(self.store.since(name, None), self._catchUpReply, name)

    def _valueOrInitial(self, name, value):
        return copy.deepcopy(self.typeFor(name).initial) if value is _INITIAL else value

    def _clientPatch(self, name, base, ops):
        return then(self.commit(name, base, ops), _patchReply)

    def _remove(self, conn, name):
        members = self._subscribers.get(name)
        if members is not None:
            members.pop(conn.id, None)
            if not members:
                del self._subscribers[name]
                self.store.unlisten(name)

    # -- committing a change (clients and the server-side API)

    def commit(self, name, base, ops):
        """
        Apply C{ops} to document C{name} if its version is C{base}.

        @return: (maybe a L{Deferred} of) C{("ok", version)} or
            C{("conflict", version, patches, value)} (see
            L{prism.models.memory.MemoryModelStore.since} for the last two).
        @raise ServiceError: C{invalid_patch}, C{invalid}, C{too_large}.
        """
        t = self.typeFor(name)
        return then(self.store.load(name, base), self._apply, t, name, base, ops)

    def _apply(self, loaded, t, name, base, ops):
        version, value = loaded
        if version != base:
            self.stats["conflicts"] += 1
            return then(self.store.since(name, base), self._conflict, name)
        if value is _INITIAL:
            value = copy.deepcopy(t.initial)
        try:
            new = jsonpatch.JsonPatch(ops).apply(value, in_place=False)
        except _PATCH_ERRORS as e:
            self.stats["invalid"] += 1
            raise ServiceError("invalid_patch", "{}: {}".format(type(e).__name__, e)) from None
        text = _encode(new)
        if len(text) > self.maxDocumentSize:
            self.stats["invalid"] += 1
            raise ServiceError("too_large", "{} would be {} bytes; the limit is {}".format(name, len(text), self.maxDocumentSize))
        for check in t.validate:
            problem = check(new)
            if problem is not None:
                self.stats["invalid"] += 1
                raise ServiceError("invalid", "{} would be invalid: {}".format(name, problem))
        return then(self.store.commit(name, base, ops, new, text), self._committed, name, base)

    def _committed(self, result, name, base):
        if result[0] == "ok":  # else ("conflict", version): another write won the race
            self.stats["commits"] += 1
            return result
        self.stats["conflicts"] += 1
        return then(self.store.since(name, base), self._conflict, name)

    def _conflict(self, result, name):
        version, patches, value = result
        reply = {"conflict": True, "v": version}
        if patches is not None:
            reply["patches"] = patches
        else:
            reply["value"] = self._valueOrInitial(name, value)
        return reply

    # -- delivery (called by the store)

    def _changed(self, name, version, opsJSON):
        """Push a change to this node's subscribers of C{name}: C{["c", name, version, ops]}."""
        members = self._subscribers.get(name)
        if members:
            frame = self._head + '["c",' + _encode(name) + "," + str(version) + "," + opsJSON + "]"
            prepared = PreparedFrame(frame)
            for conn in list(members.values()):
                conn.sendPrepared(prepared)
        if self.server.events.has(self.name + ".change"):
            self.emit("change", name, version, json.loads(opsJSON))

    def _reset(self, name, version, value):
        """Push a snapshot (after this node lost track of changes): C{["s", name, version, value]}."""
        members = self._subscribers.get(name)
        if members:
            value = self._valueOrInitial(name, value)
            prepared = PreparedFrame(self._head + _encode(["s", name, version, value]))
            for conn in list(members.values()):
                conn.sendPrepared(prepared)

    def clientScript(self):
        """@return: C{prism/js/models.js}: live documents, change events, update with retry."""
        from prism.builder import jsSource

        return jsSource("models.js")


_INITIAL = object()
"""A store's stand-in for the value of a document that was never changed."""


def _short(value, limit=80):
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _patchReply(result):
    return {"v": result[1]} if isinstance(result, tuple) else result


class ModelsAPI:
    """
    The server-side API of the C{models} service (C{server.api.models}).
    Every method returns a L{Deferred}; writes go through the same
    compare-and-set, validation and change notifications as clients'.
    """

    def __init__(self, service):
        self._service = service

    @property
    def store(self):
        return self._service.store

    def get(self, name):
        """@return: a L{Deferred} firing with the document's L{Snapshot}."""
        service = self._service

        def got(result):
            version, _, value = result
            value = service._valueOrInitial(name, value)
            return Snapshot(version, copy.deepcopy(value))

        try:
            service.typeFor(name)
        except ServiceError:
            return fail()
        return maybeDeferred(service.store.since, name, None).addCallback(got)

    def patch(self, name, ops, version=None):
        """
        Apply a JSON Patch.

        @param version: the version C{ops} was made against: a conflict
            (L{Conflict}) if the document moved on. L{None}: apply to the
            current version (retried if another write wins the race).
        @return: a L{Deferred} firing with the new version.
        """
        service = self._service
        try:
            service._checkOps(ops)
            service.typeFor(name)
        except ServiceError:
            return fail()
        if version is not None:
            return maybeDeferred(service.commit, name, version, ops).addCallback(_versionOrConflict, name, version)
        return self._retry(name, lambda value: ops, 20)

    def update(self, name, change, retries=20):
        """
        Read the document, call C{change(value)} on a private copy, and
        commit the difference; on a conflict, read again and call
        C{change} again (up to C{retries} times).

        @param change: returns the new value, or L{None} after changing
            the copy in place. It may run several times: keep it free of
            side effects.
        @return: a L{Deferred} firing with the new L{Snapshot}.
        """

        def diff(value):
            work = copy.deepcopy(value)  # value stays as read: the new snapshot is ops applied to it
            after = change(work)
            if after is None:
                after = work
            return patching.diff(value, after)

        return self._retry(name, diff, retries, snapshot=True)

    def set(self, name, value):
        """Replace the whole document. @return: a L{Deferred} firing with the new version."""
        return self.patch(name, [{"op": "replace", "path": "", "value": value}])

    def _retry(self, name, makeOps, retries, snapshot=False):
        service = self._service
        result = Deferred()

        def attempt(left):
            d = self.get(name)

            def got(snap):
                ops = makeOps(snap.value)
                if not ops:
                    return ("same", snap)
                d2 = maybeDeferred(service.commit, name, snap.version, ops)
                return d2.addCallback(lambda r: (r, ops, snap))

            d.addCallback(got)
            d.addCallbacks(done, result.errback, callbackArgs=(left,))

        def done(outcome, left):
            try:
                finish(outcome, left)
            except Exception:
                if not result.called:
                    result.errback()

        def finish(outcome, left):
            if outcome[0] == "same":
                snap = outcome[1]
                result.callback(snap if snapshot else snap.version)
                return
            r, ops, snap = outcome
            if isinstance(r, tuple):  # ("ok", version); a conflict is a reply dict
                if snapshot:
                    new = jsonpatch.JsonPatch(ops).apply(snap.value, in_place=False)
                    result.callback(Snapshot(r[1], new))
                else:
                    result.callback(r[1])
            elif left > 0:
                attempt(left - 1)
            else:
                result.errback(Conflict(name, snap.version, r["v"]))

        attempt(retries)
        return result

    def subscribers(self, name):
        """@return: how many connections of this node subscribe to C{name}."""
        return len(self._service._subscribers.get(name, ()))


def _versionOrConflict(result, name, base):
    if isinstance(result, tuple):
        return result[1]
    raise Conflict(name, base, result["v"])
