"""
An external service package (examples/external-plugin, C{prism-greeter}),
pip-installed into the running test environment, is found by name through
Twisted's plugin system: by L{prism._plugins.Registry} in a fresh interpreter,
and by C{twistd -n prism --service greeter}.
"""

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import pytest_twisted

from conftest import waitUntil, within
from test_tap import Collect

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "examples" / "external-plugin"


def _env():
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _pip(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "pip"] + list(args),
        cwd=str(cwd),
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        universal_newlines=True,
        timeout=180,
    )


@pytest.fixture(scope="session")
def greeterInstalled(tmp_path_factory):
    """
    C{prism-greeter} installed (not editable) into this interpreter's
    environment, built offline from a copy of the example so that no
    C{build/}, C{*.egg-info} or C{dropin.cache} lands in the source tree;
    uninstalled at the end of the session.
    """
    work = tmp_path_factory.mktemp("greeter")
    copy = work / "external-plugin"
    shutil.copytree(str(SOURCE), str(copy), ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", "dropin.cache"))
    result = _pip("install", "--no-deps", "--no-build-isolation", "--no-index", str(copy), cwd=work)
    assert result.returncode == 0, result.stdout
    yield work
    _pip("uninstall", "-y", "prism-greeter", cwd=work)


def _runPython(code, cwd):
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=str(cwd),
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        universal_newlines=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_registry_creates_the_greeter_end_to_end(greeterInstalled, tmp_path):
    out = _runPython(
        """
        from prism._plugins import Registry
        from prism.testing import PrismTestServer, resultOf, failureOf
        from prism.errors import RemoteError

        services = Registry("service")
        assert {"echo", "rpc", "greeter"} <= set(services.names()), services.names()
        plugin = services.get("greeter")
        assert plugin.implementation == "greeter.GreeterService"

        ts = PrismTestServer(services={"greeter": services.create("greeter")})
        first, second = ts.client(), ts.client()
        assert resultOf(first.api.greeter.request("Ada")) == "Hello, Ada!"
        assert failureOf(first.api.greeter.request(42), RemoteError).value.kind == "handler"

        pushed = []
        first.api.greeter.on(lambda v: pushed.append(("first", v)))
        second.api.greeter.on(lambda v: pushed.append(("second", v)))
        assert ts.api.greeter.greet_all("Hello, everyone!") == 2
        assert sorted(pushed) == [("first", "Hello, everyone!"), ("second", "Hello, everyone!")]

        import greeter
        print("OK", greeter.__file__)
        """,
        cwd=tmp_path,
    )
    assert out.startswith("OK ")
    # It is the installed copy, not the example's source tree.
    assert str(SOURCE) not in out


def test_wheel_layout_and_clean_source_tree(greeterInstalled):
    out = _runPython(
        """
        import importlib.metadata as md
        files = sorted(str(f) for f in md.files("prism-greeter"))
        print("\\n".join(files))
        """,
        cwd=greeterInstalled,
    )
    files = out.split()
    assert "twisted/plugins/prism_greeter.py" in files
    assert "greeter/__init__.py" in files
    assert not [f for f in files if f.startswith("twisted/") and f.endswith("__init__.py")]
    assert not [f for f in files if "dropin.cache" in f]
    leftovers = [p for p in SOURCE.rglob("*") if p.name == "dropin.cache" or p.name.endswith(".egg-info") or p.name == "build"]
    assert leftovers == []


@pytest_twisted.ensureDeferred
async def test_twistd_serves_the_external_service(greeterInstalled, prism, reactor, tmp_path):
    twistd = str(Path(sys.executable).parent / "twistd")
    proto = Collect()
    args = [twistd, "-n", "--pidfile=", "prism", "--listen", "tcp:0:interface=127.0.0.1", "--service", "greeter"]
    transport = reactor.spawnProcess(proto, twistd, args, env=_env(), path=str(tmp_path))
    try:
        await waitUntil(lambda: proto.listeningPort() is not None or proto.ended.called, seconds=20)
        assert not proto.ended.called, proto.text
        client = await prism.connect("ws://127.0.0.1:{}/".format(proto.listeningPort()), reconnect=False)
        assert [s[0] for s in client.welcome["services"]] == ["greeter"]
        assert await within(client.api.greeter.request("Grace")) == "Hello, Grace!"
    finally:
        if not proto.ended.called:
            transport.signalProcess("TERM")
    await within(proto.ended, 10)
    assert "Traceback (most recent call last)" not in proto.text, proto.text
