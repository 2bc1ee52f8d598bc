"""
The Twisted Python client for Prism, for remote processes and tests.

For example::

    from prism.client import Client

    client = Client("ws://127.0.0.1:3001/")
    await client.connect()                       # hello -> welcome
    total = await client.api.rpc.call("demo.add", 2, 3)
    client.api.echo.on(print)                    # server pushes
    client.api.echo.send("hi")

The client performs the handshake, exposes one object per service of the
server's table on C{client.api}, delivers pushes, and (unless told not to)
reconnects after a lost connection with exponential backoff and jitter,
presenting its session token again so it stays the same session.

Events (C{client.on(event, handler)}): C{open} (welcome), C{close} (code,
reason), C{reconnect} (welcome), C{session} (token, when the server replaced
the session), C{going_away} (reason), C{error} (a L{RemoteError} the server
sent without callback id).
"""

import copy
import random
from collections import namedtuple

import jsonpatch
from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import Logger

from prism import wire
from prism.errors import CallTimeout, ConnectionLost, PrismError, ProtocolError, RemoteError
from prism.events import EventBus
from prism.patching import PATCH_ERRORS as _PATCH_ERRORS
from prism.patching import diff as _diff
from prism.patching import jsonCopy as _jsonCopy

__all__ = [
    "Client",
    "ServiceClient",
    "RPCClient",
    "PubSubClient",
    "ModelsClient",
    "Model",
    "Snapshot",
    "SERVICE_CLIENTS",
]

_DEFAULT = object()


def _defaultReactor():
    from twisted.internet import reactor

    return reactor


class ServiceClient:
    """
    The client half of a service: C{send}, C{request} and push handlers.
    Services with their own client API subclass it.
    """

    def __init__(self, client, name, serviceId, codec, callbacks):
        self.client = client
        self.name = name
        self._handlers = []
        self._update(serviceId, codec, callbacks)

    def _update(self, serviceId, codec, callbacks):
        self.id = serviceId
        self.codec = wire.codec(codec)
        self.callbacks = callbacks
        self._prefix = wire.ALPHABET[serviceId]

    def send(self, value):
        """Send C{value}; no reply is expected."""
        self.client._send(self, value, None)

    def request(self, value, timeout=_DEFAULT):
        """
        Send C{value} as a request.

        @return: a L{Deferred} firing with the reply, or failing with
            L{RemoteError}, L{CallTimeout} or L{ConnectionLost}.
        """
        return self.client._request(self, value, timeout)

    def on(self, handler):
        """Call C{handler(value)} for every push on this service."""
        self._handlers.append(handler)
        return handler

    def off(self, handler):
        if handler in self._handlers:
            self._handlers.remove(handler)

    def _pushReceived(self, value):
        for handler in tuple(self._handlers):
            try:
                handler(value)
            except Exception:
                self.client.log.failure("push handler {handler!r} of {service} failed", handler=handler, service=self.name)


class RPCClient(ServiceClient):
    """The client of the C{rpc} service."""

    def call(self, method, *args, timeout=_DEFAULT):
        """
        Call C{method} on the server.

        @return: a L{Deferred} firing with the result (awaitable in a
            coroutine), or failing with L{RemoteError}.
        """
        return self.client._request(self, [method, *args], timeout)

    def notify(self, method, *args):
        """Call C{method} without waiting for (or getting) a result."""
        self.client._send(self, [method, *args], None)


class _Subscription:
    __slots__ = ("name", "handlers", "events", "offset", "epoch", "buffer")

    def __init__(self, name):
        self.name = name
        self.handlers = []
        self.events = []
        self.offset = 0
        self.epoch = None
        self.buffer = None  # pushes held while a subscribe (recovery) is in flight


class PubSubClient(ServiceClient):
    """
    The client of the C{pubsub} service (C{docs/pubsub.md})::

        def got(data, channel):
            print(channel, data)

        await client.api.pubsub.subscribe("room.1", got)        # or a pattern: "room.*"
        await client.api.pubsub.publish("room.1", {"text": "hi"})
        members = await client.api.pubsub.presence("room.1")

    After a reconnection every subscription is made again; for channels with
    history the client presents its last offset and epoch and receives the
    publications it missed, in order, before new ones (duplicates are
    dropped by offset). When recovery is impossible the client emits
    C{unrecovered} (with the channel) on the L{Client}'s events: resync
    the channel's state then.
    """

    def __init__(self, client, name, serviceId, codec, callbacks):
        ServiceClient.__init__(self, client, name, serviceId, codec, callbacks)
        self.subscriptions = {}
        self._direct = []
        client.on("reconnect", self._reconnected)

    def subscribe(self, channel, handler, events=None):
        """
        Subscribe to a channel or pattern.

        @param handler: called with C{(data, channel)} for every publication.
        @param events: called with C{(kind, info)} (C{"join"}/C{"leave"})
            when presence is on.
        @return: a L{Deferred} firing with the server's reply (C{offset} and
            C{epoch} for channels with history).
        """
        sub = self.subscriptions.get(channel)
        if sub is None:
            sub = self.subscriptions[channel] = _Subscription(channel)
        sub.handlers.append(handler)
        if events is not None:
            sub.events.append(events)
        return self._subscribe(sub, recover=False)

    def _subscribe(self, sub, recover):
        options = {}
        if sub.events:
            options["events"] = True
        if recover and sub.epoch is not None:
            options["recover"] = {"offset": sub.offset, "epoch": sub.epoch}
        if sub.buffer is None:
            sub.buffer = []
        d = self.client._request(self, ["sub", sub.name, options], _DEFAULT)

        def failed(f):
            sub.buffer = None
            return f

        return d.addCallbacks(self._subscribed, failed, (sub,))

    def _subscribed(self, reply, sub):
        buffered, sub.buffer = sub.buffer or [], None
        if not isinstance(reply, dict):
            return reply
        fresh = False
        if "publications" in reply and reply.get("recovered"):
            for offset, data in reply["publications"]:
                self._deliver(sub, data, sub.name, offset, reply.get("epoch"))
        elif "epoch" in reply:
            if "publications" in reply:
                self.client._emit("unrecovered", sub.name)
            sub.epoch, sub.offset, fresh = reply["epoch"], reply.get("offset", 0), True
        for data, channel, offset, epoch in buffered:
            self._deliver(sub, data, channel, offset, epoch, fresh)
        return reply

    def _reconnected(self, welcome):
        for sub in list(self.subscriptions.values()):
            self._subscribe(sub, recover=True).addErrback(
                lambda f, name=sub.name: self.client.log.warn(
                    "cannot resubscribe to {channel}: {why}", channel=name, why=f.getErrorMessage()
                )
            )

    def unsubscribe(self, channel, handler=None):
        """Remove C{handler} (or every handler); the last one unsubscribes. @return: a L{Deferred}."""
        sub = self.subscriptions.get(channel)
        if sub is None:
            return succeed(None)
        if handler is not None and handler in sub.handlers:
            sub.handlers.remove(handler)
        if handler is not None and sub.handlers:
            return succeed(None)
        del self.subscriptions[channel]
        if not self.client.connected:
            return succeed(None)
        return self.client._request(self, ["unsub", channel], _DEFAULT)

    def publish(self, channel, data, exclude=None):
        """
        Publish (where the server's C{authorize} hook allows it).

        @param exclude: do not deliver it back to this connection (L{None}:
            the server's default).
        @return: a L{Deferred} firing with C{{"offset", "epoch"}} or C{{}}.
        """
        options = {} if exclude is None else {"exclude": bool(exclude)}
        return self.client._request(self, ["pub", channel, data, options], _DEFAULT)

    def presence(self, channel):
        """@return: a L{Deferred} firing with the list of the channel's members' infos."""
        return self.client._request(self, ["presence", channel], _DEFAULT)

    def onMessage(self, handler):
        """Call C{handler(data, channel)} for messages on channels this client did not subscribe to
        (C{publishTo}, C{publishToSession}, C{broadcast})."""
        self._direct.append(handler)
        return handler

    def _deliver(self, sub, data, channel, offset, epoch, force=False):
        if offset is not None:
            if not force and epoch == sub.epoch and offset <= sub.offset:
                return  # already delivered (recovery overlap)
            if epoch == sub.epoch:
                sub.offset = max(sub.offset, offset)
            else:
                sub.epoch, sub.offset = epoch, offset
        for handler in tuple(sub.handlers):
            try:
                handler(data, channel)
            except Exception:
                self.client.log.failure("pubsub handler {handler!r} for {channel} failed", handler=handler, channel=channel)

    def _pushReceived(self, value):
        ServiceClient._pushReceived(self, value)
        if type(value) is not list or len(value) < 3:
            return
        kind = value[0]
        if kind == "join" or kind == "leave":
            sub = self.subscriptions.get(value[1])
            for handler in tuple(sub.events) if sub is not None else ():
                try:
                    handler(kind, value[2])
                except Exception:
                    self.client.log.failure("pubsub events handler failed")
            return
        if kind == "p":
            name, rest = value[1], value[2:]
        elif kind == "m":
            name, rest = value[1], value[1:]
        else:
            return
        channel, data = rest[0], rest[1]
        offset, epoch = (rest[2], rest[3]) if len(rest) >= 4 else (None, None)
        sub = self.subscriptions.get(name)
        if sub is None:
            for handler in tuple(self._direct):
                try:
                    handler(data, channel)
                except Exception:
                    self.client.log.failure("pubsub message handler failed")
        elif sub.buffer is not None:
            sub.buffer.append((data, channel, offset, epoch))
        else:
            self._deliver(sub, data, channel, offset, epoch)


Snapshot = namedtuple("Snapshot", ["version", "value"])
Snapshot.__doc__ = "A document's C{version} (L{int}) and C{value} (a JSON value) (models client)."

class Model:
    """
    A document open on a L{ModelsClient}: a local copy of the server's
    document, always equal to its value at some version, kept up to date.

    @ivar name: the document's name.
    @ivar value: its value at L{version}. Do not change it in place (the
        client replaces it, never changes it, so a value you hold stays as
        it was): change the document with L{update} or L{patch}.
    @ivar version: the version of L{value} (0 before the first change).
    """

    def __init__(self, models, name):
        self.name = name
        self.value = None
        self.version = 0
        self._models = models
        self._handlers = []
        self._opens = 1
        self._waiters = []  # open() calls waiting for the first snapshot; None once open
        self._buffer = None  # pushes held while a subscribe is in flight

    def __repr__(self):
        return "<Model {} at version {}>".format(self.name, self.version)

    def onChange(self, handler):
        """
        Call C{handler(value, ops, version)} after every change of the
        local copy: C{ops} is the JSON Patch applied, or L{None} when the
        copy was replaced by a snapshot. @return: C{handler}.
        """
        self._handlers.append(handler)
        return handler

    def offChange(self, handler):
        if handler in self._handlers:
            self._handlers.remove(handler)

    def patch(self, ops):
        """
        Submit a JSON Patch against L{version}.

        @return: a L{Deferred} firing with the new version (the local copy
            has it by then), or failing with L{RemoteError}: kind
            C{"conflict"} (with C{.version}, the server's version; the
            local copy has caught up with it) when the document had moved
            on, or C{invalid_patch}, C{invalid}, C{too_large},
            C{forbidden}, …
        """
        try:
            ops = _jsonCopy(ops)
        except (TypeError, ValueError):
            return fail()
        return self._models._write(self, self.version, ops)

    def update(self, change, retries=20):
        """
        Change the document: C{change} gets a private copy of the value and
        changes it in place (returning L{None}) or returns a new value; the
        difference (C{jsonpatch.make_patch}) is submitted against the
        version the copy was made from. On a conflict the local copy
        catches up and C{change} runs again on the new value, up to
        C{retries} more times: it should only compute the new value.

        @return: a L{Deferred} firing with a L{Snapshot}: the version the
            change made and the document's value at that version (the
            current version and value when C{change} changed nothing, in
            which case nothing is sent); or failing with L{RemoteError}
            (C{"conflict"} once the retries are used up), or with what
            C{change} raised.
        """
        result = Deferred()

        def attempt(left):
            before, base = self.value, self.version
            try:
                draft = copy.deepcopy(before)
                after = change(draft)
                ops = _diff(before, _jsonCopy(draft if after is None else after))
            except Exception:
                result.errback()
                return
            if not ops:
                result.callback(Snapshot(base, before))
                return
            d = self._models._write(self, base, ops)
            d.addCallbacks(done, failed, (before, ops), None, (left,))

        def done(version, before, ops):
            if self.version == version:
                value = self.value
            else:  # the copy moved on already (or is behind): the value this change made
                value = jsonpatch.JsonPatch(ops).apply(before, in_place=False)
            result.callback(Snapshot(version, value))

        def failed(f, left):
            if left > 0 and f.check(RemoteError) and f.value.kind == "conflict":
                attempt(left - 1)
            else:
                result.errback(f)

        attempt(retries)
        return result

    def close(self):
        """
        Close this L{ModelsClient.open} of the document; the last close
        unsubscribes (the copy then stops following the server).

        @return: a L{Deferred} firing with L{None}.
        """
        models = self._models
        if models.models.get(self.name) is not self:
            return succeed(None)
        self._opens -= 1
        if self._opens > 0:
            return succeed(None)
        del models.models[self.name]
        if not models.client.connected:
            return succeed(None)
        return models.client._request(models, ["unsub", self.name], _DEFAULT).addCallback(lambda _: None)

    # -- keeping the copy up to date

    def _emit(self, ops):
        for handler in tuple(self._handlers):
            try:
                handler(self.value, ops, self.version)
            except Exception:
                self._models.client.log.failure(
                    "change handler {handler!r} of {name} failed", handler=handler, name=self.name
                )

    def _reset(self, version, value):
        self.value, self.version = value, version
        self._emit(None)

    def _change(self, version, ops):
        """Apply the change that made C{version}: now if it is the next one; resubscribe after a gap."""
        if version == self.version + 1:
            try:
                value = jsonpatch.JsonPatch(ops).apply(self.value, in_place=False)
            except _PATCH_ERRORS as e:  # our copy does not take it: start again from a snapshot
                self._models.client.log.warn(
                    "models: change {version} of {name} does not apply ({why}); resubscribing",
                    version=version, name=self.name, why=e,
                )
                self._models._resubscribe(self, None)
                return
            self.value, self.version = value, version
            self._emit(ops)
        elif version > self.version:
            self._models._resubscribe(self, self.version)

    def _catchUp(self, reply):
        """Apply a subscribe (or conflict) reply: the patches since our version, or a snapshot."""
        patches = reply.get("patches")
        if patches is not None:
            for version, ops in patches:
                self._change(version, ops)
        else:
            self._reset(reply["v"], reply.get("value"))


class ModelsClient(ServiceClient):
    """
    The client of the C{models} service (C{docs/models.md})::

        todo = await client.api.models.open("todo:shared")    # a Model
        todo.onChange(lambda value, ops, version: print(version, value))
        snap = await todo.update(lambda doc: doc["items"].append("milk"))
        version = await todo.patch([{"op": "add", "path": "/items/-", "value": "eggs"}])
        snap = await client.api.models.get("todo:other")       # Snapshot(version, value)
        await todo.close()

    Each open document keeps a local copy: a change is applied when it is
    the next version, older ones are ignored, and after a gap (or a change
    that does not apply) the document is subscribed again with the version
    it holds; pushes that arrive meanwhile are held and replayed. After a
    reconnection every open document is subscribed again with its version,
    and receives the changes it missed (or a snapshot).

    @ivar models: the open documents, C{{name: L{Model}}}.
    """

    def __init__(self, client, name, serviceId, codec, callbacks):
        ServiceClient.__init__(self, client, name, serviceId, codec, callbacks)
        self.models = {}
        client.on("reconnect", self._reconnected)

    def open(self, name):
        """
        Open (subscribe to) a document. Opening a document that is open
        already gives the same L{Model}; it stays open until every open is
        closed.

        @return: a L{Deferred} firing with the L{Model} once its snapshot
            arrived, or failing with L{RemoteError} (C{invalid},
            C{forbidden}, C{limit}, …) or L{ConnectionLost}.
        """
        model = self.models.get(name)
        if model is not None:
            model._opens += 1
            if model._waiters is None:
                return succeed(model)
            d = Deferred()
            model._waiters.append(d)
            return d
        model = self.models[name] = Model(self, name)

        def opened(_):
            waiters, model._waiters = model._waiters, None
            for d in waiters:
                d.callback(model)
            return model

        def failed(f):
            if self.models.get(name) is model:
                del self.models[name]
            waiters, model._waiters = model._waiters, []
            for d in waiters:
                d.errback(f)
            return f

        return self._subscribe(model, None).addCallbacks(opened, failed)

    def get(self, name):
        """@return: a L{Deferred} firing with the document's L{Snapshot}, without subscribing."""
        d = self.client._request(self, ["get", name], _DEFAULT)
        return d.addCallback(lambda reply: Snapshot(reply["v"], reply["value"]))

    def _subscribe(self, model, since):
        if model._buffer is None:
            model._buffer = []
        command = ["sub", model.name] if since is None else ["sub", model.name, since]
        d = self.client._request(self, command, _DEFAULT)

        def subscribed(reply):
            buffered, model._buffer = model._buffer or [], None
            if not isinstance(reply, dict) or type(reply.get("v")) is not int:
                raise ProtocolError("models", "unexpected reply to sub: {!r}".format(reply))
            model._catchUp(reply)
            for push in buffered:
                if push[2] > reply["v"]:
                    self._push(model, push)
            return reply

        def failed(f):
            model._buffer = None
            return f

        return d.addCallbacks(subscribed, failed)

    def _resubscribe(self, model, since):
        self._subscribe(model, since).addErrback(
            lambda f: self.client.log.warn(
                "models: cannot resubscribe to {name}: {why}", name=model.name, why=f.getErrorMessage()
            )
        )

    def _reconnected(self, welcome):
        for model in list(self.models.values()):
            if model._waiters is None:
                self._resubscribe(model, model.version)

    def _write(self, model, base, ops):
        d = self.client._request(self, ["patch", model.name, base, ops], _DEFAULT)

        def replied(reply):
            if not reply.get("conflict"):
                model._change(reply["v"], ops)  # ours: now, unless the push came first
                return reply["v"]
            if reply["v"] > model.version:
                model._catchUp(reply)
            error = RemoteError("conflict", "{} is at version {}, not {}".format(model.name, reply["v"], base))
            error.version = reply["v"]
            raise error

        return d.addCallback(replied)

    def _push(self, model, value):
        if model._buffer is not None:
            model._buffer.append(value)
        elif value[0] == "c":
            model._change(value[2], value[3])
        elif value[0] == "s":  # the server's current state, even when its version went back
            model._reset(value[2], value[3])

    def _pushReceived(self, value):
        ServiceClient._pushReceived(self, value)
        if type(value) is not list or len(value) != 4 or value[0] not in ("c", "s") or type(value[2]) is not int:
            return
        model = self.models.get(value[1])
        if model is not None:
            self._push(model, value)


SERVICE_CLIENTS = {"rpc": RPCClient, "pubsub": PubSubClient, "models": ModelsClient}
"""Client classes by service name; others get a L{ServiceClient}."""


class _API:
    def __repr__(self):
        return "<prism client API: {}>".format(", ".join(sorted(vars(self))))


class _WebSocketConnector:
    """Opens WebSocket links with Autobahn (imported on first use)."""

    def __init__(self, url, reactor, headers, origin):
        self.url = url
        self.reactor = reactor
        self.headers = headers
        self.origin = origin

    def __call__(self):
        from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
        from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
        from twisted.internet.ssl import optionsForClientTLS

        opened = Deferred()

        class Protocol(WebSocketClientProtocol):
            link = None

            def connectionMade(self):
                WebSocketClientProtocol.connectionMade(self)
                # As on the server (prism.transports.websocket): Autobahn's
                # own attempt fails silently, and Nagle would hold a frame
                # behind the previous one's delayed ACK (~40 ms).
                try:
                    self.transport.setTcpNoDelay(True)
                except (AttributeError, OSError):
                    pass

            def onOpen(self):
                self.link = _WebSocketLink(self)
                opened.callback(self.link)

            def onMessage(self, payload, isBinary):
                if not isBinary:
                    payload = payload.decode("utf-8")
                if self.link.onFrame is not None:
                    self.link.onFrame(payload, isBinary)

            def onClose(self, wasClean, code, reason):
                if self.link is None:
                    if not opened.called:
                        opened.errback(ConnectionLost("WebSocket handshake failed: {} {}".format(code, reason)))
                    return
                if self.link.onClose is not None:
                    self.link.onClose(code, reason)

        factory = WebSocketClientFactory(self.url, reactor=self.reactor, headers=self.headers, origin=self.origin)
        factory.protocol = Protocol
        factory.setProtocolOptions(autoPingInterval=0, openHandshakeTimeout=10)
        endpoint = HostnameEndpoint(self.reactor, factory.host, factory.port)
        if factory.isSecure:
            endpoint = wrapClientTLS(optionsForClientTLS(factory.host), endpoint)
        d = endpoint.connect(factory)
        d.addCallback(lambda _: opened)
        return d


class _WebSocketLink:
    def __init__(self, protocol):
        self._protocol = protocol
        self.onFrame = None
        self.onClose = None

    def send(self, frame, isBinary=False):
        if isBinary:
            self._protocol.sendMessage(frame, True)
        else:
            self._protocol.sendMessage(frame.encode("utf-8"), False)

    def close(self, code=1000, reason=""):
        from prism.transports.websocket import closeProtocol

        closeProtocol(self._protocol, code, reason)


class _EngineIOConnector:
    """
    Opens Engine.IO links with python-engineio's (threaded) client: it
    connects, sends and disconnects in the reactor's thread pool, and its
    events are handed back to the reactor thread.
    """

    def __init__(self, url, reactor, headers, transports):
        from urllib.parse import urlsplit, urlunsplit

        parts = urlsplit(url)
        scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
        self.url = urlunsplit((scheme, parts.netloc, "", "", ""))
        self.path = parts.path.strip("/") or "engine.io"
        self.reactor = reactor
        self.headers = dict(headers or {})
        self.transports = list(transports) if transports else None

    def __call__(self):
        try:
            import engineio
        except ImportError:  # pragma: no cover
            raise PrismError("the engineio transport needs python-engineio: pip install prism-realtime[engineio]")
        from twisted.internet.threads import deferToThreadPool

        reactor = self.reactor
        client = _orderedEngineIOClient(engineio)()
        link = _EngineIOLink(client, reactor)
        client.on("message", lambda data: reactor.callFromThread(link._frame, data))
        client.on("disconnect", lambda *args: reactor.callFromThread(link._lost))

        def connect():
            client.connect(self.url, headers=self.headers, transports=self.transports, engineio_path=self.path)

        d = deferToThreadPool(reactor, reactor.getThreadPool(), connect)

        def failed(f):
            raise ConnectionLost("Engine.IO connection failed: {}".format(f.getErrorMessage()))

        return d.addCallbacks(lambda _: link, failed)


def _orderedEngineIOClient(engineio):
    """
    python-engineio's client runs every message handler in a new thread
    (C{_trigger_event(..., run_async=True)}), so messages can reach us out of
    order. Deliver them from its reading thread, in order, instead: our
    handler only hands them to the reactor (C{callFromThread} keeps order).
    """

    class OrderedClient(engineio.Client):
        def _receive_packet(self, pkt):
            if pkt.packet_type == engineio.packet.MESSAGE:
                handler = self.handlers.get("message")
                if handler is not None:
                    handler(pkt.data)
                return None
            return engineio.Client._receive_packet(self, pkt)

    return OrderedClient


class _EngineIOLink:
    def __init__(self, client, reactor):
        self._client = client
        self._reactor = reactor
        self._code = None
        self.onFrame = None
        self.onClose = None

    def _frame(self, data):
        if self.onFrame is not None:
            self.onFrame(data, isinstance(data, bytes))

    def _lost(self):
        onClose, self.onClose = self.onClose, None
        if onClose is not None:
            code = self._code or 1006
            onClose(code, "client closed" if self._code else "connection lost")

    def send(self, frame, isBinary=False):
        self._client.send(frame)  # queued for the client's writer thread

    def close(self, code=1000, reason=""):
        if self._code is None:
            self._code = code
            self._reactor.callInThread(self._client.disconnect)


class Client:
    """
    @param url: a C{ws://} or C{wss://} URL of a Prism server.
    @param connector: instead of C{url}, a callable returning a L{Deferred}
        that fires with a link (C{send(frame, isBinary)}, C{close(code,
        reason)}, settable C{onFrame} and C{onClose}); the loopback transport's
        C{connect} gives one (see L{prism.testing}).
    @param session: a session token to present in the hello.
    @param timeout: default seconds to wait for a reply (L{None}: forever).
    @param reconnect: reconnect automatically after a lost connection.
    @param initialDelay: first reconnection delay, in seconds.
    @param maxDelay: the cap of the exponential backoff.
    @param factor: the backoff multiplier.
    @param jitter: relative randomisation of each delay (0.5: ±50%).
    @param services: extra C{{name: ServiceClient subclass}}.
    @param headers: extra HTTP headers for the WebSocket handshake (a
        C{Cookie} header carries a browser-style session cookie).
    @param transport: C{"websocket"} (the default), or C{"engineio"}: the
        C{url} is then an C{http(s)://} URL of an Engine.IO mount
        (C{http://host:port/engine.io/}), reached with python-engineio's
        client (the C{engineio} extra).
    @param engineioTransports: with C{"engineio"}, the Engine.IO transports
        to use (C{["polling"]}, C{["websocket"]}; both by default).
    """

    log = Logger()

    def __init__(
        self,
        url=None,
        connector=None,
        session=None,
        timeout=10.0,
        reconnect=True,
        initialDelay=0.5,
        maxDelay=30.0,
        factor=2.0,
        jitter=0.5,
        services=None,
        headers=None,
        origin=None,
        reactor=None,
        transport="websocket",
        engineioTransports=None,
    ):
        if (url is None) == (connector is None):
            raise PrismError("give a url or a connector, not both or neither")
        if transport not in ("websocket", "engineio"):
            raise PrismError('transport must be "websocket" or "engineio"')
        self._reactor = reactor
        if connector is None and transport == "engineio":
            connector = _EngineIOConnector(url, None, headers, engineioTransports)
        elif connector is None:
            connector = _WebSocketConnector(url, None, headers, origin)
        self._connector = connector
        self.url = url
        self.session = session
        self.timeout = timeout
        self.reconnect = reconnect
        self.initialDelay = initialDelay
        self.maxDelay = maxDelay
        self.factor = factor
        self.jitter = jitter
        self.api = _API()
        self.welcome = None
        self.connected = False
        self._serviceClients = dict(SERVICE_CLIENTS, **(services or {}))
        self._byId = {}
        self._events = EventBus()
        self._emit = self._events.emit
        self._pending = {}
        self._nextCallback = 0
        self._link = None
        self._closing = False
        self._attempt = 0
        self._retry = None
        self._random = random.Random()

    @property
    def reactor(self):
        if self._reactor is None:
            self._reactor = _defaultReactor()
        return self._reactor

    # -- events

    def on(self, event, handler):
        """Call C{handler(*args)} on a client event; returns C{handler}."""
        return self._events.on(event, handler)

    def off(self, event, handler):
        self._events.off(event, handler)

    # -- connecting

    def connect(self):
        """
        Connect and perform the handshake.

        @return: a L{Deferred} firing with the welcome (C{v}, C{session},
            C{services}).
        """
        self._closing = False
        if isinstance(self._connector, (_WebSocketConnector, _EngineIOConnector)):
            self._connector.reactor = self.reactor
        return self._open()

    def _open(self):
        d = self._connector()
        d.addCallback(self._linked)
        return d

    def _linked(self, link):
        if self._closing:  # close() was called while connecting
            link.close(1000, "")
            raise ConnectionLost("the client was closed while connecting")
        self._link = link
        link.onFrame = self._frameReceived
        link.onClose = self._closed
        hello = {"v": 1}
        if self.session:
            hello["session"] = self.session
        d = self._request(None, ["hello", hello], self.timeout, _system=True, _force=True)
        d.addCallback(self._welcomed)
        return d

    def _welcomed(self, welcome):
        self.welcome = welcome
        self.session = welcome.get("session")
        seen = set()
        for name, serviceId, codec, callbacks in welcome.get("services", []):
            seen.add(name)
            existing = getattr(self.api, name, None)
            if isinstance(existing, ServiceClient):
                existing._update(serviceId, codec, callbacks)
            else:
                cls = self._serviceClients.get(name, ServiceClient)
                existing = cls(self, name, serviceId, codec, callbacks)
                setattr(self.api, name, existing)
        for name in list(vars(self.api)):
            if name not in seen:
                delattr(self.api, name)
        self._byId = {s.id: s for s in vars(self.api).values()}
        self.connected = True
        reconnected = self._attempt > 0
        self._attempt = 0
        self._emit("reconnect" if reconnected else "open", welcome)
        return welcome

    def close(self, code=1000, reason=""):
        """Close the connection and stop reconnecting."""
        self._closing = True
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None
        if self._link is not None:
            self._link.close(code, reason)

    def _closed(self, code, reason):
        wasConnected = self.connected
        self._link = None
        self.connected = False
        pending, self._pending = self._pending, {}
        for d, timer, codec in pending.values():
            if timer is not None and timer.active():
                timer.cancel()
            d.errback(ConnectionLost("connection closed ({}) before the reply".format(code)))
        self._emit("close", code, reason)
        # Only a connection that completed its handshake starts reconnecting:
        # one lost before its welcome fails its connect() or _reconnect()
        # Deferred, whose errback decides (and must be the only one to
        # schedule the next attempt).
        if wasConnected and self.reconnect and not self._closing:
            self._scheduleReconnect()

    def nextDelay(self):
        """
        @return: the delay before the next reconnection attempt: C{initialDelay
            * factor ** attempt}, capped at C{maxDelay}, then randomised by
            up to C{±jitter} of itself. C{attempt} counts the attempts since
            the last successful handshake.
        """
        try:
            delay = min(self.maxDelay, self.initialDelay * (self.factor ** self._attempt))
        except OverflowError:  # after about a thousand failed attempts
            delay = self.maxDelay
        delay *= 1 + self._random.uniform(-self.jitter, self.jitter)
        return max(delay, 0)

    def _scheduleReconnect(self):
        delay = self.nextDelay()
        self._attempt += 1
        self._retry = self.reactor.callLater(delay, self._reconnect)

    def _reconnect(self):
        self._retry = None
        if self._closing:
            return

        def failed(f):
            self.log.info("reconnection failed: {why}", why=f.getErrorMessage())
            if self._link is not None:
                self._link.onClose = None
                self._link.close(1000, "")
                self._link = None
            if not self._closing:
                self._scheduleReconnect()

        self._open().addErrback(failed)

    # -- sending

    def _callbackId(self):
        cb = self._nextCallback + 1
        if cb > wire.MAX_CALLBACK_ID:
            cb = 1
        while cb in self._pending:
            cb += 1
        self._nextCallback = cb
        return cb

    def _send(self, service, value, cb):
        if self._link is None or not self.connected:
            raise ConnectionLost("not connected")
        payload, isBinary = service.codec.encode(value)
        head = service._prefix + ("|" if cb is None else str(cb) + "|")
        if isBinary:
            self._link.send(head.encode("ascii") + payload, True)
        else:
            self._link.send(head + payload, False)

    def _request(self, service, value, timeout, _system=False, _force=False):
        if self._link is None or not (self.connected or _force):
            return fail(ConnectionLost("not connected"))
        cb = self._callbackId()
        d = Deferred()
        if timeout is _DEFAULT:
            timeout = self.timeout
        timer = None
        if timeout is not None:
            timer = self.reactor.callLater(timeout, self._timedOut, cb, timeout)
        codec = wire.JSONCodec if _system else service.codec
        self._pending[cb] = (d, timer, codec)
        try:
            if _system:
                self._link.send("0" + str(cb) + "|" + wire.JSONCodec.encode(value)[0], False)
            else:
                self._send(service, value, cb)
        except Exception:
            self._pending.pop(cb, None)
            if timer is not None:
                timer.cancel()
            return fail()
        return d

    def _timedOut(self, cb, timeout):
        pending = self._pending.pop(cb, None)
        if pending is not None:
            pending[0].errback(CallTimeout("no reply within {} seconds".format(timeout)))

    # -- receiving

    def _frameReceived(self, frame, isBinary):
        try:
            sid, cb, isError, payload = wire.parse(frame)
        except ProtocolError as e:
            self.log.warn("ignored a malformed frame from the server: {why}", why=e.message)
            return
        if cb is not None:
            pending = self._pending.pop(cb, None)
            if pending is None:
                return  # a reply after its timeout
            d, timer, codec = pending
            if timer is not None and timer.active():
                timer.cancel()
            if isError:
                kind, message, tb = wire.decodeError(payload)
                d.errback(RemoteError(kind, message, tb))
                return
            try:
                value = codec.decode(payload)
            except Exception as e:
                d.errback(ProtocolError("decode", "cannot decode the reply: {}".format(e)))
                return
            d.callback(value)
            return
        if isError:
            kind, message, tb = wire.decodeError(payload)
            self._emit("error", RemoteError(kind, message, tb))
            return
        if sid == 0:
            return self._systemPush(payload)
        service = self._byId.get(sid)
        if service is None:
            return
        try:
            value = service.codec.decode(payload)
        except Exception as e:
            self.log.warn("cannot decode a push on {service}: {why}", service=service.name, why=e)
            return
        service._pushReceived(value)

    def _systemPush(self, payload):
        try:
            message = wire.JSONCodec.decode(payload)
            command = message[0]
        except Exception:
            return
        if command == "session" and len(message) > 1:
            self.session = message[1]
            self._emit("session", self.session)
        elif command == "going_away":
            self._emit("going_away", message[1] if len(message) > 1 else "")


def connectLoopback(transport, server, **options):
    """
    @return: an unconnected L{Client} whose connector opens loopback
        connections to C{server} (pass C{reactor=} to drive its timers).
    """
    return Client(connector=lambda: succeed(transport.connect(server)), **options)
