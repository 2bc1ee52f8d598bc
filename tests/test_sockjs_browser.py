"""
The npm C{sockjs-client} 1.6 in real headless Chromium, forced onto each of
its browser transports in turn (C{tests/browser/sockjs_modes.mjs}): a page
served by a twisted.web site on 127.0.0.1 loads C{sockjs.min.js} from that
site (the npm copy in C{node_modules}), and the site also mounts a SockJS
resource with the C{echo} handler whose C{sockjsUrl} points at the same local
copy, so the iframe page of the C{iframe-*} transports loads it from
127.0.0.1 too, never from a CDN. For each mode the page calls
C{new SockJS(url, null, {transports: [name]})}, sends unicode, a ~50 KB
string and ten short messages, receives every echo in order, checks that
C{sock.transport} is the forced name, and closes.

Modes that run (all must pass): C{websocket}, C{xhr-streaming},
C{eventsource}, C{iframe-eventsource}, C{htmlfile}, C{iframe-htmlfile},
C{xhr-polling}, C{iframe-xhr-polling}, C{jsonp-polling}.

Excluded: C{xdr-streaming} (and C{xdr-polling}): they need
C{XDomainRequest}, which only old Internet Explorer has; Chromium has none,
so sockjs-client filters them out as disabled. Forced onto it alone, the
client deterministically closes with C{2000 "All transports failed"} without
opening, which L{test_xdr_streaming_is_unavailable_in_chromium} checks.

CPython only, like C{tests/test_browser.py}: C{tests/conftest.py} leaves
this file out of the PyPy run. Nothing here skips: a missing Chromium,
Node.js or C{node_modules} fails with what to run.
"""

import json
import os

import pytest
import pytest_twisted
from twisted.internet.endpoints import serverFromString
from twisted.web.resource import Resource
from twisted.web.server import Site

from conftest import within
from prism.server import Server
from prism.transports.sockjs import SockJSTransport
from test_browser import CHROMIUM, NODE_DEADLINE, PROCESS_TIMEOUT, ROOT, requireBrowser, runProcess

DRIVER = ROOT / "tests" / "browser" / "sockjs_modes.mjs"
SOCKJS_CLIENT = ROOT / "node_modules" / "sockjs-client" / "dist" / "sockjs.min.js"

MODES = [
    "websocket",
    "xhr-streaming",
    "eventsource",
    "iframe-eventsource",
    "htmlfile",
    "iframe-htmlfile",
    "xhr-polling",
    "iframe-xhr-polling",
    "jsonp-polling",
]
UNAVAILABLE = ["xdr-streaming"]

pytestmark = pytest.mark.filterwarnings("ignore:twisted.web.resource._Unsafe:DeprecationWarning")


async def _runModes(prism, reactor, modes):
    """Serve the page, the library and the echo mount; run C{modes} in Chromium: the driver's JSON."""
    from twisted.web.static import Data, File  # imported here: it warns about its own module-level resources

    node = requireBrowser()
    if not SOCKJS_CLIENT.is_file():
        pytest.fail("{} is missing: run `npm ci` at the repository root (scripts/test does)".format(SOCKJS_CLIENT), pytrace=False)
    page = (
        '<!doctype html><html><head><meta charset="utf-8"><title>SockJS modes</title>'
        '<link rel="icon" href="data:,"><script src="/sockjs.min.js"></script>'
        "</head><body>sockjs modes</body></html>"
    )
    root = Resource()
    root.putChild(b"", Data(page.encode("utf-8"), "text/html; charset=utf-8"))
    root.putChild(b"sockjs.min.js", File(str(SOCKJS_CLIENT), defaultType="text/javascript"))
    port = prism.track(await within(serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(Site(root))))
    url = "http://127.0.0.1:{}/".format(port.getHost().port)

    # The mount needs the port for its sockjsUrl: added once listening.
    transport = SockJSTransport(handler="echo", sockjsUrl=url + "sockjs.min.js")
    server = Server(transport=transport, secret=b"sockjs-modes-test", reactor=reactor)
    server.start()
    prism._servers.append(server)
    root.putChild(b"sockjs", server.resource())

    env = dict(os.environ, PRISM_BROWSER_DEADLINE_MS=str(int(NODE_DEADLINE * 1000)), PRISM_CHROMIUM=CHROMIUM)
    code, out, err = await runProcess(reactor, [node, str(DRIVER), url, url + "sockjs"] + modes, PROCESS_TIMEOUT, env)
    lines = out.strip().splitlines()
    try:
        result = json.loads(lines[-1])
    except (IndexError, ValueError):
        pytest.fail("the browser driver printed no JSON (exit {})\nstdout:\n{}\nstderr:\n{}".format(code, out, err))
    assert result["ok"] and code == 0, "browser driver failed (exit {}): {}\nstderr:\n{}".format(
        code, json.dumps(result, indent=2), err[-3000:]
    )
    # Everything, the iframe pages' script included, came from this site.
    offsite = [r for r in result["requests"] if not r.split(" ", 1)[1].startswith(url)]
    assert offsite == []
    assert result["pageErrors"] == []
    return result


@pytest_twisted.ensureDeferred
async def test_every_browser_transport_echoes_in_order(prism, reactor):
    result = await _runModes(prism, reactor, MODES)
    failed = {}
    for name in MODES:
        seen = result["modes"][name]
        if not (seen.get("opened") and seen.get("inOrder") and seen["got"] == 12 and seen["transport"] == name
                and seen["close"]["code"] == 1000):
            failed[name] = seen
    assert failed == {}, "modes failed:\n{}".format(json.dumps(failed, indent=2))
    # The iframe transports loaded the iframe page and, from it, the local library.
    assert any(r.startswith("GET " + result["url"] + "sockjs/iframe") for r in result["requests"])
    assert result["requests"].count("GET {}sockjs.min.js".format(result["url"])) >= 2
    # No other warning than Chromium ignoring the protocol's own `document.domain = document.domain`
    # (in the iframe and htmlfile pages, as every SockJS server sends them).
    ignored = "warning: document.domain mutation is ignored because the surrounding agent cluster is origin-keyed."
    assert [line for line in result["console"] if line != ignored] == []


@pytest_twisted.ensureDeferred
async def test_xdr_streaming_is_unavailable_in_chromium(prism, reactor):
    result = await _runModes(prism, reactor, UNAVAILABLE)
    seen = result["modes"]["xdr-streaming"]
    assert not seen.get("opened") and seen["got"] == 0
    assert seen["close"] == {"code": 2000, "reason": "All transports failed", "wasClean": False}
