"""
The todo demo (examples/todo), run for real as C{scripts/demo todo} runs it:
C{prism build-client}, then C{twistd -n prism --config prism.toml} on a copy
of the example, with two pages in headless Chromium (C{tests/browser/todo.mjs})
editing the shared list at the same time. Both pages must converge on the
same list at the same version, with no edit lost; a change the schema
refuses is shown in the page and changes nothing.

CPython only: C{tests/conftest.py} leaves this file out of the PyPy run
(C{collect_ignore}), like the other browser tests. Nothing here skips: a
missing Chromium, Node.js or C{node_modules} fails with what to run.
"""

import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

import pytest
import pytest_twisted

import procutil
from conftest import waitUntil, within
from prism.errors import RemoteError
from test_browser import CHROMIUM, ROOT, requireBrowser, runProcess

EXAMPLE = ROOT / "examples" / "todo"
DRIVER = ROOT / "tests" / "browser" / "todo.mjs"
BIN = Path(sys.executable).parent
NODE_DEADLINE = 60.0
"""Seconds the Node script gives itself (it reports a JSON error after)."""
PROCESS_TIMEOUT = NODE_DEADLINE + 10.0
"""Seconds before the Node process is terminated from here."""


def _env():
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")  # no __pycache__ in examples/todo
    env.pop("PYTHONPATH", None)  # the example's own pythonpath = ["."] is enough
    return env


@pytest.fixture
def todoCopy(tmp_path):
    """The example as shipped (no generated client, no caches), in a temporary directory."""
    target = tmp_path / "todo"
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns("prism-client.js", "__pycache__"))
    return target


@pytest.fixture
def twistd(reactor):
    """Spawn C{twistd -n prism …} from the venv; killed in teardown if still running."""
    processes = []

    def spawn(cwd, *args):
        proto = procutil.Collect()
        executable = str(BIN / "twistd")
        argv = [executable, "-n", "--pidfile=", "prism"] + list(args)
        transport = reactor.spawnProcess(proto, executable, argv, env=_env(), path=str(cwd))
        processes.append((proto, transport))
        return proto, transport

    yield spawn
    for proto, transport in processes:
        if not proto.ended.called:
            try:
                transport.signalProcess("KILL")
            except Exception:
                pass


def _items(shown):
    return [(item["text"], item["done"], item["by"]) for item in shown["items"]]


@pytest_twisted.ensureDeferred
async def test_the_toml_validates(reactor):
    code, out, err = await runProcess(
        reactor, [sys.executable, "-m", "prism.cli", "check", "--config", str(EXAMPLE / "prism.toml")], 30, _env()
    )
    assert code == 0, out + err
    assert "static files from {} at /, Prism at /ws".format(EXAMPLE / "static") in out
    assert 'models (authorize="todo_hooks.authorize", types={"todo": {"initial": {"items": []}, "schema": ' in out


@pytest_twisted.ensureDeferred
async def test_two_browsers_edit_one_list_at_once(prism, reactor, twistd, todoCopy, capsys):
    node = requireBrowser()
    # What scripts/demo todo does: write the page's client, then run twistd.
    code, out, err = await runProcess(
        reactor,
        [sys.executable, "-m", "prism.cli", "build-client", "--config", str(todoCopy / "prism.toml"),
         "-o", str(todoCopy / "static" / "prism-client.js")],
        30, _env(),
    )
    assert code == 0 and (todoCopy / "static" / "prism-client.js").is_file(), out + err
    server, transport = twistd(todoCopy, "--config", "prism.toml", "--listen", "tcp:0:interface=127.0.0.1")
    # tcp:0: the port is read from the log, no guessed free port.
    def listening():
        return re.search(r"starting on (\d+)", server.text)

    await waitUntil(lambda: listening() is not None or server.ended.called, seconds=20)
    assert not server.ended.called, server.text
    port = int(listening().group(1))
    url = "http://127.0.0.1:{}/".format(port)

    # A fixed name in the temporary directory, so the path printed below
    # outlives pytest's rotation of its own temporary directories.
    screenshot = Path(tempfile.gettempdir()) / "prism-todo-browser.png"
    if screenshot.exists():
        screenshot.unlink()
    env = dict(_env(), PRISM_BROWSER_DEADLINE_MS=str(int(NODE_DEADLINE * 1000)), PRISM_CHROMIUM=CHROMIUM)
    code, out, err = await runProcess(reactor, [node, str(DRIVER), url, str(screenshot)], PROCESS_TIMEOUT, env)
    lines = out.strip().splitlines()
    try:
        result = json.loads(lines[-1])
    except (IndexError, ValueError):
        pytest.fail("the browser driver printed no JSON (exit {})\nstdout:\n{}\nstderr:\n{}".format(code, out, err))
    assert result["ok"] and code == 0, "browser driver failed (exit {}): {}\nstderr:\n{}\nserver:\n{}".format(
        code, json.dumps(result, indent=2), err[-3000:], server.text[-3000:]
    )

    opened = result["opened"]
    assert opened["a"]["status"] == opened["b"]["status"] == "connected"
    assert opened["a"]["version"] == opened["b"]["version"] == 0 and opened["a"]["items"] == []

    # 1. Twenty concurrent adds: all accepted, none lost, none twice; one
    # version per add; both pages show the same list, as their copies hold it.
    assert result["added"] == [[True] * 10, [True] * 10]
    a, b = result["afterAdds"]["a"], result["afterAdds"]["b"]
    for page in (a, b):
        assert page["version"] == page["docVersion"] == 20
        assert [(i["id"], i["text"], i["done"], i["by"]) for i in page["doc"]] == [
            (i["id"], i["text"], i["done"], i["by"]) for i in page["items"]
        ]
    assert a["items"] == b["items"]
    texts = [item["text"] for item in a["items"]]
    assert sorted(texts) == sorted("{} {}".format(who, i) for who in ("Alice", "Bob") for i in range(1, 11))
    assert {(item["text"].split()[0], item["by"]) for item in a["items"]} == {("Alice", "alice"), ("Bob", "bob")}
    assert len({item["id"] for item in a["items"]}) == 20

    # 2. Concurrent ticks: 15 changes, 15 items done, on both pages.
    a, b = result["afterTicks"]["a"], result["afterTicks"]["b"]
    assert a["version"] == b["version"] == 35 and a["items"] == b["items"]
    assert [item["text"] for item in a["items"]] == texts
    done = sorted(item["text"] for item in a["items"] if item["done"])
    assert done == sorted(["Bob {}".format(i) for i in range(1, 11)] + ["Alice {}".format(i) for i in (1, 3, 5, 7, 9)])
    assert a["count"] == "15 of 20 done"

    # 3. An edit and a delete at once, then clear completed.
    # Left: Alice's even items but the deleted 4th, one of them renamed, in the
    # order the adds were accepted (the order of the list after step 1).
    renamed = {"Alice 2": "Alice 2, edited"}
    final = [(renamed.get(t, t), False, "alice") for t in texts if t in ("Alice 2", "Alice 6", "Alice 8", "Alice 10")]
    a, b = result["afterClear"]["a"], result["afterClear"]["b"]
    assert a["version"] == b["version"] == 38
    assert _items(a) == _items(b) == final
    assert a["count"] == "0 of 4 done"

    # 4. The schema refuses a blank item and 50 more items (54 > maxItems 50):
    # the page says so, and nothing changes, on either page.
    blank = result["blank"]
    assert blank["error"]["kind"] == "invalid"
    assert "todo:shared would be invalid" in blank["error"]["text"] and "text must" in blank["error"]["text"]
    many = result["tooMany"]
    assert many["accepted"] is False
    assert many["error"] == {
        "kind": "invalid",
        "text": "todo:shared would be invalid: data.items must contain less than or equal to 50 items",
    }
    for page in (blank, many, result["afterErrorsB"], result["afterReload"]):
        assert page["version"] == 38 and _items(page) == final
    assert result["afterErrorsB"]["error"] is None

    # 5. A reload opens the list again, as it is; the nickname stays; and the
    # reloaded page's edits reach the other one.
    assert result["afterReload"]["status"] == "connected" and result["afterReload"]["nick"] == "bob"
    final = [(text, text == "Alice 6", by) for text, _, by in final]
    a, b = result["afterLastTick"]["a"], result["afterLastTick"]["b"]
    assert a["version"] == b["version"] == 39 and _items(a) == _items(b) == final
    assert a["error"]["kind"] == "invalid"  # A's error stays until A's next change succeeds (or it is dismissed)

    # The server holds what the pages show; it refuses a blank text from a
    # Python client too.
    client = await prism.connect("ws://127.0.0.1:{}/ws".format(port))
    document = await within(client.api.models.request(["get", "todo:shared"]))
    assert document["v"] == 39 and [(i["text"], i["done"], i["by"]) for i in document["value"]["items"]] == final
    with pytest.raises(RemoteError) as caught:
        await within(client.api.models.request(
            ["patch", "todo:shared", 39, [{"op": "replace", "path": "/items/0/text", "value": ""}]]))
    assert caught.value.kind == "invalid"
    with pytest.raises(RemoteError) as caught:
        await within(client.api.models.request(["get", "notes:shared"]))
    assert caught.value.kind == "invalid"

    # A clean page and a clean server: no script errors, no warnings, no tracebacks.
    assert result["pageErrors"] == [] and result["console"] == []
    client.close()
    transport.signalProcess("TERM")
    await within(server.ended, 10)
    assert "Traceback (most recent call last)" not in server.text, server.text
    assert "#critical]" not in server.text and "#error]" not in server.text, server.text

    assert screenshot.stat().st_size > 5000
    with capsys.disabled():
        print("\n  todo screenshot ({}): {}".format(result["browser"], screenshot))
