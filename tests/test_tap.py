"""
The installed runners: C{twistd -n prism} and C{twist prism} run as
subprocesses (the venv's scripts, next to sys.executable), serve clients on
127.0.0.1, and stop cleanly on SIGTERM; a bad option is one clean error line.
"""

import json
import os
import re
import signal
import sys
from pathlib import Path

import pytest
import pytest_twisted

import procutil
from conftest import waitUntil, within

BIN = Path(sys.executable).parent


class Collect(procutil.Collect):
    def listeningPort(self):
        """@return: the port twistd logged it listens on, or None."""
        match = re.search(r"starting on (\d+)", self.text)
        return int(match.group(1)) if match else None


def _twistedMajor():
    import twisted

    return int(twisted.__version__.split(".")[0])


def _env():
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    return env


@pytest.fixture
def run(reactor, tmp_path):
    """Spawn a runner from the venv; every process is killed in teardown."""
    processes = []

    def spawn(*args):
        proto = Collect()
        executable = str(BIN / args[0])
        transport = reactor.spawnProcess(
            proto, executable, [executable] + list(args[1:]), env=_env(), path=str(tmp_path)
        )
        processes.append((proto, transport))
        return proto, transport

    yield spawn
    for proto, transport in processes:
        if proto.exitCode is None and not proto.ended.called:
            try:
                transport.signalProcess("KILL")
            except Exception:
                pass


async def _serveAndStop(prism, proto, transport):
    await waitUntil(lambda: proto.listeningPort() is not None or proto.ended.called, seconds=20)
    assert not proto.ended.called, proto.text
    port = proto.listeningPort()
    client = await prism.connect("ws://127.0.0.1:{}/".format(port), reconnect=False)
    assert [s[0] for s in client.welcome["services"]] == ["echo", "rpc"]
    assert await within(client.api.echo.request("over twistd")) == "over twistd"
    goingAway = []
    client.on("going_away", goingAway.append)

    transport.signalProcess("TERM")
    await within(proto.ended, 10)
    # A clean stop: the services stopped (clients were told), then the
    # process exits 0, or, as twistd and twist do since Twisted 20.3
    # (application.app._exitWithSignal), re-raises the SIGTERM that stopped
    # it so that supervisors see why it ended (systemd counts that as clean).
    assert proto.exitCode == 0 or (proto.exitCode is None and proto.signal == signal.SIGTERM), proto.text
    assert "Main loop terminated" in proto.text
    # Autobahn logs "Traceback (failure with no frames)" at debug level when it
    # drops the TCP connection after a completed closing handshake (twistd
    # shows debug events); a real traceback or an error event is what counts.
    assert "Traceback (most recent call last)" not in proto.text, proto.text
    assert "#critical]" not in proto.text and "#error]" not in proto.text, proto.text
    assert "no closing handshake in time" not in proto.text, proto.text
    await waitUntil(lambda: not client.connected)
    assert goingAway == ["server shutting down"]


@pytest_twisted.ensureDeferred
async def test_twistd_prism_serves_and_stops_on_sigterm(prism, run):
    # tcp:0 rather than a guessed free port: no race; the port is read from the log.
    proto, transport = run(
        "twistd", "-n", "--pidfile=", "prism",
        "--listen", "tcp:0:interface=127.0.0.1", "--service", "echo", "--service", "rpc",
    )
    await _serveAndStop(prism, proto, transport)


@pytest_twisted.ensureDeferred
async def test_twist_prism_serves_and_stops_on_sigterm(prism, run):
    proto, transport = run(
        "twist", "--log-format", "text", "prism", "--listen", "tcp:0:interface=127.0.0.1", "--service", "echo", "--service", "rpc",
    )
    await _serveAndStop(prism, proto, transport)


@pytest.mark.parametrize("runner", [["twistd", "-n", "--pidfile="], ["twist"]])
@pytest_twisted.ensureDeferred
async def test_unknown_service_is_one_clean_error(run, runner):
    proto, _ = run(*runner, "prism", "--listen", "tcp:0:interface=127.0.0.1", "--service", "nope")
    code = await within(proto.ended, 20)
    if runner[0] == "twistd" and _twistedMajor() < 26:
        # Twisted before 26 prints twistd's usage error and exits 0
        # (twisted.application.app.run has no sys.exit(1) there).
        assert code in (0, 1)
    else:
        assert code not in (0, None)
    assert "Traceback" not in proto.text
    assert "starting on" not in proto.text  # nothing was started
    errors = [line for line in proto.text.splitlines() if "unknown service plugin 'nope'" in line]
    assert len(errors) == 1, proto.text
    assert "available: echo, rpc" in errors[0] or "available:" in errors[0]


# -- twistd prism --config FILE


def _freePort():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


HANDLERS = "def add(a, b):\n    return a + b\n\ndef shout(text):\n    return text.upper()\n"


def _configFile(tmp_path, listen, extra=""):
    (tmp_path / "tap_config_handlers.py").write_text(HANDLERS)
    path = tmp_path / "prism.toml"
    path.write_text(
        'pythonpath = ["."]\n'
        "listen = {}\n".format(json.dumps(listen))
        + 'secret = "a-secret-of-enough-length"\n'
        + extra
        + '[[services]]\nname = "rpc"\nhandlers = "tap_config_handlers"\n'
        + '[[services]]\nname = "echo"\ncodec = "json"\n'
    )
    return path


async def _rpcAndStop(prism, proto, transport, url):
    client = await prism.connect(url, reconnect=False)
    assert [s[0] for s in client.welcome["services"]] == ["rpc", "echo"]
    assert await within(client.api.rpc.call("tap_config_handlers.add", 2, 3)) == 5
    assert await within(client.api.rpc.call("tap_config_handlers.shout", "hi")) == "HI"
    transport.signalProcess("TERM")
    await within(proto.ended, 10)
    assert proto.exitCode == 0 or (proto.exitCode is None and proto.signal == signal.SIGTERM), proto.text
    assert "Main loop terminated" in proto.text
    assert "Traceback (most recent call last)" not in proto.text, proto.text
    assert "#critical]" not in proto.text and "#error]" not in proto.text, proto.text
    await waitUntil(lambda: not client.connected)


@pytest_twisted.ensureDeferred
async def test_twistd_prism_config_serves_rpc_and_stops_on_sigterm(prism, run, tmp_path):
    port = _freePort()
    path = _configFile(tmp_path, ["tcp:{}:interface=127.0.0.1".format(port)])
    proto, transport = run("twistd", "-n", "--pidfile=", "prism", "--config", str(path))
    await waitUntil(lambda: proto.listeningPort() is not None or proto.ended.called, seconds=20)
    assert not proto.ended.called, proto.text
    assert proto.listeningPort() == port
    await _rpcAndStop(prism, proto, transport, "ws://127.0.0.1:{}/".format(port))


@pytest_twisted.ensureDeferred
async def test_twist_prism_config_static_files_and_socket_on_one_port(prism, run, tmp_path):
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "index.html").write_text("<p>served by twist</p>")
    # The file's listen is replaced by --listen (tcp:0: the port is read from the log).
    path = _configFile(tmp_path, ["tcp:1"], 'static = "www"\npath = "/ws"\n')
    proto, transport = run(
        "twist", "--log-format", "text", "prism", "--config", str(path), "--listen", "tcp:0:interface=127.0.0.1"
    )
    await waitUntil(lambda: proto.listeningPort() is not None or proto.ended.called, seconds=20)
    assert not proto.ended.called, proto.text
    port = proto.listeningPort()
    raw = await prism.raw(port, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    data = await raw.until(lambda data: b"served by twist" in data)
    assert data.startswith(b"HTTP/1.1 200 ")
    await _rpcAndStop(prism, proto, transport, "ws://127.0.0.1:{}/ws".format(port))


BROKEN = '[transport]\nmax_message_size = "1MB"\n[[services]]\nname = "echo"\n'


@pytest.mark.parametrize("runner", [["twistd", "-n", "--pidfile="], ["twist"]])
@pytest_twisted.ensureDeferred
async def test_broken_config_file_is_one_clean_line(run, runner, tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text(BROKEN)
    proto, _ = run(*runner, "prism", "--config", str(path))
    code = await within(proto.ended, 20)
    if runner[0] == "twistd" and _twistedMajor() < 26:
        assert code in (0, 1)  # see test_unknown_service_is_one_clean_error
    else:
        assert code not in (0, None)
    assert "Traceback" not in proto.text
    assert "starting on" not in proto.text
    expected = '{}: transport.max_message_size: expected a positive integer, found string "1MB"'.format(path)
    errors = [line for line in proto.text.splitlines() if "max_message_size" in line and "expected" in line]
    assert len(errors) == 1, proto.text
    assert errors[0].endswith(expected), errors[0]


# -- the prism command, installed


@pytest_twisted.ensureDeferred
async def test_prism_check_command(run, tmp_path):
    good = _configFile(tmp_path, ["tcp:3001"])
    proto, _ = run("prism", "check", "--config", str(good))
    assert await within(proto.ended, 20) == 0, proto.text
    assert proto.text.startswith("{}: OK\n".format(good)), proto.text
    assert 'rpc (handlers="tap_config_handlers")' in proto.text

    bad = tmp_path / "bad.toml"
    bad.write_text(BROKEN)
    proto, _ = run("prism", "check", "--config", str(bad))
    assert await within(proto.ended, 20) == 1
    assert proto.text == 'prism: {}: transport.max_message_size: expected a positive integer, found string "1MB"\n'.format(bad)


@pytest_twisted.ensureDeferred
async def test_prism_run_command(prism, run, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(BROKEN)
    proto, _ = run("prism", "run", "--config", str(bad))
    assert await within(proto.ended, 20) == 1
    assert "Traceback" not in proto.text and "Usage" not in proto.text
    assert len(proto.text.splitlines()) == 1, proto.text

    path = _configFile(tmp_path, ["tcp:1"])
    proto, transport = run("prism", "run", "--config", str(path), "--listen", "tcp:0:interface=127.0.0.1")
    await waitUntil(lambda: proto.listeningPort() is not None or proto.ended.called, seconds=20)
    assert not proto.ended.called, proto.text
    await _rpcAndStop(prism, proto, transport, "ws://127.0.0.1:{}/".format(proto.listeningPort()))
