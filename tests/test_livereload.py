"""
The C{livereload} service (L{prism.services.livereload}): the ignore rules,
the debounce (on a fake clock), the polling watcher (on a fake clock, real
files), the inotify watcher (real files, the real reactor), the pushes to
real clients over 127.0.0.1 WebSockets (Python, and the generated client in
Node.js), the configuration file, and a page in headless Chromium that
restyles itself on a stylesheet edit and reloads on a script or HTML edit.

The browser test is defined under CPython only (the PyPy run covers the
rest); like C{tests/test_browser.py}, it fails rather than skips when
Chromium, Node.js or C{node_modules} are missing.
"""

import json
import os
import platform
import shutil
import sys
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet.endpoints import serverFromString
from twisted.internet.task import Clock

from conftest import nextEvent, waitUntil, within
from prism.config import configFromDict, loadConfig
from prism.errors import PrismConfigError
from prism.services.livereload import (
    DEFAULT_IGNORE,
    MAX_PATHS,
    Ignore,
    InotifyWatcher,
    LiveReloadService,
    PollingWatcher,
)
from prism.testing import EventRecorder, PrismTestServer

ROOT = Path(__file__).resolve().parents[1]
LINUX = sys.platform.startswith("linux")

# Importing twisted.web.static warns about its own module-level resources.
pytestmark = pytest.mark.filterwarnings("ignore:twisted.web.resource._Unsafe:DeprecationWarning")


# -- the ignore rules


@pytest.mark.parametrize(
    "path",
    [
        ".git/config",
        "css/.hidden.css",
        ".venv/lib/site.py",
        "app.css~",
        ".#app.css",
        "#app.css#",
        "css/.app.css.swp",
        "app.css.swp",
        "app.css.swx",
        "4913",
        "css/4913",
        "upload.tmp",
        "app.css.bak",
        "__pycache__/x.cpython-311.pyc",
        "handlers.pyc",
        "node_modules/ws/index.js",
        "app.js___jb_tmp___",
    ],
)
def test_ignored_by_default(path):
    assert Ignore()(path)


@pytest.mark.parametrize(
    "path", ["app.css", "css/app.css", "index.html", "4914", "tmp/app.css", "a~b.css", "swp/app.js", "x.tmp.js"]
)
def test_not_ignored_by_default(path):
    assert not Ignore()(path)


def test_configured_globs_add_to_the_defaults():
    ignore = Ignore(["build", "*.map", "vendor/*.js"])
    assert ignore("build/app.js") and ignore("src/build/deep/app.js")  # a name: any component
    assert ignore("app.js.map") and ignore("css/app.css.map")
    assert ignore("vendor/lib.js") and ignore("vendor/sub/lib.js")  # a path: from the watched directory
    assert not ignore("vendor/lib.css") and not ignore("src/vendor/lib.js")
    assert ignore("app.css~") and ignore(".git/HEAD")  # the defaults still apply
    assert not ignore("app.js") and not ignore("builder/app.js")
    assert set(DEFAULT_IGNORE) >= {".*", "*~", "#*#", "*.swp", "*.swx", "4913", "*.tmp"}


@pytest.mark.parametrize(
    "options,message",
    [
        ({"paths": "static"}, "paths must be a list"),
        ({"paths": ["/nonexistent/prism-livereload"]}, "is not a directory"),
        ({"ignore": "*.map"}, "ignore must be a list"),
        ({"debounce": -1}, "debounce must be a number of seconds >= 0"),
        ({"pollInterval": 0}, "pollInterval must be a number of seconds > 0"),
        ({"watcher": "fsevents"}, "watcher must be one of auto, inotify, poll"),
        ({"cssExtensions": ".css"}, "cssExtensions must be a list"),
        ({"maxFiles": 0}, "maxFiles must be a positive integer"),
    ],
)
def test_bad_options(tmp_path, options, message):
    options.setdefault("paths", [str(tmp_path)])
    with pytest.raises(PrismConfigError, match=message):
        LiveReloadService(**options)


# -- debounce and pushes, on a fake clock


class Page:
    """A loopback client of a L{PrismTestServer} recording livereload pushes."""

    def __init__(self, ts):
        self.client = ts.client()
        self.pushes = []
        self.client.api.livereload.on(self.pushes.append)


@pytest.fixture
def fake(tmp_path):
    """A server on the loopback transport and a fake clock; nothing is watched."""
    service = LiveReloadService(paths=[str(tmp_path)], debounce=0.1, watcher="poll", pollInterval=3600)
    ts = PrismTestServer(services={"livereload": service})
    ts.service = service
    ts.root = tmp_path
    ts.changes = EventRecorder(ts.server, "livereload.change")
    yield ts
    ts.stop()


def test_a_burst_is_one_notification(fake):
    page, other = Page(fake), Page(fake)
    service, root = fake.service, fake.root
    service.changed(str(root / "a.css"))
    fake.clock.advance(0.05)
    service.changed(str(root / "css" / "b.css"))
    service.changed(str(root / "a.css"))  # again: listed once
    fake.clock.advance(0.09)  # 0.14 s after the first change, 0.09 s after the last
    assert page.pushes == []
    fake.clock.advance(0.01)
    assert page.pushes == other.pushes == [{"paths": ["a.css", "css/b.css"], "reload": False}]
    assert fake.changes.named("livereload.change") == [
        ({"paths": ["a.css", "css/b.css"], "reload": False, "files": [str(root / "a.css"), str(root / "css" / "b.css")]},)
    ]
    fake.clock.advance(10)
    assert len(page.pushes) == 1


def test_any_other_file_reloads(fake):
    page = Page(fake)
    fake.service.changed(str(fake.root / "app.css"))
    fake.api.livereload.changed(str(fake.root / "index.html"))  # what build tools call
    fake.clock.advance(0.1)
    assert page.pushes == [{"paths": ["app.css", "index.html"], "reload": True}]


def test_a_continuous_stream_is_sent_every_ten_debounces(fake):
    page = Page(fake)
    for i in range(40):  # a change every 50 ms for 2 s
        fake.service.changed(str(fake.root / "f{}.js".format(i)))
        fake.clock.advance(0.05)
    assert [len(p["paths"]) for p in page.pushes] == [20, 20]


def test_at_most_max_paths_are_listed(fake):
    page = Page(fake)
    for i in range(MAX_PATHS + 50):
        fake.service.changed(str(fake.root / "f{}.css".format(i)))
    fake.clock.advance(0.1)
    (push,) = page.pushes
    assert len(push["paths"]) == MAX_PATHS and push["reload"] is True


def test_stylesheet_extensions_are_configurable(tmp_path):
    service = LiveReloadService(paths=[str(tmp_path)], watcher="poll", cssExtensions=["css", ".SCSS"])
    assert service.cssExtensions == (".css", ".scss")
    assert service.isStylesheet("a/b.scss") and service.isStylesheet("B.CSS") and not service.isStylesheet("b.sass")


def test_notify_sends_at_once_with_what_is_pending(fake):
    page = Page(fake)
    api, root = fake.api.livereload, fake.root
    fake.service.changed(str(root / "a.css"))
    change = api.notify(["css/b.css"])
    assert change == {"paths": ["a.css", "css/b.css"], "reload": False, "files": [str(root / "a.css"), "css/b.css"]}
    assert page.pushes == [{"paths": ["a.css", "css/b.css"], "reload": False}]
    fake.clock.advance(1)
    assert len(page.pushes) == 1  # the debounce timer was cancelled

    # Absolute paths become relative to the watched directory; others lose a leading slash.
    assert api.notify(str(root / "sub" / "x.css"))["paths"] == ["sub/x.css"]
    assert api.notify(["/css/app.css"])["paths"] == ["css/app.css"]
    # Without paths: reload every page.
    assert api.notify() == {"paths": [], "reload": True, "files": []}
    assert page.pushes[-1] == {"paths": [], "reload": True}
    assert api.paths == [str(root)] and api.watcher == "poll"


def test_innermost_watched_directory_wins(tmp_path):
    (tmp_path / "css").mkdir()
    service = LiveReloadService(paths=[str(tmp_path), str(tmp_path / "css")], watcher="poll")
    assert service.relative(str(tmp_path / "css" / "a.css")) == "a.css"
    assert service.relative(str(tmp_path / "b.css")) == "b.css"
    assert service.relative(str(tmp_path) + "-other/c.css") == str(tmp_path).lstrip("/") + "-other/c.css"


def test_clients_may_not_send(fake):
    page = Page(fake)
    page.client.api.livereload.send("hello")
    assert fake.errors[-1].kind == "malformed" and "only pushes" in fake.errors[-1].message


def test_stop_cancels_pending_changes_and_stops_watching(tmp_path):
    service = LiveReloadService(paths=[str(tmp_path)], watcher="poll", pollInterval=1.0)
    ts = PrismTestServer(services={"livereload": service})
    page = Page(ts)
    watcher = service.watcher
    assert watcher.running
    service.changed(str(tmp_path / "a.css"))
    ts.stop()
    assert not watcher.running and service.watcher is None and ts.api.livereload.watcher is None
    ts.clock.advance(5)
    assert page.pushes == [] and ts.clock.getDelayedCalls() == []


def test_nothing_watched_without_paths():
    service = LiveReloadService(paths=[])
    ts = PrismTestServer(services={"livereload": service})
    page = Page(ts)
    assert ts.api.livereload.watcher is None
    ts.api.livereload.notify("index.html")
    assert page.pushes == [{"paths": ["index.html"], "reload": True}]
    ts.stop()


# -- the polling watcher, on a fake clock


def _write(path, text="x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_polling_reports_new_changed_and_deleted_files(tmp_path):
    clock = Clock()
    reported = []
    existing = _write(tmp_path / "old.css")
    watcher = PollingWatcher([str(tmp_path)], Ignore(), reported.append, clock, interval=1.0)
    watcher.start()
    clock.advance(1)
    assert reported == []  # what was there at start is the baseline

    created = _write(tmp_path / "css" / "new.css")
    _write(tmp_path / "css" / "new.css~")
    _write(tmp_path / ".git" / "index")
    _write(tmp_path / "4913")
    clock.advance(1)
    assert reported == [created]

    # Same size, same second: the nanosecond mtime tells.
    st = os.stat(existing)
    _write(tmp_path / "old.css", "y")
    os.utime(existing, ns=(st.st_atime_ns, st.st_mtime_ns + 1))
    clock.advance(1)
    assert reported == [created, existing]

    os.remove(created)
    clock.advance(1)
    assert reported == [created, existing, created]

    watcher.stop()
    assert not watcher.running and clock.getDelayedCalls() == []
    _write(tmp_path / "late.css")
    clock.advance(5)
    assert len(reported) == 3


def test_polling_is_bounded(tmp_path):
    for i in range(25):
        _write(tmp_path / "d{}".format(i % 3) / "f{}.js".format(i))
    watcher = PollingWatcher([str(tmp_path)], Ignore(), lambda path: None, Clock(), maxFiles=10)
    assert len(watcher.scan()) == 10 and watcher.truncated


def test_without_file_descriptors_auto_polls_and_inotify_refuses(tmp_path):
    # A Clock cannot watch file descriptors: "auto" falls back to polling,
    # "inotify" refuses to start.
    ts = PrismTestServer(services={"livereload": LiveReloadService(paths=[str(tmp_path)], reactor=Clock())})
    assert ts.api.livereload.watcher == "poll"
    ts.stop()
    with pytest.raises(PrismConfigError, match="livereload: "):
        PrismTestServer(services={"livereload": LiveReloadService(paths=[str(tmp_path)], watcher="inotify", reactor=Clock())})


# -- the inotify watcher, on the real reactor


def _inotify(reactor, root, reported):
    watcher = InotifyWatcher([str(root)], Ignore(), reported.append, reactor)
    watcher.start()
    return watcher


@pytest.mark.skipif(not LINUX, reason="inotify is Linux only")
@pytest_twisted.ensureDeferred
async def test_inotify_watches_the_tree_as_it_changes(reactor, tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / ".git").mkdir()
    reported = []
    watcher = _inotify(reactor, tmp_path, reported)
    try:
        assert watcher.directories == {str(tmp_path), str(tmp_path / "sub")}  # not .git

        # A file, then ignored files followed by a sentinel: events arrive in
        # order, so once the sentinel is reported the others were seen.
        a = _write(tmp_path / "a.css")
        await waitUntil(lambda: a in reported)
        for name in ("a.css~", ".#a.css", "#a.css#", ".a.css.swp", "4913", "x.tmp", ".git/HEAD"):
            _write(tmp_path / name)
        sentinel = _write(tmp_path / "sub" / "b.css")
        await waitUntil(lambda: sentinel in reported)
        assert set(reported) == {a, sentinel}

        # New directories are watched, and files made before the watch reported.
        deep = _write(tmp_path / "new" / "er" / "est" / "c.css")
        await waitUntil(lambda: deep in reported)
        assert str(tmp_path / "new" / "er" / "est") in watcher.directories
        later = _write(tmp_path / "new" / "er" / "est" / "d.js")
        await waitUntil(lambda: later in reported)

        # Deleting a watched directory does not stop the watcher (Twisted's
        # INotify closes itself on IN_DELETE_SELF; ours does not).
        shutil.rmtree(str(tmp_path / "sub"))
        after = _write(tmp_path / "after.html")
        await waitUntil(lambda: after in reported)
        assert str(tmp_path / "sub") in reported and str(tmp_path / "sub") not in watcher.directories

        # A directory moved within the tree is watched under its new name only.
        os.rename(str(tmp_path / "new"), str(tmp_path / "moved"))
        moved = _write(tmp_path / "moved" / "er" / "est" / "e.css")
        await waitUntil(lambda: moved in reported)
        assert not any(d.startswith(str(tmp_path / "new")) for d in watcher.directories)
        assert str(tmp_path / "moved" / "er" / "est") in watcher.directories

        # An atomic save (write a temporary file, rename it over the old one).
        _write(tmp_path / "a.css.tmp", "z")
        reported.clear()
        os.rename(str(tmp_path / "a.css.tmp"), a)
        await waitUntil(lambda: a in reported)
    finally:
        watcher.stop()


@pytest.mark.skipif(not LINUX, reason="inotify is Linux only")
@pytest_twisted.ensureDeferred
async def test_inotify_stop_removes_every_watch(reactor, tmp_path):
    _write(tmp_path / "x" / "y" / "z.css")
    stopped, control = [], []
    watcher = _inotify(reactor, tmp_path, stopped)
    other = _inotify(reactor, tmp_path, control)
    notifier = watcher._notifier
    try:
        assert len(watcher.directories) == 3
        watcher.stop()
        assert watcher.directories == set() and not watcher.running
        await waitUntil(lambda: notifier.disconnected)  # its file descriptor is closed
        changed = _write(tmp_path / "x" / "y" / "z.css", "changed")
        await waitUntil(lambda: changed in control)  # the other watcher saw it …
        assert stopped == []  # … the stopped one did not
    finally:
        other.stop()


# -- real clients over 127.0.0.1


def _page(root):
    """A small site: index.html, app.js, css/app.css."""
    _write(root / "index.html", "<!doctype html><title>t</title>")
    _write(root / "app.js", "// app")
    _write(root / "css" / "app.css", "body {}")


@pytest.mark.parametrize("watcher", ["inotify", "poll"] if LINUX else ["poll"])
@pytest_twisted.ensureDeferred
async def test_pushes_to_every_connected_client(prism, tmp_path, watcher):
    _page(tmp_path)
    service = LiveReloadService(paths=[str(tmp_path)], debounce=0.2, watcher=watcher, pollInterval=0.05)
    served = await prism.serve({"livereload": service})
    assert served.server.api.livereload.watcher == watcher
    pages = [await prism.connect(served.url) for _ in range(2)]
    pushes = [[], []]
    for client, received in zip(pages, pushes):
        client.api.livereload.on(received.append)

    changed = nextEvent(served.server.events, "livereload.change")
    _write(tmp_path / "css" / "app.css", "body { color: red }")
    change = await changed
    assert change == {"paths": ["css/app.css"], "reload": False, "files": [str(tmp_path / "css" / "app.css")]}
    await waitUntil(lambda: all(received for received in pushes))
    assert pushes == [[{"paths": ["css/app.css"], "reload": False}]] * 2

    # Two files saved together: one notification naming both; a reload.
    changed = nextEvent(served.server.events, "livereload.change")
    _write(tmp_path / "index.html", "<!doctype html><title>two</title>")
    _write(tmp_path / "app.js", "// two")
    change = await changed
    assert sorted(change["paths"]) == ["app.js", "index.html"] and change["reload"] is True
    await waitUntil(lambda: all(len(received) == 2 for received in pushes))
    assert all(received[1] == {"paths": change["paths"], "reload": True} for received in pushes)

    # By hand, from the server.
    served.server.api.livereload.notify()
    await waitUntil(lambda: all(len(received) == 3 for received in pushes))
    assert all(received[2] == {"paths": [], "reload": True} for received in pushes)


@pytest_twisted.ensureDeferred
async def test_the_javascript_client_in_node_only_emits(prism, reactor, tmp_path):
    """Without a document (Node.js), the client half neither reloads nor throws: handlers see the pushes."""
    from procutil import Collect

    node = shutil.which("node")
    assert node is not None, "Node.js 20 is required (apt-get install nodejs)"
    assert (ROOT / "node_modules" / "ws" / "package.json").exists(), "run `npm ci` at the repository root"
    served = await prism.serve({"livereload": LiveReloadService(paths=[])})
    client = tmp_path / "client.cjs"
    client.write_text(served.server.build_client(format="cjs"), encoding="utf-8")

    script = (
        "const { createClient } = require(process.argv[1]);"
        "const app = createClient({ url: process.argv[2], WebSocket: require('ws'), reconnect: false });"
        "const got = [];"
        "const timer = setTimeout(() => { console.log(JSON.stringify({ error: 'timeout', got })); process.exit(1); }, 10000);"
        "app.api.livereload.on((m) => { got.push(m); if (got.length == 2) {"
        "  clearTimeout(timer); app.close();"
        "  console.log(JSON.stringify({ got, members: Object.keys(app.api.livereload).sort() })); } });"
        "app.connect().then(() => console.log('connected'));"
    )
    proto = Collect()
    process = reactor.spawnProcess(proto, node, [node, "-e", script, str(client), served.url], env=dict(os.environ), path=str(ROOT))
    try:
        await waitUntil(lambda: b"connected" in proto.output or proto.ended.called, 15)
        served.server.api.livereload.notify(["css/app.css"])
        served.server.api.livereload.notify(["index.html"])
        code = await within(proto.ended, 15)
    finally:
        if not proto.ended.called:
            process.signalProcess("KILL")
    out = b"".join(proto.out).decode("utf-8", "replace")
    assert code == 0, proto.text
    result = json.loads(out.strip().splitlines()[-1])
    assert result["got"] == [{"paths": ["css/app.css"], "reload": False}, {"paths": ["index.html"], "reload": True}]
    assert result["members"] == ["name", "off", "on", "request", "send"]
    assert proto.err == []


# -- the configuration file


def test_config_resolves_paths_against_the_file(tmp_path):
    (tmp_path / "static" / "css").mkdir(parents=True)
    (tmp_path / "templates").mkdir()
    config = tmp_path / "prism.toml"
    config.write_text(
        'static = "static"\n'
        "[[services]]\n"
        'name = "livereload"\n'
        'paths = ["static", "templates"]\n'
        'ignore = ["*.map"]\n'
        "debounce = 0.25\n"
        'watcher = "poll"\n'
        "poll_interval = 0.5\n"
        'css_extensions = [".css", ".less"]\n'
        "max_files = 500\n",
        encoding="utf-8",
    )
    elsewhere = tmp_path / "static" / "css"
    old = os.getcwd()
    os.chdir(str(elsewhere))  # not the file's directory
    try:
        loaded = loadConfig(str(config))
    finally:
        os.chdir(old)
    (entry,) = loaded.services
    assert entry.kwargs == {
        "paths": [str(tmp_path / "static"), str(tmp_path / "templates")],
        "ignore": ["*.map"],
        "debounce": 0.25,
        "watcher": "poll",
        "pollInterval": 0.5,
        "cssExtensions": [".css", ".less"],
        "maxFiles": 500,
    }
    service = entry.build()
    assert service.paths == [str(tmp_path / "static"), str(tmp_path / "templates")]
    assert service.pollInterval == 0.5 and service.cssExtensions == (".css", ".less")


def test_config_watches_static_by_default_else_the_file_directory(tmp_path):
    (tmp_path / "www").mkdir()
    with_static = configFromDict(
        {"static": "www", "services": [{"name": "livereload"}]}, "prism.toml", str(tmp_path)
    )
    assert with_static.services[0].kwargs == {"paths": [str(tmp_path / "www")]}
    without = configFromDict({"services": [{"name": "livereload"}]}, "prism.toml", str(tmp_path))
    assert without.services[0].kwargs == {"paths": [str(tmp_path)]}


def test_config_errors_name_the_key(tmp_path):
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(PrismConfigError) as caught:
        configFromDict(
            {
                "services": [
                    {"name": "rpc"},
                    {
                        "name": "livereload",
                        "paths": ["missing", "file.txt"],
                        "watcher": "fsevents",
                        "debounce": "fast",
                        "pollInterval": 1,
                    },
                ]
            },
            "prism.toml",
            str(tmp_path),
        )
    errors = caught.value.errors
    assert (
        "prism.toml: services[1].paths: expected an array of existing directories, found array "
        '["missing", "file.txt"] ({} does not exist)'.format(tmp_path / "missing") in errors
    )
    assert 'prism.toml: services[1].watcher: expected one of "auto", "inotify", "poll", found string "fsevents"' in errors
    assert 'prism.toml: services[1].debounce: expected a number of seconds >= 0, found string "fast"' in errors
    assert any(e.startswith("prism.toml: services[1].pollInterval: unknown option") and "did you mean poll_interval?" in e for e in errors)


def test_the_plugin_is_built_in():
    from prism._plugins import Registry

    plugin = Registry("service").get("livereload")
    assert plugin.load() is LiveReloadService


@pytest.mark.filterwarnings("ignore:Using readBody with a transport:DeprecationWarning")
@pytest_twisted.ensureDeferred
async def test_static_files_are_not_cached_while_live_reload_runs(prism, reactor, tmp_path):
    from twisted.web.client import Agent, readBody

    _page(tmp_path / "static")

    async def cacheControl(services):
        config = configFromDict({"static": "static", "services": services}, "prism.toml", str(tmp_path))
        server = config.buildServer(reactor)
        server.start()
        prism._servers.append(server)
        port = prism.track(await within(serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(config.buildSite(server))))
        controls = []
        for path in ("/", "/css/app.css"):
            url = "http://127.0.0.1:{}{}".format(port.getHost().port, path)
            response = await within(Agent(reactor).request(b"GET", url.encode("ascii")))
            await within(readBody(response))
            assert response.code == 200
            controls.append(response.headers.getRawHeaders(b"cache-control"))
        return controls

    assert await cacheControl([{"name": "livereload", "watcher": "poll"}]) == [[b"no-store"], [b"no-store"]]
    assert await cacheControl([{"name": "echo"}]) == [None, None]


# -- a page in headless Chromium (CPython only: see the module docstring)

if platform.python_implementation() != "PyPy":

    @pytest_twisted.ensureDeferred
    async def test_browser_restyles_on_css_and_reloads_on_js_and_html(prism, reactor, tmp_path):
        from test_browser import CHROMIUM, NODE_DEADLINE, PROCESS_TIMEOUT, requireBrowser, runProcess

        node = requireBrowser()
        static = tmp_path / "static"
        _write(
            static / "index.html",
            "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>livereload</title>\n"
            '<link rel="icon" href="data:,">\n'
            '<link rel="stylesheet" href="css/app.css">\n'
            '<link rel="stylesheet" href="other.css">\n'
            '<script type="module" src="app.js"></script>\n'
            '</head><body><h1 id="title">one</h1></body></html>\n',
        )
        _write(static / "css" / "app.css", "body { color: rgb(1, 2, 3); }\n")
        _write(static / "other.css", "h1 { margin: 0; }\n")
        _write(
            static / "app.js",
            'import { createClient } from "./prism-client.js";\n'
            'const VERSION = "1";\n'
            "document.body.dataset.version = VERSION;\n"
            "createClient().connect().then(() => (document.body.dataset.status = \"open\"));\n",
        )
        config = configFromDict(
            {"static": "static", "services": [{"name": "livereload", "debounce": 0.05}]}, "prism.toml", str(tmp_path)
        )
        server = config.buildServer(reactor)
        _write(static / "prism-client.js", server.build_client())
        # Files untouched for a week: a browser would cache them for hours
        # (heuristic freshness) unless the site says no-store, and the
        # reloaded page would run the old script.
        week = reactor.seconds() - 7 * 86400
        for path in static.rglob("*"):
            if path.is_file():
                os.utime(str(path), (week, week))
        server.start()  # the watcher starts after these changes
        prism._servers.append(server)
        assert server.api.livereload.watcher == ("inotify" if LINUX else "poll")
        changes = EventRecorder(server, "livereload.change")
        port = prism.track(await within(serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(config.buildSite(server))))
        url = "http://127.0.0.1:{}/".format(port.getHost().port)

        env = dict(os.environ, PRISM_BROWSER_DEADLINE_MS=str(int(NODE_DEADLINE * 1000)), PRISM_CHROMIUM=CHROMIUM)
        driver = ROOT / "tests" / "browser" / "livereload.mjs"
        code, out, err = await runProcess(reactor, [node, str(driver), url, str(static)], PROCESS_TIMEOUT, env)
        try:
            result = json.loads(out.strip().splitlines()[-1])
        except (IndexError, ValueError):
            pytest.fail("the browser driver printed no JSON (exit {})\nstdout:\n{}\nstderr:\n{}".format(code, out, err))
        assert result["ok"] and code == 0, "browser driver failed (exit {}): {}\nstderr:\n{}".format(
            code, json.dumps(result, indent=2), err[-3000:]
        )

        before = result["before"]
        assert before == {
            "marker": "kept",
            "color": "rgb(1, 2, 3)",
            "hrefs": ["css/app.css", "other.css"],
            "version": "1",
            "title": "one",
        }
        # The stylesheet edit: restyled in place; no reload (the marker and the
        # load count survive); only the matching link got a cache-busting URL.
        css = result["afterCss"]
        assert css["color"] == "rgb(4, 5, 6)" and css["marker"] == "kept" and result["loadsAfterCss"] == 1
        assert css["hrefs"][0].startswith("http://127.0.0.1:") and "/css/app.css?livereload=" in css["hrefs"][0]
        assert css["hrefs"][1] == "other.css"
        # The script edit: a reload (marker gone) running the new script.
        assert result["afterJs"]["marker"] is None and result["afterJs"]["version"] == "2"
        assert result["afterJs"]["color"] == "rgb(4, 5, 6)" and result["afterJs"]["title"] == "one"
        # The HTML edit: a reload showing the new page.
        assert result["afterHtml"]["marker"] is None and result["afterHtml"]["title"] == "two"
        assert result["afterHtml"]["version"] == "2"
        assert result["loads"] == 3
        assert result["pageErrors"] == [] and result["console"] == []

        # The server sent exactly these three notifications.
        sent = [(c[0]["paths"], c[0]["reload"]) for c in changes.named("livereload.change")]
        assert sent == [(["css/app.css"], False), (["app.js"], True), (["index.html"], True)]
