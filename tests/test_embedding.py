"""
Embedding Prism in a Twisted host: mounted in a twisted.web site next to
ordinary pages (examples/embed_web.py), and run as a PrismService child of a
MultiService.
"""

import importlib.util
from pathlib import Path

import pytest
import pytest_twisted
from twisted.application.service import MultiService
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol, serverFromString
from twisted.internet.error import ConnectionRefusedError
from twisted.web.client import Agent, readBody
from twisted.web.http_headers import Headers

from conftest import RawTCP, nextEvent, waitUntil, within
from prism.server import Server
from prism.service import PrismService
from prism.services.echo import EchoService
from prism.services.rpc import RPCService

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "embed_web.py"


@pytest.fixture(scope="module")
def embedWeb():
    spec = importlib.util.spec_from_file_location("prism_example_embed_web", str(EXAMPLE))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_build_does_not_touch_the_network(embedWeb):
    from twisted.internet.testing import MemoryReactorClock

    clock = MemoryReactorClock()
    site, server = embedWeb.build(reactor=clock)
    assert server.running
    assert [s[0] for s in server.services()] == ["rpc", "echo"]
    assert b"ws" in site.resource.children
    assert clock.tcpServers == []


# Twisted's own Agent response transport lacks abortConnection; not ours to fix.
@pytest.mark.filterwarnings("ignore:Using readBody with a transport:DeprecationWarning")
@pytest_twisted.ensureDeferred
async def test_page_and_prism_share_one_port(prism, reactor, embedWeb):
    site, server = embedWeb.build(reactor=reactor, secret=b"embedded")
    prism._servers.append(server)
    port = prism.track(await within(serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(site)))
    base = "127.0.0.1:{}".format(port.getHost().port)

    agent = Agent(reactor)
    response = await within(agent.request(b"GET", "http://{}/".format(base).encode("ascii"), Headers({})))
    body = await within(readBody(response))
    assert response.code == 200
    assert response.headers.getRawHeaders(b"content-type") == [b"text/html; charset=utf-8"]
    assert body == embedWeb.PAGE
    missing = await within(agent.request(b"GET", "http://{}/nope".format(base).encode("ascii")))
    await within(readBody(missing))
    assert missing.code == 404

    client = await prism.connect("ws://{}/ws".format(base))
    assert await within(client.api.rpc.call("add", 2, 3)) == 5
    assert await within(client.api.echo.request("hi")) == "hi"
    assert len(server.connections) == 1


@pytest_twisted.ensureDeferred
async def test_prism_service_in_a_multiservice(prism, reactor):
    server = Server(reactor=reactor, secret=b"service")
    server.service("rpc", RPCService(handlers={"add": lambda a, b: a + b}))
    server.service("echo", EchoService())
    parent = MultiService()
    service = PrismService(server, ["tcp:0:interface=127.0.0.1"])
    service.setServiceParent(parent)
    prism._servers.append(server)

    parent.startService()
    try:
        assert service.running and server.running
        await within(service.listening)
        (port,) = service.ports
        portNumber = port.getHost().port
        client = await prism.connect("ws://127.0.0.1:{}/".format(portNumber), reconnect=False)
        assert await within(client.api.rpc.call("add", 40, 2)) == 42
        goingAway = nextEvent(client, "going_away")
        closed = nextEvent(client, "close")
    finally:
        stopped = parent.stopService()
    await within(stopped)

    assert await goingAway == "server shutting down"
    assert (await closed)[0] == 1001
    assert not service.running and not server.running
    await waitUntil(lambda: not server.connections)
    with pytest.raises(ConnectionRefusedError):
        await within(connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", portNumber), RawTCP()))


# -- examples/embed_app.py: Prism as a child service of an existing application

import os  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402

from procutil import Collect  # noqa: E402

from prism.errors import RemoteError  # noqa: E402

EMBED_APP = EXAMPLE.parent / "embed_app.py"


@pytest.fixture(scope="module")
def embedApp():
    spec = importlib.util.spec_from_file_location("prism_example_embed_app", str(EMBED_APP))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _freePort():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _getJSON(reactor, url):
    import json

    agent = Agent(reactor)
    response = await within(agent.request(b"GET", url.encode("ascii")))
    body = await within(readBody(response))
    assert response.code == 200
    return json.loads(body)


def test_embed_app_build_does_not_touch_the_network(embedApp):
    from twisted.internet.testing import MemoryReactorClock

    from prism.testing import resultOf

    clock = MemoryReactorClock()
    top = embedApp.makeService(reactor=clock, web="tcp:4080", listen="tcp:4001")
    assert [s.name for s in top] == ["ticker", "web", "prism"]
    assert isinstance(top.getServiceNamed("prism"), PrismService)
    assert clock.tcpServers == [] and not top.server.running
    top.startService()
    assert sorted(p[0] for p in clock.tcpServers) == [4001, 4080]
    assert top.server.running
    clock.advance(1.0)
    assert top.state.ticks == 2  # TimerService ticks at once, then every second
    resultOf(top.stopService())
    assert not top.server.running


@pytest.mark.filterwarnings("ignore:Using readBody with a transport:DeprecationWarning")
@pytest_twisted.ensureDeferred
async def test_embed_app_serves_and_stops_with_its_application(prism, reactor, embedApp):
    webPort = _freePort()
    top = embedApp.makeService(
        reactor=reactor,
        web="tcp:{}:interface=127.0.0.1".format(webPort),
        listen="tcp:0:interface=127.0.0.1",
        tick=0.05,
        secret=b"embedded-app",
    )
    prism._servers.append(top.server)
    top.startService()
    try:
        ports, listening = embedApp.prismPorts(top)
        await within(listening)
        (port,) = ports
        portNumber = port.getHost().port
        client = await prism.connect("ws://127.0.0.1:{}/".format(portNumber), reconnect=False)
        # Prism's handlers share the application's state; the application
        # follows Prism's event bus.
        assert await within(client.api.rpc.call("host.note", "hello")) == 1
        status = await within(client.api.rpc.call("host.status"))
        assert status["online"] == 1 and status["notes"] == ["hello"]
        failure = client.api.rpc.call("host.note", "")
        with pytest.raises(RemoteError) as info:
            await within(failure)
        assert info.value.kind == "invalid"
        assert await within(client.api.echo.request("hi")) == "hi"
        await waitUntil(lambda: top.state.ticks >= 3)  # the periodic job runs alongside
        page = await _getJSON(reactor, "http://127.0.0.1:{}/".format(webPort))
        assert page["online"] == 1 and page["notes"] == ["hello"]
        goingAway = nextEvent(client, "going_away")
        closed = nextEvent(client, "close")
    finally:
        stopped = top.stopService()
    await within(stopped, 10)
    assert await goingAway == "server shutting down"
    assert (await closed)[0] == 1001
    assert not top.server.running and not top.getServiceNamed("ticker").running
    await waitUntil(lambda: top.state.online == 0)
    for number in (portNumber, webPort):
        with pytest.raises(ConnectionRefusedError):
            await within(connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", number), RawTCP()))


@pytest_twisted.ensureDeferred
async def test_embed_app_with_a_config_file(prism, reactor, embedApp, tmp_path):
    (tmp_path / "embed_cfg_handlers.py").write_text("def add(a, b):\n    return a + b\n")
    config = tmp_path / "prism.toml"
    config.write_text(
        'pythonpath = ["."]\nlisten = ["tcp:0:interface=127.0.0.1"]\nsecret = "an-embedded-secret-value"\n'
        '[[services]]\nname = "rpc"\nhandlers = "embed_cfg_handlers"\n'
    )
    top = embedApp.makeService(reactor=reactor, web="tcp:0:interface=127.0.0.1", config=str(config))
    prism._servers.append(top.server)
    top.startService()
    try:
        ports, listening = embedApp.prismPorts(top)
        await within(listening)
        client = await prism.connect("ws://127.0.0.1:{}/".format(ports[0].getHost().port), reconnect=False)
        assert await within(client.api.rpc.call("embed_cfg_handlers.add", 2, 3)) == 5
        assert top.state.online == 1
        closed = nextEvent(client, "close")
    finally:
        stopped = top.stopService()
    await within(stopped, 10)
    assert (await closed)[0] == 1001


@pytest.mark.filterwarnings("ignore:Using readBody with a transport:DeprecationWarning")
@pytest_twisted.ensureDeferred
async def test_embed_app_as_a_tac_file_under_twistd(prism, reactor, tmp_path):
    webPort, prismPort = _freePort(), _freePort()
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env["PRISM_EMBED_WEB"] = "tcp:{}:interface=127.0.0.1".format(webPort)
    env["PRISM_EMBED_LISTEN"] = "tcp:{}:interface=127.0.0.1".format(prismPort)
    twistd = str(Path(sys.executable).parent / "twistd")
    proto = Collect()
    transport = reactor.spawnProcess(
        proto, twistd, [twistd, "-n", "--pidfile=", "-y", str(EMBED_APP)], env=env, path=str(tmp_path)
    )
    try:
        started = "WebSocketServerFactory starting on {}".format(prismPort)
        await waitUntil(lambda: started in proto.text or proto.ended.called, seconds=20)
        assert not proto.ended.called, proto.text
        client = await prism.connect("ws://127.0.0.1:{}/".format(prismPort), reconnect=False)
        assert await within(client.api.rpc.call("host.note", "from a test")) == 1
        page = await _getJSON(reactor, "http://127.0.0.1:{}/".format(webPort))
        assert page["notes"] == ["from a test"] and page["online"] == 1
        goingAway = nextEvent(client, "going_away")
        transport.signalProcess("TERM")
        await within(proto.ended, 10)
        assert await goingAway == "server shutting down"
    finally:
        if not proto.ended.called:
            transport.signalProcess("KILL")
    assert proto.exitCode == 0 or (proto.exitCode is None and proto.signal == signal.SIGTERM), proto.text
    assert "Main loop terminated" in proto.text
    assert "Traceback (most recent call last)" not in proto.text, proto.text
