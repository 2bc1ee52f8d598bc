"""
The WebSocket transport over real sockets on 127.0.0.1: the handshake, RPC,
echo, text and binary frames, message size limits, origin checks, the session
cookie, server pings and the graceful stop.
"""

import pytest
import pytest_twisted
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.error import ConnectionRefusedError

from conftest import RawTCP, handshakeRequest, nextEvent, sleep, waitUntil, within
from prism.errors import ConnectionLost, RemoteError
from prism.services.echo import EchoService
from prism.services.rpc import RPCService, withRequest
from prism.sessions import verify

SECRET = b"prism-test-secret"


def add(a, b):
    return a + b


@withRequest
def whoami(request):
    request.session["visits"] = request.session.get("visits", 0) + 1
    return {"id": request.connection.sessionId, "visits": request.session["visits"]}


def services(sessions=False):
    return {
        "rpc": RPCService(handlers={"add": add, "whoami": whoami}, sessions=sessions),
        "echo": EchoService(),
        "mecho": EchoService(codec="msgpack"),
    }


async def failureOf(d):
    try:
        result = await d
    except Exception as e:
        return e
    raise AssertionError("expected a failure, got {!r}".format(result))


@pytest_twisted.ensureDeferred
async def test_handshake_rpc_echo_and_errors(prism):
    served = await prism.serve(services())
    client = await prism.connect(served.url)

    assert client.welcome["v"] == 1
    assert verify(SECRET, client.session) is not None
    assert [s[0] for s in client.welcome["services"]] == ["rpc", "echo", "mecho"]
    assert await within(client.api.rpc.call("add", 2, 3)) == 5

    received = []
    client.api.echo.on(received.append)
    client.api.echo.send("pushed back")
    await waitUntil(lambda: received == ["pushed back"])

    error = await failureOf(within(client.api.rpc.call("nope", 1)))
    assert isinstance(error, RemoteError)
    assert error.kind == "unknown_method"
    assert "nope" in error.message
    # The error answered one call; the connection carries on.
    assert await within(client.api.rpc.call("add", "a", "b")) == "ab"
    assert len(served.server.connections) == 1


@pytest_twisted.ensureDeferred
async def test_text_and_binary_frames(prism):
    served = await prism.serve(services())
    client = await prism.connect(served.url)

    assert await within(client.api.echo.request("text é")) == "text é"
    assert await within(client.api.echo.request(b"\x00\xffbinary")) == b"\x00\xffbinary"

    frames = spyFrames(client)
    await within(client.api.echo.request(b"b"))
    await within(client.api.echo.request("t"))
    (binary, isBinary), (text, isText) = frames
    assert isinstance(binary, bytes) and isBinary is True and binary.startswith(b"2") and binary.endswith(b"|b")
    assert isinstance(text, str) and isText is False and text.startswith("2") and text.endswith("|t")


def spyFrames(client):
    """@return: a list recording every frame the client receives from now on."""
    frames = []
    original = client._frameReceived

    def spy(frame, isBinary):
        frames.append((frame, isBinary))
        original(frame, isBinary)

    client._link.onFrame = spy
    return frames


@pytest_twisted.ensureDeferred
async def test_msgpack_echo_over_binary_frames(prism):
    served = await prism.serve(services())
    client = await prism.connect(served.url)
    frames = spyFrames(client)
    value = {"list": [1, 2.5, None, True], "bytes": b"\x01\x02", "text": "ü"}
    assert await within(client.api.mecho.request(value)) == value
    assert len(frames) == 1 and isinstance(frames[0][0], bytes) and frames[0][1] is True
    assert frames[0][0].startswith(b"3")


@pytest.mark.parametrize("debug", [True, False])
@pytest_twisted.ensureDeferred
async def test_too_large_message_is_refused_and_connection_survives(prism, debug):
    served = await prism.serve(services(), transport={"maxMessageSize": 1000}, debug=debug)
    client = await prism.connect(served.url)
    serverErrors = []
    served.server.events.on("error", serverErrors.append)
    clientErrors = []
    client.on("error", clientErrors.append)

    client.api.echo.send("x" * 2000)
    await waitUntil(lambda: serverErrors)
    assert serverErrors[0].kind == "too_large"
    assert "exceeds the limit of 1000" in serverErrors[0].message

    # A message within the limit still goes through on the same connection;
    # its reply arrives after the error frame (when one was sent).
    assert await within(client.api.echo.request("y" * 900)) == "y" * 900
    if debug:
        assert [e.kind for e in clientErrors] == ["too_large"]
    else:
        assert clientErrors == []
    assert client.connected


@pytest_twisted.ensureDeferred
async def test_message_beyond_hard_limit_closes_with_1009(prism):
    served = await prism.serve(services(), transport={"maxMessageSize": 1000})
    client = await prism.connect(served.url, reconnect=False)
    closed = nextEvent(client, "close")
    pending = client.api.echo.request("z" * 70000)
    code, reason = await closed
    assert code == 1009
    assert isinstance(await failureOf(pending), ConnectionLost)
    await waitUntil(lambda: not served.server.connections)


# -- origins ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "origin, status",
    [
        (None, 101),  # non-browser clients send no Origin
        ("http://{host}", 101),  # same origin
        ("https://{host}", 101),  # the scheme does not matter, the host does
        ("http://evil.example", 403),
        ("http://127.0.0.1:1", 403),
        ("null", 400),  # refused by Autobahn itself (allowNullOrigin is off)
    ],
)
@pytest_twisted.ensureDeferred
async def test_default_origin_policy_is_same_origin(prism, origin, status):
    served = await prism.serve(services())
    errors = []
    served.server.events.on("error", errors.append)
    if origin is not None:
        origin = origin.format(host=served.host)
    raw = await prism.raw(served.portNumber, handshakeRequest(served.host, origin=origin))
    got, _ = await raw.response()
    assert got == status
    if status == 403:
        assert [e.kind for e in errors] == ["origin"]
    if status != 101:
        assert not served.server.connections


@pytest.mark.parametrize(
    "origin, status",
    [
        ("https://app.example.com", 101),
        ("https://a.b.example.com", 101),
        ("http://app.example.com", 403),
        ("https://example.com.evil.net", 403),
        ("http://{host}", 403),  # a list replaces the same-origin default
        (None, 101),
    ],
)
@pytest_twisted.ensureDeferred
async def test_allowed_origins_patterns(prism, origin, status):
    served = await prism.serve(services(), transport={"allowedOrigins": ["https://*.example.com"]})
    if origin is not None:
        origin = origin.format(host=served.host)
    raw = await prism.raw(served.portNumber, handshakeRequest(served.host, origin=origin))
    got, _ = await raw.response()
    assert got == status


@pytest_twisted.ensureDeferred
async def test_client_with_foreign_origin_is_refused(prism):
    served = await prism.serve(services())
    client = prism.client(served.url, origin="http://evil.example", reconnect=False)
    error = await failureOf(within(client.connect()))
    assert isinstance(error, ConnectionLost)
    assert not client.connected
    ok = await prism.connect(served.url, origin="http://" + served.host)
    assert await within(ok.api.rpc.call("add", 1, 1)) == 2


# -- the session cookie -------------------------------------------------------------


def setCookie(headers):
    values = headers.get("set-cookie", [])
    assert len(values) == 1, values
    first, *attributes = [part.strip() for part in values[0].split(";")]
    name, _, token = first.partition("=")
    return name, token, attributes


@pytest_twisted.ensureDeferred
async def test_set_cookie_when_a_service_uses_sessions(prism):
    served = await prism.serve(services(sessions=True))
    raw = await prism.raw(served.portNumber, handshakeRequest(served.host))
    status, headers = await raw.response()
    assert status == 101
    name, token, attributes = setCookie(headers)
    assert name == "prism.sid"
    assert verify(SECRET, token) is not None
    assert "Path=/" in attributes and "HttpOnly" in attributes and "SameSite=Lax" in attributes


@pytest_twisted.ensureDeferred
async def test_no_cookie_without_sessions(prism):
    served = await prism.serve(services(sessions=False))
    raw = await prism.raw(served.portNumber, handshakeRequest(served.host))
    status, headers = await raw.response()
    assert status == 101
    assert "set-cookie" not in headers


@pytest_twisted.ensureDeferred
async def test_cookie_gives_the_same_session(prism):
    served = await prism.serve(services(sessions=True))
    # The cookie value and the welcome's session token are the same string.
    first = await prism.connect(served.url)
    token = first.session
    sessionId = verify(SECRET, token)
    assert await within(first.api.rpc.call("whoami")) == {"id": sessionId, "visits": 1}

    # A later connection presenting the cookie (and no token in its hello)
    # gets the same session, and no new cookie.
    raw = await prism.raw(served.portNumber, handshakeRequest(served.host, cookie="prism.sid=" + token))
    status, headers = await raw.response()
    assert status == 101 and "set-cookie" not in headers
    second = await prism.connect(served.url, headers={"Cookie": "other=1; prism.sid=" + token})
    assert second.session == token
    assert await within(second.api.rpc.call("whoami")) == {"id": sessionId, "visits": 2}


@pytest_twisted.ensureDeferred
async def test_session_exists_as_soon_as_it_is_issued(prism):
    served = await prism.serve(services(sessions=True))
    # Nothing is ever written to this session...
    first = await prism.connect(served.url)
    # ...yet a connection presenting its cookie joins it.
    second = await prism.connect(served.url, headers={"Cookie": "prism.sid=" + first.session})
    assert second.session == first.session
    assert await within(second.api.rpc.call("whoami")) == {"id": verify(SECRET, first.session), "visits": 1}


@pytest_twisted.ensureDeferred
async def test_cookie_of_a_missing_session_is_replaced_in_the_handshake(prism):
    served = await prism.serve(services(sessions=True))
    first = await prism.connect(served.url)
    dead = first.session
    await within(served.server.sessionStore.delete(verify(SECRET, dead)))  # as if it expired

    raw = await prism.raw(served.portNumber, handshakeRequest(served.host, cookie="prism.sid=" + dead))
    status, headers = await raw.response()
    assert status == 101
    _, token, _ = setCookie(headers)
    assert token != dead and verify(SECRET, token) is not None

    client = await prism.connect(served.url, headers={"Cookie": "prism.sid=" + dead})
    assert client.session not in (dead, token)
    assert verify(SECRET, client.session) is not None


@pytest_twisted.ensureDeferred
async def test_forged_cookie_gets_a_new_session(prism):
    served = await prism.serve(services(sessions=True))
    errors = []
    served.server.events.on("error", errors.append)
    forged = "A" * 32 + ".forgedsignature"
    raw = await prism.raw(served.portNumber, handshakeRequest(served.host, cookie="prism.sid=" + forged))
    status, headers = await raw.response()
    assert status == 101
    _, token, _ = setCookie(headers)
    assert verify(SECRET, token) not in (None, "A" * 32)
    assert [e.kind for e in errors] == ["session"]

    client = await prism.connect(served.url, headers={"Cookie": "prism.sid=" + forged})
    result = await within(client.api.rpc.call("whoami"))
    assert result["id"] != "A" * 32
    assert verify(SECRET, client.session) == result["id"]


# -- pings ------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_peer_that_never_answers_pings_is_dropped(prism):
    served = await prism.serve(services(), transport={"pingInterval": 0.2, "pingTimeout": 0.3})
    disconnects = []
    served.server.events.on("disconnect", lambda *args: disconnects.append(args))
    normal = await prism.connect(served.url, reconnect=False)

    silent = await prism.raw(served.portNumber, handshakeRequest(served.host))
    status, _ = await silent.response()
    assert status == 101
    # The silent peer completed the WebSocket handshake but never says hello
    # nor answers a ping: the server drops it once the pong is overdue.
    await within(silent.lost, 3)
    assert b"\x89" in silent.data  # it was pinged (a ping frame's first byte)

    # The normal client answered every ping and is still connected.
    await sleep(0.3)
    assert normal.connected
    assert await within(normal.api.rpc.call("add", 20, 22)) == 42
    assert len(served.server.connections) == 1


# -- graceful stop ------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_graceful_stop(prism):
    served = await prism.serve(services())
    client = await prism.connect(served.url, reconnect=False)
    goingAway = nextEvent(client, "going_away")
    closed = nextEvent(client, "close")

    await within(served.server.stop("maintenance"))

    assert await goingAway == "maintenance"
    code, reason = await closed
    assert code == 1001
    assert not client.connected
    await waitUntil(lambda: not served.server.connections)
    endpoint = TCP4ClientEndpoint(served.server.reactor, "127.0.0.1", served.portNumber)
    with pytest.raises(ConnectionRefusedError):
        await within(connectProtocol(endpoint, RawTCP()))
