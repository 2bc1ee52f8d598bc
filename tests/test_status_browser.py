"""
The status dashboard in real headless Chromium (C{tests/browser/status.mjs}):
C{twistd -n prism --config} with an admin listener, the dashboard and an RPC
service; Python clients put RPC load on it while Chromium opens
C{/status?token=…}. The charts must fill up (connections, messages per
second in and out, RPC latency) from the C{prism.status} pubsub channel, a
page opened later must draw the recent past from the channel's history at
once, and the page must load nothing but itself and its WebSocket. The
screenshot goes to C{tests/artifacts/status-dashboard.png} (its path is
printed).

CPython only: C{tests/conftest.py} leaves this file out of the PyPy run, as
every browser test; C{tests/test_status.py} covers the same server from
Python on both interpreters.
"""

import json
import os

import pytest
import pytest_twisted

from test_browser import CHROMIUM, ROOT, requireBrowser, runProcess
from test_status import TOKEN, RPCLoad, StatusRun

DRIVER = ROOT / "tests" / "browser" / "status.mjs"
SCREENSHOT = ROOT / "tests" / "artifacts" / "status-dashboard.png"
NODE_DEADLINE = 30.0
"""Seconds the Node script gives itself (it reports a JSON error after)."""

pytestmark = [
    pytest.mark.filterwarnings("ignore:twisted.web.resource._Unsafe:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:Using readBody with a transport:DeprecationWarning"),
]


@pytest_twisted.async_yield_fixture
async def statusRun(reactor, tmp_path):
    run = StatusRun(reactor, tmp_path, interval=0.5, history=30)  # charts of the last 15 s
    try:
        yield run
    finally:
        run.kill()


@pytest_twisted.ensureDeferred
async def test_dashboard_charts_fill_up_in_chromium(prism, reactor, statusRun, capsys):
    node = requireBrowser()
    run = await statusRun.start()
    SCREENSHOT.parent.mkdir(exist_ok=True)
    if SCREENSHOT.exists():
        SCREENSHOT.unlink()

    load = await RPCLoad(prism, run.url, clients=4, seconds=NODE_DEADLINE + 5).start()
    env = dict(os.environ, PRISM_BROWSER_DEADLINE_MS=str(int(NODE_DEADLINE * 1000)), PRISM_CHROMIUM=CHROMIUM)
    url = "{}/status?token={}".format(run.admin, TOKEN)
    try:
        code, out, err = await runProcess(reactor, [node, str(DRIVER), url, str(SCREENSHOT)], NODE_DEADLINE + 10, env)
    finally:
        await load.stop()
    lines = out.strip().splitlines()
    try:
        result = json.loads(lines[-1])
    except (IndexError, ValueError):
        pytest.fail("the browser driver printed no JSON (exit {})\nstdout:\n{}\nstderr:\n{}".format(code, out, err))
    assert result["ok"] and code == 0, "browser driver failed (exit {}): {}\nstderr:\n{}\nserver:\n{}".format(
        code, json.dumps(result, indent=2), err[-3000:], run.proto.text[-3000:]
    )

    a, b = result["a"], result["b"]
    assert result["aHttp"] == result["bHttp"] == 200
    assert a["status"] == "open" and a["state"] == "running" and a["title"] == "Prism status"
    charts = a["charts"]
    # Non-empty charts, and the latest values the page shows.
    assert a["samples"] >= 8
    for name in ("connections", "messages", "latency", "errors"):
        assert int(charts[name]["points"]) >= 4, (name, charts[name])
    assert float(charts["connections"]["latestConnections"]) >= 4  # the load's clients
    assert float(charts["messages"]["latestIn"]) > 0 and float(charts["messages"]["latestOut"]) > 0
    assert float(charts["latency"]["latestP99"]) >= float(charts["latency"]["latestP50"]) > 0
    assert all(w > 0 and h > 0 for w, h in a["canvases"])
    # The page opened later drew the past at once, from the channel's history.
    assert b["status"] == "open" and b["history"] >= 4 and int(b["charts"]["messages"]["points"]) >= 4
    # A clean page: nothing failed, nothing refused by its Content-Security-Policy.
    assert result["pageErrors"] == [] and result["console"] == [] and result["failedRequests"] == []
    assert load.calls > 200

    assert SCREENSHOT.stat().st_size > 10000
    with capsys.disabled():
        print("\n  status dashboard screenshot ({}): {}".format(result["browser"], SCREENSHOT))
    output = await run.stop()
    assert "Traceback (most recent call last)" not in output, output

