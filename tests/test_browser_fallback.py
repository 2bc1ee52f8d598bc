"""
The fallback transports in real headless Chromium, with WebSocket removed
from the page before any script runs (C{tests/browser/fallback.mjs}): a page
served by a Prism server on the C{engineio} (then C{sockjs}) transport loads
the official client library from the same server (the npm copy in
C{node_modules}, as C{browser_assets()} lists it) and the generated client;
the official client falls back to HTTP, and RPC (a result and an error with
its kind) and pubsub (subscribe, then a server-side publish) still work.

CPython only, like C{tests/test_browser.py}: C{tests/conftest.py} leaves
this file out of the PyPy run. Nothing here skips: a missing Chromium,
Node.js or C{node_modules} fails with what to run.
"""

import json
import os
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet.endpoints import serverFromString
from twisted.web.resource import Resource
from twisted.web.server import Site

from conftest import within
from prism.server import Server, ServiceError
from prism.services.pubsub import PubSubService
from prism.services.rpc import RPCService, withRequest
from prism.transports.engineio import EngineIOTransport
from prism.transports.sockjs import SockJSTransport
from test_browser import CHROMIUM, NODE_DEADLINE, PROCESS_TIMEOUT, ROOT, requireBrowser, runProcess

DRIVER = ROOT / "tests" / "browser" / "fallback.mjs"
SOCKJS_CLIENT = ROOT / "node_modules" / "sockjs-client" / "dist" / "sockjs.min.js"

pytestmark = pytest.mark.filterwarnings("ignore:twisted.web.resource._Unsafe:DeprecationWarning")


def add(a, b):
    return a + b


def fail():
    raise ServiceError("invalid", "this call always fails")


@withRequest
def announce(request, text):
    request.server.api.pubsub.publish("news", {"text": text, "by": "server"})
    return "published"


def allowAll(request, action, channel):
    return True


def _transport(name):
    if name == "engineio":
        return EngineIOTransport(), "/engine.io/"
    # The iframe page (unused here: the page is same-origin) also loads the local copy.
    return SockJSTransport(sockjsUrl="/sockjs.min.js"), "/sockjs"


def _site(server, mount):
    """The page, the generated client, the official client library and the mount."""
    from twisted.web.static import Data, File  # imported here: it warns about its own module-level resources

    assets = server.browser_assets()
    if server.transport.name == "engineio":
        (asset,) = assets
        name, path = asset["name"], Path(asset["path"])
    else:
        # The sockjs asset is a CDN URL; the page loads the same library from node_modules.
        name, path = "sockjs.min.js", SOCKJS_CLIENT
    if not path.is_file():
        pytest.fail("{} is missing: run `npm ci` at the repository root (scripts/test does)".format(path), pytrace=False)
    page = (
        '<!doctype html><html><head><meta charset="utf-8"><title>Prism fallback</title>'
        '<link rel="icon" href="data:,">'
        '<script src="/{}"></script><script src="/prism-client.js"></script>'
        "</head><body>fallback</body></html>"
    ).format(name)
    root = Resource()
    root.putChild(b"", Data(page.encode("utf-8"), "text/html; charset=utf-8"))
    client = server.build_client(format="script", url=mount)
    root.putChild(b"prism-client.js", Data(client.encode("utf-8"), "text/javascript; charset=utf-8"))
    root.putChild(name.encode("ascii"), File(str(path), defaultType="text/javascript"))
    root.putChild(mount.strip("/").encode("ascii"), server.resource())
    return Site(root)


@pytest.mark.parametrize("transportName", ["engineio", "sockjs"])
@pytest_twisted.ensureDeferred
async def test_page_without_websocket_falls_back_to_polling(prism, reactor, transportName):
    node = requireBrowser()
    transport, mount = _transport(transportName)
    server = Server(transport=transport, secret=b"browser-fallback-test", reactor=reactor)
    server.service("rpc", RPCService(handlers={"add": add, "fail": fail, "announce": announce}, sessions=True))
    server.service("pubsub", PubSubService(authorize=allowAll))
    server.start()
    prism._servers.append(server)
    port = prism.track(await within(serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(_site(server, mount))))
    url = "http://127.0.0.1:{}/".format(port.getHost().port)

    env = dict(os.environ, PRISM_BROWSER_DEADLINE_MS=str(int(NODE_DEADLINE * 1000)), PRISM_CHROMIUM=CHROMIUM)
    code, out, err = await runProcess(reactor, [node, str(DRIVER), url, transportName], PROCESS_TIMEOUT, env)
    lines = out.strip().splitlines()
    try:
        result = json.loads(lines[-1])
    except (IndexError, ValueError):
        pytest.fail("the browser driver printed no JSON (exit {})\nstdout:\n{}\nstderr:\n{}".format(code, out, err))
    assert result["ok"] and code == 0, "browser driver failed (exit {}): {}\nstderr:\n{}".format(
        code, json.dumps(result, indent=2), err[-3000:]
    )
    seen = result["page"]
    # The page had no WebSocket, and no WebSocket was ever opened.
    assert seen["webSocketType"] == "undefined"
    assert result["websockets"] == []
    # The official client fell back to HTTP, and stayed there.
    assert seen["instances"] == 1
    if transportName == "engineio":
        assert seen["finalTransport"] == "polling"
        assert any(r.startswith("GET /engine.io/") for r in result["requests"])
    else:
        assert seen["finalTransport"] in ("xhr-streaming", "xhr-polling", "eventsource")
        assert any(r.startswith("POST /sockjs/") for r in result["requests"])
    # RPC: a result, an error with its kind, and a result after the wait.
    assert seen["add"] == 5 and seen["add2"] == 42
    assert seen["rejected"] == {"isError": True, "kind": "invalid", "message": "this call always fails"}
    # Pubsub: subscribed, then a server-side publish reached the page.
    assert seen["announced"] == "published"
    assert seen["message"] == {"data": {"text": "héllo wörld ✓ 😀", "by": "server"}, "channel": "news"}
    # A clean page: no script errors, no failed requests, no warnings.
    assert result["pageErrors"] == [] and result["console"] == []
