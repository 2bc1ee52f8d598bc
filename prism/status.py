"""
The live status dashboard: a page of the admin listener (C{/status}) that
charts a node's figures as they change (connections, messages per second
in and out, RPC latency p50/p99, errors and drops per second), fed by
Prism's own pubsub. C{docs/status.md} describes it; in the configuration
file it is C{[admin] dashboard = true}.

For example::

    from prism.admin import AdminService
    from prism.status import StatusDashboard

    dashboard = StatusDashboard(server, interval=1.0, history=120)
    AdminService(server, ["tcp:9001:interface=127.0.0.1"], token=token,
                 pages={"status": dashboard}).setServiceParent(application)

How it works:

  - A sampler (every C{interval} seconds, on the reactor) reads the
    server's metrics (L{prism.metrics.Metrics}, enabled by the dashboard),
    turns the difference from the previous reading into rates
    (L{sampleOf}) and publishes the sample on the pubsub channel
    C{prism.status} (L{CHANNEL}).
  - That channel lives on a small Prism server of the dashboard's own (an
    in-process L{prism.server.Server} with one C{pubsub} service, memory
    engine, keeping the last C{history} samples), whose WebSocket endpoint
    is C{/status/ws} on the admin listener. The page is served with the
    generated JavaScript client of that server inlined; it connects,
    subscribes to C{prism.status}, then asks the channel's history for the
    last C{history} samples, so a new page draws its charts at once.
  - Only admin-token holders reach it: C{/status} and C{/status/ws} are
    behind the admin listener's token check (the WebSocket handshake
    carries the token as C{?token=}, or the proxy's C{Authorization}
    header), the page refuses to be served when no token is configured
    (C{needsToken}), the WebSocket accepts same-origin handshakes only, and
    the channel exists nowhere else: the application's own pubsub service,
    its clients, patterns such as C{*}, its C{authorize} hook and its Redis
    engine never see it. Dashboard clients cannot publish (the internal
    pubsub has no C{authorize} hook), and they are not counted in the
    figures they watch.
"""

import json
import pkgutil
import secrets

from twisted.internet.defer import succeed
from twisted.logger import Logger
from twisted.web.pages import notFound
from twisted.web.resource import Resource

from prism.errors import PrismConfigError

__all__ = ["CHANNEL", "StatusDashboard", "quantile", "sampleOf", "totalsOf"]

CHANNEL = "prism.status"
"""The pubsub channel the samples are published on (on the dashboard's own server)."""

MAX_HISTORY = 3600
"""The most samples a dashboard keeps (an hour at one per second)."""

SESSION_COOKIE = "prism.status.sid"
"""The internal server's session cookie: not C{prism.sid}, which browsers
would share with the application on the same host (cookies ignore ports)."""


def quantile(bounds, counts, q):
    """
    Estimate a quantile from histogram buckets, as Prometheus'
    C{histogram_quantile} does: linear interpolation within the bucket the
    rank falls in (the first bucket starts at 0); a rank in the open-ended
    last bucket gives the largest finite bound.

    @param bounds: the buckets' upper bounds, ascending.
    @param counts: observations per bucket (not cumulative), one more than
        C{bounds} (the last is above every bound).
    @param q: the quantile, between 0 and 1.
    @return: the estimate (a L{float}), or L{None} without observations.
    """
    total = sum(counts)
    if total <= 0 or not bounds:
        return None
    rank = q * total
    seen = 0
    for i, n in enumerate(counts):
        if n > 0 and seen + n >= rank:
            if i >= len(bounds):
                return float(bounds[-1])
            lower = bounds[i - 1] if i > 0 else 0.0
            return lower + (bounds[i] - lower) * (rank - seen) / n
        seen += n
    return float(bounds[-1])


def totalsOf(metrics, server):
    """
    Read the cumulative figures a sample is computed from.

    @param metrics: the server's L{prism.metrics.Metrics}.
    @param server: the L{prism.server.Server}.
    @return: a dict of totals (counters since metrics were enabled) and
        gauges; RPC latency as the buckets of every method's histogram
        added up.
    """
    snapshot = metrics.snapshot()
    bounds = tuple(metrics.rpcBuckets)
    rpc = [0] * (len(bounds) + 1)
    for histogram in list(metrics.rpc.values()):
        if tuple(histogram.bounds) == bounds:
            for i, n in enumerate(histogram.counts):
                rpc[i] += n
    published = delivered = 0
    for figures in snapshot.get("pubsub", {}).values():
        published += sum(figures.get("published", {}).values())
        delivered += figures.get("delivered", 0)
    return {
        "state": getattr(server, "state", "running" if server.running else "stopped"),
        "open": dict(snapshot["connections"]["open"]),
        "in": sum(snapshot["messages_in"].values()),
        "out": sum(snapshot["messages_out"].values()),
        "bytesIn": sum(snapshot["bytes_in"].values()),
        "bytesOut": sum(snapshot["bytes_out"].values()),
        "errors": dict(snapshot["errors"]),
        "drops": sum(sum(reasons.values()) for reasons in snapshot["drops"].values()),
        "slowConsumers": sum(snapshot["slow_consumers"].values()),
        "published": published,
        "delivered": delivered,
        "inflight": snapshot["requests_in_flight"],
        "rpcBounds": bounds,
        "rpc": rpc,
    }


def _round(value, digits=3):
    return None if value is None else round(value, digits)


def sampleOf(previous, current, seconds):
    """
    Turn two readings of L{totalsOf} into one sample: rates per second over
    the C{seconds} between them, and the current gauges.

    @return: a JSON-serializable dict (C{docs/status.md} lists its keys):
        C{connections} and C{transports} (open now), C{in}, C{out},
        C{bytesIn}, C{bytesOut}, C{errors}, C{drops}, C{publishes},
        C{deliveries} (per second), C{errorKinds} (per second, kinds seen in
        the interval), C{rpc} (C{calls} per second, C{p50} and C{p99} in
        seconds or L{None} when no call ended), C{slowConsumers} (total),
        C{inflight}, C{state}.
    """
    dt = seconds if seconds > 0 else 1e-9

    def rate(key):
        return _round(max(0, current[key] - previous[key]) / dt)

    errorKinds = {}
    for kind, n in current["errors"].items():
        delta = n - previous["errors"].get(kind, 0)
        if delta > 0:
            errorKinds[kind] = _round(delta / dt)
    if current["rpcBounds"] == previous["rpcBounds"]:
        window = [max(0, a - b) for a, b in zip(current["rpc"], previous["rpc"])]
    else:
        window = list(current["rpc"])
    p50 = quantile(current["rpcBounds"], window, 0.5)
    p99 = quantile(current["rpcBounds"], window, 0.99)
    return {
        "state": current["state"],
        "connections": sum(current["open"].values()),
        "transports": dict(current["open"]),
        "in": rate("in"),
        "out": rate("out"),
        "bytesIn": rate("bytesIn"),
        "bytesOut": rate("bytesOut"),
        "errors": _round(sum(errorKinds.values())),
        "errorKinds": errorKinds,
        "drops": rate("drops"),
        "publishes": rate("published"),
        "deliveries": rate("delivered"),
        "rpc": {"calls": _round(sum(window) / dt), "p50": _round(p50, 6), "p99": _round(p99, 6)},
        "slowConsumers": current["slowConsumers"],
        "inflight": current["inflight"],
    }


class StatusDashboard(Resource):
    """
    The dashboard: a L{twisted.web} resource (the page, and the WebSocket
    at C{ws}) with a lifecycle, C{startService} and C{stopService}, which
    L{prism.admin.AdminService} calls with its own (call them yourself when
    you mount it in a site of your own).

    @param server: the L{prism.server.Server} to watch.
    @param interval: seconds between samples.
    @param history: samples kept on the channel, and shown (the charts
        span C{history * interval} seconds).
    @param maxViewers: WebSocket connections the dashboard accepts at once.

    @ivar statusServer: the dashboard's own L{prism.server.Server} (its
        C{pubsub} service carries L{CHANNEL}).
    @ivar latest: the last sample published, or L{None}.
    @ivar samples: how many samples were published.
    """

    log = Logger()

    needsToken = True
    """Refused (403) by the admin listener when no admin token is configured."""

    def __init__(self, server, interval=1.0, history=120, maxViewers=32):
        Resource.__init__(self)
        if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not 0.05 <= interval <= 3600:
            raise PrismConfigError("status: interval must be a number of seconds between 0.05 and 3600")
        if isinstance(history, bool) or not isinstance(history, int) or not 1 <= history <= MAX_HISTORY:
            raise PrismConfigError("status: history must be an integer between 1 and {}".format(MAX_HISTORY))
        if isinstance(maxViewers, bool) or not isinstance(maxViewers, int) or maxViewers < 1:
            raise PrismConfigError("status: maxViewers must be a positive integer")
        self.prism = server
        self.interval = float(interval)
        self.history = history
        self.maxViewers = maxViewers
        self.statusServer = self._buildStatusServer()
        self.latest = None
        self.samples = 0
        self.running = False
        self.boot = secrets.token_hex(4)  # a new page's charts start over when it changes
        self._metrics = None
        self._previous = None  # (time, totals)
        self._loop = None
        self._ws = None
        self._client = None
        self._template = None

    def _buildStatusServer(self):
        from prism.server import Server
        from prism.services.pubsub import PubSubService
        from prism.transports.websocket import WebSocketTransport

        transport = WebSocketTransport(
            maxMessageSize=16 * 1024,  # a page only subscribes
            maxConnections=self.maxViewers,
            maxConnectionsPerAddress=self.maxViewers,
        )
        server = Server(
            transport=transport,
            secret=secrets.token_bytes(32),  # its sessions matter to no one (and no "random secret" log line)
            sessionCookie=SESSION_COOKIE,
            reactor=getattr(self.prism, "_reactor", None),
        )
        server.service(
            "pubsub",
            PubSubService(
                historySize=self.history,
                historyChannels=[CHANNEL],
                # Samples older than the TTL are not recovered: keep the whole window.
                historyTtl=max(300.0, self.history * self.interval * 2),
                maxSubscriptions=4,
            ),
        )
        return server

    # -- lifecycle

    def startService(self):
        """Enable metrics on the server, start the internal server and the sampler."""
        if self.running:
            return
        from twisted.internet.task import LoopingCall

        self.running = True
        self._metrics = self.prism.enableMetrics()
        self.statusServer.start()
        reactor = self.prism.reactor
        self._previous = (reactor.seconds(), totalsOf(self._metrics, self.prism))
        self._loop = LoopingCall(self.sample)
        self._loop.clock = reactor
        self._loop.start(self.interval, now=False).addErrback(
            lambda f: self.log.failure("status dashboard sampler stopped", failure=f)
        )

    def stopService(self):
        """
        Stop sampling and close the dashboard's WebSocket connections
        (C{going_away}, then 1001).

        @return: a L{Deferred} firing once the internal server has stopped.
        """
        if not self.running:
            return succeed(None)
        self.running = False
        loop, self._loop = self._loop, None
        if loop is not None and loop.running:
            loop.stop()
        return self.statusServer.stop("the admin listener is stopping")

    def sample(self):
        """
        Take one sample now and publish it on L{CHANNEL}.

        @return: the sample (a dict; see L{sampleOf}).
        """
        now = self.prism.reactor.seconds()
        totals = totalsOf(self._metrics, self.prism)
        then, previous = self._previous
        self._previous = (now, totals)
        sample = sampleOf(previous, totals, now - then)
        self.samples += 1
        sample.update(seq=self.samples, t=round(now, 3), boot=self.boot)
        self.latest = sample
        d = self.statusServer.api.pubsub.publish(CHANNEL, sample)
        d.addErrback(lambda f: self.log.failure("status dashboard: publishing a sample failed", failure=f))
        return sample

    # -- the page and the WebSocket

    def getChild(self, path, request):
        if path == b"":
            return self
        if path == b"ws":
            if self._ws is None:
                # Built on first use: the WebSocket factory resolves the reactor.
                self._ws = self.statusServer.resource()
            return self._ws
        return notFound()

    def clientSource(self):
        """
        @return: the generated JavaScript client of the internal server (a
            classic script defining C{Prism}), built once.
        """
        if self._client is None:
            source = self.statusServer.build_client(format="script")
            if "</script" in source.lower():
                raise PrismConfigError("status: the generated client cannot be inlined in the page")
            self._client = source
        return self._client

    def render_GET(self, request):
        nonce = secrets.token_urlsafe(16)
        config = {
            "channel": CHANNEL,
            "interval": self.interval,
            "history": self.history,
        }
        if self._template is None:
            self._template = pkgutil.get_data("prism", "static/status.html").decode("utf-8")
        page = (
            self._template.replace("__PRISM_NONCE__", nonce)
            .replace("__PRISM_CONFIG__", json.dumps(config).replace("<", "\\u003c"))
            .replace("/*__PRISM_CLIENT__*/", self.clientSource())
        )
        for name, value in (
            (b"content-type", b"text/html; charset=utf-8"),
            (b"cache-control", b"no-store"),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),  # the URL may carry ?token=
            (b"x-frame-options", b"DENY"),
            (
                b"content-security-policy",
                "default-src 'none'; script-src 'nonce-{}'; style-src 'unsafe-inline'; connect-src 'self'; "
                "img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'".format(nonce).encode(
                    "ascii"
                ),
            ),
        ):
            request.setHeader(name, value)
        return page.encode("utf-8")
