"""
The protective middleware (C{ratelimit}, C{maxsize}, C{auth}), RPC
authorization hooks, and the WebSocket transport's connection limits,
trusted-proxy addresses and idle timeout.
"""

import json

import pytest
import pytest_twisted
from twisted.internet.address import IPv4Address, UNIXAddress
from twisted.internet.defer import succeed

from conftest import handshakeRequest, nextEvent, waitUntil, within
from prism.errors import PrismConfigError, RemoteError
from prism.limits import Auth, MaxSize, RateLimit
from prism.services.echo import EchoService
from prism.services.rpc import RPCService, requires, withRequest
from prism.testing import MemoryReactorClock, PrismTestServer, failureOf, resultOf
from prism.transports.websocket import WebSocketTransport


def _errors(raw):
    return [json.loads(f.split("!", 1)[1]) for f in raw.frames if isinstance(f, str) and "!" in f.split("|")[0]]


def _server(middleware, clock=None, **options):
    clock = clock if clock is not None else MemoryReactorClock()
    ts = PrismTestServer(
        services={"echo": EchoService(), "rpc": RPCService({"add": lambda a, b: a + b})},
        middleware=middleware,
        clock=clock,
        **options
    )
    return ts, clock


# -- ratelimit


def test_ratelimit_drops_with_a_single_warning_then_recovers():
    clock = MemoryReactorClock()
    limit = RateLimit(rate=10, burst=5, addressRate=0, reactor=clock)
    ts, _ = _server([limit], clock=clock)
    raw = ts.raw()
    raw.hello()
    del raw.frames[:]
    for i in range(20):
        raw.send("1|m{}".format(i))
    echoed = [f for f in raw.frames if f.startswith("1|")]
    assert echoed == ["1|m{}".format(i) for i in range(5)]
    warnings = _errors(raw)
    assert [w["error"] for w in warnings] == ["rate_limited"]  # one warning for the whole run
    clock.advance(1.0)  # ten more tokens (the bucket holds five)
    del raw.frames[:]
    for i in range(7):
        raw.send("1|n{}".format(i))
    assert [f for f in raw.frames if f.startswith("1|")] == ["1|n{}".format(i) for i in range(5)]
    assert [w["error"] for w in _errors(raw)] == ["rate_limited"]  # a new run, a new warning


def test_ratelimit_answers_a_limited_request_with_rate_limited():
    clock = MemoryReactorClock()
    ts, _ = _server([RateLimit(rate=1, burst=1, addressRate=0, reactor=clock)], clock=clock)
    client = ts.client()
    assert resultOf(client.api.rpc.call("add", 1, 2)) == 3
    error = failureOf(client.api.rpc.call("add", 1, 2), RemoteError).value
    assert error.kind == "rate_limited"
    clock.advance(1)
    assert resultOf(client.api.rpc.call("add", 2, 2)) == 4


def test_ratelimit_close_action():
    clock = MemoryReactorClock()
    ts, _ = _server([RateLimit(rate=1, burst=2, addressRate=0, action="close", reactor=clock)], clock=clock)
    raw = ts.raw()
    raw.hello()
    for i in range(3):
        raw.send("1|x")
    assert raw.closed is not None and raw.closed[0] == 1008
    assert not ts.server.connections


def test_ratelimit_per_address_is_shared_and_forgotten():
    clock = MemoryReactorClock()
    limit = RateLimit(rate=100, burst=100, addressRate=1, addressBurst=4, reactor=clock)
    ts, _ = _server([limit], clock=clock)
    a, b, other = ts.raw(peer="1.2.3.4:1"), ts.raw(peer="1.2.3.4:2"), ts.raw(peer="5.6.7.8:1")
    for raw in (a, b, other):
        raw.connection.address = raw.connection.peer.split(":")[0]  # as the WebSocket transport sets it
        raw.hello()
        del raw.frames[:]
    for _ in range(3):
        a.send("1|a")
        b.send("1|b")
        other.send("1|o")
    passed = len([f for f in a.frames + b.frames if f.startswith("1|")])
    assert passed == 4  # the address's burst, shared by both connections
    assert len([f for f in other.frames if f.startswith("1|")]) == 3
    assert set(limit.addresses) == {"1.2.3.4", "5.6.7.8"}
    for raw in (a, b, other):
        raw.close()
    assert limit.connections == {}
    # A depleted bucket outlives its connections until it has refilled, so
    # that reconnecting does not reset the limit; then it is forgotten.
    clock.advance(10)
    assert limit.addresses == {}


def test_ratelimit_pauses_reading_a_flooder():
    clock = MemoryReactorClock()
    ts, _ = _server([RateLimit(rate=10, burst=10, addressRate=0, maxPause=0.5, reactor=clock)], clock=clock)
    raw = ts.raw()
    raw.hello()
    pauses = []
    raw.connection.pauseReading = pauses.append
    for _ in range(12):
        raw.send("1|x")
    assert pauses and 0 < pauses[0] <= 0.5


def test_ratelimit_options_are_checked():
    with pytest.raises(PrismConfigError):
        RateLimit(rate=0)
    with pytest.raises(PrismConfigError):
        RateLimit(action="explode")


# -- maxsize


def test_maxsize_per_service():
    ts, _ = _server([MaxSize(limit=100, services={"echo": 10})])
    client = ts.client()
    assert resultOf(client.api.echo.request("short")) == "short"
    assert failureOf(client.api.echo.request("x" * 11), RemoteError).value.kind == "too_large"
    assert resultOf(client.api.rpc.call("add", "x" * 20, "y")) == "x" * 20 + "y"
    assert failureOf(client.api.rpc.call("add", "x" * 100, "y"), RemoteError).value.kind == "too_large"
    assert resultOf(client.api.echo.request("ok")) == "ok"


# -- auth


def _login(request, name):
    request.session["user"] = name
    return name


def test_auth_requires_a_session_key_for_named_services_and_methods():
    ts = PrismTestServer(
        services={
            "echo": EchoService(),
            "rpc": RPCService(
                {"login": withRequest(_login), "admin.purge": lambda: "purged", "add": lambda a, b: a + b},
                sessions=True,
            ),
        },
        middleware=[Auth(services=["echo"], methods=["admin.*"])],
    )
    client = ts.client()
    assert resultOf(client.api.rpc.call("add", 1, 1)) == 2
    error = failureOf(client.api.rpc.call("admin.purge"), RemoteError).value
    assert (error.kind, error.message) == ("forbidden", "authentication required")
    assert failureOf(client.api.echo.request("hi"), RemoteError).value.kind == "forbidden"
    assert resultOf(client.api.rpc.call("login", "ada")) == "ada"
    assert resultOf(client.api.rpc.call("admin.purge")) == "purged"
    assert resultOf(client.api.echo.request("hi")) == "hi"


def test_auth_needs_something_to_protect():
    with pytest.raises(PrismConfigError):
        Auth()


# -- RPC authorization hooks


def test_rpc_authorize_hook_sees_session_and_connection():
    seen = []

    def authorize(request, method, args):
        seen.append((method, request.connection.id is not None, request.session is not None))
        if method == "login":
            return True
        if method == "later":
            return succeed(request.session.get("user") == "ada")
        return request.session.get("user") == "ada"

    ts = PrismTestServer(
        services={
            "rpc": RPCService(
                {"login": withRequest(_login), "add": lambda a, b: a + b, "later": lambda: "later"},
                authorize=authorize,
            )
        }
    )
    client = ts.client()
    error = failureOf(client.api.rpc.call("add", 1, 2), RemoteError).value
    assert (error.kind, error.message) == ("forbidden", "not allowed to call 'add'")
    assert failureOf(client.api.rpc.call("later"), RemoteError).value.kind == "forbidden"
    # A refused client cannot probe which methods exist.
    assert failureOf(client.api.rpc.call("nope"), RemoteError).value.kind == "forbidden"
    resultOf(client.api.rpc.call("login", "ada"))
    assert resultOf(client.api.rpc.call("add", 1, 2)) == 3
    assert resultOf(client.api.rpc.call("later")) == "later"
    assert failureOf(client.api.rpc.call("nope"), RemoteError).value.kind == "unknown_method"
    assert all(hasSession and hasConnection for _, hasConnection, hasSession in seen)


def test_rpc_requires_per_method():
    async def isAdmin(request):
        return request.session.get("role") == "admin"

    @withRequest
    def promote(request):
        request.session["role"] = "admin"

    ts = PrismTestServer(
        services={
            "rpc": RPCService(
                {"promote": promote, "purge": requires(isAdmin)(lambda: "purged"), "open": lambda: "open"},
                sessions=True,
            )
        }
    )
    client = ts.client()
    assert resultOf(client.api.rpc.call("open")) == "open"
    assert failureOf(client.api.rpc.call("purge"), RemoteError).value.kind == "forbidden"
    resultOf(client.api.rpc.call("promote"))
    assert resultOf(client.api.rpc.call("purge")) == "purged"


def test_rpc_authorize_by_dotted_name():
    service = RPCService({}, authorize="prism.limits._names")
    assert service.sessions and callable(service.authorize)
    with pytest.raises(PrismConfigError):
        RPCService({}, authorize="prism.nowhere.check")


# -- the configuration file


def test_middleware_and_transport_options_from_the_config(tmp_path):
    from prism.config import loadConfig

    path = tmp_path / "prism.toml"
    path.write_text(
        "shutdown_timeout = 3\n"
        "[transport]\nmax_connections = 50\nmax_connections_per_address = 5\nidle_timeout = 60\n"
        'max_outgoing_buffer = 65536\ntrusted_proxies = ["10.0.0.0/8"]\nproxy_header = "X-Real-IP"\n'
        '[[services]]\nname = "rpc"\nauthorize = "prism.limits._names"\n'
        '[[services]]\nname = "echo"\n'
        '[[middleware]]\nplugin = "ratelimit"\nrate = 20\nburst = 40\naddress_rate = 0\naction = "close"\n'
        '[[middleware]]\nplugin = "maxsize"\nlimit = 4096\nservices = { echo = 512 }\n'
        '[[middleware]]\nplugin = "auth"\nservices = ["echo"]\nmethods = ["admin.*"]\nkey = "uid"\n'
    )
    config = loadConfig(str(path))
    server = config.buildServer(reactor=MemoryReactorClock())
    transport = server.transport
    assert (transport.maxConnections, transport.maxConnectionsPerAddress, transport.idleTimeout) == (50, 5, 60)
    assert transport.maxOutgoingBuffer == 65536 and transport.proxyHeader == "x-real-ip"
    assert server.shutdownTimeout == 3
    ratelimit, maxsize, auth = server._chain._steps
    assert (ratelimit.rate, ratelimit.burst, ratelimit.action) == (20, 40, "close")
    assert maxsize.services == {"echo": 512} and auth.key == "uid"

    path.write_text(
        '[transport]\ntrusted_proxies = ["nope"]\n[[services]]\nname = "echo"\n'
        '[[middleware]]\nplugin = "ratelimit"\naction = "explode"\n'
    )
    with pytest.raises(PrismConfigError) as e:
        loadConfig(str(path))
    assert [line.split(": ")[1] for line in e.value.errors] == ["transport.trusted_proxies", "middleware[0].action"]


# -- client addresses behind trusted proxies


def test_client_address_honours_trusted_proxies_only():
    transport = WebSocketTransport(trustedProxies=["10.0.0.0/8", "::1"])
    xff = {"x-forwarded-for": "203.0.113.9, 10.1.1.1"}
    assert transport.clientAddress(IPv4Address("TCP", "10.0.0.2", 1), xff) == "203.0.113.9"
    assert transport.clientAddress(IPv4Address("TCP", "198.51.100.1", 1), xff) == "198.51.100.1"
    spoofed = {"x-forwarded-for": "1.1.1.1, 203.0.113.9"}  # the client's own header, then what the proxy saw
    assert transport.clientAddress(IPv4Address("TCP", "10.0.0.2", 1), spoofed) == "203.0.113.9"
    assert transport.clientAddress(IPv4Address("TCP", "10.0.0.2", 1), {}) == "10.0.0.2"
    assert transport.clientAddress(IPv4Address("TCP", "10.0.0.2", 1), {"x-forwarded-for": "junk"}) == "10.0.0.2"
    assert WebSocketTransport().clientAddress(IPv4Address("TCP", "10.0.0.2", 1), xff) == "10.0.0.2"
    assert WebSocketTransport().clientAddress(UNIXAddress(None), xff) == "unix"
    with pytest.raises(PrismConfigError):
        WebSocketTransport(trustedProxies=["not-an-ip"])


# -- connection limits over real sockets


async def _status(prism, served, **headers):
    raw = await prism.raw(served.portNumber, _request(served.host, **headers))
    status, _ = await raw.response()
    return raw, status


def _request(host, **headers):
    data = handshakeRequest(host)
    extra = "".join("{}: {}\r\n".format(k.replace("_", "-"), v) for k, v in headers.items())
    return data[:-2] + extra.encode("latin-1") + b"\r\n"


@pytest_twisted.ensureDeferred
async def test_connections_per_address_and_in_total(prism):
    served = await prism.serve(
        {"echo": EchoService()},
        transport={"maxConnectionsPerAddress": 2, "maxConnections": 4, "trustedProxies": ["127.0.0.1"]},
    )
    transport = served.server.transport
    statuses = []
    held = []
    for i in range(3):
        raw, status = await _status(prism, served, X_Forwarded_For="192.0.2.1")
        statuses.append(status)
        held.append(raw)
    assert statuses == [101, 101, 429]
    assert transport.addressCounts == {"192.0.2.1": 2}
    raw, status = await _status(prism, served, X_Forwarded_For="192.0.2.2")
    assert status == 101
    held.append(raw)
    raw, status = await _status(prism, served, X_Forwarded_For="192.0.2.3")
    assert status == 101  # four open (the 429 one is closed)
    held.append(raw)
    raw, status = await _status(prism, served, X_Forwarded_For="192.0.2.4")
    assert status == 503
    for raw in held:
        raw.transport.abortConnection()
    await waitUntil(lambda: transport.connectionCount == 0 and not transport.addressCounts)
    assert served.server.connections == {}


@pytest_twisted.ensureDeferred
async def test_idle_timeout_closes_with_4000(prism):
    served = await prism.serve({"echo": EchoService()}, transport={"idleTimeout": 0.3})
    client = await prism.connect(served.url, reconnect=False)
    closed = nextEvent(served.server.events, "disconnect")
    await within(client.api.echo.request("still here"))
    conn, code, reason = await closed
    assert code == 4000
