"""
The multi-node recipe of docs/scaling.md, run for real: two Prism nodes
(C{twistd -n prism --config examples/scaling/node.toml}, the documented file
with only its example addresses and key prefix replaced) sharing the test
run's Redis, behind a real HAProxy running C{examples/scaling/haproxy.cfg}
itself (its addresses come from environment variables), all on 127.0.0.1.

Through HAProxy: stickiness by cookie, pubsub across nodes, the session
kept across reconnections and nodes, X-Forwarded-For reaching Prism;
draining (POST /drain, and SIGTERM with drain_time) marks a node down in
HAProxy while its clients keep working; a stopped or crashed node's
clients reconnect through HAProxy to the other node and recover the
publications they missed.

HAProxy is required: scripts/test installs it (Debian's haproxy package);
without it these tests fail, they never skip.
"""

import os
import re
import secrets
import shutil
import signal
import sys
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet.defer import DeferredList

import procutil
from conftest import RawTCP, handshakeRequest, sleep, waitUntil, within
from redisutil import deleteKeys, freePort, hostPort

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "scaling"
BIN = Path(sys.executable).parent

# What tests/test_haproxy.py replaces in examples/scaling/node.toml (the
# example's addresses and key prefix), and nothing else.
REDIS_URL = '"redis://redis.internal:6379"'
REDIS_HOST = 'host = "redis.internal"'
REDIS_PORT = "port = 6379"
HAPROXY_ADDRESS = '"10.0.0.10"'
PREFIX = '"myapp:'


def haproxyExecutable():
    found = shutil.which("haproxy") or next(
        (p for p in ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy") if os.access(p, os.X_OK)), None
    )
    if found is None:
        pytest.fail(
            "haproxy is not installed: scripts/test installs it (apt-get install haproxy); "
            "these tests never skip"
        )
    return found


def nodeConfig(redisUrl, prefix):
    """@return: examples/scaling/node.toml with the example's addresses and prefix replaced."""
    host, port = hostPort(redisUrl)
    text = (EXAMPLE / "node.toml").read_text()
    for old, new, count in [
        (REDIS_URL, '"redis://{}:{}"'.format(host, port), 1),
        (REDIS_HOST, 'host = "{}"'.format(host), 1),
        (REDIS_PORT, "port = {}".format(port), 1),
        (HAPROXY_ADDRESS, '"127.0.0.1"', 1),  # HAProxy reaches the nodes from 127.0.0.1
        (PREFIX, '"' + prefix, 2),  # the session and pubsub key prefixes
    ]:
        assert text.count(old) == count, "examples/scaling/node.toml changed: {!r} x {}".format(old, text.count(old))
        text = text.replace(old, new)
    return text


class Process(procutil.Collect):
    """A subprocess (node or HAProxy) with its output."""

    name = "?"

    def stop(self, sig="TERM"):
        if not self.ended.called:
            try:
                self.transport.signalProcess(sig)
            except Exception:
                pass
        return self.ended


class Node(Process):
    def ports(self):
        """@return: C{(main port, admin port)} once both listen, else L{None}."""
        admin = re.search(r"Prism admin listening on \S+ \(port (\d+)\)", self.text)
        if admin is None:
            return None
        others = [int(p) for p in re.findall(r"starting on (\d+)", self.text) if p != admin.group(1)]
        return (others[0], int(admin.group(1))) if others else None


class Cluster:
    """Two nodes and HAProxy, on 127.0.0.1; everything is stopped in L{cleanup}."""

    def __init__(self, reactor, directory, redisUrl):
        self.reactor = reactor
        self.directory = directory
        self.redisUrl = redisUrl
        self.prefix = "prism-haproxy-test:{}:".format(secrets.token_hex(4))
        self.processes = []
        self.clients = []
        self.nodes = {}
        self.token = secrets.token_hex(16)

    def spawn(self, proto, executable, args, env):
        self.reactor.spawnProcess(proto, executable, [executable] + args, env=env, path=str(self.directory))
        self.processes.append(proto)
        return proto

    async def start(self):
        haproxy = haproxyExecutable()
        (self.directory / "node.toml").write_text(nodeConfig(self.redisUrl, self.prefix))
        shutil.copy(str(EXAMPLE / "scaling_app.py"), str(self.directory / "scaling_app.py"))
        (self.directory / "secret").write_text(secrets.token_hex(32) + "\n")
        (self.directory / "admin-token").write_text(self.token + "\n")
        for name in ("node1", "node2"):
            node = Node()
            node.name = name
            env = dict(os.environ, PRISM_NODE=name)
            env.pop("PYTHONPATH", None)
            twistd = str(BIN / "twistd")
            self.spawn(node, twistd, [
                "-n", "--pidfile=", "prism", "--config", "node.toml",
                "--listen", "tcp:0:interface=127.0.0.1", "--admin-listen", "tcp:0:interface=127.0.0.1",
            ], env)
            self.nodes[name] = node
        for node in self.nodes.values():
            await waitUntil(lambda: node.ports() is not None or node.ended.called, seconds=30)
            assert not node.ended.called, node.text
            node.port, node.adminPort = node.ports()
        self.port = freePort()
        self.socket = str(self.directory / "haproxy.sock")
        env = dict(
            os.environ,
            PRISM_HAPROXY_BIND="127.0.0.1:{}".format(self.port),
            PRISM_HAPROXY_SOCKET=self.socket,
            PRISM_NODE1="127.0.0.1:{}".format(self.nodes["node1"].port),
            PRISM_NODE1_ADMIN_PORT=str(self.nodes["node1"].adminPort),
            PRISM_NODE2="127.0.0.1:{}".format(self.nodes["node2"].port),
            PRISM_NODE2_ADMIN_PORT=str(self.nodes["node2"].adminPort),
        )
        self.haproxy = Process()
        self.haproxy.name = "haproxy"
        # The documented file itself, in place.
        self.spawn(self.haproxy, haproxy, ["-db", "-f", str(EXAMPLE / "haproxy.cfg")], env)
        await waitUntil(lambda: os.path.exists(self.socket) or self.haproxy.ended.called, seconds=10)
        assert not self.haproxy.ended.called, self.haproxy.text
        await self.waitStatus({"node1": "UP", "node2": "UP"})
        self.url = "ws://127.0.0.1:{}/".format(self.port)
        return self

    # -- HAProxy's runtime API

    async def command(self, line):
        """@return: HAProxy's answer to one command on its stats socket."""
        from twisted.internet.endpoints import UNIXClientEndpoint, connectProtocol

        proto = RawTCP()
        await within(connectProtocol(UNIXClientEndpoint(self.reactor, self.socket), proto))
        proto.transport.write(line.encode("ascii") + b"\n")
        await within(proto.lost)
        return proto.data.decode("utf-8", "replace")

    async def stat(self):
        """@return: C{{server: {column: value}}}, HAProxy's C{show stat} rows of the prism_nodes servers."""
        lines = (await self.command("show stat")).splitlines()
        columns = lines[0].lstrip("# ").split(",")
        result = {}
        for line in lines[1:]:
            row = dict(zip(columns, line.split(",")))
            if row.get("pxname") == "prism_nodes" and row.get("svname") in self.nodes:
                result[row["svname"]] = row
        return result

    async def status(self):
        """@return: C{{server: status}} of the prism_nodes backend (C{"UP"}, C{"DOWN"}, C{"UP 1/2"}, …)."""
        return {name: row["status"] for name, row in (await self.stat()).items()}

    async def handshake(self, cookie=None):
        """@return: C{(status, headers)} of a raw WebSocket handshake through HAProxy."""
        from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

        raw = RawTCP()
        await within(connectProtocol(TCP4ClientEndpoint(self.reactor, "127.0.0.1", self.port), raw))
        try:
            raw.transport.write(handshakeRequest("127.0.0.1:{}".format(self.port), cookie=cookie))
            return await raw.response()
        finally:
            raw.transport.abortConnection()

    @staticmethod
    def serverCookie(headers):
        """@return: the C{SERVERID=…} HAProxy set in a response, or L{None}."""
        cookies = [c.split(";")[0] for c in headers.get("set-cookie", []) if c.startswith("SERVERID=")]
        assert len(cookies) <= 1, headers
        return cookies[0] if cookies else None

    async def waitStatus(self, wanted, seconds=15):
        deadline = self.reactor.seconds() + seconds
        while True:
            found = await self.status()
            if all(found.get(k) == v for k, v in wanted.items()):
                return found
            if self.reactor.seconds() > deadline:
                raise AssertionError("HAProxy reports {}, expected {}".format(found, wanted))
            await sleep(0.1)

    # -- clients through HAProxy

    async def client(self, node=None, **options):
        """@return: a connected client, sent to C{node} by HAProxy's cookie (or balanced)."""
        from prism.client import Client

        headers = dict(options.pop("headers", {}))
        if node is not None:
            headers["Cookie"] = "SERVERID=" + node
        options.setdefault("timeout", 5)
        client = Client(self.url, headers=headers, reactor=self.reactor, **options)
        self.clients.append(client)
        await within(client.connect(), 10)
        return client

    async def admin(self, node, path, method=b"POST", token=True):
        from twisted.web.client import Agent, readBody
        from twisted.web.http_headers import Headers

        headers = Headers({b"authorization": [b"Bearer " + self.token.encode()]} if token else {})
        url = "http://127.0.0.1:{}{}".format(self.nodes[node].adminPort, path).encode("ascii")
        response = await within(Agent(self.reactor).request(method, url, headers))
        return response.code, await within(readBody(response))

    async def cleanup(self):
        for client in self.clients:
            client.close()
        # SIGKILL: a SIGTERM would drain for drain_time first (the failover
        # test checks the graceful stop).
        await DeferredList([within(p.stop("KILL"), 10) for p in self.processes], consumeErrors=True)
        host, port = hostPort(self.redisUrl)
        deleteKeys(port, self.prefix + "*", host)
        for node in self.nodes.values():
            assert "Traceback (most recent call last)" not in node.text, node.text


@pytest_twisted.async_yield_fixture
async def cluster(redis_url, tmp_path):
    from twisted.internet import reactor

    c = Cluster(reactor, tmp_path, redis_url)
    try:
        await c.start()
        yield c
    finally:
        await c.cleanup()


def event(emitter, name, seconds):
    """@return: a L{Deferred} firing with the next C{name} event's arguments, bounded by C{seconds}."""
    from twisted.internet.defer import Deferred

    d = Deferred()

    def handler(*args):
        emitter.off(name, handler)
        if not d.called:
            d.callback(args)

    emitter.on(name, handler)
    return within(d, seconds)


async def whoami(client):
    return await within(client.api.rpc.call("scaling_app.whoami"))


def collector():
    got = []

    def handler(data, channel):
        got.append(data)

    handler.got = got
    return handler


def _assertCleanExit(proto):
    assert proto.exitCode == 0 or (proto.exitCode is None and proto.signal == signal.SIGTERM), proto.text
    assert "Traceback (most recent call last)" not in proto.text, proto.text


# -- the tests


def test_the_example_haproxy_configuration_is_valid():
    import subprocess

    out = subprocess.run(
        [haproxyExecutable(), "-c", "-f", str(EXAMPLE / "haproxy.cfg")], capture_output=True, text=True, timeout=10
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_documented_files_are_the_example_files():
    text = (ROOT / "docs" / "scaling.md").read_text()
    for name in ("haproxy.cfg", "node.toml", "scaling_app.py"):
        content = (EXAMPLE / name).read_text()
        assert content.rstrip("\n") in text, "docs/scaling.md does not include examples/scaling/" + name


@pytest_twisted.ensureDeferred
async def test_stickiness_pubsub_and_sessions_across_nodes(cluster):
    # A first request gets HAProxy's cookie naming its node; presented
    # again, it reaches that node (and is not set again).
    status, headers = await cluster.handshake()
    assert status == 101
    cookie = cluster.serverCookie(headers)
    assert cookie in ("SERVERID=node1", "SERVERID=node2"), headers
    status, headers = await cluster.handshake(cookie=cookie)
    assert status == 101 and cluster.serverCookie(headers) is None, headers

    # Clients presenting it stay on their node.
    a = await cluster.client("node1", headers={"X-Forwarded-For": "198.51.100.7"})
    b = await cluster.client("node2")
    # On one host the client's own address is HAProxy's too: what it sends
    # stands for an address HAProxy saw, appended to by HAProxy's
    # option forwardfor, and believed from trusted_proxies.
    assert await whoami(a) == {"node": "node1", "address": "198.51.100.7"}
    assert await whoami(b) == {"node": "node2", "address": "127.0.0.1"}

    # PubSub across the nodes, both ways.
    channel = "chat." + secrets.token_hex(4)
    ga, gb = collector(), collector()
    await within(a.api.pubsub.subscribe(channel, ga))
    await within(b.api.pubsub.subscribe(channel, gb))
    await within(a.api.pubsub.publish(channel, "from node1"))
    await within(b.api.pubsub.publish(channel, "from node2"))
    await waitUntil(lambda: len(ga.got) == 2 and len(gb.got) == 2)
    assert ga.got == gb.got == ["from node1", "from node2"]

    # The session survives a dropped connection (same node, by the cookie)...
    assert await within(a.api.rpc.call("scaling_app.remember", "blue")) is True
    token = a.session
    reconnected = event(a, "reconnect", 10)
    a._link._protocol.transport.abortConnection()  # the network drops it
    (welcome,) = await reconnected
    assert welcome["session"] == token
    assert (await whoami(a))["node"] == "node1"
    assert await within(a.api.rpc.call("scaling_app.recall")) == "blue"
    # ...and is the same session on the other node.
    c = await cluster.client("node2", session=token)
    assert c.session == token
    assert (await whoami(c))["node"] == "node2"
    assert await within(c.api.rpc.call("scaling_app.recall")) == "blue"
    # A resubscribed client still gets the publications.
    await within(b.api.pubsub.publish(channel, "after the reconnection"))
    await waitUntil(lambda: ga.got[-1:] == ["after the reconnection"])


@pytest_twisted.ensureDeferred
async def test_admin_drain_marks_a_node_down_and_undrain_back_up(cluster):
    held = await cluster.client("node2")
    assert (await whoami(held))["node"] == "node2"
    assert (await cluster.admin("node2", "/drain", token=False))[0] == 401
    code, body = await cluster.admin("node2", "/drain")
    assert code == 200 and b"draining" in body
    assert (await cluster.admin("node2", "/health", method=b"GET", token=False))[0] == 503
    await cluster.waitStatus({"node1": "UP", "node2": "DOWN"})
    # Its clients keep working; a new client asking for node2 lands on node1.
    assert (await whoami(held))["node"] == "node2"
    moved = await cluster.client("node2")
    assert (await whoami(moved))["node"] == "node1"
    assert (await cluster.admin("node2", "/undrain"))[0] == 200
    await cluster.waitStatus({"node1": "UP", "node2": "UP"})
    back = await cluster.client("node2")
    assert (await whoami(back))["node"] == "node2"


@pytest_twisted.ensureDeferred
async def test_sigterm_drains_then_clients_fail_over_and_recover(cluster):
    reactor = cluster.reactor
    node1 = cluster.nodes["node1"]
    channel = "chat.feed." + secrets.token_hex(4)
    # Reconnect a second after a close, no jitter: what is published in
    # that second can only come back through recovery.
    sub = await cluster.client("node1", initialDelay=1.0, jitter=0)
    pub = await cluster.client("node2")
    got = collector()
    unrecovered = []
    sub.on("unrecovered", unrecovered.append)
    await within(sub.api.pubsub.subscribe(channel, got))
    await within(pub.api.pubsub.publish(channel, 1))
    await waitUntil(lambda: got.got == [1])

    goingAway = []
    sub.on("going_away", goingAway.append)
    node1.transport.signalProcess("TERM")
    started = reactor.seconds()
    await cluster.waitStatus({"node1": "DOWN", "node2": "UP"}, seconds=10)
    # Draining: node1's clients keep working, new ones go to node2.
    assert not goingAway and reactor.seconds() - started < 5
    assert (await whoami(sub))["node"] == "node1"
    await within(pub.api.pubsub.publish(channel, 2))
    await waitUntil(lambda: got.got == [1, 2])
    assert (await whoami(await cluster.client("node1")))["node"] == "node2"

    # After drain_time: going_away, the close, and meanwhile 3 and 4.
    order = []
    published = []

    def closed(code, reason):
        sub.off("close", closed)
        order.append(("close", code))
        for n in (3, 4):
            d = pub.api.pubsub.publish(channel, n)
            d.addCallback(lambda _, n=n: order.append(("published", n)))
            published.append(d)

    sub.on("close", closed)
    sub.on("reconnect", lambda welcome: order.append(("reconnect",)))
    await waitUntil(lambda: goingAway, seconds=10)
    assert goingAway == ["server shutting down"] and reactor.seconds() - started >= 4.5  # drain_time = 5
    await waitUntil(lambda: ("reconnect",) in order, seconds=15)
    await within(DeferredList(published, fireOnOneErrback=True))
    assert order == [("close", 1001), ("published", 3), ("published", 4), ("reconnect",)], order
    await waitUntil(lambda: len(got.got) == 4, seconds=10)
    assert got.got == [1, 2, 3, 4] and unrecovered == []
    assert (await whoami(sub))["node"] == "node2"
    await within(pub.api.pubsub.publish(channel, 5))
    await waitUntil(lambda: got.got == [1, 2, 3, 4, 5])
    await within(node1.ended, 20)
    _assertCleanExit(node1)
    assert "Prism draining" in node1.text


@pytest_twisted.ensureDeferred
async def test_crashed_node_clients_reconnect_through_haproxy_and_recover(cluster):
    node2 = cluster.nodes["node2"]
    channel = "chat.crash." + secrets.token_hex(4)
    sub = await cluster.client("node2", initialDelay=0.5, jitter=0)
    pub = await cluster.client("node1")
    got = collector()
    await within(sub.api.pubsub.subscribe(channel, got))
    await within(pub.api.pubsub.publish(channel, "before"))
    await waitUntil(lambda: got.got == ["before"])
    closed = event(sub, "close", 10)
    reconnected = event(sub, "reconnect", 20)
    node2.transport.signalProcess("KILL")  # no going_away, no drain
    await within(node2.ended, 10)
    # HAProxy needs two failed checks, a second apart, to mark node2 down;
    # meanwhile a connection node2 refuses is retried on node1 at once
    # (retries, option redispatch 1), even for a client whose cookie names node2.
    before = await cluster.stat()
    status, headers = await cluster.handshake(cookie="SERVERID=node2")
    assert status == 101 and cluster.serverCookie(headers) == "SERVERID=node1", headers
    if before["node2"]["status"].startswith("UP"):
        assert int((await cluster.stat())["node2"]["wredis"]) > int(before["node2"]["wredis"])
    await closed
    await within(pub.api.pubsub.publish(channel, "missed"))
    await reconnected
    await waitUntil(lambda: got.got == ["before", "missed"], seconds=10)
    assert (await whoami(sub))["node"] == "node1"
    await cluster.waitStatus({"node1": "UP", "node2": "DOWN"})
