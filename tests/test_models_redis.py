"""
The C{models} service on the redis store, against a real Redis.

In-process (servers in the test's reactor, the private Redis of
C{scripts/test}, each test with its own key prefix): the compare-and-set
is atomic under concurrent writers on two servers; the log and C{since};
the keys in Redis; change notifications across servers; documents and
versions survive a server restart. With a redis-server of the test's own:
an outage answers C{unavailable} and recovers, with or without the data;
a node that lost its subscription while others wrote pushes what it missed
(as patches, or a snapshot when the log no longer has them).

On real processes (issue 8.6): two C{twistd prism --config} nodes sharing
one Redis, several clients on each editing one document concurrently with
the Python client's C{update()} (read-modify-write, retried on conflict):
no update is lost, every client converges on the same value and version,
a client whose node dies reconnects to the other and catches up, and
invalid and conflicting patches get clear answers.
"""

import json
import os
import re
import secrets
import sys
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet.defer import DeferredList, ensureDeferred, gatherResults

import procutil
from conftest import nextEvent, sleep, waitUntil, within
from prism.client import Client, ServiceClient, _WebSocketConnector
from prism.errors import RemoteError
from prism.server import Server, ServiceError
from prism.services.models import Conflict, ModelsService, Snapshot, _INITIAL, allowAll
from prism.transports.loopback import LoopbackTransport
from redisutil import RedisProcess, deleteKeys, freePort, hostPort, redisCli

BIN = Path(sys.executable).parent


def prefix():
    return "mtest{}.{}:".format(os.getpid(), secrets.token_hex(4))


@pytest.fixture
def keys(redis_url):
    """Key prefixes of the test; their keys are deleted at the end."""
    made = []

    def make():
        made.append(prefix())
        return made[-1]

    yield make
    host, port = hostPort(redis_url)
    for p in made:
        deleteKeys(port, p + "*", host)


def service(served):
    return served.server._byName["models"].service


def modelsOptions(redisUrl, p, **options):
    options.setdefault("authorize", allowAll)
    options.setdefault("redisRetry", (0.1, 0.5))
    return dict(store="redis", redisUrl=redisUrl, redisPrefix=p, **options)


async def serve(prism, redisUrl, p, **options):
    served = await prism.serve({"models": ModelsService(**modelsOptions(redisUrl, p, **options))})
    engine = service(served).store.engine
    await waitUntil(lambda: engine.up)
    return served


async def connect(prism, served):
    """A client speaking the raw models protocol (a plain L{ServiceClient}); C{client.pushes}."""
    client = await prism.connect(served.url, services={"models": ServiceClient})
    client.pushes = []
    client.api.models.on(client.pushes.append)
    return client


def ask(client, *command):
    return within(client.api.models.request(list(command)))


async def refused(client, *command):
    with pytest.raises(RemoteError) as e:
        await ask(client, *command)
    return e.value.kind, e.value.message


def add(path, value):
    return {"op": "add", "path": path, "value": value}


# -- the store, in process


@pytest_twisted.ensureDeferred
async def test_compareAndSetIsAtomicAcrossServers(prism, redis_url, keys):
    p = keys()
    one, two = await serve(prism, redis_url, p), await serve(prism, redis_url, p)
    stores = [service(one).store, service(two).store]
    value = {}
    for base in range(6):  # ten writers on two servers submit against the same version, at once
        value = dict(value, **{"k{}".format(base): base})
        text = json.dumps(value)
        ds = [stores[i % 2].commit("doc", base, [add("/k{}".format(base), base)], value, text) for i in range(10)]
        results = [r for _, r in await within(DeferredList(ds, fireOnOneErrback=True, consumeErrors=True))]
        assert sorted(results) == [("conflict", base + 1)] * 9 + [("ok", base + 1)]
    assert redisCli(hostPort(redis_url)[1], "HGET", p + "models:d:doc", "v") == "6"

    # the same through clients: exactly one of the concurrent patches per version wins
    a, b = await connect(prism, one), await connect(prism, two)
    ds = [(a if i % 2 else b).api.models.request(["patch", "doc", 6, [add("/w{}".format(i), i)]]) for i in range(8)]
    replies = [r for _, r in await within(DeferredList(ds, fireOnOneErrback=True, consumeErrors=True))]
    winners = [r for r in replies if "conflict" not in r]
    assert winners == [{"v": 7}]
    assert all(r["conflict"] is True and r["v"] == 7 and len(r["patches"]) == 1 for r in replies if r not in winners)
    snap = await within(one.server.api.models.get("doc"))
    assert snap.version == 7 and len(snap.value) == 7


@pytest_twisted.ensureDeferred
async def test_logSinceAndKeys(prism, redis_url, keys):
    p = keys()
    served = await serve(prism, redis_url, p, historySize=3)
    store = service(served).store
    api = served.server.api.models
    assert await within(store.since("doc", None)) == (0, None, _INITIAL)
    assert await within(store.since("doc", 0)) == (0, [], None)
    assert await within(store.since("doc", 2)) == (0, None, _INITIAL)
    assert await within(store.load("doc", 0)) == (0, _INITIAL)
    for i in range(5):
        assert await within(api.patch("doc", [add("/k{}".format(i), i)], version=i)) == i + 1
    value = {"k0": 0, "k1": 1, "k2": 2, "k3": 3, "k4": 4}
    assert await within(store.since("doc", 2)) == (5, [[3, [add("/k2", 2)]], [4, [add("/k3", 3)]], [5, [add("/k4", 4)]]], None)
    assert await within(store.since("doc", 4)) == (5, [[5, [add("/k4", 4)]]], None)
    assert await within(store.since("doc", 5)) == (5, [], None)
    assert await within(store.since("doc", 1)) == (5, None, value)  # 4 missed, 3 kept
    assert await within(store.since("doc", 9)) == (5, None, value)
    assert await within(store.since("doc", None)) == (5, None, value)
    assert await within(store.load("doc", 5)) == (5, value)

    port = hostPort(redis_url)[1]
    assert redisCli(port, "HGET", p + "models:d:doc", "v") == "5"
    assert json.loads(redisCli(port, "HGET", p + "models:d:doc", "d")) == value
    assert redisCli(port, "LLEN", p + "models:l:doc") == "3"
    assert json.loads(redisCli(port, "LINDEX", p + "models:l:doc", "0")) == [5, [add("/k4", 4)]]  # newest first
    assert redisCli(port, "TTL", p + "models:d:doc") == "-1"  # never expire

    client = await connect(prism, served)
    assert await ask(client, "sub", "doc", 3) == {"v": 5, "patches": [[4, [add("/k3", 3)]], [5, [add("/k4", 4)]]]}
    assert await ask(client, "patch", "doc", 1, [add("/x", 1)]) == {"conflict": True, "v": 5, "value": value}
    assert await ask(client, "patch", "new", 2, [add("/x", 1)]) == {"conflict": True, "v": 0, "value": {}}  # the initial value


@pytest_twisted.ensureDeferred
async def test_refusedPatchesChangeNothingInRedis(prism, redis_url, keys):
    p = keys()
    schema = {"type": "object", "properties": {"items": {"type": "array", "maxItems": 2}}}
    served = await serve(prism, redis_url, p, types={"todo": {"schema": schema, "initial": {"items": []}}},
                         maxDocumentSize=200)
    client = await connect(prism, served)
    assert await ask(client, "sub", "todo:a") == {"v": 0, "value": {"items": []}}
    assert await ask(client, "patch", "todo:a", 0, [add("/items/-", 1)]) == {"v": 1}
    assert (await refused(client, "patch", "todo:a", 1, [{"op": "test", "path": "/items/0", "value": 2}]))[0] == "invalid_patch"
    assert (await refused(client, "patch", "todo:a", 1, [{"op": "remove", "path": "/nope"}]))[0] == "invalid_patch"
    assert (await refused(client, "patch", "todo:a", 1, [add("/items/-", 2), add("/items/-", 3)]))[0] == "invalid"
    assert (await refused(client, "patch", "todo:a", 1, [add("/big", "x" * 300)]))[0] == "too_large"
    assert (await refused(client, "sub", "note:a"))[0] == "invalid"
    port = hostPort(redis_url)[1]
    assert redisCli(port, "HGET", p + "models:d:todo:a", "v") == "1"
    assert redisCli(port, "LLEN", p + "models:l:todo:a") == "1"
    assert await ask(client, "get", "todo:a") == {"v": 1, "value": {"items": [1]}}
    await sleep(0.05)
    assert client.pushes == [["c", "todo:a", 1, [add("/items/-", 1)]]]


@pytest_twisted.ensureDeferred
async def test_changesReachEveryServerInOrder(prism, redis_url, keys):
    p = keys()
    one, two = await serve(prism, redis_url, p), await serve(prism, redis_url, p)
    changes = {one: [], two: []}
    for served in (one, two):
        served.server.events.on("models.change", lambda name, v, ops, _s=served: changes[_s].append((name, v, ops)))
    a, b, writer = await connect(prism, one), await connect(prism, two), await connect(prism, two)
    await ask(a, "sub", "doc")
    await ask(b, "sub", "doc")
    for i in range(10):
        assert await ask(writer, "patch", "doc", i, [add("/k{}".format(i), i)]) == {"v": i + 1}
    assert await within(one.server.api.models.set("doc", {"reset": True})) == 11
    expected = [["c", "doc", i + 1, [add("/k{}".format(i), i)]] for i in range(10)]
    expected.append(["c", "doc", 11, [{"op": "replace", "path": "", "value": {"reset": True}}]])
    await waitUntil(lambda: len(a.pushes) == 11 and len(b.pushes) == 11)
    assert a.pushes == b.pushes == expected
    assert writer.pushes == []  # not subscribed
    assert [c[1] for c in changes[one]] == [c[1] for c in changes[two]] == list(range(1, 12))
    # a node listens in Redis only while it has subscribers
    port = hostPort(redis_url)[1]
    assert redisCli(port, "PUBSUB", "CHANNELS", p + "models:ch:*") == p + "models:ch:doc"
    await ask(a, "unsub", "doc")
    await ask(b, "unsub", "doc")
    await waitUntil(lambda: redisCli(port, "PUBSUB", "CHANNELS", p + "models:ch:*") == "")
    assert await within(two.server.api.models.patch("doc", [add("/after", 1)])) == 12
    await sleep(0.1)
    assert len(a.pushes) == len(b.pushes) == 11


@pytest_twisted.ensureDeferred
async def test_followingNodesCommitFromTheirCacheAndStayExact(prism, redis_url, keys):
    """
    A node with subscribers of a document keeps its value up to date from
    the change notifications, so a commit against the current version reads
    nothing from Redis; writers alternating between two such nodes still
    build every change on the right value.
    """
    p = keys()
    one, two = await serve(prism, redis_url, p), await serve(prism, redis_url, p)
    a, b = await connect(prism, one), await connect(prism, two)
    await ask(a, "sub", "doc")
    await ask(b, "sub", "doc")
    stores = [service(one).store, service(two).store]
    for i in range(20):
        writer, store = (a, stores[0]) if i % 2 == 0 else (b, stores[1])
        # the writer's node follows the document: once the last change arrived
        # its cache is at version i (or empty, before it read the document once)
        await waitUntil(lambda: store._cache.get("doc", [i])[0] == i)
        assert await ask(writer, "patch", "doc", i, [add("/items/-" if i else "/items", i if i else [0])]) == {"v": i + 1}
    assert stores[0].cacheHits + stores[1].cacheHits >= 17
    snapshot = await within(one.server.api.models.get("doc"))
    assert snapshot == Snapshot(20, {"items": list(range(20))})
    await waitUntil(lambda: all(s._cache.get("doc", [None])[0] == 20 for s in stores))
    assert [s._cache["doc"][1] for s in stores] == [{"items": list(range(20))}] * 2
    # a stale base is still refused by the compare-and-set, cache or not
    reply = await ask(a, "patch", "doc", 19, [add("/x", 1)])
    assert reply["conflict"] is True and reply["v"] == 20
    # a node with no subscribers keeps no cache
    await ask(a, "unsub", "doc")
    assert "doc" not in stores[0]._cache


@pytest_twisted.ensureDeferred
async def test_serverSideUpdateRetriesAcrossServers(prism, redis_url, keys):
    p = keys()
    one, two = await serve(prism, redis_url, p, initial={"n": 0}), await serve(prism, redis_url, p, initial={"n": 0})

    def increment(doc):
        doc["n"] += 1

    ds = [s.server.api.models.update("counter", increment, retries=100) for s in (one, two) * 10]
    snaps = await within(gatherResults(ds), 30)
    assert sorted(s.version for s in snaps) == list(range(1, 21))
    assert all(s.value == {"n": s.version} for s in snaps)
    assert await within(two.server.api.models.get("counter")) == Snapshot(20, {"n": 20})
    assert service(one).stats["conflicts"] + service(two).stats["conflicts"] > 0
    with pytest.raises(Conflict):
        await within(one.server.api.models.patch("counter", [{"op": "replace", "path": "/n", "value": 0}], version=3))


@pytest_twisted.ensureDeferred
async def test_documentsSurviveAServerRestart(prism, reactor, redis_url, keys):
    p = keys()
    first = Server(transport=LoopbackTransport(), reactor=reactor, secret=b"prism-test-secret")
    first.service("models", ModelsService(**modelsOptions(redis_url, p)))
    api = first.start().models
    await waitUntil(lambda: first._byName["models"].service.store.engine.up)
    for i in range(4):
        await within(api.update("todo:a", lambda doc, i=i: doc.setdefault("items", []).append(i)))
    before = await within(api.get("todo:a"))
    assert before == Snapshot(4, {"items": [0, 1, 2, 3]})
    await within(first.stop())

    served = await serve(prism, redis_url, p)
    assert await within(served.server.api.models.get("todo:a")) == before
    client = await connect(prism, served)
    assert await ask(client, "sub", "todo:a") == {"v": 4, "value": {"items": [0, 1, 2, 3]}}
    assert await ask(client, "sub", "todo:a", 2) == {"v": 4, "patches": [
        [3, [add("/items/2", 2)]], [4, [add("/items/3", 3)]]]}  # the log survived too
    assert (await ask(client, "patch", "todo:a", 3, [add("/items/-", 9)]))["conflict"] is True
    assert await ask(client, "patch", "todo:a", 4, [add("/items/-", 9)]) == {"v": 5}


@pytest_twisted.ensureDeferred
async def test_serverSocketsSendWithoutNagleDelays(prism, redis_url, keys):
    """
    With Redis, a writer's reply (from the command connection) and its push
    (from the pubsub connection) leave in different reactor turns: without
    TCP_NODELAY, Nagle holds the second frame until the peer's delayed ACK,
    ~40 ms per patch (measured with the Node.js load generator of
    benchmarks/models.py: 43 patches/s for one writer instead of 520).
    Autobahn's own attempt is a silent no-op, so the transport sets it.
    """
    p = keys()
    served = await serve(prism, redis_url, p)
    client = await connect(prism, served)
    await ask(client, "sub", "doc")
    assert await ask(client, "patch", "doc", 0, [add("/n", 0)]) == {"v": 1}
    (conn,) = served.server.connections.values()
    assert conn._link.close.__self__.transport.getTcpNoDelay()


# -- Redis outages (a redis-server of the test's own)


@pytest.fixture
def ownRedis():
    redis = RedisProcess().start()
    yield redis
    redis.cleanup()


async def outageServers(prism, redis, p, **options):
    servers = [await serve(prism, redis.url, p, **options) for _ in range(2)]
    events = {s: [] for s in servers}
    for s in servers:
        for name in ("models.redis_down", "models.redis_up"):
            s.server.events.on(name, lambda *args, _s=s, _n=name: events[_s].append(_n))
    return servers, events


@pytest_twisted.ensureDeferred
async def test_outageAnswersUnavailableAndRecoversWithTheData(prism, ownRedis):
    p = prefix()
    (one, two), events = await outageServers(prism, ownRedis, p)
    reader, writer = await connect(prism, one), await connect(prism, two)
    await ask(reader, "sub", "doc")
    assert await ask(writer, "patch", "doc", 0, [add("/a", 1)]) == {"v": 1}
    await waitUntil(lambda: len(reader.pushes) == 1)

    redisCli(ownRedis.port, "SHUTDOWN", "SAVE")  # the data stay on disk for the restart
    ownRedis.process.wait(5)
    await waitUntil(lambda: all("models.redis_down" in events[s] for s in (one, two)), seconds=10)
    assert await refused(writer, "patch", "doc", 1, [add("/b", 2)]) == ("unavailable", "the pubsub engine cannot reach Redis")
    assert (await refused(reader, "get", "doc"))[0] == "unavailable"
    assert (await refused(writer, "sub", "other"))[0] == "unavailable"
    assert "other" not in service(two)._subscribers  # a refused subscription leaves nothing behind
    assert all("other" not in subs for subs in service(two)._subs.values())
    with pytest.raises(ServiceError) as e:
        await within(one.server.api.models.get("doc"))
    assert e.value.kind == "unavailable"
    with pytest.raises(ServiceError):
        await within(two.server.api.models.set("doc", {}))
    assert await within(reader.api.models.request(["unsub", "never"])) is True  # the service answers what needs no Redis

    ownRedis.start()
    await waitUntil(lambda: all("models.redis_up" in events[s] for s in (one, two)), seconds=10)
    assert await ask(writer, "get", "doc") == {"v": 1, "value": {"a": 1}}
    assert await ask(writer, "patch", "doc", 1, [add("/b", 2)]) == {"v": 2}
    await waitUntil(lambda: len(reader.pushes) == 2)
    assert reader.pushes == [["c", "doc", 1, [add("/a", 1)]], ["c", "doc", 2, [add("/b", 2)]]]


@pytest_twisted.ensureDeferred
async def test_redisThatLostItsDataResetsSubscribers(prism, ownRedis):
    """A Redis restarted empty (or a document deleted): subscribers get a snapshot, then every change."""
    p = prefix()
    (one, two), events = await outageServers(prism, ownRedis, p)
    reader, writer = await connect(prism, one), await connect(prism, two)
    await ask(reader, "sub", "doc")
    for i in range(3):
        await ask(writer, "patch", "doc", i, [add("/k{}".format(i), i)])
    await waitUntil(lambda: len(reader.pushes) == 3)

    ownRedis.stop()  # no save: the restarted Redis is empty
    await waitUntil(lambda: all("models.redis_down" in events[s] for s in (one, two)), seconds=10)
    ownRedis.start()
    await waitUntil(lambda: all("models.redis_up" in events[s] for s in (one, two)), seconds=10)
    await waitUntil(lambda: len(reader.pushes) == 4, seconds=5)
    assert reader.pushes[3] == ["s", "doc", 0, {}]
    assert await ask(writer, "patch", "doc", 0, [add("/new", 1)]) == {"v": 1}
    await waitUntil(lambda: len(reader.pushes) == 5)
    assert reader.pushes[4] == ["c", "doc", 1, [add("/new", 1)]]

    # deleting a document's keys (docs/models.md) while it is followed
    for i in range(1, 4):
        await ask(writer, "patch", "doc", i, [add("/m{}".format(i), i)])
    await waitUntil(lambda: len(reader.pushes) == 8)
    redisCli(ownRedis.port, "DEL", p + "models:d:doc", p + "models:l:doc")
    assert await ask(writer, "patch", "doc", 0, [add("/again", 1)]) == {"v": 1}
    await waitUntil(lambda: reader.pushes[-1][:3] == ["s", "doc", 1], seconds=5)
    assert reader.pushes[-1] == ["s", "doc", 1, {"again": 1}]
    assert await ask(writer, "patch", "doc", 1, [add("/more", 2)]) == {"v": 2}
    await waitUntil(lambda: reader.pushes[-1] == ["c", "doc", 2, [add("/more", 2)]])


async def dropSubscriber(served, port):
    """Kill (in Redis) the pubsub connection of one server's store only."""
    engine = service(served).store.engine
    local = engine._subscriber.transport.getHost().port
    assert redisCli(port, "CLIENT", "KILL", "ADDR", "127.0.0.1:{}".format(local)) in ("OK", "1")


@pytest.mark.parametrize("history, missed", [(100, 3), (2, 4)])
@pytest_twisted.ensureDeferred
async def test_nodePushesWhatItMissedAfterRedisUp(prism, redis_url, keys, history, missed):
    p = keys()
    port = hostPort(redis_url)[1]
    one = await serve(prism, redis_url, p, historySize=history, redisRetry=(1.5, 2.0))  # stays away a while
    two = await serve(prism, redis_url, p, historySize=history)
    reader, local = await connect(prism, one), await connect(prism, one)
    writer = await connect(prism, two)
    await ask(reader, "sub", "doc")
    await ask(writer, "patch", "doc", 0, [add("/k0", 0)])
    await waitUntil(lambda: len(reader.pushes) == 1)

    down, up = nextEvent(one.server.events, "models.redis_down"), nextEvent(one.server.events, "models.redis_up")
    await dropSubscriber(one, port)
    await down
    for i in range(1, missed):  # the other node writes while this one hears nothing
        assert await ask(writer, "patch", "doc", i, [add("/k{}".format(i), i)]) == {"v": i + 1}
    # this node's command connection is up: its clients may write too
    assert await ask(local, "patch", "doc", missed, [add("/k{}".format(missed), missed)]) == {"v": missed + 1}
    assert len(reader.pushes) == 1
    await up
    await waitUntil(lambda: reader.pushes and reader.pushes[-1][2] == missed + 1, seconds=5)
    value = {"k{}".format(i): i for i in range(missed + 1)}
    if history >= missed:
        assert reader.pushes[1:] == [["c", "doc", i + 1, [add("/k{}".format(i), i)]] for i in range(1, missed + 1)]
    else:
        assert reader.pushes[1:] == [["s", "doc", missed + 1, value]]
    # and it follows again: no change twice, none lost
    assert await ask(writer, "patch", "doc", missed + 1, [add("/z", 1)]) == {"v": missed + 2}
    await waitUntil(lambda: reader.pushes[-1][2] == missed + 2)
    await sleep(0.1)
    versions = [push[2] for push in reader.pushes]
    assert versions == sorted(set(versions))


# -- real processes: two twistd nodes, one Redis (issue 8.6)


class Node(procutil.Collect):
    def listening(self):
        return re.search(r"starting on (\d+)", self.text) is not None


CONFIG = """\
listen = "tcp:{port}:interface=127.0.0.1"
secret = "models-test-secret-of-enough-length"
[transport]
ping_interval = 0
[[services]]
name = "models"
store = "redis"
redis_url = "{redis}"
redis_prefix = "{prefix}"
authorize = "prism.services.models.allowAll"
redis_retry = [0.1, 0.5]
history_size = 50
[services.types.list]
initial = {{ items = [], n = 0 }}
schema = {{ type = "object", required = ["items", "n"], properties = {{ items = {{ type = "array" }}, n = {{ type = "integer" }} }} }}
"""


class Cluster:
    def __init__(self, reactor, tmp_path):
        self.reactor = reactor
        self.tmp_path = tmp_path
        self.nodes = []
        self.clients = []

    async def node(self, redisUrl, p):
        port = freePort()
        path = self.tmp_path / "node{}.toml".format(len(self.nodes))
        path.write_text(CONFIG.format(port=port, redis=redisUrl, prefix=p))
        proto = Node()
        twistd = str(BIN / "twistd")
        env = dict(os.environ)
        env.pop("PYTHONPATH", None)
        proto.process = self.reactor.spawnProcess(
            proto, twistd, [twistd, "-n", "--pidfile=", "prism", "--config", str(path)], env=env, path=str(self.tmp_path)
        )
        self.nodes.append(proto)
        await waitUntil(lambda: proto.listening() or proto.ended.called, seconds=30)
        assert not proto.ended.called, proto.text
        proto.url = "ws://127.0.0.1:{}/".format(port)
        probe = await self.client(proto.url, reconnect=False)
        for _ in range(100):  # the node answers once its Redis connections are up
            try:
                await within(probe.api.models.get("list:probe"))
                break
            except RemoteError as e:
                assert e.kind == "unavailable", e
                await sleep(0.1)
        probe.close()
        return proto

    async def client(self, *urls, **options):
        connectors = [_WebSocketConnector(url, self.reactor, None, None) for url in urls]
        attempts = [0]

        def connector():
            c = connectors[min(attempts[0], len(connectors) - 1)]
            attempts[0] += 1
            return c()

        options.setdefault("initialDelay", 0.1)
        options.setdefault("maxDelay", 0.5)
        client = Client(connector=connector, reactor=self.reactor, timeout=10, **options)
        self.clients.append(client)
        await within(client.connect(), 10)
        return client

    async def cleanup(self):
        for client in self.clients:
            client.reconnect = False
            client.close()
        for node in self.nodes:
            if not node.ended.called:
                node.process.signalProcess("TERM")
        waits = [within(node.ended, 15) for node in self.nodes if not node.ended.called]
        await DeferredList(waits, consumeErrors=True)
        for node in self.nodes:
            if not node.ended.called:
                node.process.signalProcess("KILL")


@pytest_twisted.async_yield_fixture
async def cluster(tmp_path):
    from twisted.internet import reactor

    c = Cluster(reactor, tmp_path)
    try:
        yield c
    finally:
        await c.cleanup()


WRITERS_PER_NODE = 3
EDITS = 25


@pytest_twisted.ensureDeferred
async def test_twoNodesConcurrentEditsLoseNothing(cluster, redis_url, keys):
    p = keys()
    A, B = await cluster.node(redis_url, p), await cluster.node(redis_url, p)
    name = "list:shared"
    clients = []
    for node in (A, B):
        for _ in range(WRITERS_PER_NODE):
            clients.append(await cluster.client(node.url, reconnect=False))
    # a follower on A that fails over to B when A dies
    follower = await cluster.client(A.url, B.url)
    docs = [await within(c.api.models.open(name)) for c in clients]
    followed = await within(follower.api.models.open(name))
    assert all(d.version == 0 and d.value == {"items": [], "n": 0} for d in docs)
    seen = []
    followed.onChange(lambda value, ops, version: seen.append(version))
    conflicts = [0]

    async def writer(i, doc):
        accepted = []
        for k in range(EDITS):
            item = "w{}-{}".format(i, k)
            tries = []

            def change(value):
                tries.append(1)
                value["items"].append(item)
                value["n"] += 1

            snap = await doc.update(change, retries=200)
            conflicts[0] += len(tries) - 1
            assert item in snap.value["items"] and snap.value["n"] == snap.version
            accepted.append(snap.version)
        return accepted

    results = await within(gatherResults([ensureDeferred(writer(i, d)) for i, d in enumerate(docs)]), 240)
    total = len(docs) * EDITS
    versions = sorted(v for accepted in results for v in accepted)
    assert versions == list(range(1, total + 1))  # every change accepted exactly once, no version twice
    await waitUntil(lambda: all(d.version == total for d in docs + [followed]), seconds=15)
    expected = sorted("w{}-{}".format(i, k) for i in range(len(docs)) for k in range(EDITS))
    for d in docs + [followed]:
        assert sorted(d.value["items"]) == expected and d.value["n"] == total
        assert d.value == docs[0].value  # the same order too
    for i in range(len(docs)):  # each writer's items are in the order it wrote them
        mine = [x for x in docs[0].value["items"] if x.startswith("w{}-".format(i))]
        assert mine == ["w{}-{}".format(i, k) for k in range(EDITS)]
    assert seen == list(range(1, total + 1))  # the follower saw every version once, in order
    assert conflicts[0] > 0, "the writers never conflicted: this run proved nothing about concurrency"
    port = hostPort(redis_url)[1]
    assert redisCli(port, "HGET", p + "models:d:" + name, "v") == str(total)
    print("{} writers x {} edits on 2 nodes: {} conflicts retried".format(len(docs), EDITS, conflicts[0]))

    # invalid and conflicting patches get clear answers, and change nothing
    doc = docs[-1]
    with pytest.raises(RemoteError) as e:
        await within(doc.patch([{"op": "test", "path": "/n", "value": -1}, {"op": "replace", "path": "/n", "value": 0}]))
    assert e.value.kind == "invalid_patch" and "JsonPatchTestFailed" in e.value.message
    with pytest.raises(RemoteError) as e:
        await within(doc.patch([{"op": "remove", "path": "/n"}]))
    assert e.value.kind == "invalid" and "must contain" in e.value.message
    raw = await cluster.client(B.url, reconnect=False, services={"models": ServiceClient})
    reply = await within(raw.api.models.request(["patch", name, total - 2, [add("/items/-", "late")]]))
    assert reply["conflict"] is True and reply["v"] == total and [v for v, _ in reply["patches"]] == [total - 1, total]
    with pytest.raises(RemoteError) as e:
        await within(raw.api.models.request(["patch", "note:x", 0, []]))
    assert e.value.kind == "invalid" and "no document type 'note'" in e.value.message
    reply = await within(raw.api.models.request(["patch", name, total + 5, [add("/items/-", "future")]]))
    assert reply["conflict"] is True and reply["v"] == total and reply["value"]["n"] == total
    assert (await within(raw.api.models.request(["get", name])))["v"] == total

    # A dies: the follower reconnects to B and catches up with what it missed
    reconnected = nextEvent(follower, "reconnect")
    A.process.signalProcess("KILL")
    await within(A.ended, 10)
    bDocs = docs[WRITERS_PER_NODE:]
    for i, d in enumerate(bDocs):

        def change(value, i=i):
            value["items"].append("after-{}".format(i))
            value["n"] += 1

        await within(d.update(change, retries=200), 20)
    await within(reconnected, 15)
    final = total + len(bDocs)
    await waitUntil(lambda: followed.version == final and all(d.version == final for d in bDocs), seconds=15)
    assert followed.value == bDocs[0].value and followed.value["n"] == final
    assert sorted(followed.value["items"]) == sorted(expected + ["after-{}".format(i) for i in range(len(bDocs))])
    assert seen[-1] == final and seen == sorted(set(seen))
