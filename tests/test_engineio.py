"""
The C{engineio} transport over real sockets on 127.0.0.1: the official
clients (npm C{engine.io-client} 6 under Node.js, python-engineio's client)
in every mode against the raw echo mount, the protocol's error behaviour,
heartbeat and clean-up, the Prism pipeline over Engine.IO (the Python
client, and the generated JavaScript client), and the configuration.
"""

import json
import os
import shutil
from io import BytesIO
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet.defer import ensureDeferred
from twisted.internet.threads import deferToThread
from twisted.internet.utils import getProcessOutputAndValue
from twisted.web.client import Agent, FileBodyProducer, readBody
from twisted.web.http_headers import Headers
from twisted.web.resource import Resource
from twisted.web.server import Site

from conftest import sleep, waitUntil, within
from prism.errors import PrismConfigError, RemoteError
from prism.services.echo import EchoService
from prism.services.rpc import RPCService, withRequest
from prism.transports.engineio import EngineIOTransport, decodePayload

ROOT = Path(__file__).resolve().parents[1]
EXCHANGE = ROOT / "tests" / "engineio" / "exchange.js"


def add(a, b):
    return a + b


@withRequest
def visits(request):
    request.session["n"] = request.session.get("n", 0) + 1
    return request.session["n"]


def _node():
    node = shutil.which("node")
    assert node is not None, "Node.js is required (apt-get install nodejs)"
    assert (ROOT / "node_modules" / "engine.io-client" / "package.json").exists(), "run npm ci (scripts/test does)"
    return node


async def echoMount(prism, **options):
    """An echo-handler Engine.IO mount at /engine.io/; @return: (base URL, resource)."""
    root = Resource()
    resource = EngineIOTransport(**options).echoResource(prism.reactor)
    root.putChild(b"engine.io", resource)
    port = prism.track(prism.reactor.listenTCP(0, Site(root), interface="127.0.0.1"))
    prism._engineMounts.append(resource)
    return "http://127.0.0.1:{}/engine.io/".format(port.getHost().port), resource


async def http(prism, method, url, body=None, headers=None):
    agent = Agent(prism.reactor)
    response = await within(
        agent.request(
            method, url.encode("ascii"), Headers(headers or {}), FileBodyProducer(BytesIO(body)) if body is not None else None
        )
    )
    return response.code, (await within(readBody(response))).decode("utf-8")


@pytest.fixture(autouse=True)
def _closeMounts(prism):
    prism._engineMounts = []
    yield
    for resource in prism._engineMounts:
        resource.closeAll()


# -- the official clients against the echo mount


@pytest.mark.parametrize("mode", ["polling", "websocket", "upgrade"])
@pytest_twisted.ensureDeferred
async def test_engineio_client_every_mode(prism, mode):
    url, resource = await echoMount(prism)
    out, err, code = await within(
        getProcessOutputAndValue(_node(), [str(EXCHANGE), url, mode], env=dict(os.environ), path=str(ROOT)), 30
    )
    assert code == 0, err.decode()
    seen = json.loads(out.decode().strip().splitlines()[-1])
    assert seen["inOrder"] is True and seen["count"] == 43, seen
    assert seen["first"] == "héllo wörld ✓ 😀"
    assert seen["transports"] == {"polling": ["polling"], "websocket": ["websocket"], "upgrade": ["polling", "websocket"]}[mode]
    assert seen["finalTransport"] == ("polling" if mode == "polling" else "websocket")
    await waitUntil(lambda: not resource.sessions)


def _pythonExchange(url, transports):
    import threading

    import engineio

    from prism.client import _orderedEngineIOClient

    # python-engineio runs each message handler in a thread of its own, so
    # its plain Client may hand messages over out of order; the subclass
    # Prism's Python client uses delivers them from the reading thread.
    client = _orderedEngineIOClient(engineio)()
    got = []
    done = threading.Event()
    sent = ["héllo ✓", b"\x00\x01\xffbinary"] + ["m{}".format(i) for i in range(40)] + ["y" * 200000]

    @client.on("message")
    def message(data):
        got.append(data)
        if len(got) == len(sent):
            done.set()

    client.connect(url, transports=transports, engineio_path="engine.io")
    for m in sent:
        client.send(m)
    ok = done.wait(10)
    transport = client.transport()
    client.disconnect()
    return ok, got == sent, transport


@pytest.mark.parametrize("transports", [["polling"], ["websocket"], ["polling", "websocket"]])
@pytest_twisted.ensureDeferred
async def test_python_engineio_client(prism, transports):
    url, resource = await echoMount(prism)
    base = url.rsplit("/engine.io/", 1)[0]
    ok, inOrder, transport = await within(deferToThread(_pythonExchange, base, transports), 20)
    assert ok and inOrder
    assert transport == transports[-1]
    await waitUntil(lambda: not resource.sessions)


# -- the protocol, raw


def _open(body):
    assert body[0] == "0", body
    return json.loads(body[1:])


@pytest_twisted.ensureDeferred
async def test_handshake_and_errors(prism):
    url, resource = await echoMount(prism, pingInterval=5, pingTimeout=3, maxPayload=1000, nodeName="a")
    code, body = await http(prism, b"GET", url + "?EIO=4&transport=polling")
    assert code == 200
    handshake = _open(body)
    assert handshake["upgrades"] == ["websocket"]
    assert (handshake["pingInterval"], handshake["pingTimeout"], handshake["maxPayload"]) == (5000, 3000, 1000)
    sid = handshake["sid"]
    assert sid.endswith(".a")

    async def error(method, query, body=None, headers=None):
        code, text = await http(prism, method, url + query, body, headers)
        return code, json.loads(text)

    assert await error(b"GET", "?EIO=4&transport=carrier") == (400, {"code": 0, "message": "Transport unknown"})
    assert await error(b"GET", "?EIO=4&transport=polling&sid=nope") == (400, {"code": 1, "message": "Session ID unknown"})
    code, other = await error(b"GET", "?EIO=4&transport=polling&sid=x.b")
    assert code == 400 and other["code"] == 1 and "sticky" in other["message"] and "'b'" in other["message"]
    assert await error(b"POST", "?EIO=4&transport=polling", b"4x") == (400, {"code": 2, "message": "Bad handshake method"})
    assert await error(b"GET", "?EIO=3&transport=polling") == (400, {"code": 5, "message": "Unsupported protocol version"})
    code, refused = await error(b"GET", "?EIO=4&transport=polling", headers={"Origin": ["http://evil.example"]})
    assert code == 403 and refused["code"] == 4

    # Messages, batched: a burst of 40 comes back in polls of at most 16 packets.
    poll = "?EIO=4&transport=polling&sid=" + sid
    burst = "\x1e".join("4m{}".format(i) for i in range(40)).encode()
    assert await http(prism, b"POST", url + poll, burst[:990]) == (200, "ok")
    got = []
    while len(got) < len(burst[:990].split(b"\x1e")):
        code, body = await http(prism, b"GET", url + poll)
        packets = decodePayload(body)
        assert code == 200 and len(packets) <= 16
        got += [d for k, d, b in packets if k == "4"]
    assert got[:3] == ["m0", "m1", "m2"]

    # Binary, base64 in polling.
    assert await http(prism, b"POST", url + poll, b"bAAEC/w==") == (200, "ok")
    code, body = await http(prism, b"GET", url + poll)
    assert decodePayload(body) == [("4", b"\x00\x01\x02\xff", True)]

    # Overlapping polls: the second is refused and the session closes.
    first = ensureDeferred(http(prism, b"GET", url + poll))
    await sleep(0.1)
    code, body = await http(prism, b"GET", url + poll)
    assert code == 400
    code, body = await first
    assert body == "1"
    assert sid not in resource.sessions

    # A body beyond maxPayload: 413, and the session is closed.
    sid = _open((await http(prism, b"GET", url + "?EIO=4&transport=polling"))[1])["sid"]
    code, _ = await http(prism, b"POST", url + "?EIO=4&transport=polling&sid=" + sid, b"4" + b"z" * 2000)
    assert code == 413
    assert sid not in resource.sessions


@pytest_twisted.ensureDeferred
async def test_abandoned_polling_session_times_out(prism):
    url, resource = await echoMount(prism, pingInterval=0.2, pingTimeout=0.2)
    sid = _open((await http(prism, b"GET", url + "?EIO=4&transport=polling"))[1])["sid"]
    assert sid in resource.sessions
    # A client that answers the ping stays...
    code, body = await http(prism, b"GET", url + "?EIO=4&transport=polling&sid=" + sid)
    assert body == "2"
    assert await http(prism, b"POST", url + "?EIO=4&transport=polling&sid=" + sid, b"3") == (200, "ok")
    # ...one that stops polling is cleaned up.
    await waitUntil(lambda: sid not in resource.sessions, 3)


@pytest_twisted.ensureDeferred
async def test_slow_poller_is_closed(prism):
    url, resource = await echoMount(prism, maxOutgoingBuffer=10000)
    sid = _open((await http(prism, b"GET", url + "?EIO=4&transport=polling"))[1])["sid"]
    socket = resource.sessions[sid]
    for _ in range(20):
        socket.send("x" * 1000)
    assert socket.state == "closed"
    code, body = await http(prism, b"GET", url + "?EIO=4&transport=polling&sid=" + sid)
    assert body == "1"
    assert sid not in resource.sessions


def test_options_are_checked():
    for bad in (dict(pingInterval=0), dict(maxPayload=0), dict(transports=["carrier"]), dict(allowedOrigins="*"),
                dict(handler="other"), dict(nodeName="a.b")):
        with pytest.raises(PrismConfigError):
            EngineIOTransport(**bad)


# -- Prism over Engine.IO


@pytest.mark.parametrize("transports", [["polling"], ["websocket"], ["polling", "websocket"]])
@pytest_twisted.ensureDeferred
async def test_prism_python_client_over_engineio(prism, transports):
    served = await prism.serve(
        {"rpc": RPCService(handlers={"add": add, "visits": visits}, sessions=True), "echo": EchoService()},
        transport=EngineIOTransport(),
    )
    url = "http://{}/engine.io/".format(served.host)
    client = await prism.connect(url, transport="engineio", engineioTransports=transports)
    assert await within(client.api.rpc.call("add", 2, 3)) == 5
    with pytest.raises(RemoteError):
        await within(client.api.rpc.call("nope"))
    received = []
    client.api.echo.on(received.append)
    for i in range(30):
        client.api.echo.send("é{}".format(i))
    await waitUntil(lambda: len(received) == 30)
    assert received == ["é{}".format(i) for i in range(30)]
    assert await within(client.api.rpc.call("visits")) == 1
    assert await within(client.api.rpc.call("visits")) == 2
    conn = list(served.server.connections.values())[0]
    assert conn.transport == "engineio"


@pytest_twisted.ensureDeferred
async def test_generated_js_client_over_engineio(prism, tmp_path):
    served = await prism.serve({"rpc": RPCService(handlers={"add": add}), "echo": EchoService()}, transport=EngineIOTransport())
    assert served.server.browser_assets()[0]["name"] == "engine.io.min.js"
    assert os.path.exists(served.server.browser_assets()[0]["path"])
    client = tmp_path / "client.cjs"
    client.write_text(served.server.build_client(format="cjs"))
    script = tmp_path / "run.cjs"
    script.write_text(
        "module.paths.push(%s);\n"
        "const { createClient } = require(%s);\n"
        "(async () => { const out = {};\n"
        "  for (const t of [['polling'], ['websocket'], ['polling', 'websocket']]) {\n"
        "    const app = createClient({ url: %s, reconnect: false, eio: require('engine.io-client').Socket, engineio: { transports: t } });\n"
        "    await app.connect();\n"
        "    const echoed = new Promise((r) => app.api.echo.on(r));\n"
        "    app.api.echo.send('h\u00e9');\n"
        "    out[t.join('+')] = [await app.api.rpc.call('add', 2, 3), await echoed];\n"
        "    app.close();\n"
        "  }\n"
        "  console.log(JSON.stringify(out)); process.exit(0);\n"
        "})().catch((e) => { console.log(JSON.stringify({ error: String(e) })); process.exit(1); });\n"
        % (json.dumps(str(ROOT / "node_modules")), json.dumps(str(client)), json.dumps("http://{}/engine.io/".format(served.host)))
    )
    out, err, code = await within(getProcessOutputAndValue(_node(), [str(script)], env=dict(os.environ), path=str(ROOT)), 30)
    assert code == 0, (out, err)
    seen = json.loads(out.decode().strip().splitlines()[-1])
    assert seen == {"polling": [5, "hé"], "websocket": [5, "hé"], "polling+websocket": [5, "hé"]}


@pytest_twisted.ensureDeferred
async def test_config_selects_engineio_with_the_echo_handler(prism, tmp_path):
    from prism.config import loadConfig

    path = tmp_path / "prism.toml"
    path.write_text(
        '[transport]\nname = "engineio"\nhandler = "echo"\nping_interval = 5\nmax_payload = 5000\n'
        '[[services]]\nname = "echo"\n'
    )
    config = loadConfig(path)
    server = config.buildServer(prism.reactor)
    assert isinstance(server.transport, EngineIOTransport)
    assert (server.transport.handler, server.transport.pingInterval, server.transport.maxPayload) == ("echo", 5, 5000)
    prism._servers.append(server)
    port = await within(server.listen("tcp:0:interface=127.0.0.1"))
    prism.track(port)
    url = "http://127.0.0.1:{}/engine.io/".format(port.getHost().port)
    sid = _open((await http(prism, b"GET", url + "?EIO=4&transport=polling"))[1])["sid"]
    poll = url + "?EIO=4&transport=polling&sid=" + sid
    await http(prism, b"POST", poll, "4no prism framing ✓".encode())
    code, body = await http(prism, b"GET", poll)
    assert body == "4no prism framing ✓"
    await http(prism, b"POST", poll, b"1")


@pytest_twisted.ensureDeferred
async def test_several_mounts_with_different_options(prism):
    """An echo mount (polling only) and a Prism mount (WebSocket only) on one site."""
    from prism.server import Server

    server = Server(transport=EngineIOTransport(transports=["websocket"]), secret=b"s", reactor=prism.reactor)
    server.service("rpc", RPCService(handlers={"add": add}))
    server.start()
    prism._servers.append(server)
    root = Resource()
    root.putChild(b"echo", EngineIOTransport(transports=["polling"], pingInterval=7).echoResource(prism.reactor))
    root.putChild(b"prism", server.resource())
    port = prism.track(prism.reactor.listenTCP(0, Site(root), interface="127.0.0.1"))
    base = "http://127.0.0.1:{}/".format(port.getHost().port)
    handshake = _open((await http(prism, b"GET", base + "echo/?EIO=4&transport=polling"))[1])
    assert handshake["upgrades"] == [] and handshake["pingInterval"] == 7000
    code, body = await http(prism, b"GET", base + "prism/?EIO=4&transport=polling")
    assert code == 400 and json.loads(body)["code"] == 0
    client = await prism.connect(base + "prism/", transport="engineio", engineioTransports=["websocket"])
    assert await within(client.api.rpc.call("add", 1, 2)) == 3
    await http(prism, b"POST", base + "echo/?EIO=4&transport=polling&sid=" + handshake["sid"], b"1")
