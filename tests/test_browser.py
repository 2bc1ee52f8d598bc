"""
The chat demo (examples/chat) in real headless Chromium: Debian's
C{/usr/bin/chromium} driven by C{playwright-core} from a Node.js script
(C{tests/browser/chat.mjs}). Two browser contexts (two sessions) set
nicknames and exchange messages through the server; an empty post is
rejected, and the page shows the rejected Promise's C{kind}.

CPython only: C{tests/conftest.py} leaves this file out of the PyPy run
(C{collect_ignore}, announced in the report header). Nothing here skips: a
missing Chromium, Node.js or C{node_modules} fails with what to run
(C{scripts/test} installs all three).
"""

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet.endpoints import serverFromString
from procutil import Collect

from conftest import within

ROOT = Path(__file__).resolve().parents[1]
DRIVER = ROOT / "tests" / "browser" / "chat.mjs"
CHROMIUM = os.environ.get("PRISM_CHROMIUM", "/usr/bin/chromium")
NODE_DEADLINE = 15.0
"""Seconds the Node script gives itself (it reports a JSON error after)."""
PROCESS_TIMEOUT = NODE_DEADLINE + 10.0
"""Seconds before the Node process is terminated from here."""

# Importing twisted.web.static warns about its own module-level resources.
pytestmark = pytest.mark.filterwarnings("ignore:twisted.web.resource._Unsafe:DeprecationWarning")


def requireBrowser():
    """Fail (never skip) with a useful message when a prerequisite is missing."""
    problems = []
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        problems.append("{} is missing: apt-get install chromium (scripts/test does)".format(CHROMIUM))
    node = shutil.which("node")
    if node is None:
        problems.append("node is missing: apt-get install nodejs npm (scripts/test does)")
    if not (ROOT / "node_modules" / "playwright-core" / "package.json").is_file():
        problems.append("node_modules/playwright-core is missing: run `npm ci` at the repository root (scripts/test does)")
    if problems:
        pytest.fail("browser test prerequisites missing:\n  " + "\n  ".join(problems), pytrace=False)
    return node


async def runProcess(reactor, argv, timeout, env=None):
    """
    Run C{argv} without blocking the reactor; SIGTERM after C{timeout}
    seconds, SIGKILL 3 seconds later.

    @return: C{(exit code or None if killed, stdout, stderr)} as text.
    """
    proto = Collect()
    process = reactor.spawnProcess(proto, argv[0], argv, env=env, path=str(ROOT))
    killed = []

    def stop(signal):
        if not proto.ended.called:
            killed.append(signal)
            try:
                process.signalProcess(signal)
            except Exception:
                pass

    term = reactor.callLater(timeout, stop, "TERM")
    kill = reactor.callLater(timeout + 3, stop, "KILL")
    try:
        code = await proto.ended
    finally:
        for call in (term, kill):
            if call.active():
                call.cancel()
    out = b"".join(proto.out).decode("utf-8", "replace")
    err = b"".join(proto.err).decode("utf-8", "replace")
    if killed:
        raise AssertionError(
            "{} did not finish within {} s (sent SIG{})\nstdout:\n{}\nstderr:\n{}".format(
                argv[1], timeout, "/".join(killed), out[-3000:], err[-3000:]
            )
        )
    return code, out, err


@pytest.fixture
def chatExample():
    from examples.chat import server

    return server


@pytest_twisted.ensureDeferred
async def test_two_browsers_chat_and_see_an_rpc_error(prism, reactor, chatExample, capsys):
    node = requireBrowser()
    site, server = chatExample.build(reactor=reactor, secret=b"browser-test")
    prism._servers.append(server)
    port = prism.track(await within(serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(site)))
    url = "http://127.0.0.1:{}/".format(port.getHost().port)
    # A fixed name in the temporary directory, so the path printed below
    # outlives pytest's rotation of its own temporary directories.
    screenshot = Path(tempfile.gettempdir()) / "prism-chat-browser.png"
    if screenshot.exists():
        screenshot.unlink()

    env = dict(os.environ, PRISM_BROWSER_DEADLINE_MS=str(int(NODE_DEADLINE * 1000)), PRISM_CHROMIUM=CHROMIUM)
    code, out, err = await runProcess(reactor, [node, str(DRIVER), url, str(screenshot)], PROCESS_TIMEOUT, env)
    lines = out.strip().splitlines()
    try:
        result = json.loads(lines[-1])
    except (IndexError, ValueError):
        pytest.fail("the browser driver printed no JSON (exit {})\nstdout:\n{}\nstderr:\n{}".format(code, out, err))
    assert result["ok"] and code == 0, "browser driver failed (exit {}): {}\nstderr:\n{}".format(
        code, json.dumps(result, indent=2), err[-3000:]
    )

    # Both pages connected, and each saw the other's message with its nickname.
    assert result["status"] == {"a": "connected", "b": "connected"}
    assert result["bSaw"]["nick"] == "alice" and not result["bSaw"]["mine"]
    assert result["aSawOwn"] == dict(result["bSaw"], mine=True)
    assert result["aSaw"]["nick"] == "bob" and not result["aSaw"]["mine"]
    # The empty post: a rejected Promise, shown in the page with its kind.
    assert result["shownError"]["visible"] and result["shownError"]["kind"] == "invalid"
    assert "cannot post an empty message" in result["shownError"]["text"]
    assert result["rejected"] == {"isError": True, "kind": "invalid", "message": "cannot post an empty message"}
    # The nickname lives in the session: it survives a reload, as does the room.
    assert result["nickAfterReload"] == "bob"
    assert any("Hello from Alice" in line for line in result["bHistory"])
    # A clean page: no script errors, no failed requests, no warnings.
    assert result["pageErrors"] == [] and result["console"] == []

    # The server saw the same conversation.
    texts = [(m["nick"], m["text"]) for m in server.api.chat.history() if not m.get("notice")]
    assert texts == [("alice", "Hello from Alice"), ("bob", "Hi Alice, Bob here")]
    assert screenshot.stat().st_size > 5000
    with capsys.disabled():
        print("\n  chat screenshot ({}): {}".format(result["browser"], screenshot))
