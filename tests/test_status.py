"""
The status dashboard (C{prism/status.py}, C{docs/status.md}): the rates a
sample holds, the sampler on a fake clock, the C{[admin] dashboard} keys,
and a real C{twistd -n prism --config} with an admin listener, its token
checks (401/403) and the C{prism.status} channel read through
C{/status/ws} while Python clients put RPC load on the server.

The same server in headless Chromium, with a screenshot:
C{tests/test_status_browser.py}. The helpers below (L{StatusRun},
L{RPCLoad}) are shared with it.
"""

import json
import os
import signal
import socket
import sys
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet.defer import DeferredList, succeed

import procutil
from conftest import WAIT, handshakeRequest, sleep, waitUntil, within

BIN = Path(sys.executable).parent

# Importing twisted.web.static (the config's site) warns about its own module-level resources.
pytestmark = [
    pytest.mark.filterwarnings("ignore:twisted.web.resource._Unsafe:DeprecationWarning"),
    # Agent's HTTP/1.1 responses (a Twisted quirk; the bodies are read in full).
    pytest.mark.filterwarnings("ignore:Using readBody with a transport:DeprecationWarning"),
]
TOKEN = "status-test-token-0123456789"

HANDLERS = '''\
def add(a, b):
    return a + b


def slow(seconds):
    """Answer after a while: the latency chart gets a spread (p50 < p99)."""
    from twisted.internet import reactor
    from twisted.internet.task import deferLater

    return deferLater(reactor, min(float(seconds), 0.2), lambda: seconds)
'''


def freePort():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def writeConfig(directory, port, adminPort, interval=0.5, history=60):
    """A prism.toml with rpc and pubsub services and an admin listener with the dashboard."""
    (directory / "status_load_handlers.py").write_text(HANDLERS)
    path = directory / "prism.toml"
    path.write_text(
        'pythonpath = ["."]\n'
        'listen = ["tcp:{port}:interface=127.0.0.1"]\n'
        'secret = "a-secret-of-enough-length"\n'
        "\n"
        "[admin]\n"
        'listen = ["tcp:{admin}:interface=127.0.0.1"]\n'
        'token = "{token}"\n'
        "metrics = true\n"
        "dashboard = true\n"
        "dashboard_interval = {interval}\n"
        "dashboard_history = {history}\n"
        "\n"
        "[[services]]\n"
        'name = "rpc"\n'
        'handlers = "status_load_handlers"\n'
        "\n"
        "[[services]]\n"
        'name = "pubsub"\n'
        "history_size = 10\n".format(port=port, admin=adminPort, token=TOKEN, interval=interval, history=history)
    )
    return path


async def httpGet(reactor, url, headers=None):
    """@return: C{(status, headers, body)} of a GET, bounded by L{within}."""
    from twisted.web.client import Agent, readBody
    from twisted.web.http_headers import Headers

    agent = Agent(reactor)
    response = await within(agent.request(b"GET", url.encode("ascii"), Headers(headers or {})))
    body = await within(readBody(response))
    return response.code, response.headers, body


class StatusRun:
    """
    C{twistd -n prism --config} with the dashboard, on free 127.0.0.1 ports.

    @ivar url: the main WebSocket URL. @ivar admin: the admin listener's base URL.
    """

    def __init__(self, reactor, directory, interval=0.5, history=60):
        self.reactor = reactor
        self.port = freePort()
        self.adminPort = freePort()
        self.url = "ws://127.0.0.1:{}/".format(self.port)
        self.admin = "http://127.0.0.1:{}".format(self.adminPort)
        self.statusSocket = "ws://127.0.0.1:{}/status/ws?token={}".format(self.adminPort, TOKEN)
        self.config = writeConfig(directory, self.port, self.adminPort, interval, history)
        self.directory = directory
        self.proto = None
        self.process = None

    async def start(self):
        env = dict(os.environ)
        env.pop("PYTHONPATH", None)
        self.proto = procutil.Collect()
        twistd = str(BIN / "twistd")
        argv = [twistd, "-n", "--pidfile=", "prism", "--config", str(self.config)]
        self.process = self.reactor.spawnProcess(self.proto, twistd, argv, env=env, path=str(self.directory))
        deadline = self.reactor.seconds() + 20
        while True:  # until the admin listener answers /health with 200
            assert not self.proto.ended.called, self.proto.text
            try:
                code, _, _ = await httpGet(self.reactor, self.admin + "/health")
                if code == 200:
                    return self
            except Exception:
                pass
            assert self.reactor.seconds() < deadline, "the server did not start:\n" + self.proto.text
            await sleep(0.1)

    async def stop(self):
        """SIGTERM, then wait (SIGKILL if it hangs); @return: the output."""
        if self.proto is None or self.proto.ended.called:
            return self.proto.text if self.proto else ""
        self.process.signalProcess("TERM")
        try:
            await within(self.proto.ended, 15)
        except Exception:
            self.process.signalProcess("KILL")
            raise
        return self.proto.text

    def kill(self):
        if self.proto is not None and not self.proto.ended.called:
            try:
                self.process.signalProcess("KILL")
            except Exception:
                pass


class RPCLoad:
    """
    A few Python clients calling the server's RPC methods in paced batches
    (about 200 calls per second each), with a slow call now and then and an
    unknown method once in a while (an error per second or so), until
    L{stop} or C{seconds} pass.
    """

    def __init__(self, harness, url, clients=4, seconds=30.0):
        self.harness = harness
        self.url = url
        self.count = clients
        self.seconds = seconds
        self.calls = 0
        self.errors = 0
        self.stopped = False
        self.done = None

    async def start(self):
        clients = [await self.harness.connect(self.url, reconnect=False) for _ in range(self.count)]
        self.done = DeferredList([within(self._worker(c, i), self.seconds + WAIT) for i, c in enumerate(clients)])
        return self

    async def _worker(self, client, index):
        from prism.errors import RemoteError

        reactor = self.harness.reactor
        deadline = reactor.seconds() + self.seconds
        n = 0
        while not self.stopped and reactor.seconds() < deadline and client.connected:
            for _ in range(10):
                n += 1
                if n % 97 == index:
                    try:
                        await within(client.api.rpc.call("nope"))
                    except RemoteError:
                        self.errors += 1
                    continue
                if n % 7 == 0:
                    await within(client.api.rpc.call("status_load_handlers.slow", 0.02))
                else:
                    assert await within(client.api.rpc.call("status_load_handlers.add", n, 1)) == n + 1
                self.calls += 1
            await sleep(0.05)

    async def stop(self):
        self.stopped = True
        if self.done is not None:
            await self.done


@pytest_twisted.async_yield_fixture
async def statusRun(reactor, tmp_path):
    """A running L{StatusRun}, killed in teardown if the test did not stop it."""
    run = StatusRun(reactor, tmp_path)
    try:
        yield run
    finally:
        run.kill()


# -- samples


def test_quantile_interpolates_within_buckets_like_prometheus():
    from prism.status import quantile

    bounds = (0.001, 0.01, 0.1)
    assert quantile(bounds, [0, 0, 0, 0], 0.5) is None
    assert quantile(bounds, [10, 0, 0, 0], 0.5) == pytest.approx(0.0005)  # half way into [0, 1 ms]
    assert quantile(bounds, [50, 50, 0, 0], 0.5) == pytest.approx(0.001)
    assert quantile(bounds, [50, 50, 0, 0], 0.75) == pytest.approx(0.0055)  # half way into ]1, 10 ms]
    assert quantile(bounds, [0, 0, 99, 1], 0.99) == pytest.approx(0.1)
    assert quantile(bounds, [0, 0, 0, 5], 0.5) == 0.1  # beyond every bound: the largest one


def _totals(**changes):
    totals = {
        "state": "running",
        "open": {"websocket": 2},
        "in": 0,
        "out": 0,
        "bytesIn": 0,
        "bytesOut": 0,
        "errors": {},
        "drops": 0,
        "slowConsumers": 0,
        "published": 0,
        "delivered": 0,
        "inflight": 0,
        "rpcBounds": (0.001, 0.01, 0.1),
        "rpc": [0, 0, 0, 0],
    }
    totals.update(changes)
    return totals


def test_sample_holds_rates_over_the_interval():
    from prism.status import sampleOf

    before = _totals(**{"in": 100, "out": 50, "errors": {"handler": 3}, "rpc": [10, 0, 0, 0]})
    after = _totals(
        **{
            "open": {"websocket": 3, "sockjs": 1},
            "in": 300,
            "out": 250,
            "bytesIn": 4000,
            "errors": {"handler": 5, "unknown_method": 2},
            "drops": 4,
            "published": 8,
            "delivered": 80,
            "inflight": 2,
            "rpc": [10, 90, 10, 0],  # the window: 90 in ]1, 10 ms], 10 in ]10, 100 ms]
        }
    )
    sample = sampleOf(before, after, 2.0)
    assert sample["connections"] == 4 and sample["transports"] == {"websocket": 3, "sockjs": 1}
    assert (sample["in"], sample["out"], sample["bytesIn"]) == (100.0, 100.0, 2000.0)
    assert sample["errors"] == 2.0 and sample["errorKinds"] == {"handler": 1.0, "unknown_method": 1.0}
    assert (sample["drops"], sample["publishes"], sample["deliveries"]) == (2.0, 4.0, 40.0)
    assert sample["rpc"]["calls"] == 50.0
    assert 0.001 < sample["rpc"]["p50"] < 0.01 < sample["rpc"]["p99"] <= 0.1
    assert sample["inflight"] == 2 and sample["state"] == "running"
    json.dumps(sample)  # published as JSON
    # No RPC ended in the interval: no latency (a gap in the chart), not 0.
    quiet = sampleOf(after, after, 1.0)
    assert quiet["rpc"] == {"calls": 0.0, "p50": None, "p99": None} and quiet["in"] == 0.0
    # Counters never run backwards into negative rates.
    assert sampleOf(after, before, 1.0)["in"] == 0.0


def test_dashboard_publishes_samples_with_history_on_a_fake_clock():
    from prism.client import Client
    from prism.services.rpc import RPCService
    from prism.status import CHANNEL, StatusDashboard
    from prism.testing import PrismTestServer, resultOf
    from prism.transports.loopback import LoopbackTransport

    ts = PrismTestServer(services={"rpc": RPCService(handlers={"add": lambda a, b: a + b})})
    dashboard = StatusDashboard(ts.server, interval=1.0, history=3)
    dashboard.startService()
    assert ts.server.metrics is not None  # the dashboard turned metrics on
    client = ts.client()
    for i in range(10):
        assert resultOf(client.api.rpc.call("add", i, 1)) == i + 1
    ts.clock.advance(1.0)
    first = dashboard.latest
    assert first["seq"] == 1 and first["connections"] == 1 and first["state"] == "running"
    assert first["in"] >= 10 and first["out"] >= 10 and first["rpc"]["calls"] == 10.0
    assert first["rpc"]["p99"] is not None
    for _ in range(4):
        ts.clock.advance(1.0)
    assert dashboard.latest["seq"] == 5 and dashboard.latest["in"] == 0.0

    # A client of the dashboard's own server gets the last `history` samples back.
    loopback = LoopbackTransport()
    viewer = Client(connector=lambda: succeed(loopback.connect(dashboard.statusServer)), reactor=ts.clock)
    resultOf(viewer.connect())
    live = []
    position = resultOf(viewer.api.pubsub.subscribe(CHANNEL, lambda data, channel: live.append(data)))
    assert position["offset"] == 5
    backlog = resultOf(
        viewer.api.pubsub.request(["sub", CHANNEL, {"recover": {"offset": 5 - 3, "epoch": position["epoch"]}}])
    )
    assert backlog["recovered"] and [data["seq"] for _, data in backlog["publications"]] == [3, 4, 5]
    ts.clock.advance(1.0)
    assert [s["seq"] for s in live] == [6]
    # Dashboard viewers are not counted in the figures they watch.
    assert live[0]["connections"] == 1
    # ... and may not publish.
    with pytest.raises(Exception) as caught:
        resultOf(viewer.api.pubsub.publish(CHANNEL, {"seq": 99}))
    assert getattr(caught.value, "kind", None) == "forbidden"

    resultOf(dashboard.stopService())
    ts.clock.advance(5.0)
    assert dashboard.latest["seq"] == 6  # the sampler stopped
    assert not dashboard.statusServer.running


def test_dashboard_rejects_bad_options():
    from prism.errors import PrismConfigError
    from prism.server import Server
    from prism.status import StatusDashboard

    for options in ({"interval": 0}, {"interval": True}, {"history": 0}, {"history": 1.5}, {"maxViewers": 0}):
        with pytest.raises(PrismConfigError):
            StatusDashboard(Server(), **options)


def test_dashboard_is_refused_without_an_admin_token():
    """needsToken: a 403 when the admin listener has no token, never an open page."""
    from twisted.web.test.requesthelper import DummyRequest

    from prism.admin import AdminResource
    from prism.server import Server
    from prism.status import StatusDashboard

    server = Server()
    root = AdminResource(server, token=None, pages={"status": StatusDashboard(server)})
    for path in ([b"status"], [b"status", b"ws"]):
        request = DummyRequest(path)
        child = root.getChildWithDefault(path[0], request)
        child.render(request)
        assert request.responseCode == 403


# -- configuration


def _load(tmp_path, admin):
    from prism.config import loadConfig

    path = tmp_path / "prism.toml"
    path.write_text('[[services]]\nname = "echo"\n\n[admin]\n' + admin)
    return loadConfig(str(path))


def test_config_dashboard_keys(tmp_path):
    from prism.status import StatusDashboard

    config = _load(
        tmp_path,
        'listen = ["tcp:0:interface=127.0.0.1"]\ntoken = "{}"\ndashboard = true\n'
        "dashboard_interval = 0.25\ndashboard_history = 240\n".format(TOKEN),
    )
    assert (config.admin.dashboard, config.admin.dashboardInterval, config.admin.dashboardHistory) == (True, 0.25, 240)
    assert "/status (dashboard: a sample every 0.25 s, 240 kept)" in "\n".join(config.summary())
    page = config.admin.buildService(config.buildServer()).pages["status"]
    assert isinstance(page, StatusDashboard) and (page.interval, page.history) == (0.25, 240)
    # Defaults.
    config = _load(tmp_path, 'listen = ["tcp:0"]\ntoken = "{}"\ndashboard = true\n'.format(TOKEN))
    assert (config.admin.dashboardInterval, config.admin.dashboardHistory) == (1.0, 120)
    assert "status" not in _load(tmp_path, 'listen = ["tcp:0"]\n').admin.buildService(config.buildServer()).pages


@pytest.mark.parametrize(
    "admin, message",
    [
        ('listen = ["tcp:0"]\ndashboard = true\n', "admin.dashboard: the status dashboard needs the admin token"),
        ('listen = ["tcp:0"]\ntoken = "{}"\ndashboard = "yes"\n'.format(TOKEN), "admin.dashboard: expected a boolean"),
        (
            'listen = ["tcp:0"]\ntoken = "{}"\ndashboard = true\ndashboard_interval = 0\n'.format(TOKEN),
            "admin.dashboard_interval: expected a number of seconds from 0.05 to 3600, found integer 0",
        ),
        (
            'listen = ["tcp:0"]\ntoken = "{}"\ndashboard = true\ndashboard_history = 100000\n'.format(TOKEN),
            "admin.dashboard_history: expected an integer from 1 to 3600",
        ),
        ('listen = ["tcp:0"]\ndashboard_history = 10\n', "admin.dashboard_history: only used with admin.dashboard = true"),
        ("dashboard = true\n", "admin.dashboard: only used with admin.listen"),
    ],
)
def test_config_dashboard_errors(tmp_path, admin, message):
    from prism.errors import PrismConfigError

    with pytest.raises(PrismConfigError) as caught:
        _load(tmp_path, admin)
    assert message in str(caught.value)


# -- a real server


@pytest_twisted.ensureDeferred
async def test_dashboard_of_a_running_server(prism, reactor, statusRun):
    from prism.status import CHANNEL

    run = await statusRun.start()
    bearer = {b"authorization": [b"Bearer " + TOKEN.encode("ascii")]}

    # Without the token (or with a wrong one): 401, for the page and its socket.
    for url in ("/status", "/status/", "/status?token=not-the-token", "/status/ws"):
        code, headers, body = await httpGet(reactor, run.admin + url)
        assert code == 401, (url, code, body)
        assert headers.getRawHeaders(b"www-authenticate") == [b'Bearer realm="prism admin"']
    raw = await prism.raw(run.adminPort, handshakeRequest("127.0.0.1:{}".format(run.adminPort), "/status/ws"))
    assert (await raw.response())[0] == 401
    # With the token, but from another site's page: 403 (same-origin only).
    raw = await prism.raw(
        run.adminPort,
        handshakeRequest(
            "127.0.0.1:{}".format(run.adminPort), "/status/ws?token=" + TOKEN, origin="http://evil.example"
        ),
    )
    assert (await raw.response())[0] == 403
    # /health stays public; the page needs the token, by header or query.
    assert (await httpGet(reactor, run.admin + "/health"))[0] == 200
    code, headers, body = await httpGet(reactor, run.admin + "/status", bearer)
    assert code == 200 and headers.getRawHeaders(b"content-type") == [b"text/html; charset=utf-8"]
    csp = headers.getRawHeaders(b"content-security-policy")[0].decode()
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp
    assert headers.getRawHeaders(b"cache-control") == [b"no-store"]
    assert b"<title>Prism status</title>" in body and b"var Prism = " in body  # the client, inlined
    assert b"__PRISM_" not in body
    assert (await httpGet(reactor, run.admin + "/status?token=" + TOKEN))[0] == 200

    # An application client subscribed to everything never sees the samples:
    # prism.status lives on the dashboard's own server.
    app = await prism.connect(run.url, reconnect=False)
    seen = []
    await within(app.api.pubsub.subscribe("*", lambda data, channel: seen.append(channel)))

    load = await RPCLoad(prism, run.url, clients=3, seconds=20).start()
    try:
        viewer = await prism.connect(run.statusSocket, reconnect=False)
        assert [name for name, *_ in viewer.welcome["services"]] == ["pubsub"]
        samples = []
        await within(viewer.api.pubsub.subscribe(CHANNEL, lambda data, channel: samples.append(data)))
        await waitUntil(lambda: len(samples) >= 3 and samples[-1]["in"] > 0, seconds=10)
        # The channel's history: every sample since the start (one publication each, seq = offset).
        position = await within(viewer.api.pubsub.request(["sub", CHANNEL, {}]))
        assert position["offset"] >= 3
        start = max(0, position["offset"] - 60)
        backlog = await within(
            viewer.api.pubsub.request(["sub", CHANNEL, {"recover": {"offset": start, "epoch": position["epoch"]}}])
        )
        assert backlog["recovered"]
        assert [data["seq"] for _, data in backlog["publications"]] == list(range(start + 1, position["offset"] + 1))
    finally:
        await load.stop()
    assert all(s["state"] == "running" for s in samples)
    busy = [s for s in samples if s["rpc"]["calls"] > 0]
    assert len(busy) >= 2
    for sample in busy:
        assert sample["connections"] == 4  # the load's 3 clients and the app client; not the viewer
        assert sample["transports"] == {"websocket": 4}
        assert sample["in"] > 0 and sample["out"] > 0 and sample["bytesIn"] > 0
        assert sample["rpc"]["p50"] is not None and sample["rpc"]["p99"] >= sample["rpc"]["p50"]
    assert load.calls > 100 and load.errors > 0
    await waitUntil(lambda: any(s["errorKinds"].get("unknown_method") for s in samples), seconds=5)
    assert seen == []

    output = await run.stop()
    assert run.proto.exitCode == 0 or run.proto.signal == signal.SIGTERM, output
    assert "Traceback (most recent call last)" not in output, output
    await waitUntil(lambda: not viewer.connected)
