"""
The generated JavaScript client (L{prism.builder}, C{Server.build_client}).

Builder tests check what goes into the module and that every format parses
under Node.js. The real tests start a Prism server on 127.0.0.1, write the
built client (CommonJS and ES module) to a temporary directory and run
C{tests/js/scenario.mjs} against it with Node.js 20 and the C{ws} package
(spawned through the reactor, never blocking it).

Node.js and the root C{node_modules} (C{npm ci}, which C{scripts/test} runs)
are required: these tests fail, never skip, without them.
"""

import gzip
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet.defer import Deferred
from procutil import Collect

from conftest import sleep, waitUntil, within
from prism.builder import ClientBuildError, browserAssets, buildClient
from prism.errors import PrismConfigError
from prism.server import Server, ServiceError
from prism.services.base import Service
from prism.services.echo import EchoService
from prism.services.rpc import RPCService, withRequest
from prism.transports.loopback import LoopbackTransport

ROOT = Path(__file__).resolve().parents[1]
NODE_MODULES = ROOT / "node_modules"
SCENARIO = ROOT / "tests" / "js" / "scenario.mjs"
NODE_TIMEOUT = 60.0


def _node():
    node = shutil.which("node")
    assert node is not None, "Node.js 20 is required for the JavaScript client tests (apt-get install nodejs)"
    return node


@pytest.fixture(scope="module")
def nodeModules():
    """The root node_modules, with ws and esbuild: fail loudly if missing."""
    for package in ("ws", "esbuild"):
        assert (NODE_MODULES / package / "package.json").exists(), (
            "{} is missing from {}: run `npm ci` at the repository root (scripts/test does)".format(
                package, NODE_MODULES
            )
        )
    return NODE_MODULES


def _server(*services, **options):
    server = Server(secret=b"prism-test-secret", **options)
    for name, service in services:
        server.service(name, service)
    return server


def _nodeCheck(path):
    result = subprocess.run(
        [_node(), "--check", str(path)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60
    )
    assert result.returncode == 0, result.stdout.decode("utf-8", "replace")


# -- the builder


def test_exactlyTheConfiguredPieces():
    rpcOnly = buildClient(_server(("rpc", RPCService())))
    assert "const TABLE = [[\"rpc\",1,\"json\",true]];" in rpcOnly
    assert '"rpc": (' in rpcOnly and "call: (...a)" in rpcOnly
    assert "echo" not in rpcOnly
    assert "new W(url" in rpcOnly  # the websocket transport's half

    echoOnly = buildClient(_server(("echo", EchoService())))
    assert 'const TABLE = [["echo",1,"raw",true]];' in echoOnly
    assert "const HALVES = {};" in echoOnly  # echo uses the generic handle
    assert "call: (...a)" not in echoOnly and '"rpc"' not in echoOnly


class _Private(Service):
    private = True

    def clientScript(self):
        return "SHOULD_NOT_APPEAR"


class _Greeter(Service):
    def clientScript(self):
        return "(s) => ({ greet: (name) => s.request(name) });\n"

    def browserAssets(self):
        return [{"name": "greeter.css", "path": "/static/greeter.css", "type": "text/css"}]


def test_privateServicesAndTrailingSemicolons():
    source = buildClient(_server(("hidden", _Private()), ("greeter", _Greeter())))
    assert "SHOULD_NOT_APPEAR" not in source and "hidden" not in source
    assert '"greeter": (\n    (s) => ({ greet: (name) => s.request(name) })\n  ),' in source


@pytest.mark.parametrize("format,suffix", [("esm", ".mjs"), ("cjs", ".cjs"), ("script", ".js")])
@pytest.mark.parametrize("minify", [False, True])
def test_formatsParse(nodeModules, tmp_path, format, suffix, minify):
    server = _server(("rpc", RPCService()), ("echo", EchoService()), ("greeter", _Greeter()))
    path = tmp_path / ("client" + suffix)
    path.write_text(server.build_client(format=format, minify=minify), encoding="utf-8")
    _nodeCheck(path)


def test_scriptDefinesTheGlobal(nodeModules, tmp_path):
    """A classic script defines Prism (window.Prism in a browser)."""
    path = tmp_path / "client.js"
    path.write_text(_server(("rpc", RPCService())).build_client(format="script", minify=True), encoding="utf-8")
    code = (
        "const vm = require('vm'), fs = require('fs'); const ctx = {};"
        "vm.runInNewContext(fs.readFileSync(process.argv[1], 'utf8'), ctx);"
        "const app = ctx.Prism.createClient({url: 'ws://127.0.0.1:1/'});"
        "console.log(JSON.stringify([Object.keys(ctx.Prism).sort(), Object.keys(app.api.rpc).sort()]))"
    )
    out = subprocess.run([_node(), "-e", code, str(path)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    assert out.returncode == 0, out.stdout
    assert json.loads(out.stdout) == [["connect", "createClient"], ["call", "name", "notify", "off", "on", "request", "send"]]


def test_minifiedIsSmaller(nodeModules):
    server = _server(("rpc", RPCService()))
    plain = server.build_client()
    small = server.build_client(minify=True)
    assert len(small) < len(plain) / 2
    assert "\n//" not in small  # no comments left


def test_sizeRegressionBound(nodeModules):
    """
    A generous bound only: the target (3 KB min+gzip for WebSocket + RPC)
    and the figures are in benchmarks/client_size.py.
    """
    small = _server(("rpc", RPCService())).build_client(minify=True)
    assert len(gzip.compress(small.encode("utf-8"), 9)) <= 3072


def test_defaultUrlBakedIn():
    source = _server(("rpc", RPCService())).build_client(url="wss://example.com/ws")
    assert 'const DEFAULT_URL = "wss://example.com/ws";' in source
    assert "const DEFAULT_URL = null;" in _server(("rpc", RPCService())).build_client()


def test_unknownFormat():
    with pytest.raises(ClientBuildError, match="unknown client format 'umd'"):
        _server().build_client(format="umd")


def test_loopbackHasNoClient():
    with pytest.raises(ClientBuildError, match="'loopback' transport has no JavaScript client"):
        _server(("rpc", RPCService()), transport=LoopbackTransport()).build_client()


def test_msgpackServicesRefused():
    server = _server(("rpc", RPCService()), ("bin", EchoService(codec="msgpack")))
    with pytest.raises(PrismConfigError, match="service 'bin' uses the msgpack codec"):
        server.build_client()


def test_missingEsbuild(monkeypatch):
    import prism.builder

    monkeypatch.setattr(prism.builder, "findEsbuild", lambda: None)
    with pytest.raises(ClientBuildError, match="npm ci"):
        _server(("rpc", RPCService())).build_client(minify=True)
    assert _server(("rpc", RPCService())).build_client()  # unminified needs nothing


def test_browserAssets():
    class _Twin(_Greeter):
        pass

    server = _server(("rpc", RPCService()), ("greeter", _Greeter()), ("twin", _Twin()))
    assert server.browser_assets() == [{"name": "greeter.css", "path": "/static/greeter.css", "type": "text/css"}]
    assert browserAssets(_server(("rpc", RPCService()))) == []


# -- the client against a real server


def _handlers():
    def add(a, b):
        return a + b

    def fail(x):
        raise ServiceError("invalid", "bad input: " + x)

    def crash():
        raise ValueError("boom")

    def never():
        return Deferred()

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

    return {f.__name__: f for f in (add, fail, crash, never, kick, login, whoami)}


def startNode(reactor, args, cwd, timeout=NODE_TIMEOUT):
    """
    Spawn C{node args…} through the reactor (it never blocks); kill it after
    C{timeout} seconds.

    @return: the L{procutil.Collect}: C{out}, C{err}, C{ended} (fires with the
        exit code, L{None} if killed).
    """
    proto = Collect()
    process = reactor.spawnProcess(proto, _node(), [_node()] + list(args), env=dict(os.environ), path=str(cwd))
    killer = reactor.callLater(timeout, process.signalProcess, "KILL")

    def ended(code):
        if killer.active():
            killer.cancel()
        return code

    proto.ended.addCallback(ended)
    return proto


async def runNode(reactor, args, cwd, timeout=NODE_TIMEOUT):
    """@return: C{(exit code, stdout, stderr)} of C{node args…} (see L{startNode})."""
    proto = startNode(reactor, args, cwd, timeout)
    code = await proto.ended
    return code, b"".join(proto.out).decode("utf-8", "replace"), b"".join(proto.err).decode("utf-8", "replace")


@pytest.mark.parametrize("format,suffix", [("cjs", ".cjs"), ("esm", ".mjs")])
@pytest_twisted.ensureDeferred
async def test_nodeClientAgainstServer(prism, reactor, nodeModules, tmp_path, format, suffix):
    served = await prism.serve(
        {"rpc": RPCService(handlers=_handlers(), sessions=True), "echo": EchoService()}, debug=True
    )
    client = tmp_path / ("prism-client" + suffix)
    client.write_text(served.server.build_client(format=format), encoding="utf-8")
    (tmp_path / "node_modules").symlink_to(nodeModules)  # where the client's import("ws") looks
    code, out, err = await runNode(reactor, [str(SCENARIO), str(client), served.url], tmp_path)
    assert code == 0, (out, err)
    seen = json.loads(out.strip().splitlines()[-1])
    assert "fatal" not in seen, seen

    assert seen["exports"] == (["connect", "createClient", "default"])
    assert seen["defaultIsCreateClient"] is True
    assert seen["firstDelay"] == 0.05
    assert seen["apiBeforeConnect"] == ["echo", "rpc"]
    assert seen["callBeforeConnect"]["kind"] == "disconnected"
    assert seen["services"] == [["rpc", 1, "json", True], ["echo", 2, "raw", True]]
    assert seen["connected"] is True

    assert seen["add"] == 5
    assert seen["fail"] == {
        "kind": "invalid", "message": "bad input: x", "traceback": None, "isError": True,
    }
    assert seen["crash"]["kind"] == "handler" and seen["crash"]["message"] == "boom"
    assert "ValueError: boom" in seen["crash"]["traceback"]  # the server runs in debug mode
    assert seen["unknown"]["kind"] == "unknown_method"
    assert seen["timeout"]["kind"] == "timeout" and "0.2 seconds" in seen["timeout"]["message"]
    assert seen["defaultTimeout"]["kind"] == "timeout"

    assert seen["push"] == "hi there"
    assert seen["echoRequest"] == "ping"

    assert seen["pendingOnDisconnect"]["kind"] == "disconnected"
    assert seen["sendWhileDown"] == "disconnected"
    assert seen["sameSession"] is True
    assert seen["whoamiAfterReconnect"] == "ada"
    assert seen["cookieWhoami"] == "ada" and seen["cookieSameSession"] is True

    assert seen["closeCode"] == 1000
    assert seen["connectedAfterClose"] is False
    assert [e[0] for e in seen["events"]] == ["open", "close", "reconnect", "close"]
    assert seen["refused"]["kind"] == "connect"
    assert seen["noUrl"] == "connect: createClient needs a url outside browsers"


@pytest_twisted.ensureDeferred
async def test_goingAwayAndReconnectToRestartedServer(prism, reactor, nodeModules, tmp_path):
    """
    server.stop() sends going_away and closes with 1001; the client retries
    with backoff until a server listens on the port again, then emits
    reconnect and keeps working.
    """
    served = await prism.serve({"rpc": RPCService(handlers=_handlers())})
    client = tmp_path / "prism-client.cjs"
    client.write_text(served.server.build_client(format="cjs", url=served.url), encoding="utf-8")
    script = tmp_path / "restart.js"
    script.write_text(
        "\n".join([
            "const { connect } = require('./prism-client.cjs');",
            "let app;",
            "(async () => {",
            "  const events = [];",
            "  app = await connect({ initialDelay: 0.05, maxDelay: 0.2, jitter: 0.5 });",
            "  for (const e of ['going_away', 'close', 'reconnect']) app.on(e, (a) => events.push([e, a]));",
            "  const again = new Promise((resolve) => app.on('reconnect', resolve));",
            "  console.log(JSON.stringify({ ready: await app.api.rpc.call('add', 1, 2) }));",
            "  await again;",
            "  const sum = await app.api.rpc.call('add', 20, 22);",
            "  app.close();",
            "  console.log(JSON.stringify({ events, sum }));",
            "})().catch((e) => {",
            "  console.log(JSON.stringify({ fatal: String(e.stack || e) }));",
            "  process.exitCode = 1;",
            "  if (app) app.close();",
            "});",
        ]),
        encoding="utf-8",
    )
    (tmp_path / "node_modules").symlink_to(nodeModules)
    portNumber = served.portNumber
    node = startNode(reactor, [str(script)], tmp_path)
    await waitUntil(lambda: b"ready" in b"".join(node.out) or node.ended.called, seconds=20)
    await within(served.server.stop())
    await sleep(0.5)  # a few failed attempts
    restarted = Server(transport=served.server.transport, reactor=reactor, secret=b"prism-test-secret")
    restarted.service("rpc", RPCService(handlers=_handlers()))
    prism._servers.append(restarted)
    prism.track(await within(restarted.listen("tcp:{}:interface=127.0.0.1".format(portNumber))))
    code = await within(node.ended, NODE_TIMEOUT)
    out, err = b"".join(node.out).decode("utf-8"), b"".join(node.err).decode("utf-8")
    assert code == 0, (out, err)
    lines = [json.loads(line) for line in out.strip().splitlines()]
    assert lines[0] == {"ready": 3}
    result = lines[-1]
    assert result["sum"] == 42
    names = [e[0] for e in result["events"]]
    assert names[0] == "going_away" and result["events"][0][1] == "server shutting down"
    assert ["close", 1001] in result["events"]
    assert names[-1] == "reconnect"
    assert names.count("reconnect") == 1 and names.count("going_away") == 1


@pytest_twisted.ensureDeferred
async def test_browserPath(prism, reactor, nodeModules, tmp_path):
    """
    The plain-script build in a window-like scope (tests/js/browser_like.js):
    the native WebSocket API, the URL derived from location, and no session
    token in the hello (browsers present the cookie instead).
    """
    served = await prism.serve(
        {"rpc": RPCService(handlers=_handlers(), sessions=True), "echo": EchoService()}
    )
    client = tmp_path / "prism-client.js"
    client.write_text(served.server.build_client(format="script"), encoding="utf-8")
    script = ROOT / "tests" / "js" / "browser_like.js"
    origin = "http://{}".format(served.host)
    code, out, err = await runNode(reactor, ["--experimental-websocket", str(script), str(client), origin], tmp_path)
    assert code == 0, (out, err)
    seen = json.loads(out.strip().splitlines()[-1])
    assert seen == {
        "hasProcess": "undefined",
        "add": 5,
        "push": "from the page",
        "newSessionAfterReconnect": True,
        "addAfterReconnect": 42,
    }
