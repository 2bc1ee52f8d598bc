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
