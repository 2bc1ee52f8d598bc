"""
The core end-to-end scenario over every transport: one parametrized fixture
serves a Prism server (rpc, echo, pubsub with an allow-all C{authorize},
sessions on) over C{websocket}, C{engineio} and C{sockjs} on 127.0.0.1, and
the same scenario runs against each with the generated JavaScript client
under Node.js (C{tests/js/transports_e2e.mjs}, over C{ws},
C{engine.io-client} and C{sockjs-client}) and, where the Python client
supports the transport (C{websocket}, C{engineio}), with the Python client:
the handshake, an RPC result and an RPC error with its kind, an echo push, a
pubsub message published by the server, unicode and a 200 KB message in
order, and the session surviving a reconnection and presented as a cookie.
"""

import json
import os
import shutil
from pathlib import Path

import pytest
import pytest_twisted

from conftest import nextEvent, waitUntil, within
from prism.errors import RemoteError
from prism.server import ServiceError
from prism.services.echo import EchoService
from prism.services.pubsub import PubSubService
from prism.services.rpc import RPCService, withRequest
from prism.transports.engineio import EngineIOTransport
from prism.transports.sockjs import SockJSTransport
from prism.transports.websocket import WebSocketTransport

ROOT = Path(__file__).resolve().parents[1]
NODE_MODULES = ROOT / "node_modules"
SCENARIO = ROOT / "tests" / "js" / "transports_e2e.mjs"
NODE_TIMEOUT = 20.0
TRANSPORTS = ["websocket", "engineio", "sockjs"]
PACKAGES = {"websocket": "ws", "engineio": "engine.io-client", "sockjs": "sockjs-client"}


def add(a, b):
    return a + b


def fail(x):
    raise ServiceError("invalid", "bad input: " + x)


@withRequest
def announce(request, text):
    request.server.api.pubsub.publish("news", {"text": text})
    return "published"


@withRequest
def kick(request):
    request.server.reactor.callLater(0, request.connection.close)
    return True


@withRequest
def login(request, user):
    request.session["user"] = user
    return True


@withRequest
def whoami(request):
    return request.session.get("user")


def allowAll(request, action, channel):
    return True


class Mounted:
    """A served transport: C{name}, C{served} (L{conftest.Served}), C{url}."""

    def __init__(self, name, served, url):
        self.name = name
        self.served = served
        self.server = served.server
        self.url = url


@pytest_twisted.async_yield_fixture
async def mounted(request, prism):
    """Parametrized indirectly with the transport's name."""
    name = request.param
    transport = {"websocket": WebSocketTransport, "engineio": EngineIOTransport, "sockjs": SockJSTransport}[name]()
    handlers = {f.__name__: f for f in (add, fail, announce, kick, login, whoami)}
    served = await prism.serve(
        {
            "rpc": RPCService(handlers=handlers, sessions=True),
            "echo": EchoService(),
            "pubsub": PubSubService(authorize=allowAll),
        },
        transport=transport,
    )
    url = {
        "websocket": served.url,
        "engineio": "http://{}/engine.io/".format(served.host),
        "sockjs": "http://{}/".format(served.host),
    }[name]
    yield Mounted(name, served, url)


def _node():
    node = shutil.which("node")
    assert node is not None, "Node.js is required: apt-get install nodejs npm (scripts/test does)"
    for package in PACKAGES.values():
        assert (NODE_MODULES / package / "package.json").exists(), (
            "{} is missing from {}: run `npm ci` at the repository root (scripts/test does)".format(package, NODE_MODULES)
        )
    return node


@pytest.mark.parametrize("mounted", TRANSPORTS, indirect=True)
@pytest_twisted.ensureDeferred
async def test_generated_js_client(mounted, tmp_path):
    from twisted.internet.utils import getProcessOutputAndValue

    node = _node()
    client = tmp_path / "prism-client.cjs"
    client.write_text(mounted.server.build_client(format="cjs"), encoding="utf-8")
    (tmp_path / "node_modules").symlink_to(NODE_MODULES)  # where the client's import() looks
    out, err, code = await within(
        getProcessOutputAndValue(
            node, [str(SCENARIO), str(client), mounted.url, mounted.name], env=dict(os.environ), path=str(tmp_path)
        ),
        NODE_TIMEOUT,
    )
    out, err = out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
    assert code == 0, (out, err)
    seen = json.loads(out.strip().splitlines()[-1])
    assert "fatal" not in seen, seen

    assert seen["services"] == ["rpc", "echo", "pubsub"] and seen["hasSession"]
    assert seen["add"] == 5
    assert seen["fail"] == {"kind": "invalid", "message": "bad input: x", "isError": True}
    assert seen["push"] == "hi there"
    assert seen["announced"] == "published"
    assert seen["messages"] == [["news", {"text": "from the server ✓"}], ["news", {"from": "client"}]]
    assert seen["inOrder"] is True and seen["largeLength"] == 200 * 1024
    assert seen["login"] is True
    assert seen["sameSessionOnReconnect"] is True and seen["whoamiAfterReconnect"] == "ada"
    assert seen["cookieSameSession"] is True and seen["cookieWhoami"] == "ada"
    assert seen["closeCode"] == 1000
    await waitUntil(lambda: not mounted.server.connections)


# The Python client speaks WebSocket and Engine.IO (not SockJS).
@pytest.mark.parametrize("mounted", ["websocket", "engineio"], indirect=True)
@pytest_twisted.ensureDeferred
async def test_python_client(mounted, prism):
    options = {"transport": "engineio"} if mounted.name == "engineio" else {}
    client = await prism.connect(mounted.url, reconnect=True, initialDelay=0.05, **options)
    assert sorted(vars(client.api)) == ["echo", "pubsub", "rpc"] and client.session

    assert await within(client.api.rpc.call("add", 2, 3)) == 5
    with pytest.raises(RemoteError) as caught:
        await within(client.api.rpc.call("fail", "x"))
    assert (caught.value.kind, caught.value.message) == ("invalid", "bad input: x")

    received = []
    client.api.echo.on(received.append)
    client.api.echo.send("hi there")
    await waitUntil(lambda: received == ["hi there"])

    messages = []
    await within(client.api.pubsub.subscribe("news", lambda data, channel: messages.append((channel, data))))
    assert await within(client.api.rpc.call("announce", "from the server ✓")) == "published"
    await waitUntil(lambda: messages == [("news", {"text": "from the server ✓"})])

    values = ["héllo ☃ 😀 \u2028 \u0000", "y" * (200 * 1024)] + ["m{}é".format(i) for i in range(20)]
    del received[:]
    for value in values:
        client.api.echo.send(value)
    await waitUntil(lambda: len(received) == len(values))
    assert received == values

    assert await within(client.api.rpc.call("login", "ada")) is True
    token = client.session
    reconnected = nextEvent(client, "reconnect")
    await within(client.api.rpc.call("kick"))
    await reconnected
    assert client.session == token
    assert await within(client.api.rpc.call("whoami")) == "ada"

    other = await prism.connect(mounted.url, headers={"Cookie": "prism.sid=" + token}, **options)
    assert other.session == token
    assert await within(other.api.rpc.call("whoami")) == "ada"
