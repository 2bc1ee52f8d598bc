"""
Metrics (prism.metrics, docs/metrics.md): the figures a server counts, the
Prometheus page (MetricsResource) scraped over real HTTP after real
WebSocket traffic, a real Redis session store, a slow consumer; and the
exact counts, on the loopback transport, of what each path adds.
"""

import socket

import pytest
import pytest_twisted
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Protocol

from conftest import handshakeRequest, nextEvent, sleep, waitUntil, within
from prism.errors import SessionStoreUnavailable
from prism.limits import Auth, MaxSize, RateLimit
from prism.metrics import Histogram, MetricsResource, middlewareName
from prism.middleware import DROP, Drop
from prism.server import Server, ServiceError
from prism.services.echo import EchoService
from prism.services.pubsub import PubSubService
from prism.services.rpc import RPCService, withRequest
from prism.testing import PrismTestServer, resultOf
from redisutil import freePort, redisHarnessStore, waitFailure

KiB = 1024


# -- helpers


async def serveMetrics(prism, server):
    """Serve C{MetricsResource(server)} at /metrics on its own site on 127.0.0.1; @return: its URL."""
    from twisted.internet.endpoints import serverFromString
    from twisted.web.resource import Resource
    from twisted.web.server import Site

    root = Resource()
    root.putChild(b"metrics", MetricsResource(server))
    port = await within(serverFromString(prism.reactor, "tcp:0:interface=127.0.0.1").listen(Site(root)))
    prism.track(port)
    return "http://127.0.0.1:{}/metrics".format(port.getHost().port)


class _Body(Protocol):
    def __init__(self):
        self.chunks = []
        self.done = Deferred()

    def dataReceived(self, data):
        self.chunks.append(data)

    def connectionLost(self, reason):
        self.done.callback(b"".join(self.chunks))


async def scrape(reactor, url):
    """GET C{url} with a real HTTP client; @return: C{(status, content type, body text)}."""
    from twisted.web.client import Agent

    response = await within(Agent(reactor).request(b"GET", url.encode("ascii")))
    reader = _Body()
    response.deliverBody(reader)
    body = await within(reader.done)
    contentType = response.headers.getRawHeaders(b"content-type", [b""])[0].decode("ascii")
    return response.code, contentType, body.decode("utf-8")


def samples(text):
    """@return: C{{(sample name, frozenset(labels)): value}} of a Prometheus text page."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def value(page, name, **labels):
    """@return: the value of one sample (L{None} if absent)."""
    return page.get((name, frozenset(labels.items())))


def later(x):
    from twisted.internet import reactor
    from twisted.internet.task import deferLater

    return deferLater(reactor, 0.05, lambda: x)


def boom():
    raise ValueError("boom")


HANDLERS = {"add": lambda a, b: a + b, "boom": boom, "later": later}


# -- over real sockets


@pytest_twisted.ensureDeferred
async def test_scrape_after_websocket_traffic(prism, reactor):
    served = await prism.serve(
        {
            "rpc": RPCService(HANDLERS),
            "echo": EchoService(),
            "pubsub": PubSubService(authorize=lambda request, action, channel: True),
        }
    )
    server = served.server
    server.use(RateLimit(rate=0.001, burst=3, addressRate=0, pause=False, services=["echo"]))
    url = await serveMetrics(prism, server)
    assert server.metrics is not None  # the resource switched counting on

    a = await prism.connect(served.url, reconnect=False)
    b = await prism.connect(served.url, reconnect=False)

    # RPC: three calls, a failing handler, an asynchronous one, an unknown method.
    for _ in range(3):
        assert await within(a.api.rpc.call("add", 2, 3)) == 5
    with pytest.raises(Exception, match="boom"):
        await within(a.api.rpc.call("boom"))
    assert await within(a.api.rpc.call("later", 7)) == 7
    with pytest.raises(Exception):
        await within(a.api.rpc.call("nosuch"))

    # The rate limit: 3 pass, 7 are dropped.
    echoed = []
    a.api.echo.on(echoed.append)
    for i in range(10):
        a.api.echo.send("x{}".format(i))
    await waitUntil(lambda: server.metrics.snapshot()["messages_in"].get("echo") == 10 and len(echoed) == 3)

    # PubSub: one publication from a client, one from the server, both to b.
    got = []
    await within(b.api.pubsub.subscribe("news", lambda data, channel: got.append(data)))
    await within(a.api.pubsub.publish("news", {"n": 1}))
    await within(server.api.pubsub.publish("news", 2))
    await waitUntil(lambda: len(got) == 2)

    status, contentType, text = await scrape(reactor, url)
    assert status == 200
    assert contentType.startswith("text/plain") and "version=" in contentType
    page = samples(text)

    assert value(page, "prism_connections_open", transport="websocket") == 2
    assert value(page, "prism_connections_opened_total", transport="websocket") == 2
    assert value(page, "prism_messages_received_total", service="rpc") == 6
    assert value(page, "prism_messages_sent_total", service="rpc") == 6  # every call answered, errors included
    assert value(page, "prism_messages_received_total", service="echo") == 10
    assert value(page, "prism_messages_sent_total", service="echo") == 3
    assert value(page, "prism_messages_received_total", service="system") == 2  # the hellos
    assert value(page, "prism_received_bytes_total", service="rpc") > 6 * 5
    assert value(page, "prism_sent_bytes_total", service="pubsub") > 0
    assert value(page, "prism_errors_total", kind="handler", service="rpc") == 1
    assert value(page, "prism_errors_total", kind="unknown_method", service="rpc") == 1
    assert value(page, "prism_middleware_drops_total", middleware="ratelimit", reason="rate_limited") == 7

    assert value(page, "prism_rpc_duration_seconds_count", service="rpc", method="add") == 3
    assert value(page, "prism_rpc_duration_seconds_count", service="rpc", method="boom") == 1
    assert value(page, "prism_rpc_duration_seconds_count", service="rpc", method="later") == 1
    assert value(page, "prism_rpc_duration_seconds_bucket", service="rpc", method="later", le="0.025") == 0
    assert value(page, "prism_rpc_duration_seconds_bucket", service="rpc", method="later", le="+Inf") == 1
    assert value(page, "prism_rpc_duration_seconds_sum", service="rpc", method="later") >= 0.045
    assert value(page, "prism_rpc_duration_seconds_count", service="rpc", method="nosuch") is None  # no label for it

    assert value(page, "prism_pubsub_publishes_total", service="pubsub", origin="client") == 1
    assert value(page, "prism_pubsub_publishes_total", service="pubsub", origin="server") == 1
    assert value(page, "prism_pubsub_deliveries_total", service="pubsub") == 2
    assert value(page, "prism_pubsub_channels", service="pubsub") == 1
    assert value(page, "prism_pubsub_subscriptions", service="pubsub") == 1
    assert value(page, "prism_requests_in_flight") == 0
    assert value(page, "process_resident_memory_bytes") > 0  # the process collector, in this server's registry

    # A client leaves: the gauge goes down, the closed counter up.
    left = nextEvent(server.events, "disconnect")
    a.close()
    await left
    page = samples((await scrape(reactor, url))[2])
    assert value(page, "prism_connections_open", transport="websocket") == 1
    assert value(page, "prism_connections_closed_total", transport="websocket") == 1
    assert value(page, "prism_slow_consumer_disconnects_total", transport="websocket") is None

    # Unknown paths below /metrics are not the page.
    status, _, _ = await scrape(reactor, url + "/other")
    assert status == 404


@pytest_twisted.ensureDeferred
async def test_slow_consumer_disconnect_is_counted(prism, reactor):
    from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
    from twisted.internet.protocol import Protocol

    served = await prism.serve({"echo": EchoService()}, transport={"maxOutgoingBuffer": 256 * KiB})
    server = served.server
    url = await serveMetrics(prism, server)

    class Reader(Protocol):
        received = 0

        def dataReceived(self, data):
            self.received += len(data)

    class Closable:  # what the harness aborts in teardown
        def __init__(self, proto):
            self.transport = proto.transport
            self.lost = Deferred()

    slow = Reader()
    await within(connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", served.portNumber), slow))
    prism._raw.append(Closable(slow))
    slow.transport.write(handshakeRequest(served.host))
    await waitUntil(lambda: slow.received > 0 and len(server.connections) == 1)
    slow.transport.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.transport.pauseProducing()  # stop reading

    [conn] = server.connections.values()
    closed = nextEvent(server.events, "disconnect")
    frame = "1|" + "x" * (64 * KiB)
    pushed = 0
    while pushed < 64 * 1024 * KiB and not closed.called:  # bounded: 64 MiB
        conn.sendFrame(frame)
        pushed += len(frame)
        await sleep(0)
    _, code, _ = await closed
    assert code == 4008

    page = samples((await scrape(reactor, url))[2])
    assert value(page, "prism_slow_consumer_disconnects_total", transport="websocket") == 1
    assert value(page, "prism_connections_closed_total", transport="websocket") == 1
    assert value(page, "prism_connections_open", transport="websocket") == 0
    # Every push before the close was handed to the transport and counted.
    assert value(page, "prism_messages_sent_total", service="echo") == pushed // len(frame)


@withRequest
def remember(request, value):
    request.session["value"] = value
    return request.session.get("value")


@pytest_twisted.ensureDeferred
async def test_redis_session_store_latency_and_errors(prism, reactor, request):
    store = redisHarnessStore(request)
    served = await prism.serve({"rpc": RPCService({"remember": remember}, sessions=True)}, sessionStore=store)
    server = served.server
    url = await serveMetrics(prism, server)
    assert store.stats is server.metrics.store

    client = await prism.connect(served.url, reconnect=False)
    for i in range(3):
        assert await within(client.api.rpc.call("remember", i)) == i
    await waitUntil(lambda: not server._saving)
    # A second connection with the same session: the store is read (load).
    token = client.welcome["session"]
    other = await prism.connect(served.url, reconnect=False, session=token)
    assert await within(other.api.rpc.call("remember", 9)) == 9
    await waitUntil(lambda: not server._saving)

    page = samples((await scrape(reactor, url))[2])
    saves = value(page, "prism_session_store_duration_seconds_count", operation="save")
    assert saves >= 4  # the new session, then each call's write
    assert value(page, "prism_session_store_duration_seconds_count", operation="touch") >= 1  # the second hello
    assert value(page, "prism_session_store_duration_seconds_count", operation="load") >= 1
    assert value(page, "prism_session_store_duration_seconds_sum", operation="save") > 0
    assert value(page, "prism_session_store_duration_seconds_bucket", operation="save", le="+Inf") == saves
    assert value(page, "prism_session_store_errors_total", operation="save", kind="unavailable") is None

    # A store that cannot reach its Redis: every operation fails, counted by kind.
    from prism.stores.redis import RedisSessionStore

    down = RedisSessionStore(port=freePort(), connectTimeout=0.5)
    stats = down.enableStats()
    assert down.enableStats() is stats
    try:
        await waitFailure(down.load("nosuch"), SessionStoreUnavailable)
        await waitFailure(down.save("nosuch", {"a": 1}), SessionStoreUnavailable)
    finally:
        await within(down.close())  # even from the failed load's callback chain
    assert stats.errors == {("load", "unavailable"): 1, ("save", "unavailable"): 1}
    assert stats.snapshot()["load"]["count"] == 1 and stats.snapshot()["load"]["errors"] == 1


@pytest_twisted.ensureDeferred
async def test_each_server_has_its_own_registry(prism, reactor):
    from prometheus_client import REGISTRY

    one = await prism.serve({"echo": EchoService()})
    two = await prism.serve({"echo": EchoService()})
    urlOne = await serveMetrics(prism, one.server)
    urlTwo = await serveMetrics(prism, two.server)
    client = await prism.connect(one.url, reconnect=False)
    assert await within(client.api.echo.request("hi")) == "hi"
    pageOne = samples((await scrape(reactor, urlOne))[2])
    pageTwo = samples((await scrape(reactor, urlTwo))[2])
    assert value(pageOne, "prism_messages_received_total", service="echo") == 1
    assert value(pageTwo, "prism_messages_received_total", service="echo") is None
    assert value(pageTwo, "prism_connections_opened_total", transport="websocket") is None
    assert one.server.metrics.registry is not two.server.metrics.registry
    assert not any(name.startswith("prism_") for name in REGISTRY._names_to_collectors)


# -- exact counts, in memory


def makeServer(middleware=(), **options):
    ts = PrismTestServer(
        services={"rpc": RPCService(HANDLERS), "echo": EchoService(), "bin": EchoService("msgpack")},
        middleware=middleware,
        **options
    )
    return ts


def test_off_by_default():
    ts = makeServer()
    raw = ts.raw()
    raw.hello()
    assert ts.server.metrics is None
    conn = raw.connection
    assert conn._metrics is None and conn._write == conn._link.write
    raw.send('2|"x"')
    assert raw.frames[-1] == '2|"x"'


def test_messages_and_bytes_per_service():
    ts = makeServer()
    metrics = ts.server.enableMetrics()
    assert ts.server.enableMetrics() is metrics
    raw = ts.raw()
    raw.hello()
    raw.send("2|hello")  # echo push: 7 characters in, the same back
    raw.send('17|["add",1,2]')
    raw.send(b"3|\x92\x01\x02")
    raw.send("not a frame")
    snap = metrics.snapshot()
    assert snap["messages_in"] == {"system": 1, "echo": 1, "rpc": 1, "bin": 1}
    assert snap["bytes_in"]["echo"] == 7 and snap["bytes_in"]["rpc"] == 14 and snap["bytes_in"]["bin"] == 5
    assert snap["messages_out"] == {"system": 1, "echo": 1, "rpc": 1, "bin": 1}
    assert snap["bytes_out"]["echo"] == 7 and snap["bytes_out"]["rpc"] == len("17|3") and snap["bytes_out"]["bin"] == 5
    assert snap["errors"] == {"malformed": 1}
    assert snap["connections"] == {"open": {"loopback": 1}, "opened": {"loopback": 1}, "closed": {}}
    # Frames that name no registered service (a custom service's sendFrame) count under "".
    conn = raw.connection
    conn.sendFrame("~not prism")
    conn.sendPrepared(ts.server.prepareFrame("z|nobody"))
    conn.sendPrepared(ts.server.prepareFrame("2|fan-out"))
    snap = metrics.snapshot()
    assert snap["messages_out"][""] == 2 and snap["bytes_out"][""] == len("~not prism") + len("z|nobody")
    assert snap["messages_out"]["echo"] == 2 and snap["bytes_out"]["echo"] == 7 + len("2|fan-out")
    raw.close()
    snap = metrics.snapshot()
    assert snap["connections"] == {"open": {"loopback": 0}, "opened": {"loopback": 1}, "closed": {"loopback": 1}}


def test_enabling_later_counts_connections_already_open():
    ts = makeServer()
    raw = ts.raw()
    raw.hello()
    metrics = ts.server.enableMetrics()
    raw.send("2|hi")
    assert metrics.snapshot()["messages_out"] == {"echo": 1}
    assert metrics.snapshot()["connections"]["open"] == {"loopback": 1}
    metrics._instrument(raw.connection)  # idempotent: never counted twice
    raw.send("2|hi")
    assert metrics.snapshot()["messages_out"] == {"echo": 2}


def test_middleware_drops_by_middleware_and_reason():
    def bouncer(request):
        if request.payload == "go away":
            return Drop("not today")
        if request.payload == "quiet":
            return DROP
        if request.payload == "crash":
            raise RuntimeError("crash")
        return request

    asynchronous = []

    def slowGate(request):
        if request.payload == "later":
            d = Deferred()
            asynchronous.append(d)
            return d
        return request

    ts = makeServer(
        middleware=[bouncer, slowGate, MaxSize(services={"echo": 20}), Auth(methods=["admin.*"])]
    )
    metrics = ts.server.enableMetrics()
    raw = ts.raw()
    raw.hello()
    raw.send("21|go away")
    raw.send("2|quiet")
    raw.send("2|crash")
    raw.send("2|" + "x" * 30)
    raw.send('14|["admin.purge"]')
    raw.send("2|later")
    asynchronous.pop().callback(Drop(kind="custom"))
    raw.send("2|later")
    asynchronous.pop().errback(ServiceError("nope", "refused asynchronously"))
    drops = metrics.snapshot()["drops"]
    assert drops == {
        "bouncer": {"dropped": 1, "silent": 1, "error": 1},
        "maxsize": {"too_large": 1},
        "auth": {"forbidden": 1},
        "slowGate": {"custom": 1, "nope": 1},
    }
    errors = metrics.snapshot()["errors"]
    assert errors == {"dropped": 1, "handler": 1, "too_large": 1, "forbidden": 1, "nope": 1}


def test_rate_limit_drops_are_all_labelled_rate_limited():
    ts = makeServer(middleware=[RateLimit(rate=0.001, burst=2, addressRate=0, pause=False)])
    metrics = ts.server.enableMetrics()
    raw = ts.raw()
    raw.hello()
    raw.send("2|a")
    raw.send("2|b")
    raw.send('19|["add",1,1]')  # the first refused: a request, so its warning is an error reply
    assert raw.frames[-1].startswith("19!")
    for _ in range(3):
        raw.send("2|x")  # the rest of the run: dropped silently
    assert metrics.snapshot()["drops"] == {"ratelimit": {"rate_limited": 4}}
    assert metrics.snapshot()["errors"] == {"rate_limited": 1}


def test_rpc_latency_on_the_fake_clock():
    pending = []

    def wait():
        d = Deferred()
        pending.append(d)
        return d

    async def coro(x):
        return x

    ts = PrismTestServer(services={"rpc": RPCService({"wait": wait, "coro": coro, "add": lambda a, b: a + b})})
    metrics = ts.server.enableMetrics(rpcBuckets=(0.1, 1.0))
    client = ts.client()
    call = client.api.rpc.call("wait")
    ts.clock.advance(0.5)
    pending.pop().callback("done")
    assert resultOf(call) == "done"
    assert resultOf(client.api.rpc.call("coro", 3)) == 3
    assert resultOf(client.api.rpc.call("add", 1, 2)) == 3
    waited = metrics.rpc[("rpc", "wait")]
    assert waited.counts == [0, 1, 0] and waited.sum == 0.5
    assert metrics.rpc[("rpc", "coro")].counts == [1, 0, 0]
    assert metrics.snapshot()["rpc"] == {
        "rpc": {"add": {"count": 1, "sum": 0.0}, "coro": {"count": 1, "sum": 0.0}, "wait": {"count": 1, "sum": 0.5}}
    }


def test_pubsub_counts_in_memory():
    ts = PrismTestServer(services={"pubsub": PubSubService(authorize=lambda r, a, c: True)})
    metrics = ts.server.enableMetrics()
    subscribers = [ts.client() for _ in range(3)]
    got = []
    for client in subscribers:
        resultOf(client.api.pubsub.subscribe("room.1", lambda data, channel: got.append(data)))
    resultOf(subscribers[0].api.pubsub.publish("room.1", "hi", exclude=True))  # to the 2 others
    resultOf(ts.api.pubsub.publish("room.1", "all"))  # to all 3
    resultOf(ts.api.pubsub.broadcast("notice", "everyone"))  # to all 3, subscribed or not
    snap = metrics.snapshot()["pubsub"]["pubsub"]
    assert snap == {"published": {"client": 1, "server": 2}, "delivered": 8, "channels": 1, "subscriptions": 3}
    assert got.count("hi") == 2 and got.count("all") == 3


def test_histogram():
    h = Histogram((0.1, 1.0))
    for v in (0.05, 0.1, 0.5, 1.0, 3.0, -1.0):
        h.observe(v)
    assert h.counts == [3, 2, 1]  # le is inclusive; a negative duration counts as 0
    assert h.cumulative() == [("0.1", 3), ("1.0", 5), ("+Inf", 6)]
    assert h.count == 6 and h.sum == pytest.approx(4.65)


def test_middleware_names():
    assert middlewareName(RateLimit()) == "ratelimit"
    assert middlewareName(MaxSize(limit=1)) == "maxsize"
    from prism.middleware import LogRequests

    assert middlewareName(LogRequests()) == "log"

    def mine(request):
        return request

    class Custom:
        def __call__(self, request):
            return request

    assert middlewareName(mine) == "mine" and middlewareName(Custom()) == "Custom"


def test_snapshot_without_a_registry_never_imports_prometheus_client():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from prism.testing import PrismTestServer\n"
        "from prism.services.echo import EchoService\n"
        "ts = PrismTestServer(services={'echo': EchoService()})\n"
        "m = ts.server.enableMetrics(); raw = ts.raw(); raw.hello(); raw.send('1|x')\n"
        "assert m.snapshot()['messages_in']['echo'] == 1\n"
        "assert not [n for n in sys.modules if n.startswith('prometheus_client')], 'imported'\n"
        "assert 'twisted.internet.reactor' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_metrics_resource_renders_in_memory():
    from twisted.web.test.requesthelper import DummyRequest

    ts = makeServer()
    resource = MetricsResource(ts.server)
    assert ts.server.metrics is resource.metrics
    raw = ts.raw()
    raw.hello()
    raw.send("2|x")
    request = DummyRequest([b""])
    body = resource.render_GET(request)
    page = samples(body.decode("utf-8"))
    assert value(page, "prism_messages_received_total", service="echo") == 1
    assert request.responseHeaders.getRawHeaders(b"content-type")[0].startswith(b"text/plain")


def test_server_without_store_stats():
    server = Server(transport=None, reactor=None, secret=b"x")
    metrics = server.enableMetrics()
    assert metrics.store is None and metrics.snapshot()["session_store"] is None
