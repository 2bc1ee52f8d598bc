"""
The operations listener (C{prism.admin}, C{[admin]}) and draining: health
answers 200 while serving and 503 while draining or stopping, the token
guards everything but /health, POST /drain and /undrain, /health on the
main port of a web site, C{drain_time} before the graceful stop (with a
fake clock, and under the real C{twistd} on SIGTERM), and the validation
of C{[admin]}. The multi-node recipe behind HAProxy: tests/test_haproxy.py.
"""

import json

import pytest
import pytest_twisted
from twisted.internet.testing import MemoryReactorClock
from twisted.web.resource import Resource

from conftest import sleep, waitUntil, within
from prism.admin import AdminService, healthOf
from prism.config import configFromDict, loadConfig
from prism.errors import PrismConfigError
from prism.services.echo import EchoService
from prism.service import OrderedMultiService, PrismService
from prism.testing import PrismTestServer, resultOf
from test_tap import run  # noqa: F401  (the run fixture)

TOKEN = "admin-token-0123456789"


async def http(reactor, url, method=b"GET", headers=None):
    """@return: C{(status, headers, body)} of one request, bounded."""
    from twisted.web.client import Agent, readBody
    from twisted.web.http_headers import Headers

    agent = Agent(reactor)
    response = await within(agent.request(method, url.encode("ascii"), Headers(headers or {})))
    body = await within(readBody(response))
    return response.code, response.headers, body


def decoded(body):
    return json.loads(body.decode("utf-8"))


class Admin:
    """An L{AdminService} on 127.0.0.1 for a started server; stopped in teardown."""

    def __init__(self, reactor):
        self.reactor = reactor
        self.services = []

    async def start(self, server, **options):
        service = AdminService(server, ["tcp:0:interface=127.0.0.1"], **options)
        service.startService()
        self.services.append(service)
        await within(service.listening)
        assert service.ports, "the admin service did not listen"
        return "http://127.0.0.1:{}".format(service.ports[0].getHost().port)

    async def stop(self):
        for service in self.services:
            if service.running:
                await within(service.stopService())


@pytest_twisted.async_yield_fixture
async def admin():
    from twisted.internet import reactor

    a = Admin(reactor)
    try:
        yield a
    finally:
        await a.stop()


# -- health


@pytest_twisted.ensureDeferred
async def test_health_follows_the_server_state(prism, admin, reactor):
    served = await prism.serve({"echo": EchoService()})
    server = served.server
    base = await admin.start(server)
    code, headers, body = await http(reactor, base + "/health")
    assert (code, decoded(body)) == (200, {"status": "ok"})
    assert headers.getRawHeaders(b"content-type") == [b"application/json"]
    assert headers.getRawHeaders(b"cache-control") == [b"no-store"]
    events = []
    server.events.on("drain", lambda: events.append("drain"))
    server.events.on("undrain", lambda: events.append("undrain"))

    server.drain()
    assert server.state == "draining"
    code, _, body = await http(reactor, base + "/health")
    assert (code, decoded(body)) == (503, {"status": "draining"})
    client = await prism.connect(served.url, reconnect=False)  # still accepting, still serving
    assert await within(client.api.echo.request("while draining")) == "while draining"
    code, _, _ = await http(reactor, base + "/health", method=b"HEAD")
    assert code == 503
    server.undrain()
    code, _, body = await http(reactor, base + "/health")
    assert (code, decoded(body)) == (200, {"status": "ok"})
    assert events == ["drain", "undrain"]

    stopping = server.stop()
    assert server.state == "stopping"
    assert healthOf(server) == (503, {"status": "stopping"})
    await within(stopping)
    code, _, body = await http(reactor, base + "/health")
    assert (code, decoded(body)) == (503, {"status": "stopped"})


def test_stop_ends_a_drain():
    ts = PrismTestServer(services={"echo": EchoService()})
    ts.server.drain()
    assert ts.server.drainedAt == ts.clock.seconds()
    resultOf(ts.server.stop())
    assert ts.server.state == "stopped" and not ts.server.draining and ts.server.drainedAt is None


# -- the token


@pytest_twisted.ensureDeferred
async def test_the_token_guards_everything_but_health(prism, admin, reactor):
    served = await prism.serve({"echo": EchoService()})
    server = served.server
    base = await admin.start(server, token=TOKEN)
    bearer = {b"authorization": [b"Bearer " + TOKEN.encode()]}

    assert (await http(reactor, base + "/health"))[0] == 200  # no token needed
    for url, headers in [
        (base + "/drain", None),
        (base + "/drain", {b"authorization": [b"Bearer wrong-token-0123456789"]}),
        (base + "/drain", {b"authorization": [b"Basic " + TOKEN.encode()]}),
        (base + "/drain?token=" + TOKEN[:-1], None),
    ]:
        code, headers_, body = await http(reactor, url, method=b"POST", headers=headers)
        assert (code, decoded(body)) == (401, {"error": "unauthorized"}), url
        assert headers_.getRawHeaders(b"www-authenticate") == [b'Bearer realm="prism admin"']
    assert not server.draining
    code, _, body = await http(reactor, base + "/", headers=None)
    assert code == 401

    code, _, body = await http(reactor, base + "/drain", method=b"POST", headers=bearer)
    assert (code, decoded(body)) == (200, {"status": "draining"}) and server.draining
    assert (await http(reactor, base + "/health"))[0] == 503
    code, _, body = await http(reactor, base + "/undrain?token=" + TOKEN, method=b"POST")
    assert (code, decoded(body)) == (200, {"status": "ok"}) and not server.draining
    assert (await http(reactor, base + "/drain", headers=bearer))[0] == 405  # GET: POST only
    assert (await http(reactor, base + "/nothing-here", headers=bearer))[0] == 404
    code, _, body = await http(reactor, base + "/", headers=bearer)
    assert (code, decoded(body)) == (200, {"pages": ["/drain", "/health", "/undrain"]})


@pytest_twisted.ensureDeferred
async def test_without_a_token_drain_is_refused_and_reading_is_open(prism, admin, reactor):
    served = await prism.serve({"echo": EchoService()})
    base = await admin.start(served.server)
    code, _, body = await http(reactor, base + "/drain", method=b"POST")
    assert code == 403 and "token" in decoded(body)["error"]
    assert not served.server.draining
    assert (await http(reactor, base + "/"))[0] == 200
    assert (await http(reactor, base + "/health"))[0] == 200


class _Page(Resource):
    isLeaf = True

    def __init__(self, server):
        Resource.__init__(self)
        self.prism = server  # (not .server: Resource.putChild sets that one)

    def render_GET(self, request):
        return b"connections %d\n" % len(self.prism.connections)


@pytest_twisted.ensureDeferred
async def test_more_pages_are_built_for_the_server_and_guarded(prism, admin, reactor):
    served = await prism.serve({"echo": EchoService()})
    base = await admin.start(served.server, token=TOKEN, health=False, pages={"status": _Page})
    assert (await http(reactor, base + "/status"))[0] == 401
    code, _, body = await http(reactor, base + "/status?token=" + TOKEN)
    assert (code, body) == (200, b"connections 0\n")
    assert (await http(reactor, base + "/health?token=" + TOKEN))[0] == 404  # health = false


@pytest_twisted.ensureDeferred
async def test_metrics_page_from_the_configuration(prism, admin, reactor, tmp_path):
    path = tmp_path / "prism.toml"
    path.write_text(
        '[admin]\nlisten = "tcp:0:interface=127.0.0.1"\nmetrics = true\ntoken = "%s"\n'
        '[[services]]\nname = "echo"\n' % TOKEN
    )
    config = loadConfig(str(path))
    assert config.admin.pages == ["metrics"]
    served = await prism.serve({"echo": EchoService()})
    service = config.admin.buildService(served.server)
    service.endpoints = ["tcp:0:interface=127.0.0.1"]
    admin.services.append(service)
    service.startService()
    await within(service.listening)
    base = "http://127.0.0.1:{}".format(service.ports[0].getHost().port)
    assert (await http(reactor, base + "/metrics"))[0] == 401
    code, _, body = await http(reactor, base + "/metrics", headers={b"authorization": [b"Bearer " + TOKEN.encode()]})
    assert code == 200 and body


# -- draining before the graceful stop


def test_drain_time_drains_before_the_graceful_stop():
    ts = PrismTestServer(services={"echo": EchoService()})
    client = ts.client()
    goingAway = []
    client.on("going_away", goingAway.append)
    service = PrismService(ts.server, drainTime=5)
    service.running = True
    stopped = []
    service.stopService().addBoth(stopped.append)
    assert ts.server.state == "draining" and ts.server.running
    ts.clock.advance(4.9)
    assert resultOf(client.api.echo.request("still served")) == "still served"
    assert not stopped and not goingAway
    ts.clock.advance(0.2)
    assert goingAway == ["server shutting down"]
    ts.clock.advance(PrismService.closeTimeout)
    assert stopped == [None] and ts.server.state == "stopped"


def test_an_earlier_drain_counts_towards_drain_time():
    ts = PrismTestServer(services={"echo": EchoService()})
    ts.server.drain()  # an operator's POST /drain
    ts.clock.advance(3)
    service = PrismService(ts.server, drainTime=5)
    service.running = True
    stopped = []
    service.stopService().addBoth(stopped.append)
    ts.clock.advance(1.9)
    assert ts.server.state == "draining"
    ts.clock.advance(0.2)
    assert ts.server.state == "stopped" and stopped == [None]


def test_no_drain_time_stops_at_once():
    ts = PrismTestServer(services={"echo": EchoService()})
    service = PrismService(ts.server)
    service.running = True
    stopped = []
    service.stopService().addBoth(stopped.append)
    assert stopped == [None] and ts.server.state == "stopped"


def test_ordered_multiservice_stops_the_last_child_first_and_waits():
    from twisted.application.service import Service
    from twisted.internet.defer import Deferred

    log = []
    waits = {}

    class Child(Service):
        def __init__(self, name):
            self.setName(name)

        def stopService(self):
            Service.stopService(self)
            log.append(self.name)
            waits[self.name] = Deferred()
            return waits[self.name]

    top = OrderedMultiService()
    for name in ("admin", "prism"):
        Child(name).setServiceParent(top)
    top.startService()
    done = []
    top.stopService().addBoth(done.append)
    assert log == ["prism"]
    waits["prism"].callback(None)
    assert log == ["prism", "admin"] and not done
    waits["admin"].callback(None)
    assert done == [None]


_SIGTERM_HANDLERS = "def ping():\n    return 'pong'\n"


@pytest_twisted.ensureDeferred
async def test_twistd_sigterm_drains_then_stops(prism, run, tmp_path, reactor):  # noqa: F811
    import re
    import signal

    (tmp_path / "drain_handlers.py").write_text(_SIGTERM_HANDLERS)
    (tmp_path / "prism.toml").write_text(
        'pythonpath = ["."]\nlisten = "tcp:0:interface=127.0.0.1"\ndrain_time = 2\n'
        '[admin]\nlisten = "tcp:0:interface=127.0.0.1"\ntoken = "%s"\n'
        '[[services]]\nname = "rpc"\nhandlers = "drain_handlers"\n' % TOKEN
    )
    proto, transport = run("twistd", "-n", "--pidfile=", "prism", "--config", str(tmp_path / "prism.toml"))

    def started():
        return "Prism admin listening" in proto.text and len(re.findall(r"starting on \d+", proto.text)) >= 2

    await waitUntil(lambda: proto.ended.called or started(), seconds=20)
    assert not proto.ended.called, proto.text
    adminPort = int(re.search(r"Prism admin listening on \S+ \(port (\d+)\)", proto.text).group(1))
    mainPorts = [int(p) for p in re.findall(r"starting on (\d+)", proto.text) if int(p) != adminPort]
    assert len(mainPorts) == 1, proto.text
    base = "http://127.0.0.1:{}".format(adminPort)
    assert (await http(reactor, base + "/health"))[0] == 200
    client = await prism.connect("ws://127.0.0.1:{}/".format(mainPorts[0]), reconnect=False)
    goingAway = []
    client.on("going_away", goingAway.append)

    transport.signalProcess("TERM")
    await waitUntil(lambda: "Prism draining" in proto.text, seconds=5)
    code, _, body = await http(reactor, base + "/health")
    assert (code, decoded(body)) == (503, {"status": "draining"})
    assert await within(client.api.rpc.call("drain_handlers.ping")) == "pong"  # still served
    late = await prism.connect("ws://127.0.0.1:{}/".format(mainPorts[0]), reconnect=False)  # still accepting
    assert await within(late.api.rpc.call("drain_handlers.ping")) == "pong"
    assert not goingAway
    await waitUntil(lambda: goingAway, seconds=5)
    assert goingAway == ["server shutting down"]
    await within(proto.ended, 15)
    assert proto.exitCode == 0 or (proto.exitCode is None and proto.signal == signal.SIGTERM), proto.text
    assert "Traceback (most recent call last)" not in proto.text, proto.text
    assert "Main loop terminated" in proto.text
    await sleep(0)


# -- configuration


def _config(tmp_path, text, name="prism.toml"):
    path = tmp_path / name
    path.write_text(text + '\n[[services]]\nname = "echo"\n')
    return loadConfig(str(path))


def _errors(tmp_path, text):
    with pytest.raises(PrismConfigError) as info:
        _config(tmp_path, text)
    prefix = str(tmp_path / "prism.toml") + ": "
    assert all(line.startswith(prefix) for line in info.value.errors), info.value.errors
    return [line[len(prefix):] for line in info.value.errors]


def test_admin_defaults(tmp_path):
    config = _config(tmp_path, "")
    assert config.admin.listen == [] and config.admin.token is None and config.admin.health is True
    assert config.admin.pages == [] and config.drainTime == 0
    top = config.buildService(reactor=MemoryReactorClock())
    assert isinstance(top, OrderedMultiService) and [s.name for s in top] == ["prism"]
    assert top.getServiceNamed("prism").drainTime == 0


def test_admin_section(tmp_path):
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "admin-token").write_text(TOKEN + "\n")
    config = _config(
        tmp_path,
        'drain_time = 4.5\n[admin]\nlisten = ["tcp:9001:interface=127.0.0.1", "unix:/tmp/prism-admin.sock"]\n'
        'token_file = "secrets/admin-token"\nhealth = true\n',
    )
    assert config.admin.listen == ["tcp:9001:interface=127.0.0.1", "unix:/tmp/prism-admin.sock"]
    assert config.admin.token == TOKEN and config.drainTime == 4.5
    summary = "\n".join(config.summary())
    assert TOKEN not in summary
    assert "admin:      tcp:9001:interface=127.0.0.1, unix:/tmp/prism-admin.sock (/health, /drain; token from token_file {})".format(
        tmp_path / "secrets" / "admin-token") in summary
    assert "stop:       drain 4.5 s, then requests in flight get 10 s" in summary
    top = config.buildService(reactor=MemoryReactorClock())
    assert [s.name for s in top] == ["admin", "prism"]  # prism stops first
    admin = top.getServiceNamed("admin")
    assert isinstance(admin, AdminService) and admin.token == TOKEN and admin.endpoints == config.admin.listen
    assert top.getServiceNamed("prism").drainTime == 4.5


def test_admin_errors_are_all_reported(tmp_path):
    errors = _errors(
        tmp_path,
        'drain_time = "5s"\n[admin]\nlisten = ["tpc:9001"]\ntoken = "short"\nhealth = "yes"\nmetrics = 1\nextra = 1\n',
    )
    # (The accepted keys go on with those of later pages: the dashboard's.)
    assert errors[1].startswith("admin.extra: unknown key (accepted keys: listen, token, token_file, health, metrics")
    errors[1] = "admin.extra: unknown key"
    assert errors == [
        'drain_time: expected a number of seconds >= 0, found string "5s"',
        "admin.extra: unknown key",
        'admin.listen[0]: expected a Twisted endpoint string (like "tcp:9001:interface=127.0.0.1"), found string '
        "\"tpc:9001\" (Unknown endpoint type: 'tpc')",
        'admin.health: expected a boolean (true or false), found string "yes"',
        "admin.metrics: expected a boolean (true or false), found integer 1",
        "admin.token: expected a string of at least 16 characters, without surrounding whitespace, found a string of 5 characters",
    ]
    assert "short" not in " ".join(errors[-1:]).replace("characters", "")


def test_admin_token_errors(tmp_path):
    assert _errors(tmp_path, '[admin]\nlisten = "tcp:9001"\ntoken = "%s"\ntoken_file = "x"\n' % TOKEN) == [
        "admin.token_file: expected either token or token_file, found both"
    ]
    (error,) = _errors(tmp_path, '[admin]\nlisten = "tcp:9001"\ntoken_file = "missing"\n')
    assert error.startswith('admin.token_file: expected a readable UTF-8 text file, found string "missing" (')
    (tmp_path / "short").write_text("abc\n")
    (error,) = _errors(tmp_path, '[admin]\nlisten = "tcp:9001"\ntoken_file = "short"\n')
    assert error.startswith("admin.token_file: expected a file holding at least 16 characters, found 3 characters in ")
    assert _errors(tmp_path, '[admin]\ntoken = "%s"\n' % TOKEN) == [
        "admin.token: only used with admin.listen (the admin listener's endpoints); set it or remove token"
    ]
    assert _errors(tmp_path, "admin = 3\n") == ["admin: expected a table ([admin]), found integer 3"]


def test_metrics_needs_the_metrics_module(tmp_path):
    try:
        import prism.metrics  # noqa: F401
    except ImportError:
        available = False
    else:
        available = True
    if available:
        config = _config(tmp_path, '[admin]\nlisten = "tcp:9001"\nmetrics = true\n')
        assert config.admin.pages == ["metrics"]
    else:
        (error,) = _errors(tmp_path, '[admin]\nlisten = "tcp:9001"\nmetrics = true\n')
        assert error.startswith("admin.metrics: expected false (the metrics page is not available), found boolean true")
    assert _config(tmp_path, '[admin]\nlisten = "tcp:9001"\nmetrics = false\n').admin.pages == []


def test_health_on_the_main_port_of_a_web_site(tmp_path):
    (tmp_path / "www").mkdir()
    config = _config(tmp_path, 'static = "www"\n')
    server = config.buildServer(reactor=MemoryReactorClock())
    site = config.buildSite(server)
    health = site.resource.children[b"health"]
    server.start()
    assert healthOf(health.prism) == (200, {"status": "ok"})
    assert "admin:      /health on the main port" in "\n".join(config.summary())
    config = _config(tmp_path, 'static = "www"\n[admin]\nhealth = false\n')
    site = config.buildSite(config.buildServer(reactor=MemoryReactorClock()))
    assert b"health" not in site.resource.children
    assert _errors(tmp_path, 'static = "www"\npath = "/health"\n') == [
        "path: /health is the health check in a web site; choose another path or set [admin] health = false"
    ]
    errors = _errors(tmp_path, 'static = "www"\n[[mounts]]\npath = "/health/ws"\ntransport = "websocket"\n')
    assert errors == [
        "mounts[0].path: /health is the health check in a web site; choose another path or set [admin] health = false"
    ]
    config = _config(tmp_path, 'static = "www"\npath = "/health"\n[admin]\nhealth = false\n')
    assert config.path == "/health"


def test_admin_listen_override(tmp_path):
    from prism.tap import Options

    config = _config(tmp_path, '[admin]\nlisten = "tcp:9001"\n')
    config.override(adminListen=["tcp:9101:interface=127.0.0.1"])
    assert config.admin.listen == ["tcp:9101:interface=127.0.0.1"]
    with pytest.raises(PrismConfigError) as info:
        config.override(listen=["tcp:nope"], adminListen=["tcp:nope2"])
    assert [e.split(",")[0] for e in info.value.errors] == [
        '--listen: expected a Twisted endpoint string',
        '--admin-listen: expected a Twisted endpoint string',
    ]
    options = Options()
    options.parseOptions(["--config", str(tmp_path / "prism.toml"), "--admin-listen", "tcp:9201"])
    assert options.config.admin.listen == ["tcp:9201"]
    from twisted.python.usage import UsageError

    with pytest.raises(UsageError) as info:
        Options().parseOptions(["--admin-listen", "tcp:9201"])
    assert "--admin-listen needs --config" in str(info.value)


def test_config_from_dict_admin():
    config = configFromDict({"admin": {"listen": "tcp:9001", "token": TOKEN}, "services": [{"name": "echo"}]})
    assert config.admin.listen == ["tcp:9001"] and config.admin.tokenSource == "token"
