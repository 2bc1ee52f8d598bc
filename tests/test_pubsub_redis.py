"""
The C{pubsub} service on the redis engine, against a real Redis.

In-process (two L{Server}s in the test's reactor, the private Redis of
C{scripts/test}): publish/patterns across servers, SUBSCRIBE only while
there are local subscribers, publishTo/publishToSession/broadcast, history
in Redis Streams and recovery.

On real processes (C{tests/pubsub/node_server.py}, two Prism nodes on
pre-picked ports): delivery across nodes and patterns; presence across
nodes with a node killed by SIGKILL (its members expire, a leave is
announced); a client whose node dies reconnects to the other node and
recovers what was published meanwhile; a dedicated Redis restarted
mid-test (nodes reconnect, delivery resumes, the outage is on the event bus
and in the logs).
"""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import pytest_twisted
from redisutil import freePort
from twisted.internet.defer import Deferred
from twisted.internet.protocol import ProcessProtocol

from conftest import nextEvent, waitUntil, within
from prism.client import Client, _WebSocketConnector
from prism.errors import RemoteError
from prism.services.pubsub import PubSubService

ROOT = Path(__file__).resolve().parents[1]
NODE = ROOT / "tests" / "pubsub" / "node_server.py"
_counter = [0]


def prefix():
    _counter[0] += 1
    return "pstest{}.{}:".format(os.getpid(), _counter[0])


def allowAll(request, action, channel):
    return True


def redisCli(url, *args):
    host, port = url.split("//")[1].split(":")
    out = subprocess.run(
        ["redis-cli", "-h", host, "-p", port.split("/")[0]] + list(args), capture_output=True, text=True, timeout=5
    )
    return out.stdout.split()


def collector():
    got = []

    def handler(data, channel):
        got.append((channel, data))

    handler.got = got
    return handler


# -- in-process: two servers on one Redis


async def twoServers(prism, redis_url, **options):
    options.setdefault("authorize", allowAll)
    p = prefix()
    servers = []
    for _ in range(2):
        pubsub = PubSubService(engine="redis", redisUrl=redis_url, redisPrefix=p, redisRetry=(0.1, 0.5), **options)
        served = await prism.serve({"pubsub": pubsub})
        servers.append(served)
    for served in servers:
        engine = served.server._byName["pubsub"].service.engine
        await waitUntil(lambda: engine.up)
    return servers, p


@pytest_twisted.ensureDeferred
async def test_acrossServersAndListenOnlyWhileSubscribed(prism, redis_url):
    (one, two), p = await twoServers(prism, redis_url)
    a, b = await prism.connect(one.url), await prism.connect(two.url)
    ha, hb, pa, pb = collector(), collector(), collector(), collector()
    await within(a.api.pubsub.subscribe("news", ha))
    await within(b.api.pubsub.subscribe("news", hb))
    await within(a.api.pubsub.subscribe("room.*", pa))
    await within(b.api.pubsub.subscribe("room.*", pb))
    assert redisCli(redis_url, "PUBSUB", "CHANNELS", p + "ch:*") == [p + "ch:news"]
    await within(a.api.pubsub.publish("news", {"n": 1}))
    await within(one.server.api.pubsub.publish("room.5", "five"))
    await waitUntil(lambda: ha.got and hb.got and pa.got and pb.got)
    assert ha.got == hb.got == [("news", {"n": 1})]
    assert pa.got == pb.got == [("room.5", "five")]
    await within(a.api.pubsub.unsubscribe("news"))
    await within(b.api.pubsub.unsubscribe("news"))
    await waitUntil(lambda: redisCli(redis_url, "PUBSUB", "CHANNELS", p + "ch:*") == [])


@pytest_twisted.ensureDeferred
async def test_directMessagesAcrossServers(prism, redis_url):
    (one, two), _ = await twoServers(prism, redis_url)
    a, b = await prism.connect(one.url), await prism.connect(two.url)
    ga, gb = collector(), collector()
    a.api.pubsub.onMessage(ga)
    b.api.pubsub.onMessage(gb)
    connB = list(two.server.connections.values())[0]
    await within(one.server.api.pubsub.publishTo(connB.id, "you", 1))
    await waitUntil(lambda: gb.got)
    await within(one.server.api.pubsub.publishToSession(connB.sessionId, "yours", 2))
    await within(two.server.api.pubsub.broadcast("all", 3))
    await waitUntil(lambda: len(gb.got) == 3 and ga.got)
    assert gb.got == [("you", 1), ("yours", 2), ("all", 3)] and ga.got == [("all", 3)]


@pytest_twisted.ensureDeferred
async def test_historyInStreams(prism, redis_url):
    (one, two), p = await twoServers(prism, redis_url, historySize=3)
    api = one.server.api.pubsub
    engine = two.server._byName["pubsub"].service.engine
    first = await within(api.publish("h", "a"))
    assert first["offset"] == 1 and first["epoch"].startswith("e")
    for x in ("b", "c", "d"):
        await within(api.publish("h", x))
    assert redisCli(redis_url, "XLEN", p + "h:h") == ["3"]
    recovered, missed, top, epoch = await within(engine.recover("h", 2, first["epoch"]))
    assert (recovered, missed, top, epoch) == (True, [(3, "c"), (4, "d")], 4, first["epoch"])
    assert (await within(engine.recover("h", 0, first["epoch"])))[0] is False  # 1 fell out of the stream
    assert (await within(engine.recover("h", 4, "eother")))[0] is False
    assert await within(engine.recover("h", 4, first["epoch"])) == (True, [], 4, first["epoch"])


# -- real processes


class Node(ProcessProtocol):
    """A tests/pubsub/node_server.py process: its stdout lines and stderr."""

    def __init__(self):
        self.lines = []
        self.err = []
        self.ended = Deferred()
        self.listening = Deferred()
        self._buffer = b""

    def outReceived(self, data):
        self._buffer += data
        while b"\n" in self._buffer:
            line, self._buffer = self._buffer.split(b"\n", 1)
            line = line.decode("utf-8", "replace")
            self.lines.append(line)
            if line.startswith("LISTENING") and not self.listening.called:
                self.listening.callback(line)

    def errReceived(self, data):
        self.err.append(data)

    @property
    def log(self):
        return b"".join(self.err).decode("utf-8", "replace")

    def processEnded(self, reason):
        if not self.listening.called:
            self.listening.errback(RuntimeError("node ended before listening:\n" + self.log))
        self.ended.callback(None)

    def kill(self, sig="KILL"):
        if not self.ended.called:
            try:
                self.transport.signalProcess(sig)
            except Exception:
                pass
        return self.ended


class Cluster:
    def __init__(self, reactor):
        self.reactor = reactor
        self.nodes = []
        self.clients = []
        self.redis = []

    async def node(self, redisUrl, prefix, port=None):
        port = port or freePort()
        proto = Node()
        env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        args = [sys.executable, str(NODE), "--port", str(port), "--redis", redisUrl, "--prefix", prefix,
                "--presence-ttl", "1.5", "--max-seconds", "120"]
        self.reactor.spawnProcess(proto, sys.executable, args, env=env, path=str(ROOT))
        self.nodes.append(proto)
        await within(proto.listening, 30)
        proto.url = "ws://127.0.0.1:{}/".format(port)
        return proto

    async def client(self, *urls):
        connectors = [_WebSocketConnector(url, self.reactor, None, None) for url in urls]
        state = [0]

        def connector():
            c = connectors[min(state[0], len(connectors) - 1)]
            state[0] += 1
            return c()

        client = Client(connector=connector, reactor=self.reactor, timeout=5, initialDelay=0.1, maxDelay=0.5)
        self.clients.append(client)
        await within(client.connect())
        return client

    def startRedis(self, port=None):
        port = port or freePort()
        directory = tempfile.mkdtemp(prefix="prism-pubsub-redis.")
        proc = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
             "--dir", directory, "--logfile", os.path.join(directory, "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        self.redis.append((proc, directory))
        return proc, port

    async def cleanup(self):
        for client in self.clients:
            client.close()
        for node in self.nodes:
            await within(node.kill("TERM"), 10)
        for proc, directory in self.redis:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
            shutil.rmtree(directory, ignore_errors=True)


@pytest_twisted.async_yield_fixture
async def cluster():
    from twisted.internet import reactor

    c = Cluster(reactor)
    try:
        yield c
    finally:
        await c.cleanup()


async def waitRedis(port):
    await waitUntil(lambda: redisCli("redis://127.0.0.1:{}".format(port), "PING") == ["PONG"], seconds=10, step=0.05)


@pytest_twisted.ensureDeferred
async def test_nodesDeliverAcrossAndPresenceSurvivesSigkill(cluster, redis_url):
    p = prefix()
    A, B = await cluster.node(redis_url, p), await cluster.node(redis_url, p)
    a, b = await cluster.client(A.url), await cluster.client(B.url)
    ha, hb, pa, pb = collector(), collector(), collector(), collector()
    events = []
    await within(a.api.pubsub.subscribe("lobby", ha))
    await within(b.api.pubsub.subscribe("lobby", hb, events=lambda kind, info: events.append((kind, info))))
    await within(a.api.pubsub.subscribe("room.*", pa))
    await within(b.api.pubsub.subscribe("room.*", pb))
    await within(a.api.pubsub.publish("lobby", "from A"))
    await within(b.api.pubsub.publish("room.1", "from B"))
    await waitUntil(lambda: ha.got and hb.got and pa.got and pb.got)
    assert ha.got == hb.got == [("lobby", "from A")]
    assert pa.got == pb.got == [("room.1", "from B")]

    aId = await within(a.api.rpc.call("whoami"))
    members = await within(b.api.pubsub.presence("lobby"))
    assert sorted(m["id"] for m in members) == sorted([aId, await within(b.api.rpc.call("whoami"))])
    a.reconnect = False
    await within(A.kill("KILL"))  # no leave sent: the member must expire
    await waitUntil(lambda: ("leave", {"id": aId}) in events, seconds=8)
    members = await within(b.api.pubsub.presence("lobby"))
    assert [m["id"] for m in members] != [] and aId not in [m["id"] for m in members]


@pytest_twisted.ensureDeferred
async def test_failoverRecoversMissedMessages(cluster, redis_url):
    p = prefix()
    A, B = await cluster.node(redis_url, p), await cluster.node(redis_url, p)
    c = await cluster.client(A.url, B.url)  # first A, then (reconnecting) B
    publisher = await cluster.client(B.url)
    got = collector()
    reply = await within(c.api.pubsub.subscribe("feed", got))
    assert reply["offset"] >= 0
    await within(publisher.api.pubsub.publish("feed", 1))
    await waitUntil(lambda: got.got)
    reconnected = nextEvent(c, "reconnect")
    await within(A.kill("KILL"))
    for n in (2, 3, 4):
        await within(publisher.api.pubsub.publish("feed", n))
    await within(reconnected, 10)
    await waitUntil(lambda: len(got.got) == 4)
    await within(publisher.api.pubsub.publish("feed", 5))
    await waitUntil(lambda: len(got.got) == 5)
    assert [d for _, d in got.got] == [1, 2, 3, 4, 5]


@pytest_twisted.ensureDeferred
async def test_redisRestartedMidTest(cluster):
    proc, port = cluster.startRedis()
    await waitRedis(port)
    url = "redis://127.0.0.1:{}".format(port)
    p = prefix()
    A, B = await cluster.node(url, p), await cluster.node(url, p)
    a, b = await cluster.client(A.url), await cluster.client(B.url)
    hb = collector()
    await within(b.api.pubsub.subscribe("alerts", hb))
    await within(a.api.pubsub.publish("alerts", "before"))
    await waitUntil(lambda: hb.got == [("alerts", "before")])

    proc.kill()
    proc.wait(5)
    await waitUntil(lambda: all(any(l.startswith("EVENT pubsub.redis_down") for l in n.lines) for n in (A, B)), seconds=10)
    with pytest.raises(RemoteError) as e:
        await within(a.api.pubsub.publish("alerts", "lost"))
    assert e.value.kind == "unavailable"

    cluster.startRedis(port)
    await waitRedis(port)
    await waitUntil(lambda: all(any(l.startswith("EVENT pubsub.redis_up") for l in n.lines) for n in (A, B)), seconds=10)
    await waitUntil(lambda: redisCli(url, "PUBSUB", "CHANNELS", p + "ch:*") == [p + "ch:alerts"], seconds=5)
    await within(a.api.pubsub.publish("alerts", "after"))
    await waitUntil(lambda: hb.got[-1:] == [("alerts", "after")])
    assert [d for _, d in hb.got] == ["before", "after"]
    for node in (A, B):
        assert "lost the Redis connection" in node.log and "reconnected to Redis" in node.log
