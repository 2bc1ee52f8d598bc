"""
Structured logs (docs/logging.md): request events (logRequests, the log
middleware) and error events carry the documented fields, which a JSON
observer ships unchanged; and the documented commands (twist
--log-format=json, twistd --logger=prism.logs.jsonObserver) write them.
"""

import io
import json
import os
import re
import sys
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet.defer import Deferred
from twisted.logger import eventsFromJSONLogFile, globalLogPublisher, jsonFileLogObserver

import procutil
from conftest import waitUntil, within
from prism.middleware import Drop, LogRequests
from prism.services.echo import EchoService
from prism.services.pubsub import PubSubService
from prism.services.rpc import RPCService
from prism.testing import PrismTestServer, resultOf

REQUEST_FIELDS = {"connection", "peer", "transport", "service", "method", "callbackId", "size", "latency", "kind"}
ERROR_FIELDS = {"kind", "message", "connection", "peer", "transport", "service", "method", "callbackId"}


@pytest.fixture
def logged():
    """Every log event emitted while the test runs."""
    events = []
    globalLogPublisher.addObserver(events.append)
    yield events
    globalLogPublisher.removeObserver(events.append)


def requests(events):
    return [e for e in events if e.get("log_namespace") == "prism.request"]


def errors(events):
    return [e for e in events if e.get("log_namespace") == "prism.server.Server" and "kind" in e]


def boom():
    raise ValueError("boom")


def makeServer(middleware=(), **options):
    pending = []

    def wait():
        d = Deferred()
        pending.append(d)
        return d

    ts = PrismTestServer(
        services={
            "rpc": RPCService({"add": lambda a, b: a + b, "boom": boom, "wait": wait}),
            "echo": EchoService(),
            "pubsub": PubSubService(),
        },
        middleware=middleware,
        logRequests=True,
        **options
    )
    return ts, pending


def test_request_events_when_done(logged):
    ts, pending = makeServer()
    client = ts.client()
    conn = list(ts.server.connections.values())[0]
    assert resultOf(client.api.rpc.call("add", 1, 2)) == 3
    call = client.api.rpc.call("wait")
    ts.clock.advance(0.25)
    pending.pop().callback("ok")
    assert resultOf(call) == "ok"
    client.api.echo.send("push")  # no callback id: no reply, no latency
    with pytest.raises(Exception):
        resultOf(client.api.rpc.call("boom"))

    add, wait, push, failed = requests(logged)
    for event in (add, wait, push, failed):
        assert REQUEST_FIELDS <= set(event), event
        assert event["connection"] == conn.id and event["peer"] == "loopback" and event["transport"] == "loopback"
        assert event["log_level"].name == "info"
    # (callback id 1 was the hello)
    assert (add["service"], add["method"], add["callbackId"], add["latency"], add["kind"]) == ("rpc", "add", 2, 0.0, None)
    assert add["size"] == len('12|["add",1,2]')
    assert (wait["method"], wait["latency"], wait["kind"]) == ("wait", 0.25, None)
    assert (push["service"], push["method"], push["callbackId"], push["latency"]) == ("echo", None, None, None)
    assert (failed["method"], failed["kind"], failed["latency"]) == ("boom", "handler", 0.0)
    # The text form names the outcome.
    from twisted.logger import formatEvent

    assert formatEvent(wait) == "loopback -> rpc wait cb=3 (11 bytes): replied in 0.250000 s"
    assert formatEvent(failed) == "loopback -> rpc boom cb=4 (11 bytes): handler error in 0.000000 s"
    assert formatEvent(push) == "loopback -> echo cb=None (6 bytes)"


def test_no_request_events_without_logRequests(logged):
    ts = PrismTestServer(services={"echo": EchoService()})
    client = ts.client()
    assert resultOf(client.api.echo.request("x")) == "x"
    assert requests(logged) == []


def test_error_events_fields(logged):
    ts, pending = makeServer()
    client = ts.client()
    conn = list(ts.server.connections.values())[0]
    with pytest.raises(Exception):
        resultOf(client.api.rpc.call("boom"))
    with pytest.raises(Exception):
        resultOf(client.api.rpc.call("nosuch"))
    handler, unknown = errors(logged)
    for event in (handler, unknown):
        assert ERROR_FIELDS <= set(event), event
        assert (event["connection"], event["peer"], event["transport"], event["service"]) == (
            conn.id, "loopback", "loopback", "rpc"
        )
    assert (handler["kind"], handler["method"], handler["callbackId"]) == ("handler", "boom", 2)
    assert handler["message"] == "boom"
    assert handler["log_failure"].check(ValueError) and handler["log_level"].name == "critical"
    assert (unknown["kind"], unknown["method"], unknown["callbackId"]) == ("unknown_method", "nosuch", 3)
    assert unknown["log_level"].name == "warn"


def test_drops_and_refusals_are_logged_with_their_kind(logged):
    ts, pending = makeServer(middleware=[lambda r: Drop("no", kind="closed") if r.payload == "x" else r])
    raw = ts.raw()
    raw.hello()
    raw.send("25|x")  # echo is service 2
    [request] = requests(logged)
    [error] = errors(logged)
    assert (request["kind"], request["service"], request["callbackId"]) == ("closed", "echo", 5)
    assert request["latency"] == 0.0  # an error reply was sent
    assert (error["kind"], error["message"], error["connection"]) == ("closed", "no", raw.connection.id)
    assert raw.frames[-1].startswith("25!")


def test_pubsub_commands_are_methods(logged):
    ts, pending = makeServer()
    client = ts.client()
    resultOf(client.api.pubsub.subscribe("news", lambda data, channel: None))
    [event] = requests(logged)
    assert (event["service"], event["method"]) == ("pubsub", "sub")


def test_log_middleware_fields(logged):
    ts = PrismTestServer(services={"rpc": RPCService({"add": lambda a, b: a + b})}, middleware=[LogRequests()])
    raw = ts.raw()
    raw.hello()
    raw.send('17|["add",1,2]')
    [event] = requests(logged)
    assert {"connection", "peer", "transport", "service", "method", "callbackId", "size"} <= set(event)
    assert (event["connection"], event["connectionId"]) == (raw.connection.id, raw.connection.id)
    assert (event["method"], event["callbackId"], event["size"], event["transport"]) == ("add", 7, 14, "loopback")


def test_a_json_observer_ships_the_fields():
    out = io.StringIO()
    observer = jsonFileLogObserver(out)
    globalLogPublisher.addObserver(observer)
    try:
        ts, pending = makeServer()
        client = ts.client()
        conn = list(ts.server.connections.values())[0]
        assert resultOf(client.api.rpc.call("add", 1, 2)) == 3
        with pytest.raises(Exception):
            resultOf(client.api.rpc.call("boom"))
    finally:
        globalLogPublisher.removeObserver(observer)
    events = list(eventsFromJSONLogFile(io.StringIO(out.getvalue())))
    add, failed = [e for e in events if e.get("log_namespace") == "prism.request"]
    assert {k: add[k] for k in REQUEST_FIELDS} == {
        "connection": conn.id, "peer": "loopback", "transport": "loopback", "service": "rpc", "method": "add",
        "callbackId": 2, "size": 14, "latency": 0.0, "kind": None,
    }
    assert failed["kind"] == "handler"
    [error] = [e for e in events if e.get("log_namespace") == "prism.server.Server" and e.get("kind") == "handler"]
    assert {k: error[k] for k in ERROR_FIELDS} == {
        "kind": "handler", "message": "boom", "connection": conn.id, "peer": "loopback", "transport": "loopback",
        "service": "rpc", "method": "boom", "callbackId": 3,
    }
    assert "ValueError" in error["log_failure"].getTraceback()  # the traceback travels too


# -- the documented commands


BIN = Path(sys.executable).parent


def _env():
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    return env


def _records(data):
    """@return: the JSON records of a jsonFileLogObserver stream (\\x1e-separated)."""
    out = []
    for chunk in data.decode("utf-8", "replace").split("\x1e"):
        chunk = chunk.strip()
        if chunk:
            try:
                out.append(json.loads(chunk))
            except ValueError:
                pass  # a line that is not a record (e.g. stdio written by the runner)
    return out


@pytest.fixture
def spawn(reactor, tmp_path):
    processes = []

    def run(*args):
        proto = procutil.Collect()
        executable = str(BIN / args[0])
        transport = reactor.spawnProcess(
            proto, executable, [executable] + list(args[1:]), env=_env(), path=str(tmp_path)
        )
        processes.append((proto, transport))
        return proto, transport

    yield run
    for proto, transport in processes:
        if not proto.ended.called:
            try:
                transport.signalProcess("KILL")
            except Exception:
                pass


def _port(proto):
    """@return: the port the runner logged it listens on (Twisted's "… starting on N"), or None."""
    match = re.search(r"starting on (\d+)", proto.text)
    return int(match.group(1)) if match else None


async def _exercise(prism, proto, transport):
    await waitUntil(lambda: _port(proto) is not None or proto.ended.called, seconds=20)
    assert not proto.ended.called, proto.text
    client = await prism.connect("ws://127.0.0.1:{}/".format(_port(proto)), reconnect=False)
    with pytest.raises(Exception):
        await within(client.api.rpc.call("nosuch"))
    client.close()
    await waitUntil(lambda: any(r.get("log_namespace") == "prism.request" for r in _records(b"".join(proto.out))))
    transport.signalProcess("TERM")
    await within(proto.ended, 10)
    records = _records(b"".join(proto.out))
    [request] = [r for r in records if r.get("log_namespace") == "prism.request"]
    assert REQUEST_FIELDS <= set(request), request
    assert (request["service"], request["method"], request["kind"], request["transport"]) == (
        "rpc", "nosuch", "unknown_method", "websocket"
    )
    assert isinstance(request["latency"], float) and request["peer"].startswith("127.0.0.1:")
    [error] = [r for r in records if r.get("log_namespace") == "prism.server.Server" and r.get("kind")]
    assert ERROR_FIELDS <= set(error), error
    assert error["connection"] == request["connection"] and error["method"] == "nosuch"


@pytest_twisted.ensureDeferred
async def test_twist_log_format_json(prism, spawn):
    proto, transport = spawn(
        "twist", "--log-format=json", "prism",
        "--listen", "tcp:0:interface=127.0.0.1", "--service", "rpc", "--log-requests",
    )
    await _exercise(prism, proto, transport)


@pytest_twisted.ensureDeferred
async def test_twistd_logger_prism_json_observer(prism, spawn):
    proto, transport = spawn(
        "twistd", "-n", "--pidfile=", "--logger=prism.logs.jsonObserver", "prism",
        "--listen", "tcp:0:interface=127.0.0.1", "--service", "rpc", "--log-requests",
    )
    await _exercise(prism, proto, transport)
