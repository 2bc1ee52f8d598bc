"""
Prometheus metrics for a Prism server. For example::

    from prism.metrics import MetricsResource

    metrics = server.enableMetrics()                  # start counting
    root.putChild(b"metrics", MetricsResource(server))  # GET /metrics: Prometheus text format
    metrics.snapshot()                                # the same figures as a plain dict

Every metric is listed in C{docs/metrics.md}.

Counting costs almost nothing: the per-message path adds to plain Python
integers on each service's entry in the kernel (no lock, no
C{prometheus_client} call, no allocation, no L{Deferred}), and
C{prometheus_client} only runs at scrape time, through a custom collector
(L{PrismCollector}) that turns those integers into metric families. While
metrics are off (C{server.metrics is None}, the default) the kernel pays one
attribute check per message received and per message sent.

Each server has its own C{CollectorRegistry} (L{Metrics.registry}), so
several servers in one process (tests, embedding) never clash; the global
C{prometheus_client.REGISTRY} is not touched.

Counters are read and written on the reactor thread only: scrape through
L{MetricsResource} (or call C{generate_latest(metrics.registry)} from the
reactor thread), never from another thread.

C{prometheus_client} is imported only when a registry is built (the first
scrape), never by C{enableMetrics()} or L{Metrics.snapshot}.
"""

from bisect import bisect_left

from twisted.python.failure import Failure
from twisted.web.resource import Resource

from prism.errors import NoSuchSession, ProtocolError, SessionStoreUnavailable
from prism.server import ServiceError, _serviceIdOf

__all__ = [
    "Metrics",
    "MetricsResource",
    "PrismCollector",
    "Histogram",
    "StoreStats",
    "RPC_BUCKETS",
    "STORE_BUCKETS",
    "middlewareName",
]

RPC_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Upper bounds (seconds) of the C{prism_rpc_duration_seconds} buckets."""

STORE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
"""Upper bounds (seconds) of the C{prism_session_store_duration_seconds} buckets."""

SLOW_CONSUMER = 4008
"""The close code every transport uses for a slow consumer."""


class Histogram:
    """
    A Prometheus-style histogram kept as plain numbers: one count per
    bucket (not cumulative; L{cumulative} adds them up at scrape time) and
    the sum of the observed values. C{observe} is a bisect and two
    additions.

    @ivar bounds: the buckets' upper bounds, ascending (C{+Inf} implied).
    @ivar counts: observations per bucket; the last is above every bound.
    @ivar sum: the sum of every observed value.
    """

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds):
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0

    def observe(self, value):
        if value < 0.0:  # reactor.seconds() is wall-clock time; never report a negative duration
            value = 0.0
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    @property
    def count(self):
        return sum(self.counts)

    def cumulative(self):
        """@return: C{[(le, cumulative count), …]} ending with C{("+Inf", count)}, for Prometheus."""
        out = []
        total = 0
        for bound, n in zip(self.bounds, self.counts):
            total += n
            out.append((_floatLabel(bound), total))
        total += self.counts[-1]
        out.append(("+Inf", total))
        return out

    def snapshot(self):
        return {"count": self.count, "sum": self.sum}


def _floatLabel(value):
    from prometheus_client.utils import floatToGoString

    return floatToGoString(value)


class StoreStats:
    """
    Latency and errors of a session store's operations, kept by the store
    itself (L{prism.stores.redis.RedisSessionStore.enableStats}).

    @ivar operations: C{{operation: histogram}} (L{Histogram}s of
        C{load}, C{save}, C{touch}, C{delete}).
    @ivar errors: C{{(operation, kind): count}}; C{kind} is C{unavailable}
        (the store cannot be reached, or did not answer in time) or
        C{error} (anything else). A missing session (L{NoSuchSession}) is an
        answer, not an error.
    """

    def __init__(self, buckets=STORE_BUCKETS):
        self.buckets = tuple(buckets)
        self.operations = {}
        self.errors = {}

    def track(self, operation, d, seconds):
        """
        Time the L{Deferred} C{d} of one C{operation}.

        @param seconds: the clock (C{reactor.seconds}).
        @return: C{d}.
        """
        return d.addBoth(self._done, operation, seconds(), seconds)

    def _done(self, result, operation, start, seconds):
        histogram = self.operations.get(operation)
        if histogram is None:
            histogram = self.operations[operation] = Histogram(self.buckets)
        histogram.observe(seconds() - start)
        if isinstance(result, Failure) and not result.check(NoSuchSession):
            key = (operation, "unavailable" if result.check(SessionStoreUnavailable) else "error")
            self.errors[key] = self.errors.get(key, 0) + 1
        return result

    def snapshot(self):
        out = {}
        for operation, histogram in sorted(self.operations.items()):
            out[operation] = dict(histogram.snapshot(), errors=0)
        for (operation, kind), n in self.errors.items():
            entry = out.setdefault(operation, {"count": 0, "sum": 0.0, "errors": 0})
            entry["errors"] += n
        return out


class _Traffic:
    """The sent-traffic counters of frames that name no service."""

    __slots__ = ("sent", "sentBytes")

    def __init__(self):
        self.sent = self.sentBytes = 0


def middlewareName(step):
    """
    @return: the label a middleware gets in C{prism_middleware_drops_total}:
        its C{name} attribute (the plugin name of the built-in ones:
        C{ratelimit}, C{maxsize}, C{auth}, C{log}), else the name of its
        function or class.
    """
    if step is None:
        return "unknown"
    name = getattr(step, "name", None)
    if isinstance(name, str) and name:
        return name
    name = getattr(step, "__name__", None)
    if isinstance(name, str) and name:
        return name
    return type(step).__name__


def _dropReason(result):
    """The C{reason} label of a refusal: a L{Drop} or a L{Failure}/exception."""
    if isinstance(result, Failure):
        result = result.value
    kind = getattr(result, "kind", None)
    if isinstance(result, BaseException):
        return kind if isinstance(result, (ServiceError, ProtocolError)) and kind else "error"
    if kind:
        return kind
    return "dropped" if getattr(result, "reason", None) is not None else "silent"


class Metrics:
    """
    The figures of one server; made by L{prism.server.Server.enableMetrics}
    (use that, not this constructor), which makes the server count. Read
    them through L{snapshot} or the Prometheus collector (L{registry}).

    The kernel counts each service's traffic on the service's own entry
    (C{received}, C{receivedBytes}, C{sent}, C{sentBytes}: plain integers
    on a slotted object, two additions per message); L{traffic} reads them.
    The dicts below are written by the kernel too, on rarer events.

    @ivar unknown: the counters (C{sent}, C{sentBytes}) of frames sent
        that name no registered service.
    @ivar opened: C{{transport: connections accepted}}.
    @ivar closed: C{{transport: connections closed}}.
    @ivar slowConsumers: C{{transport: connections closed with 4008}}.
    @ivar errors: C{{(kind, service or ""): count}}.
    @ivar drops: C{{(middleware, reason): count}}.
    @ivar rpc: C{{(service, method): histogram}} (L{Histogram}s).
    @ivar store: the session store's L{StoreStats}, or L{None} when the
        store does not keep any (only stores with C{enableStats()} do).
    """

    def __init__(self, server, rpcBuckets=RPC_BUCKETS, process=True):
        self.server = server
        self.rpcBuckets = tuple(rpcBuckets)
        self.process = process
        self.unknown = _Traffic()
        self.opened = {}
        self.closed = {}
        self.slowConsumers = {}
        self.errors = {}
        self.drops = {}
        self.rpc = {}
        enable = getattr(server.sessionStore, "enableStats", None)
        self.store = enable() if enable is not None else None
        self._registry = None
        for conn in list(server.connections.values()):
            self._instrument(conn)

    def __repr__(self):
        return "<prism Metrics of {!r}>".format(self.server)

    # -- what the kernel calls (on connections, errors, drops; per message
    #    only for frames whose service it does not know)

    def _connectionMade(self, conn):
        transport = conn.transport
        self.opened[transport] = self.opened.get(transport, 0) + 1
        self._instrument(conn)

    def _connectionLost(self, conn, code):
        transport = conn.transport
        self.closed[transport] = self.closed.get(transport, 0) + 1
        if code == SLOW_CONSUMER:
            self.slowConsumers[transport] = self.slowConsumers.get(transport, 0) + 1

    def _instrument(self, conn):
        """Count what is sent on C{conn} (a connection made before metrics were enabled)."""
        conn._metrics = self

    def _sent(self, frame):
        """Count one frame sent by a path that does not know its service (error frames, C{sendFrame})."""
        entry = self._entryOf(frame)
        entry.sent += 1
        entry.sentBytes += len(frame)

    def _prepared(self, prepared):
        """Find, once per fan-out, the counters a L{prism.server.PreparedFrame}'s deliveries go to."""
        prepared.entry = self._entryOf(prepared.frame)
        prepared.meter = self

    def _entryOf(self, frame):
        sid = _serviceIdOf(frame)
        entries = self.server._entries
        return entries[sid] if 0 <= sid < len(entries) else self.unknown

    def _error(self, kind, service):
        key = (kind, service or "")
        self.errors[key] = self.errors.get(key, 0) + 1

    def _dropped(self, step, result):
        key = (middlewareName(step), _dropReason(result))
        self.drops[key] = self.drops.get(key, 0) + 1

    def rpcHistogram(self, service, method):
        """@return: the L{Histogram} of one RPC method (created on first use)."""
        key = (service, method)
        histogram = self.rpc.get(key)
        if histogram is None:
            histogram = self.rpc[key] = Histogram(self.rpcBuckets)
        return histogram

    # -- reading

    def traffic(self, direction):
        """
        @param direction: C{"received"} or C{"sent"}.
        @return: C{({service: messages}, {service: size})}, for the services
            with traffic (C{""}: frames sent that named no service).
        """
        counts = [
            (entry.name, getattr(entry, direction), getattr(entry, direction + "Bytes"))
            for entry in self.server._entries
        ]
        if direction == "sent":
            counts.append(("", self.unknown.sent, self.unknown.sentBytes))
        messages = {}
        sizes = {}
        for name, n, size in counts:
            if n:
                messages[name] = n
                sizes[name] = size
        return messages, sizes

    def _openConnections(self):
        out = {}
        for conn in self.server.connections.values():
            out[conn.transport] = out.get(conn.transport, 0) + 1
        for transport in self.opened:
            out.setdefault(transport, 0)
        return out

    def _pubsub(self):
        """@return: C{[(service name, service)]} of the services that count publications (pubsub)."""
        return [
            (entry.name, entry.service)
            for entry in self.server._entries
            if isinstance(getattr(entry.service, "published", None), dict)
        ]

    def snapshot(self):
        """
        @return: the current totals as a plain, JSON-serializable dict (for
            the status dashboard, tests and logs). Cheap: no
            C{prometheus_client}, no I/O.
        """
        server = self.server
        errors = {}
        for (kind, _), n in self.errors.items():
            errors[kind] = errors.get(kind, 0) + n
        drops = {}
        for (middleware, reason), n in self.drops.items():
            drops.setdefault(middleware, {})[reason] = n
        rpc = {}
        for (service, method), histogram in sorted(self.rpc.items()):
            rpc.setdefault(service, {})[method] = histogram.snapshot()
        pubsub = {}
        for name, service in self._pubsub():
            pubsub[name] = {
                "published": dict(service.published),
                "delivered": service.delivered,
                "channels": len(service._channels) + len(service._patterns),
                "subscriptions": sum(len(s) for s in service._subs.values()),
            }
        messagesIn, bytesIn = self.traffic("received")
        messagesOut, bytesOut = self.traffic("sent")
        return {
            "connections": {
                "open": self._openConnections(),
                "opened": dict(self.opened),
                "closed": dict(self.closed),
            },
            "slow_consumers": dict(self.slowConsumers),
            "messages_in": messagesIn,
            "messages_out": messagesOut,
            "bytes_in": bytesIn,
            "bytes_out": bytesOut,
            "errors": errors,
            "drops": drops,
            "rpc": rpc,
            "pubsub": pubsub,
            "session_store": self.store.snapshot() if self.store is not None else None,
            "requests_in_flight": server._inflight,
            "session_writes_pending": len(server._saving),
        }

    @property
    def registry(self):
        """
        This server's own C{prometheus_client.CollectorRegistry}: a
        L{PrismCollector} and, unless C{process=False}, the process and
        platform collectors (C{process_*}, C{python_info}). Register your
        own collectors here to serve them on the same page.
        """
        if self._registry is None:
            from prometheus_client import CollectorRegistry

            registry = CollectorRegistry(auto_describe=False)
            registry.register(PrismCollector(self))
            if self.process:
                from prometheus_client import PlatformCollector, ProcessCollector

                ProcessCollector(registry=registry)
                PlatformCollector(registry=registry)
            self._registry = registry
        return self._registry

    def render(self):
        """@return: the Prometheus text exposition of L{registry} (L{bytes})."""
        from prometheus_client.exposition import generate_latest

        return generate_latest(self.registry)


class PrismCollector:
    """
    A C{prometheus_client} collector that reads a L{Metrics} at scrape time
    and yields its metric families (names in C{docs/metrics.md}).
    """

    def __init__(self, metrics):
        self.metrics = metrics

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        m = self.metrics
        server = m.server

        family = GaugeMetricFamily("prism_connections_open", "Connections open now.", labels=["transport"])
        for transport, n in sorted(m._openConnections().items()):
            family.add_metric([transport], n)
        yield family
        for name, doc, table in (
            ("prism_connections_opened_total", "Connections accepted.", m.opened),
            ("prism_connections_closed_total", "Connections closed.", m.closed),
            (
                "prism_slow_consumer_disconnects_total",
                "Connections closed as slow consumers (code 4008).",
                m.slowConsumers,
            ),
        ):
            family = CounterMetricFamily(name, doc, labels=["transport"])
            for transport, n in sorted(table.items()):
                family.add_metric([transport], n)
            yield family

        messagesIn, bytesIn = m.traffic("received")
        messagesOut, bytesOut = m.traffic("sent")
        for name, doc, counts in (
            ("prism_messages_received_total", "Messages received, per service.", messagesIn),
            ("prism_received_bytes_total", "Size of the messages received, per service.", bytesIn),
            ("prism_messages_sent_total", "Messages sent, per service (fan-out: once per connection).", messagesOut),
            ("prism_sent_bytes_total", "Size of the messages sent, per service.", bytesOut),
        ):
            family = CounterMetricFamily(name, doc, labels=["service"])
            for service, n in sorted(counts.items()):
                family.add_metric([service], n)
            yield family

        family = CounterMetricFamily("prism_errors_total", "Errors contained, by kind.", labels=["kind", "service"])
        for (kind, service), n in sorted(m.errors.items()):
            family.add_metric([kind, service], n)
        yield family

        family = CounterMetricFamily(
            "prism_middleware_drops_total", "Requests refused by middleware.", labels=["middleware", "reason"]
        )
        for (middleware, reason), n in sorted(m.drops.items()):
            family.add_metric([middleware, reason], n)
        yield family

        family = HistogramMetricFamily(
            "prism_rpc_duration_seconds", "RPC handler latency, per method.", labels=["service", "method"]
        )
        for (service, method), histogram in sorted(m.rpc.items()):
            family.add_metric([service, method], histogram.cumulative(), histogram.sum)
        yield family

        services = m._pubsub()
        family = CounterMetricFamily(
            "prism_pubsub_publishes_total", "Publications made on this node.", labels=["service", "origin"]
        )
        for name, service in services:
            for origin, n in sorted(service.published.items()):
                family.add_metric([name, origin], n)
        yield family
        family = CounterMetricFamily(
            "prism_pubsub_deliveries_total", "Publications written to subscribers on this node.", labels=["service"]
        )
        for name, service in services:
            family.add_metric([name], service.delivered)
        yield family
        family = GaugeMetricFamily(
            "prism_pubsub_channels", "Channels and patterns with subscribers on this node.", labels=["service"]
        )
        for name, service in services:
            family.add_metric([name], len(service._channels) + len(service._patterns))
        yield family
        family = GaugeMetricFamily(
            "prism_pubsub_subscriptions", "Subscriptions of this node's connections.", labels=["service"]
        )
        for name, service in services:
            family.add_metric([name], sum(len(s) for s in service._subs.values()))
        yield family

        store = m.store
        family = HistogramMetricFamily(
            "prism_session_store_duration_seconds", "Session store operation latency.", labels=["operation"]
        )
        if store is not None:
            for operation, histogram in sorted(store.operations.items()):
                family.add_metric([operation], histogram.cumulative(), histogram.sum)
        yield family
        family = CounterMetricFamily(
            "prism_session_store_errors_total", "Failed session store operations.", labels=["operation", "kind"]
        )
        if store is not None:
            for (operation, kind), n in sorted(store.errors.items()):
                family.add_metric([operation, kind], n)
        yield family

        yield GaugeMetricFamily(
            "prism_requests_in_flight",
            "Requests whose asynchronous handler has not answered yet.",
            value=server._inflight,
        )
        yield GaugeMetricFamily(
            "prism_session_writes_pending",
            "Session writes not yet acknowledged by the store.",
            value=len(server._saving),
        )


class MetricsResource(Resource):
    """
    A L{twisted.web} resource serving a server's metrics in the Prometheus
    text format (C{GET}; C{HEAD} too). Creating it enables metrics on the
    server (L{prism.server.Server.enableMetrics}). For example::

        root.putChild(b"metrics", MetricsResource(server))

    @param server: a L{prism.server.Server}.
    """

    isLeaf = True

    def __init__(self, server):
        Resource.__init__(self)
        self.metrics = server.enableMetrics()

    def render_GET(self, request):
        if request.postpath and request.postpath != [b""]:
            request.setResponseCode(404)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return b"not found\n"
        from prometheus_client.exposition import CONTENT_TYPE_LATEST

        body = self.metrics.render()
        request.setHeader(b"content-type", CONTENT_TYPE_LATEST.encode("ascii"))
        request.setHeader(b"cache-control", b"no-store")
        return body
