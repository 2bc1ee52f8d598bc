"""
The installed runners: C{twistd -n prism} and C{twist prism} run as
subprocesses (the venv's scripts, next to sys.executable), serve clients on
127.0.0.1, and stop cleanly on SIGTERM; a bad option is one clean error line.
"""

import os
import re
import signal
import sys
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet.defer import Deferred
from twisted.internet.protocol import ProcessProtocol

from conftest import waitUntil, within

BIN = Path(sys.executable).parent


class Collect(ProcessProtocol):
    def __init__(self):
        self.output = b""
        self.ended = Deferred()
        self.exitCode = None
        self.signal = None

    def outReceived(self, data):
        self.output += data

    errReceived = outReceived

    def processEnded(self, reason):
        self.exitCode = reason.value.exitCode
        self.signal = reason.value.signal
        self.ended.callback(self.exitCode)

    @property
    def text(self):
        return self.output.decode("utf-8", "replace")

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
