"""
The C{sockjs} transport (prism/transports/sockjs.py): the SockJS protocol at
the HTTP level (after the expectations of sockjs-protocol's
C{sockjs-protocol.py}: /info, the iframe page, htmlfile, jsonp, the close
frames, CORS, JSESSIONID, timeouts, limits), the npm C{sockjs-client} 1.6
against the raw echo handler in every mode it has under Node.js, and the
generated Prism client over it.
"""

import json

import pytest
import pytest_twisted

from conftest import sleep, within
from prism.config import configFromDict
from prism.errors import PrismConfigError
from prism.server import Server
from prism.services.echo import EchoService
from prism.services.rpc import RPCService
from prism.transports.sockjs import DEFAULT_SOCKJS_URL, SockJSTransport, closeFrame, messageFrame
from test_jsclient import ROOT, nodeModules, runNode  # noqa: F401  (a fixture)

ECHO = ROOT / "tests" / "sockjs" / "echo.mjs"
PRISM = ROOT / "tests" / "sockjs" / "prism.mjs"
NODE_MODES = ["auto", "websocket", "xhr-streaming", "xhr-polling", "eventsource"]


async def _serve(prism, **options):
    options.setdefault("handler", "echo")
    return await prism.serve(transport=SockJSTransport(**options))


def _request(method, path, body=b"", headers=None, host="127.0.0.1"):
    lines = ["{} {} HTTP/1.0".format(method, path), "Host: {}".format(host)]
    for name, value in (headers or {}).items():
        lines.append("{}: {}".format(name, value))
    if body or method == "POST":
        lines.append("Content-Length: {}".format(len(body)))
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _parse(data):
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    return int(lines[0].split()[1]), headers, body


async def _http(prism, served, method, path, body=b"", headers=None):
    """One HTTP/1.0 request: C{(status, headers, body)} once the server closes."""
    proto = await prism.raw(served.portNumber, _request(method, path, body, headers, served.host))
    await within(proto.lost)
    return _parse(proto.data)


async def _open(prism, served, path, method="POST", headers=None):
    """A receiving request left open: the L{RawTCP}."""
    return await prism.raw(served.portNumber, _request(method, path, b"", headers, served.host))


def _body(proto):
    return proto.data.partition(b"\r\n\r\n")[2]


# -- frames


def test_frames():
    assert messageFrame(["a", 'b"\u2028\ud7ff\ufeff😀']) == 'a["a","b\\"\\u2028\ud7ff\\ufeff😀"]'
    assert closeFrame(3000, "Go away!") == 'c[3000,"Go away!"]'


def test_options():
    with pytest.raises(PrismConfigError):
        SockJSTransport(handler="nope")
    with pytest.raises(PrismConfigError):
        SockJSTransport(disconnectDelay=0)
    with pytest.raises(PrismConfigError):
        SockJSTransport(responseLimit=0)
    transport = SockJSTransport()
    assert transport.browserAssets() == [{"name": "sockjs-client", "url": DEFAULT_SOCKJS_URL, "type": "script"}]
    server = Server(transport=transport)
    server.service("echo", EchoService())
    assert "sockjs-client" in server.build_client(format="cjs")
    assert server.browser_assets() == transport.browserAssets()


def test_config(tmp_path):
    config = configFromDict(
        {"services": [{"name": "echo"}], "transport": {"name": "sockjs", "handler": "echo", "websocket": False, "response_limit": 4096}},
        str(tmp_path / "prism.toml"),
    )
    server = config.buildServer()
    transport = server.transport
    assert isinstance(transport, SockJSTransport)
    assert (transport.handler, transport.websocket, transport.responseLimit) == ("echo", False, 4096)


# -- the HTTP level


@pytest_twisted.ensureDeferred
async def test_infoWelcomeIframe(prism):
    served = await _serve(prism)
    status, headers, body = await _http(prism, served, "GET", "/")
    assert (status, body) == (200, b"Welcome to SockJS!\n")
    status, headers, body = await _http(prism, served, "GET", "/info")
    info = json.loads(body)
    assert status == 200 and info["websocket"] is True and info["cookie_needed"] is False
    assert info["origins"] == ["*:*"] and isinstance(info["entropy"], int)
    assert headers["access-control-allow-origin"] == ["*"]
    assert "no-store" in headers["cache-control"][0]
    status, headers, _ = await _http(prism, served, "OPTIONS", "/info", headers={"Origin": "http://" + served.host})
    assert status == 204 and headers["access-control-allow-methods"] == ["OPTIONS, GET"]
    assert headers["access-control-allow-credentials"] == ["true"]
    assert "max-age=31536000" in headers["cache-control"][0]
    status, headers, body = await _http(prism, served, "GET", "/iframe-1.6.1.html")
    assert status == 200 and DEFAULT_SOCKJS_URL.encode() in body and b"SockJS.bootstrap_iframe()" in body
    etag = headers["etag"][0]
    status, _, body = await _http(prism, served, "GET", "/iframe.html", headers={"If-None-Match": etag})
    assert (status, body) == (304, b"")
    status, _, _ = await _http(prism, served, "GET", "/a.b/c/xhr")
    assert status == 404


@pytest_twisted.ensureDeferred
async def test_xhrPollingAndSend(prism):
    served = await _serve(prism)
    status, headers, body = await _http(prism, served, "POST", "/000/s1/xhr")
    assert (status, body) == (200, b"o\n")
    assert headers["content-type"] == ["application/javascript; charset=UTF-8"]
    status, _, body = await _http(prism, served, "POST", "/000/s1/xhr_send", b'["x","\\u00e9"]')
    assert (status, body) == (204, b"")
    status, _, body = await _http(prism, served, "POST", "/000/s1/xhr")
    assert json.loads(body[1:]) == ["x", "é"] and body[:1] == b"a"
    status, _, body = await _http(prism, served, "POST", "/000/s1/xhr_send", b"")
    assert (status, body) == (500, b"Payload expected.")
    status, _, body = await _http(prism, served, "POST", "/000/s1/xhr_send", b"[x")
    assert (status, body) == (500, b"Broken JSON encoding.")
    status, _, body = await _http(prism, served, "POST", "/000/nope/xhr_send", b'["x"]')
    assert status == 404 and b"sticky sessions" in body
    status, headers, _ = await _http(prism, served, "OPTIONS", "/000/s1/xhr_send", headers={"Origin": "http://" + served.host, "Access-Control-Request-Headers": "x-a"})
    assert status == 204 and headers["access-control-allow-methods"] == ["OPTIONS, POST"]
    assert headers["access-control-allow-headers"] == ["x-a"]


@pytest_twisted.ensureDeferred
async def test_concurrentPollAndAbort(prism):
    served = await _serve(prism)
    first = await _open(prism, served, "/000/s2/xhr_streaming")
    await first.until(lambda d: d.endswith(b"h" * 2048 + b"\no\n"))
    status, _, body = await _http(prism, served, "POST", "/000/s2/xhr_streaming")
    assert body == b"h" * 2048 + b'\nc[2010,"Another connection still open"]\n'
    status, _, body = await _http(prism, served, "POST", "/000/s2/xhr")
    assert body == b'c[2010,"Another connection still open"]\n'
    first.transport.abortConnection()
    await within(first.lost)
    await sleep(0.05)
    status, _, body = await _http(prism, served, "POST", "/000/s2/xhr")
    assert body == b'c[1002,"Connection interrupted"]\n'


@pytest_twisted.ensureDeferred
async def test_timeoutsHeartbeatAndGoAway(prism):
    served = await _serve(prism, heartbeatDelay=0.1, disconnectDelay=0.3)
    resource = None
    status, _, body = await _http(prism, served, "POST", "/000/s3/xhr")
    assert body == b"o\n"
    status, _, body = await _http(prism, served, "POST", "/000/s3/xhr")
    assert body == b"h\n"
    streaming = await _open(prism, served, "/000/s3/xhr_streaming")
    await streaming.until(lambda d: d.endswith(b"\nh\nh\n"))
    streaming.transport.loseConnection()
    await within(streaming.lost)
    # aborted: closed with 1002; then forgotten after disconnectDelay
    await sleep(0.5)
    status, _, body = await _http(prism, served, "POST", "/000/s3/xhr_send", b'["x"]')
    assert status == 404
    status, _, body = await _http(prism, served, "POST", "/000/s3/xhr")
    assert body == b"o\n"  # a new session under the same id
    del resource


@pytest_twisted.ensureDeferred
async def test_serverCloseAndResponseLimit(prism):
    served = await _serve(prism, responseLimit=4096)
    streaming = await _open(prism, served, "/000/s4/xhr_streaming")
    await streaming.until(lambda d: d.endswith(b"o\n"))
    await _http(prism, served, "POST", "/000/s4/xhr_send", json.dumps(["z" * 3000] * 3).encode())
    await within(streaming.lost)  # the limit ended the response
    # one frame per echoed message: the second passed the limit
    assert _body(streaming).count(b"z" * 3000) == 2
    status, _, body = await _http(prism, served, "POST", "/000/s4/xhr")
    assert body == b'a["' + b"z" * 3000 + b'"]\n'
    server = served.server.transport
    assert server is not None
    resource = served.port.factory.resource
    session = resource.sessions["s4"]
    session.close()
    for _ in range(2):
        status, _, body = await _http(prism, served, "POST", "/000/s4/xhr")
        assert body == b'c[3000,"Go away!"]\n'


@pytest_twisted.ensureDeferred
async def test_eventsourceHtmlfileJsonp(prism):
    served = await _serve(prism, responseLimit=1)
    es = await _open(prism, served, "/000/e1/eventsource", method="GET")
    await within(es.lost)
    status, headers, body = _parse(es.data)
    assert headers["content-type"] == ["text/event-stream"] and body == b"\r\ndata: o\r\n\r\n"
    await _http(prism, served, "POST", "/000/e1/xhr_send", b'["100%\\r\\n"]')
    es = await _open(prism, served, "/000/e1/eventsource", method="GET")
    await within(es.lost)
    assert _body(es) == b'\r\ndata: a["100%25\\r\\n"]\r\n\r\n'

    status, _, body = await _http(prism, served, "GET", "/000/h1/htmlfile")
    assert (status, body) == (500, b'"callback" parameter required')
    status, _, body = await _http(prism, served, "GET", "/000/h1/htmlfile?c=%20x")
    assert (status, body) == (500, b'invalid "callback" parameter')
    status, headers, body = await _http(prism, served, "GET", "/000/h1/htmlfile?c=cb")
    assert headers["content-type"] == ["text/html; charset=UTF-8"]
    page, _, frame = body.partition(b"\r\n\r\n")
    assert len(page) > 1024 and b"var c = parent.cb;" in page
    assert frame == b'<script>\np("o");\n</script>\r\n'

    status, headers, body = await _http(prism, served, "GET", "/000/j1/jsonp?c=cb")
    assert body == b'/**/cb("o");\r\n' and headers["x-content-type-options"] == ["nosniff"]
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    status, _, body = await _http(prism, served, "POST", "/000/j1/jsonp_send", b"d=%5B%22x%22%5D", form)
    assert (status, body) == (200, b"ok")
    status, _, body = await _http(prism, served, "POST", "/000/j1/jsonp_send", b'["y"]')
    assert (status, body) == (200, b"ok")
    status, _, body = await _http(prism, served, "POST", "/000/j1/jsonp_send", b"d=", form)
    assert (status, body) == (500, b"Payload expected.")
    status, _, body = await _http(prism, served, "GET", "/000/j1/jsonp?c=cb")
    assert body == b'/**/cb("a[\\"x\\",\\"y\\"]");\r\n'


@pytest_twisted.ensureDeferred
async def test_originsLimitsCookiesAndNoWebsocket(prism):
    served = await _serve(prism, websocket=False, jsessionid=True, maxMessageSize=100, allowedOrigins=["http://ok.example"])
    status, _, body = await _http(prism, served, "GET", "/info", headers={"Origin": "http://evil.example"})
    assert status == 403
    status, headers, body = await _http(prism, served, "GET", "/info", headers={"Origin": "http://ok.example"})
    info = json.loads(body)
    assert (info["websocket"], info["cookie_needed"]) == (False, True)
    assert headers["access-control-allow-origin"] == ["http://ok.example"]
    status, _, _ = await _http(prism, served, "GET", "/000/w/websocket", headers={"Upgrade": "websocket", "Connection": "Upgrade"})
    assert status == 404
    status, headers, body = await _http(prism, served, "POST", "/000/c1/xhr", headers={"Cookie": "JSESSIONID=abc"})
    assert body == b"o\n" and headers["set-cookie"] == ["JSESSIONID=abc; path=/"]
    status, _, _ = await _http(prism, served, "POST", "/000/c1/xhr_send", json.dumps(["x" * 200]).encode())
    assert status == 413
    status, _, _ = await _http(prism, served, "POST", "/000/c1/xhr_send", json.dumps(["x" * 95, "y" * 99]).encode())
    assert status == 413  # the whole body counts


@pytest_twisted.ensureDeferred
async def test_websocketChecks(prism):
    served = await _serve(prism)
    status, _, body = await _http(prism, served, "GET", "/000/w/websocket")
    assert (status, body) == (400, b'Can "Upgrade" only to "WebSocket".')
    status, _, body = await _http(prism, served, "GET", "/000/w/websocket", headers={"Upgrade": "websocket", "Connection": "keep-alive"})
    assert (status, body) == (400, b'"Connection" must be "Upgrade".')
    status, _, _ = await _http(prism, served, "POST", "/000/w/websocket")
    assert status == 405


@pytest_twisted.ensureDeferred
async def test_rawWebsocketEcho(prism, reactor):
    from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
    from twisted.internet.defer import Deferred
    from twisted.internet.endpoints import TCP4ClientEndpoint

    served = await _serve(prism)
    got = Deferred()

    class Client(WebSocketClientProtocol):
        def onOpen(self):
            self.sendMessage("héllo".encode("utf-8"))

        def onMessage(self, payload, isBinary):
            got.callback(payload.decode("utf-8"))
            self.sendClose(1000)

    factory = WebSocketClientFactory("ws://{}/websocket".format(served.host))
    factory.protocol = Client
    await within(TCP4ClientEndpoint(reactor, "127.0.0.1", served.portNumber).connect(factory))
    assert await within(got) == "héllo"


# -- the official client, and Prism's


@pytest.mark.parametrize("mode", NODE_MODES)
@pytest_twisted.ensureDeferred
async def test_sockjsClientEcho(prism, reactor, nodeModules, mode):  # noqa: F811
    served = await _serve(prism)
    code, out, err = await runNode(reactor, [str(ECHO), "http://" + served.host, mode, "24"], ROOT)
    assert code == 0, (out, err)
    seen = json.loads(out.strip().splitlines()[-1])
    assert seen["ok"] is True, seen
    assert seen["transport"] == ("websocket" if mode == "auto" else mode)


@pytest.mark.parametrize("mode", NODE_MODES)
@pytest_twisted.ensureDeferred
async def test_prismClientOverSockJS(prism, reactor, nodeModules, tmp_path, mode):  # noqa: F811
    served = await prism.serve(
        {"rpc": RPCService(handlers={"add": lambda a, b: a + b}), "echo": EchoService()},
        transport=SockJSTransport(),
    )
    client = tmp_path / "prism-client.cjs"
    client.write_text(served.server.build_client(format="cjs"), encoding="utf-8")
    (tmp_path / "node_modules").symlink_to(nodeModules)
    code, out, err = await runNode(reactor, [str(PRISM), str(client), "http://" + served.host, mode], tmp_path)
    assert code == 0, (out, err)
    seen = json.loads(out.strip().splitlines()[-1])
    assert seen == {"add": 5, "echoed": True, "inOrder": True}, (seen, err)


@pytest_twisted.ensureDeferred
async def test_severalMounts(prism, reactor, nodeModules):  # noqa: F811
    from twisted.internet.endpoints import serverFromString
    from twisted.web.resource import Resource
    from twisted.web.server import Site

    server = Server(transport=SockJSTransport(), reactor=reactor, secret=b"prism-test-secret")
    server.service("echo", EchoService())
    server.start()
    root = Resource()
    root.putChild(b"prism", server.resource())
    root.putChild(b"echo", server.resource(SockJSTransport(handler="echo", websocket=False)))
    port = prism.track(await within(serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(Site(root))))
    prism._servers.append(server)
    host = "127.0.0.1:{}".format(port.getHost().port)

    class Served:
        pass

    served = Served()
    served.host, served.portNumber = host, port.getHost().port
    _, _, body = await _http(prism, served, "GET", "/echo/info")
    assert json.loads(body)["websocket"] is False
    _, _, body = await _http(prism, served, "GET", "/prism/info")
    assert json.loads(body)["websocket"] is True
    code, out, err = await runNode(reactor, [str(ECHO), "http://{}/echo".format(host), "auto", "8"], ROOT)
    assert code == 0, (out, err)
    assert json.loads(out.strip().splitlines()[-1])["transport"] == "xhr-streaming"


@pytest_twisted.ensureDeferred
async def test_sessionCookie(prism):
    served = await prism.serve({"rpc": RPCService(handlers={}, sessions=True)}, transport=SockJSTransport())
    status, headers, body = await _http(prism, served, "POST", "/000/k1/xhr")
    assert body == b"o\n" and any(c.startswith("prism.sid=") for c in headers["set-cookie"])
    proto = await prism.raw(served.portNumber, _request("GET", "/000/k2/websocket", headers={
        "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version": "13"}, host=served.host).replace(b"HTTP/1.0", b"HTTP/1.1"))
    status, headers = await proto.response()
    assert status == 101 and any(c.startswith("prism.sid=") for c in headers["set-cookie"])
