"""
The C{rpc} service: where handlers come from (a dict, a module, a package),
what is exposed, synchronous, Deferred and coroutine handlers, the request
as seen by L{withRequest} handlers, notifications, runtime registration, and
the Python client's timeouts and closed connections.
"""

import sys
import textwrap

import pytest
from twisted.internet.defer import Deferred, succeed

from prism.errors import CallTimeout, ConnectionLost, PrismConfigError, RemoteError
from prism.services.rpc import RPCService, loadHandlers, withRequest
from prism.testing import PrismTestServer, failureOf, resultOf


@pytest.fixture
def modules(tmp_path, monkeypatch):
    """
    Write modules under a fresh sys.path entry: C{modules({"pkg/a.py":
    source})}. Everything imported from there is forgotten afterwards.
    """
    monkeypatch.syspath_prepend(str(tmp_path))
    before = set(sys.modules)

    def write(files):
        for path, source in files.items():
            target = tmp_path / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(textwrap.dedent(source))

    yield write
    for name in set(sys.modules) - before:
        del sys.modules[name]


def rpcServer(handlers, **options):
    ts = PrismTestServer(services={"rpc": RPCService(handlers)}, **options)
    return ts, ts.client()


def call(client, method, *args):
    return resultOf(client.api.rpc.call(method, *args))


def remoteError(client, method, *args):
    return failureOf(client.api.rpc.call(method, *args), RemoteError).value


# -- where handlers come from


def test_handlersFromDict():
    ts, client = rpcServer({"add": lambda a, b: a + b, "greet": lambda name="you": "hi " + name})
    assert call(client, "add", 2, 3) == 5
    assert call(client, "greet") == "hi you"
    assert call(client, "greet", "Ada") == "hi Ada"
    assert ts.api.rpc.methods() == ["add", "greet"]


def test_handlersFromList():
    assert sorted(loadHandlers([{"a": len}, {"b": abs}])) == ["a", "b"]


def test_badHandlerSpecs(modules):
    with pytest.raises(PrismConfigError):
        loadHandlers({"x": 42})
    with pytest.raises(PrismConfigError):
        loadHandlers("no_such_module_for_prism_tests")
    with pytest.raises(PrismConfigError):
        loadHandlers(42)
    assert loadHandlers(None) == {}


MODULE = """
    import json
    from os.path import join

    CONSTANT = 3

    def add(a, b):
        return a + b

    def _private():
        return "secret"

    class NotAHandler:
        pass

    def twice(x):
        return _private() and x * 2
"""


def test_handlersFromModulePath(modules):
    modules({"prism_t_mathops.py": MODULE})
    handlers = loadHandlers("prism_t_mathops")
    assert sorted(handlers) == ["prism_t_mathops.add", "prism_t_mathops.twice"]
    ts, client = rpcServer("prism_t_mathops")
    assert call(client, "prism_t_mathops.add", 2, 3) == 5
    assert call(client, "prism_t_mathops.twice", 4) == 8
    for hidden in ["prism_t_mathops._private", "prism_t_mathops.join", "prism_t_mathops.json", "join", "add"]:
        assert remoteError(client, hidden).kind == "unknown_method"


def test_handlersFromModuleObject(modules):
    modules({"prism_t_modobj.py": MODULE})
    import prism_t_modobj

    assert sorted(loadHandlers(prism_t_modobj)) == ["prism_t_modobj.add", "prism_t_modobj.twice"]


def test_moduleWithAll(modules):
    modules(
        {
            "prism_t_withall.py": """
                from os.path import join
                __all__ = ["join", "shown"]
                def shown():
                    return 1
                def notListed():
                    return 2
            """
        }
    )
    assert sorted(loadHandlers("prism_t_withall")) == ["prism_t_withall.join", "prism_t_withall.shown"]


def test_dottedModulePath(modules):
    modules({"prism_t_app/__init__.py": "", "prism_t_app/api.py": "def ping():\n    return 'pong'\n"})
    ts, client = rpcServer("prism_t_app.api")
    assert call(client, "api.ping") == "pong"


PACKAGE = {
    "prism_t_pkg/__init__.py": """
        def notExposed():
            return "package init"
    """,
    "prism_t_pkg/sub.py": """
        from prism_t_pkg.helpers import helper

        def func(x):
            return helper(x)

        def _private():
            return 1
    """,
    "prism_t_pkg/helpers.py": """
        def helper(x):
            return x + 1
    """,
    "prism_t_pkg/nested/__init__.py": "",
    "prism_t_pkg/nested/deep.py": """
        async def func():
            return "deep"
    """,
    "prism_t_pkg/_internal.py": """
        def secret():
            return "private module"
    """,
    "prism_t_pkg/nested/_impl.py": """
        def secret():
            return "private module"
    """,
    "prism_t_pkg/_private_pkg/__init__.py": """
        raise RuntimeError("private packages are never imported")
    """,
}


def test_handlersFromPackagePath(modules):
    modules(PACKAGE)
    handlers = loadHandlers("prism_t_pkg")
    assert sorted(handlers) == ["helpers.helper", "nested.deep.func", "sub.func"]
    ts, client = rpcServer("prism_t_pkg")
    assert call(client, "sub.func", 1) == 2
    assert call(client, "nested.deep.func") == "deep"
    for hidden in ["sub._private", "sub.helper", "notExposed", ".notExposed", "_internal.secret", "nested._impl.secret"]:
        assert remoteError(client, hidden).kind == "unknown_method"


def test_brokenSubmodule(modules):
    modules({"prism_t_broken/__init__.py": "", "prism_t_broken/bad.py": "import no_such_module_for_prism\n"})
    with pytest.raises(PrismConfigError):
        loadHandlers("prism_t_broken")


def test_handlersFromPackageAndDict(modules):
    modules(PACKAGE)
    handlers = loadHandlers(["prism_t_pkg", {"extra": len}])
    assert "sub.func" in handlers and handlers["extra"] is len


# -- handlers


def test_deferredHandler():
    pending = Deferred()
    ts, client = rpcServer({"now": lambda: succeed("now"), "later": lambda: pending})
    assert call(client, "now") == "now"
    d = client.api.rpc.call("later")
    assert not d.called
    pending.callback({"done": True})
    assert resultOf(d) == {"done": True}


def test_asyncHandler():
    gate = Deferred()

    async def wait(x):
        got = await gate
        return [x, got]

    async def immediate(x):
        return x * 3

    ts, client = rpcServer({"wait": wait, "immediate": immediate})
    assert call(client, "immediate", 3) == 9
    d = client.api.rpc.call("wait", 1)
    assert not d.called
    gate.callback("opened")
    assert resultOf(d) == [1, "opened"]


def test_repliesMatchCallbackIds():
    gates = [Deferred(), Deferred()]
    ts, client = rpcServer({"slow": lambda i: gates[i].addCallback(lambda _: i)})
    first = client.api.rpc.call("slow", 0)
    second = client.api.rpc.call("slow", 1)
    gates[1].callback(None)
    assert resultOf(second) == 1 and not first.called
    gates[0].callback(None)
    assert resultOf(first) == 0


def test_withRequest():
    seen = []

    @withRequest
    def whoami(request, suffix):
        seen.append(request)
        return [request.connection.id, request.peer, request.transport, request.service, suffix]

    ts = PrismTestServer(services={"rpc": RPCService({"whoami": whoami})})
    raw = ts.raw(peer="10.1.2.3:4567")
    raw.hello()
    raw.send('17|["whoami","!"]')
    conn = raw.connection
    assert raw.frames[-1] == '17|["{}","10.1.2.3:4567","loopback","rpc","!"]'.format(conn.id)
    [request] = seen
    assert request.callbackId == 7
    assert request.session is None  # the service did not ask for sessions
    assert request.server is ts.server


def test_withRequestSession():
    @withRequest
    def count(request):
        request.session["n"] = request.session.get("n", 0) + 1
        return request.session["n"]

    ts = PrismTestServer(services={"rpc": RPCService({"count": count}, sessions=True)})
    client = ts.client()
    assert [call(client, "count") for _ in range(3)] == [1, 2, 3]


def test_withRequestReturnsTheFunction():
    def f(request):
        return 1

    assert withRequest(f) is f


def test_unknownMethod():
    ts, client = rpcServer({"add": lambda a, b: a + b})
    error = remoteError(client, "ad", 2, 3)
    assert (error.kind, error.message) == ("unknown_method", "no RPC method 'ad'")
    assert call(client, "add", 2, 3) == 5


@pytest.mark.parametrize("payload", ["[]", "{}", '"add"', "[1,2]", "null"])
def test_malformedCalls(payload):
    ts = PrismTestServer(services={"rpc": RPCService({"add": lambda a, b: a + b})})
    raw = ts.raw()
    raw.hello()
    raw.send("15|" + payload)
    assert raw.frames[-1].startswith('15!{"error":"malformed"')


def test_notify():
    log = []

    def record(x):
        log.append(x)
        return "ignored"

    ts = PrismTestServer(services={"rpc": RPCService({"record": record, "fail": lambda: 1 / 0})})
    raw = ts.raw()
    raw.hello()
    sent = len(raw.frames)
    raw.send('1|["record","x"]')
    raw.send('1|["fail"]')  # not even an error comes back
    raw.send('1|["unknown"]')
    assert log == ["x"]
    assert len(raw.frames) == sent
    client = ts.client()
    client.api.rpc.notify("record", "y")
    assert log == ["x", "y"]


def test_registerAtRuntime():
    ts, client = rpcServer({"add": lambda a, b: a + b})
    api = ts.api.rpc
    assert remoteError(client, "mul", 2, 3).kind == "unknown_method"
    api.register("mul", lambda a, b: a * b)
    assert call(client, "mul", 2, 3) == 6
    assert api.methods() == ["add", "mul"]
    api.register("add", lambda a, b: "replaced")
    assert call(client, "add", 1, 1) == "replaced"
    api.register("who", withRequest(lambda request: request.transport))
    assert call(client, "who") == "loopback"
    api.unregister("mul")
    api.unregister("never-registered")
    assert remoteError(client, "mul", 2, 3).kind == "unknown_method"
    with pytest.raises(PrismConfigError):
        api.register("bad", 42)
    assert "add" in api.handlers


def test_clientTimeout():
    never = Deferred()
    late = []
    ts, client = rpcServer({"never": lambda: never, "late": lambda: late.append(Deferred()) or late[-1]})
    d = client.api.rpc.call("never", timeout=5)
    ts.clock.advance(4.9)
    assert not d.called
    ts.clock.advance(0.2)
    error = failureOf(d, CallTimeout).value
    assert error.kind == "timeout"
    # the default timeout is the client's
    d = client.api.rpc.call("late")
    ts.clock.advance(client.timeout + 1)
    failureOf(d, CallTimeout)
    late[0].callback("too late")  # a reply after the timeout is ignored
    assert not client._pending


def test_lateReplyIsIgnored():
    gate = Deferred()
    ts, client = rpcServer({"slow": lambda: gate, "add": lambda a, b: a + b})
    d = client.api.rpc.call("slow", timeout=1)
    ts.clock.advance(2)
    failureOf(d, CallTimeout)
    gate.callback("late")
    assert call(client, "add", 1, 2) == 3
    assert ts.clock.getDelayedCalls() == []


def test_noTimeout():
    gate = Deferred()
    ts, client = rpcServer({"slow": lambda: gate})
    d = client.api.rpc.call("slow", timeout=None)
    ts.clock.advance(10 ** 6)
    assert not d.called
    gate.callback(1)
    assert resultOf(d) == 1


def test_callOnClosedClient():
    ts, client = rpcServer({"add": lambda a, b: a + b})
    client.reconnect = False
    client.close()
    failureOf(client.api.rpc.call("add", 1, 2), ConnectionLost)
    with pytest.raises(ConnectionLost):
        client.api.rpc.notify("add", 1, 2)


def test_pendingCallsFailWhenTheConnectionCloses():
    gate = Deferred()
    ts, client = rpcServer({"slow": lambda: gate})
    d = client.api.rpc.call("slow")
    client.close()
    failureOf(d, ConnectionLost)
    gate.callback("nobody listens")
    assert ts.clock.getDelayedCalls() == []


def test_serverClosesConnection():
    gate = Deferred()
    ts, client = rpcServer({"slow": lambda: gate})
    client.reconnect = False
    d = client.api.rpc.call("slow")
    stopped = ts.server.stop(timeout=1)
    assert not d.called  # stop() waits for calls in flight, up to its timeout
    ts.clock.advance(1)
    resultOf(stopped)
    failureOf(d, ConnectionLost)
    gate.callback("nobody listens")


def test_resultsThatCannotBeEncoded():
    ts, client = rpcServer({"bad": lambda: object(), "badLater": lambda: succeed({1, 2}), "ok": lambda: 1})
    assert remoteError(client, "bad").kind == "handler"
    assert remoteError(client, "badLater").kind == "handler"
    assert call(client, "ok") == 1
