"""
The TOML configuration file (prism.config): every key and its default,
error messages (file, key path, expected, found), plugin resolution, endpoint
validation, building a server/service tree without starting anything, the
C{twistd prism --config} options, the C{prism} command, and the static-files
mode on a real socket.
"""

import inspect
import re
import sys
import textwrap

import pytest
import pytest_twisted
from twisted.application.service import MultiService
from twisted.internet.defer import succeed
from twisted.internet.testing import MemoryReactorClock
from twisted.python import usage

from prism import cli
from prism._plugins import Registry
from prism.config import (
    _BUILTIN_OPTIONS,
    Config,
    SiteService,
    checkEndpoint,
    configFromDict,
    loadConfig,
)
from prism.errors import PrismConfigError
from prism.plugin import MiddlewarePlugin, ServicePlugin, SessionStorePlugin, TransportPlugin
from prism.service import PrismService
from prism.testing import resultOf

from conftest import within

SECRET = "0123456789abcdef-secret"
MINIMAL = '[[services]]\nname = "echo"\n'


def write(tmp_path, text, name="prism.toml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load(tmp_path, text, **kwargs):
    return loadConfig(str(write(tmp_path, text)), **kwargs)


def errorsOf(tmp_path, text, **kwargs):
    with pytest.raises(PrismConfigError) as info:
        load(tmp_path, text, **kwargs)
    assert str(info.value) == "\n".join(info.value.errors)
    return info.value.errors


def oneError(tmp_path, text, **kwargs):
    errors = errorsOf(tmp_path, text, **kwargs)
    assert len(errors) == 1, errors
    return errors[0]


# -- defaults and every key


def test_defaults(tmp_path):
    config = load(tmp_path, MINIMAL)
    assert config.filename.endswith("prism.toml")
    assert config.debug is False
    assert config.logRequests is False
    assert config.listen == ["tcp:3001"]
    assert config.static is None and not config.web
    assert config.path == "/ws"
    assert config.secret is None and config.secretSource is None
    assert config.pythonpath == []
    assert config.sessionCookie == "prism.sid"
    assert config.cacheSessions is True
    assert config.sessionStore.plugin == "memory" and config.sessionStore.kwargs == {}
    assert config.transport.plugin == "websocket" and config.transport.kwargs == {}
    assert [(s.name, s.plugin, s.kwargs) for s in config.services] == [("echo", "echo", {})]
    assert config.middleware == []


def test_every_key(tmp_path):
    (tmp_path / "public").mkdir()
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "cfg_handlers_every.py").write_text("def add(a, b):\n    return a + b\n")
    config = load(
        tmp_path,
        """
        pythonpath = ["lib"]
        debug = true
        log_requests = true
        listen = ["tcp:3001:interface=127.0.0.1", "unix:/tmp/prism-test.sock"]
        static = "public"
        path = "/realtime/socket"
        secret = "%s"

        [session]
        cookie = "sid"
        cache = false
        store = "memory"
        [session.options]
        ttl = 600

        [transport]
        name = "websocket"
        max_message_size = 65536
        allowed_origins = ["https://*.example.com"]
        ping_interval = 30
        ping_timeout = 10.5
        handshake_timeout = 5
        compression = true

        [[services]]
        name = "rpc"
        handlers = "cfg_handlers_every"
        sessions = true

        [[services]]
        name = "shout"
        plugin = "echo"
        codec = "json"

        [[middleware]]
        plugin = "log"
        """
        % SECRET,
    )
    assert config.pythonpath == [str(tmp_path / "lib")]
    assert config.debug is True and config.logRequests is True
    assert config.listen == ["tcp:3001:interface=127.0.0.1", "unix:/tmp/prism-test.sock"]
    assert config.static == str(tmp_path / "public") and config.web
    assert config.path == "/realtime/socket"
    assert config.secret == SECRET and config.secretSource == "secret"
    assert config.sessionCookie == "sid" and config.cacheSessions is False
    assert config.sessionStore.kwargs == {"ttl": 600}
    assert config.transport.kwargs == {
        "maxMessageSize": 65536,
        "allowedOrigins": ["https://*.example.com"],
        "pingInterval": 30,
        "pingTimeout": 10.5,
        "handshakeTimeout": 5,
        "compression": True,
    }
    assert config.transport.options["max_message_size"] == 65536  # as written, for summaries
    rpc, shout = config.services
    assert (rpc.name, rpc.plugin, rpc.kwargs) == ("rpc", "rpc", {"handlers": "cfg_handlers_every", "sessions": True})
    assert (shout.name, shout.plugin, shout.kwargs) == ("shout", "echo", {"codec": "json"})
    assert [m.plugin for m in config.middleware] == ["log"]

    server = config.buildServer(reactor=MemoryReactorClock())
    assert server.debug is True and server.logRequests is True
    assert server.secret == SECRET
    assert server.sessionCookie == "sid" and server.cacheSessions is False
    assert server.sessionStore.ttl == 600
    t = server.transport
    assert (t.maxMessageSize, t.allowedOrigins, t.pingInterval, t.pingTimeout, t.handshakeTimeout, t.compression) == (
        65536, ["https://*.example.com"], 30, 10.5, 5, True,
    )
    assert server.services() == [["rpc", 1, "json", True], ["shout", 2, "json", True]]
    assert len(server._chain) == 1
    assert not server.running  # built, not started


def test_listen_may_be_one_string(tmp_path):
    config = load(tmp_path, 'listen = "tcp:4000"\n' + MINIMAL)
    assert config.listen == ["tcp:4000"]


def test_secret_file_is_read_relative_to_the_file(tmp_path):
    (tmp_path / "secret.txt").write_text(SECRET + "\n")
    config = load(tmp_path, 'secret_file = "secret.txt"\n' + MINIMAL)
    assert config.secret == SECRET
    assert config.secretSource == "secret_file " + str(tmp_path / "secret.txt")


def test_builtin_option_tables_match_the_factories():
    """Every built-in table names exactly the constructor's parameters."""
    from twisted.python.reflect import namedAny

    for implementation, table in _BUILTIN_OPTIONS.items():
        parameters = set(inspect.signature(namedAny(implementation)).parameters) - {"reactor"}
        assert {parameter for parameter, _ in table.values()} == parameters, implementation


# -- errors: file, key path, expected, found


INVALID = [
    ("debug = 1\n" + MINIMAL, "debug", "expected a boolean (true or false)", "found integer 1"),
    ('log_requests = "yes"\n' + MINIMAL, "log_requests", "expected a boolean", 'found string "yes"'),
    ("listen = []\n" + MINIMAL, "listen", "expected a non-empty array of Twisted endpoint strings", "found array []"),
    ("listen = 3001\n" + MINIMAL, "listen", "expected a non-empty array", "found integer 3001"),
    ('listen = ["tcp:abc"]\n' + MINIMAL, "listen[0]", "expected a Twisted endpoint string", 'found string "tcp:abc"'),
    ('listen = ["tcp:1", "foo:1"]\n' + MINIMAL, "listen[1]", "expected a Twisted endpoint string", "Unknown endpoint type: 'foo'"),
    ('listen = ["tcp:3001:bogus=1"]\n' + MINIMAL, "listen[0]", "expected a Twisted endpoint string", "unknown parameter: 'bogus'"),
    ('listen = ["tcp:70000"]\n' + MINIMAL, "listen[0]", "expected a Twisted endpoint string", "out of range"),
    ('static = "nowhere"\n' + MINIMAL, "static", "expected an existing directory", 'found string "nowhere"'),
    ("static = true\n" + MINIMAL, "static", "expected a directory path (string)", "found boolean true"),
    ('static = "."\npath = "ws"\n' + MINIMAL, "path", 'expected a URL path like "/ws"', 'found string "ws"'),
    ('static = "."\npath = "/"\n' + MINIMAL, "path", 'expected a URL path like "/ws"', 'found string "/"'),
    ('static = "."\npath = "/a/../b"\n' + MINIMAL, "path", 'expected a URL path', 'found string "/a/../b"'),
    ('path = "/ws"\n' + MINIMAL, "path", "only used with static", None),
    ("secret = 12345\n" + MINIMAL, "secret", "expected a string", "found integer"),
    ('secret = "short"\n' + MINIMAL, "secret", "expected a string of at least 16 characters", "found a string of 5 characters"),
    ('secret_file = "missing.txt"\n' + MINIMAL, "secret_file", "expected a readable UTF-8 text file", 'found string "missing.txt"'),
    ('secret = "%s"\nsecret_file = "x"\n' % SECRET + MINIMAL, "secret_file", "expected either secret or secret_file", "found both"),
    ('pythonpath = ["nope"]\n' + MINIMAL, "pythonpath[0]", "expected an existing directory", 'found string "nope"'),
    ("colour = 1\n" + MINIMAL, "colour", "unknown key", "accepted keys: pythonpath, debug"),
    ('session = "x"\n' + MINIMAL, "session", "expected a table ([session])", 'found string "x"'),
    ('[session]\ncookie = "a b"\n' + MINIMAL, "session.cookie", "expected a cookie name", 'found string "a b"'),
    ('[session]\ncache = "no"\n' + MINIMAL, "session.cache", "expected a boolean", 'found string "no"'),
    ("[session]\nstore = 1\n" + MINIMAL, "session.store", "expected a session store plugin name", "found integer 1"),
    ('[session]\nstore = "mongo"\n' + MINIMAL, "session.store", "expected a session store plugin name (available: ", 'found string "mongo"'),
    ("[session]\noptions = 1\n" + MINIMAL, "session.options", "expected a table ([session.options])", "found integer 1"),
    ("[session.options]\nttl = 0\n" + MINIMAL, "session.options.ttl", "expected a number of seconds > 0", "found integer 0"),
    ("[session.options]\nsize = 1\n" + MINIMAL, "session.options.size", "unknown option of the session store plugin 'memory'", "accepted options: ttl"),
    ("[session]\nexpiry = 1\n" + MINIMAL, "session.expiry", "unknown key", "accepted keys: cookie, cache, store, options"),
    ('[transport]\nname = "carrier-pigeon"\n' + MINIMAL, "transport.name", "expected a transport plugin name (available: ", 'found string "carrier-pigeon"'),
    ('[transport]\nmax_message_size = "1MB"\n' + MINIMAL, "transport.max_message_size", "expected a positive integer", 'found string "1MB"'),
    ("[transport]\nmax_message_size = 0\n" + MINIMAL, "transport.max_message_size", "expected a positive integer", "found integer 0"),
    ("[transport]\nping_interval = -1\n" + MINIMAL, "transport.ping_interval", "expected a number of seconds >= 0", "found integer -1"),
    ("[transport]\nping_timeout = 0\n" + MINIMAL, "transport.ping_timeout", "expected a number of seconds > 0", "found integer 0"),
    ("[transport]\nhandshake_timeout = true\n" + MINIMAL, "transport.handshake_timeout", "expected a number of seconds > 0", "found boolean true"),
    ('[transport]\nallowed_origins = "*"\n' + MINIMAL, "transport.allowed_origins", "expected an array of non-empty strings", 'found string "*"'),
    ('[transport]\ncompression = "on"\n' + MINIMAL, "transport.compression", "expected a boolean", 'found string "on"'),
    ("[transport]\nmaxMessageSize = 5\n" + MINIMAL, "transport.maxMessageSize", "did you mean max_message_size?", "accepted options: allowed_origins, compression, handshake_timeout, idle_timeout, max_connections, max_connections_per_address, max_message_size, max_outgoing_buffer, ping_interval, ping_timeout, proxy_header, trusted_proxies"),
    ("", "services", "expected at least one [[services]] table", "found none"),
    ('services = ["echo"]\n', "services", "expected an array of tables ([[services]])", 'found array ["echo"]'),
    ('[[services]]\nplugin = "echo"\n', "services[0].name", "expected the service's name (a string)", "found nothing"),
    ('[[services]]\nname = "two words"\nplugin = "echo"\n', "services[0].name", "expected a short identifier", 'found string "two words"'),
    ('[[services]]\nname = "system"\nplugin = "echo"\n', "services[0].name", 'other than "system"', 'found string "system"'),
    ('[[services]]\nname = "echo"\n[[services]]\nname = "echo"\n', "services[1].name", "expected a unique service name", "already used by services[0]"),
    ('[[services]]\nname = "chat"\n', "services[0].name", "expected a service plugin name (available: echo, ", 'found string "chat"'),
    ('[[services]]\nname = "x"\nplugin = "chat"\n', "services[0].plugin", "expected a service plugin name (available: echo, ", 'found string "chat"'),
    ('[[services]]\nname = "x"\nplugin = 3\n', "services[0].plugin", "expected a service plugin name (string)", "found integer 3"),
    ('[[services]]\nname = "rpc"\nhandlers = "no_such_module_prism"\n', "services[0].handlers", "expected an importable module or package name", "No module named 'no_such_module_prism'"),
    ('[[services]]\nname = "rpc"\nhandlers = 5\n', "services[0].handlers", "expected an importable module or package name, or an array", "found integer 5"),
    ('[[services]]\nname = "rpc"\nhandlers = "not a module"\n', "services[0].handlers", "expected an importable module or package name (dotted", 'found string "not a module"'),
    ('[[services]]\nname = "rpc"\nsessions = "yes"\n', "services[0].sessions", "expected a boolean", 'found string "yes"'),
    ('[[services]]\nname = "echo"\ncodec = "xml"\n', "services[0].codec", 'expected one of "raw", "json", "msgpack"', 'found string "xml"'),
    ('[[services]]\nname = "echo"\nhandlers = "x"\n', "services[0].handlers", "unknown option of the service plugin 'echo'", "accepted options: codec, sessions"),
    ("middleware = 1\n" + MINIMAL, "middleware", "expected an array of tables ([[middleware]])", "found integer 1"),
    ("[[middleware]]\nname = 1\n" + MINIMAL, "middleware[0].plugin", "expected a middleware plugin name (string)", "found nothing"),
    ('[[middleware]]\nplugin = "nosuch"\n' + MINIMAL, "middleware[0].plugin", "expected a middleware plugin name (available: ", 'found string "nosuch"'),
    ('[[middleware]]\nplugin = "log"\nlevel = 1\n' + MINIMAL, "middleware[0].level", "unknown option of the middleware plugin 'log'", "accepted options: (none)"),
]


@pytest.mark.parametrize("text, key, expected, found", INVALID, ids=[case[1] for case in INVALID])
def test_invalid_file_names_file_key_expected_and_found(tmp_path, text, key, expected, found):
    message = oneError(tmp_path, text)
    assert message.startswith(str(tmp_path / "prism.toml") + ": " + key + ": "), message
    assert expected in message, message
    if found is not None:
        assert found in message, message
    assert "\n" not in message


def test_secrets_are_never_echoed(tmp_path):
    message = oneError(tmp_path, 'secret = "s3cr3t!"\n' + MINIMAL)
    assert "s3cr3t" not in message
    (tmp_path / "secret.txt").write_text("tiny-secret")
    message = oneError(tmp_path, 'secret_file = "secret.txt"\n' + MINIMAL)
    assert "tiny-secret" not in message and "11 characters" in message


def test_all_errors_are_reported_in_one_pass(tmp_path):
    errors = errorsOf(
        tmp_path,
        """
        debug = "yes"
        listen = ["tcp:abc", "nope:1"]
        colour = 1
        [session]
        cookie = "bad cookie"
        [transport]
        max_message_size = "big"
        [[services]]
        name = "rpc"
        sessions = 1
        [[services]]
        name = "chat"
        [[middleware]]
        plugin = "nosuch"
        """,
    )
    keys = [e.split(": ")[1] for e in errors]
    assert keys == [
        "colour",
        "debug",
        "listen[0]",
        "listen[1]",
        "session.cookie",
        "transport.max_message_size",
        "services[0].sessions",
        "services[1].name",
        "middleware[0].plugin",
    ]
    assert all(e.startswith(str(tmp_path / "prism.toml") + ": ") for e in errors)


def test_toml_syntax_error(tmp_path):
    message = oneError(tmp_path, "debug = \n")
    assert message.startswith(str(tmp_path / "prism.toml") + ": not valid TOML: ")
    assert "line 1" in message


def test_missing_file(tmp_path):
    with pytest.raises(PrismConfigError) as info:
        loadConfig(str(tmp_path / "absent.toml"))
    assert str(info.value) == "{}: cannot read the configuration file: No such file or directory".format(
        tmp_path / "absent.toml"
    )


def test_static_must_be_a_directory(tmp_path):
    (tmp_path / "file.txt").write_text("x")
    message = oneError(tmp_path, 'static = "file.txt"\n' + MINIMAL)
    assert "static: expected an existing directory" in message
    assert "{} is not a directory".format(tmp_path / "file.txt") in message


def test_ssl_endpoint_with_a_missing_certificate(tmp_path):
    message = oneError(tmp_path, 'listen = ["ssl:8443:privateKey=/nonexistent/key.pem"]\n' + MINIMAL)
    assert "listen[0]: expected a Twisted endpoint string" in message
    assert 'found string "ssl:8443:privateKey=/nonexistent/key.pem"' in message


# -- endpoints


@pytest.mark.parametrize(
    "description",
    ["tcp:3001", "tcp:0:interface=127.0.0.1", "tcp6:3001", "unix:/tmp/prism.sock", "systemd:domain=INET:index=0"],
)
def test_valid_endpoints(description):
    assert checkEndpoint(description) is None


@pytest.mark.parametrize(
    "description, problem",
    [
        ("", "not a non-empty string"),
        ("carrier:1", "Unknown endpoint type: 'carrier'"),
        ("tcp:port", "invalid literal"),
        ("tcp:3001:colour=red", "unknown parameter: 'colour'"),
        ("tcp:65536", "out of range"),
        ("systemd:domain=INET", "need domain= and index= or name="),
        ("systemd:domain=INET:index=0:colour=red", "unknown parameter: 'colour'"),
    ],
)
def test_invalid_endpoints(description, problem):
    assert problem in checkEndpoint(description)


def test_endpoint_checks_never_touch_the_global_reactor():
    import subprocess

    code = (
        "import sys; from prism.config import checkEndpoint; "
        "assert checkEndpoint('tcp:3001') is None and checkEndpoint('x:1'); "
        "assert 'twisted.internet.reactor' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# -- plugins: registries, introspected third-party options


class Gadget:
    """A third-party service whose options are introspected."""

    codec = "json"
    callbacks = True

    def __init__(self, maxItems=3, greeting="hi", reactor=None):
        if maxItems > 100:
            raise PrismConfigError("gadget: maxItems must be at most 100")
        self.maxItems = maxItems
        self.greeting = greeting
        self.reactor = reactor

    def messageReceived(self, request):
        return [self.greeting] * self.maxItems


class OpenGadget(Gadget):
    def __init__(self, **options):
        Gadget.__init__(self)
        self.options = options


def registries(**extraServices):
    services = [
        ServicePlugin("echo", "prism.services.echo.EchoService"),
        ServicePlugin("gadget", __name__ + ".Gadget"),
        ServicePlugin("open", __name__ + ".OpenGadget"),
        ServicePlugin("broken", "no_such_module_prism.Thing"),
    ]
    return {
        "service": Registry("service", plugins=services),
        "transport": Registry(
            "transport", plugins=[TransportPlugin("loopback", "prism.transports.loopback.LoopbackTransport")]
        ),
        "session_store": Registry("session_store", plugins=[SessionStorePlugin("memory", "prism.sessions.MemorySessionStore")]),
        "middleware": Registry("middleware", plugins=[MiddlewarePlugin("log", "prism.middleware.LogRequests")]),
    }


LOOPBACK = '[transport]\nname = "loopback"\n'


def test_third_party_options_are_introspected(tmp_path):
    clock = MemoryReactorClock()
    config = load(tmp_path, LOOPBACK + '[[services]]\nname = "gadget"\nmax_items = 5\ngreeting = "yo"\n', registries=registries())
    assert config.services[0].kwargs == {"maxItems": 5, "greeting": "yo"}
    server = config.buildServer(reactor=clock)
    gadget = server._byName["gadget"].service
    assert (gadget.maxItems, gadget.greeting, gadget.reactor) == (5, "yo", clock)


def test_third_party_unknown_option_lists_accepted_ones(tmp_path):
    message = oneError(tmp_path, LOOPBACK + '[[services]]\nname = "gadget"\nmaxItems = 5\n', registries=registries())
    assert message.endswith(
        "services[0].maxItems: unknown option of the service plugin 'gadget' "
        "(did you mean max_items? accepted options: greeting, max_items)"
    )


def test_kwargs_factories_take_any_option(tmp_path):
    config = load(tmp_path, LOOPBACK + '[[services]]\nname = "open"\nanything = [1, 2]\n', registries=registries())
    assert config.services[0].kwargs == {"anything": [1, 2]}
    assert config.buildServer(reactor=MemoryReactorClock())._byName["open"].service.options == {"anything": [1, 2]}


def test_unknown_plugins_list_the_available_ones(tmp_path):
    errors = errorsOf(
        tmp_path,
        '[transport]\nname = "websocket"\n[session]\nstore = "redis"\n[[services]]\nname = "chat"\n[[middleware]]\nplugin = "auth"\n',
        registries=registries(),
    )
    assert [e.split(str(tmp_path / "prism.toml") + ": ")[1] for e in errors] == [
        'session.store: expected a session store plugin name (available: memory), found string "redis"',
        'transport.name: expected a transport plugin name (available: loopback), found string "websocket"',
        "services[0].name: expected a service plugin name (available: broken, echo, gadget, open); "
        'the name is the plugin unless plugin is set, found string "chat"',
        'middleware[0].plugin: expected a middleware plugin name (available: log), found string "auth"',
    ]


def test_a_plugin_whose_implementation_does_not_import(tmp_path):
    message = oneError(tmp_path, LOOPBACK + '[[services]]\nname = "broken"\n', registries=registries())
    assert "services[0].name: cannot load the service plugin 'broken' (no_such_module_prism.Thing)" in message


def test_a_factory_refusing_its_options_is_reported_at_build_with_its_key(tmp_path):
    config = load(tmp_path, LOOPBACK + MINIMAL + '[[services]]\nname = "gadget"\nmax_items = 500\n', registries=registries())
    with pytest.raises(PrismConfigError) as info:
        config.buildServer()
    assert str(info.value) == (
        "{}: services[1]: the service plugin 'gadget' refused its options: gadget: maxItems must be at most 100".format(
            tmp_path / "prism.toml"
        )
    )


# -- building: nothing starts; the server works end to end


def test_build_server_on_loopback_end_to_end(tmp_path):
    """An RPC call through a server built from a file (loopback transport)."""
    from prism.client import Client

    (tmp_path / "cfg_handlers_loop.py").write_text(
        "from prism.services.rpc import withRequest\n"
        "def add(a, b):\n    return a + b\n"
        "@withRequest\ndef count(request):\n"
        "    request.session['n'] = request.session.get('n', 0) + 1\n    return request.session['n']\n"
    )
    config = load(
        tmp_path,
        """
        pythonpath = ["."]
        secret = "%s"
        [transport]
        name = "loopback"
        [[services]]
        name = "rpc"
        handlers = "cfg_handlers_loop"
        sessions = true
        [[services]]
        name = "echo"
        codec = "json"
        """
        % SECRET,
    )
    clock = MemoryReactorClock()
    server = config.buildServer(reactor=clock)
    server.start()
    client = Client(connector=lambda: succeed(server.transport.connect(server)), reactor=clock, reconnect=False)
    resultOf(client.connect())
    assert resultOf(client.api.rpc.call("cfg_handlers_loop.add", 2, 3)) == 5
    assert resultOf(client.api.rpc.call("cfg_handlers_loop.count")) == 1
    assert resultOf(client.api.rpc.call("cfg_handlers_loop.count")) == 2
    assert resultOf(client.api.echo.request({"a": [1]})) == {"a": [1]}
    client.close()
    resultOf(server.stop())


def test_build_server_with_a_transport_override(tmp_path):
    from prism.testing import RawClient
    from prism.transports.loopback import LoopbackTransport

    config = load(tmp_path, MINIMAL)  # the websocket transport, replaced:
    transport = LoopbackTransport()
    server = config.buildServer(reactor=MemoryReactorClock(), transport=transport)
    assert server.transport is transport
    server.start()
    raw = RawClient(transport.connect(server))
    raw.hello()
    raw.send("11|ping")
    assert raw.frames[-1] == "11|ping"


@pytest.mark.parametrize("static", [False, True])
def test_building_never_touches_the_global_reactor(tmp_path, static):
    import subprocess

    (tmp_path / "www").mkdir()
    path = write(tmp_path, ('static = "www"\n' if static else "") + MINIMAL)
    code = (
        "import sys; from prism.config import loadConfig; "
        "c = loadConfig(sys.argv[1]); c.buildService(); "
        "assert 'twisted.internet.reactor' not in sys.modules, 'reactor imported'"
    )
    subprocess.run([sys.executable, "-c", code, str(path)], check=True)


def test_build_service_starts_nothing(tmp_path):
    clock = MemoryReactorClock()
    config = load(tmp_path, 'listen = ["tcp:4001", "tcp:4002"]\n' + MINIMAL)
    top = config.buildService(reactor=clock)
    assert isinstance(top, MultiService) and not top.running
    child = top.getServiceNamed("prism")
    assert isinstance(child, PrismService) and not isinstance(child, SiteService)
    assert child.endpoints == ["tcp:4001", "tcp:4002"]
    assert not child.server.running
    assert clock.tcpServers == []
    top.startService()
    assert [p[0] for p in clock.tcpServers] == [4001, 4002]
    resultOf(top.stopService())


def test_build_service_with_static_files_is_a_site(tmp_path):
    from twisted.web.server import Site

    (tmp_path / "www").mkdir()
    clock = MemoryReactorClock()
    config = load(tmp_path, 'listen = ["tcp:4003"]\nstatic = "www"\npath = "/a/ws"\n' + MINIMAL)
    top = config.buildService(reactor=clock)
    child = top.getServiceNamed("prism")
    assert isinstance(child, SiteService) and isinstance(child.site, Site)
    assert clock.tcpServers == []
    top.startService()
    assert clock.tcpServers[0][0] == 4003 and clock.tcpServers[0][1] is child.site
    assert b"ws" in child.site.resource.children[b"a"].children
    resultOf(top.stopService())


def test_a_transport_without_a_resource_cannot_serve_static_files(tmp_path):
    (tmp_path / "www").mkdir()
    message = oneError(tmp_path, 'static = "www"\n' + LOOPBACK + MINIMAL)
    assert "static: the 'loopback' transport cannot be served in a web site" in message


def test_override(tmp_path):
    config = load(tmp_path, MINIMAL)
    config.override(listen=["tcp:5000", "unix:/tmp/x.sock"], debug=True, logRequests=True)
    assert config.listen == ["tcp:5000", "unix:/tmp/x.sock"] and config.debug and config.logRequests
    config.override(listen=None, debug=None)
    assert config.listen == ["tcp:5000", "unix:/tmp/x.sock"] and config.debug
    with pytest.raises(PrismConfigError) as info:
        config.override(listen=["tcp:nope"])
    assert str(info.value).startswith('--listen: expected a Twisted endpoint string, found string "tcp:nope"')


def test_the_documented_example_is_valid():
    from pathlib import Path

    example = Path(__file__).resolve().parent.parent / "examples" / "prism.toml"
    config = loadConfig(str(example))
    assert [s.name for s in config.services] == ["rpc", "echo"]
    assert config.transport.kwargs["maxMessageSize"] == 1048576
    server = config.buildServer(reactor=MemoryReactorClock())
    assert "demo.add" in server._byName["rpc"].service.handlers


def test_config_from_dict():
    config = configFromDict({"services": [{"name": "echo"}]}, filename="inline")
    assert isinstance(config, Config) and config.filename == "inline"
    with pytest.raises(PrismConfigError) as info:
        configFromDict({"debug": 0, "services": [{"name": "echo"}]}, filename="inline")
    assert str(info.value) == "inline: debug: expected a boolean (true or false), found integer 0"


def test_summary(tmp_path):
    (tmp_path / "www").mkdir()
    config = load(
        tmp_path,
        'static = "www"\nsecret = "%s"\n[[services]]\nname = "echo"\ncodec = "json"\n[[middleware]]\nplugin = "log"\n'
        % SECRET,
    )
    text = "\n".join(config.summary())
    assert text.startswith(str(tmp_path / "prism.toml") + ": OK\n")
    assert "listen:     tcp:3001" in text
    assert "transport:  websocket" in text
    assert "web:        static files from {} at /, Prism at /ws".format(tmp_path / "www") in text
    assert 'services:   echo (codec="json")' in text
    assert "middleware: log" in text
    assert "sessions:   store memory, cookie prism.sid, cache on" in text
    assert "secret:     from secret" in text and SECRET not in text


# -- twistd prism --config: the options


def test_tap_options_with_a_config_file(tmp_path):
    from prism.tap import Options, makeService

    path = write(tmp_path, 'listen = ["tcp:4100"]\n' + MINIMAL)
    options = Options()
    options.parseOptions(["--config", str(path)])
    assert options.config.listen == ["tcp:4100"] and not options.config.debug
    assert options.server.services() == [["echo", 1, "raw", True]]
    options = Options()
    options.parseOptions(["--config", str(path), "--listen", "tcp:4200", "--listen", "tcp:4201", "--debug", "--log-requests"])
    assert options.config.listen == ["tcp:4200", "tcp:4201"]
    assert options.server.debug and options.server.logRequests
    service = makeService(options)
    assert service.getServiceNamed("prism").endpoints == ["tcp:4200", "tcp:4201"]


def test_tap_options_report_config_errors_as_usage_errors(tmp_path):
    from prism.tap import Options

    path = write(tmp_path, 'debug = "x"\n[[services]]\nname = "chat"\n')
    with pytest.raises(usage.UsageError) as info:
        Options().parseOptions(["--config", str(path)])
    lines = str(info.value).splitlines()
    assert len(lines) == 2
    assert lines[0] == '{}: debug: expected a boolean (true or false), found string "x"'.format(path)
    # (other installed packages may add service plugins to the list)
    assert re.match(
        re.escape("{}: services[0].name: expected a service plugin name (available: echo, ".format(path))
        + r"(\w+, )*rpc(, \w+)*\); the name is the plugin unless plugin is set, found string \"chat\"$",
        lines[1],
    ), lines[1]
    with pytest.raises(usage.UsageError) as info:
        Options().parseOptions(["--config", str(write(tmp_path, MINIMAL, "ok.toml")), "--listen", "bad:1"])
    assert "--listen: expected a Twisted endpoint string" in str(info.value)


def test_tap_flags_that_the_file_declares_are_refused(tmp_path):
    from prism.tap import Options

    path = write(tmp_path, MINIMAL)
    with pytest.raises(usage.UsageError) as info:
        Options().parseOptions(["--config", str(path), "--service", "rpc", "--secret", "x"])
    assert str(info.value) == "--service, --secret cannot be combined with --config: declare them in {}".format(path)


def test_tap_flag_mode_is_unchanged():
    from prism.tap import Options, makeService

    options = Options()
    options.parseOptions(["--listen", "tcp:4300", "--service", "echo"])
    assert options.config is None and options["transport"] == "websocket"
    service = makeService(options)
    assert isinstance(service, PrismService) and service.endpoints == ["tcp:4300"]


# -- the prism command


def test_prism_check_prints_the_summary(tmp_path, capsys):
    path = write(tmp_path, MINIMAL)
    assert cli.main(["check", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("{}: OK\n".format(path)) and "services:   echo" in out


def test_prism_check_fails_on_a_bad_file(tmp_path, capsys):
    path = write(tmp_path, 'debug = 2\nlisten = ["x:1"]\n' + MINIMAL)
    with pytest.raises(SystemExit) as info:
        cli.main(["check", "--config", str(path)])
    assert info.value.code == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "prism: {}: debug: expected a boolean (true or false), found integer 2".format(path),
        'prism: {}: listen[0]: expected a Twisted endpoint string (like "tcp:3001" or "unix:/run/prism.sock"), '
        "found string \"x:1\" (Unknown endpoint type: 'x')".format(path),
    ]


def test_prism_check_defaults_to_prism_toml(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit):
        cli.main(["check"])
    assert "prism.toml: cannot read the configuration file" in capsys.readouterr().err
    write(tmp_path, MINIMAL)
    assert cli.main(["check"]) == 0


def test_prism_build_client(tmp_path, capsys):
    from prism.server import Server

    path = write(tmp_path, '[[services]]\nname = "rpc"\n')
    out = tmp_path / "client.js"
    if not hasattr(Server, "build_client"):
        assert cli.main(["build-client", "--config", str(path), "-o", str(out)]) == 2
        assert "not available yet" in capsys.readouterr().err
        return
    assert cli.main(["build-client", "--config", str(path), "-o", str(out), "--format", "cjs"]) == 0
    assert "wrote {}".format(out) in capsys.readouterr().err
    code = out.read_text()
    assert "rpc" in code
    assert cli.main(["build-client", "--config", str(path)]) == 0
    assert capsys.readouterr().out.strip()


def test_prism_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["build-client", "--format", "amd"])
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        cli.main([])
    assert info.value.code == 2


# -- static files and the socket on one real port (in process)


@pytest_twisted.ensureDeferred
async def test_static_files_and_the_socket_share_a_port(tmp_path, prism, reactor):
    from twisted.internet.defer import Deferred
    from twisted.web.client import Agent, readBody

    www = tmp_path / "www"
    (www / "sub").mkdir(parents=True)
    (www / "index.html").write_text("<h1>hello</h1>")
    (www / "app.js").write_text("console.log(1)")
    config = load(
        tmp_path,
        """
        listen = ["tcp:0:interface=127.0.0.1"]
        static = "www"
        path = "/ws"
        secret = "%s"
        [[services]]
        name = "echo"
        """
        % SECRET,
    )
    top = config.buildService(reactor=reactor)
    child = top.getServiceNamed("prism")
    top.startService()
    try:
        await within(child.listening)
        port = child.ports[0].getHost().port
        base = "http://127.0.0.1:{}".format(port)
        agent = Agent(reactor)

        async def get(path):
            response = await within(agent.request(b"GET", (base + path).encode("ascii")))
            return response.code, await within(readBody(response))

        assert await get("/") == (200, b"<h1>hello</h1>")
        assert await get("/app.js") == (200, b"console.log(1)")
        assert (await get("/missing.txt"))[0] == 404
        assert (await get("/sub/"))[0] == 403  # no directory listings
        client = await prism.connect("ws://127.0.0.1:{}/ws".format(port), reconnect=False)
        assert await within(client.api.echo.request("over /ws")) == "over /ws"
        assert [s[0] for s in client.welcome["services"]] == ["echo"]
        closed = Deferred()
        client.on("close", lambda *a: closed.callback(None) if not closed.called else None)
    finally:
        await within(top.stopService(), 10)
    await within(closed)


# -- the generated client's default URL follows `path`

_DEFAULT_URL_PROBE = r"""
const vm = require("vm"), fs = require("fs");
const origins = ["https://example.com:8443", "http://127.0.0.1:8080", null];
const urls = origins.map(() => null);
origins.forEach((origin, i) => {
  const ctx = { setTimeout, clearTimeout, console };
  if (origin) ctx.location = { origin };
  vm.runInNewContext(fs.readFileSync(process.argv[1], "utf8"), ctx);
  class FakeWebSocket { constructor(url) { urls[i] = url; } }
  try {
    ctx.Prism.createClient({ WebSocket: FakeWebSocket, reconnect: false }).connect().catch(() => {});
  } catch (e) {
    urls[i] = e.kind + ": " + e.message;
  }
});
setTimeout(() => console.log(JSON.stringify(urls)), 100);
"""


def _defaultURLs(source, tmp_path):
    """Run a script-format client with a fake page origin: the URLs it connects to."""
    import json
    import shutil
    import subprocess

    node = shutil.which("node")
    assert node, "Node.js is needed (scripts/test installs it)"
    client = tmp_path / "client-probe.js"
    client.write_text(source, encoding="utf-8")
    out = subprocess.run(
        [node, "-e", _DEFAULT_URL_PROBE, str(client)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60
    )
    assert out.returncode == 0, out.stdout
    return json.loads(out.stdout)


def test_built_client_defaults_to_the_configured_path(tmp_path, capsys):
    (tmp_path / "www").mkdir()
    path = write(tmp_path, 'static = "www"\npath = "/realtime/ws"\n[[services]]\nname = "rpc"\n')
    server = loadConfig(str(path)).buildServer(reactor=MemoryReactorClock())
    assert server.clientPath == "/realtime/ws"
    out = tmp_path / "client.js"
    assert cli.main(["build-client", "--config", str(path), "-o", str(out), "--format", "script"]) == 0
    capsys.readouterr()
    source = out.read_text(encoding="utf-8")
    assert 'location.origin.replace(/^http/, "ws") + "/realtime/ws"' in source
    assert _defaultURLs(source, tmp_path) == [
        "wss://example.com:8443/realtime/ws",
        "ws://127.0.0.1:8080/realtime/ws",
        "connect: createClient needs a url outside browsers",  # no page: no default
    ]
    # An explicit --url still wins; a path given as url works for any server.
    assert cli.main(["build-client", "--config", str(path), "--url", "ws://h:1/x"]) == 0
    assert 'const DEFAULT_URL = "ws://h:1/x";' in capsys.readouterr().out
    assert _defaultURLs(server.build_client(format="script", url="/other"), tmp_path)[:1] == [
        "wss://example.com:8443/other"
    ]


def test_built_client_without_static_keeps_the_origin_default(tmp_path, capsys):
    path = write(tmp_path, '[[services]]\nname = "rpc"\n')
    server = loadConfig(str(path)).buildServer(reactor=MemoryReactorClock())
    assert getattr(server, "clientPath", None) is None
    source = server.build_client(format="script")
    assert "const DEFAULT_URL = null;" in source
    assert _defaultURLs(source, tmp_path)[:2] == ["wss://example.com:8443/", "ws://127.0.0.1:8080/"]


# -- [[mounts]]: several transports in the site, each with Prism or the echo handler

MOUNTS = """
listen = ["tcp:0:interface=127.0.0.1"]
static = "www"
secret = "%s"

[[services]]
name = "rpc"
handlers = "tests_config_mount_handlers"
sessions = true

[[mounts]]
path = "/ws"
transport = "websocket"

[[mounts]]
path = "/engine.io/"
transport = "engineio"
handler = "prism"
options = { ping_interval = 7, transports = ["polling", "websocket"] }

[[mounts]]
path = "/echo"
transport = "sockjs"
handler = "echo"
options = { heartbeat_delay = 9 }
""" % SECRET

MOUNTS_BASE = 'static = "."\n' + MINIMAL
MOUNT_INVALID = [
    ('[[mounts]]\npath = "/ws"\ntransport = "websocket"\n' + MINIMAL, "mounts", "only used with static", None),
    ('static = "."\nmounts = 1\n' + MINIMAL, "mounts", "expected a non-empty array of tables ([[mounts]])", "found integer 1"),
    ('static = "."\npath = "/x"\n[[mounts]]\npath = "/ws"\ntransport = "websocket"\n' + MINIMAL, "path", "not used with [[mounts]]", None),
    (MOUNTS_BASE + '[[mounts]]\ntransport = "websocket"\n', "mounts[0].path", 'expected a URL path like "/ws"', "found nothing"),
    (MOUNTS_BASE + '[[mounts]]\npath = "ws"\ntransport = "websocket"\n', "mounts[0].path", 'expected a URL path like "/ws"', 'found string "ws"'),
    (MOUNTS_BASE + '[[mounts]]\npath = "/a"\ntransport = "websocket"\n[[mounts]]\npath = "/a/"\ntransport = "engineio"\n',
     "mounts[1].path", "expected a path neither equal to, inside nor above another mount's", 'found string "/a/" (mounts[0].path is at /a)'),
    (MOUNTS_BASE + '[[mounts]]\npath = "/a/b"\ntransport = "websocket"\n[[mounts]]\npath = "/a"\ntransport = "engineio"\n',
     "mounts[1].path", "expected a path neither equal to, inside nor above", "mounts[0].path is at /a/b"),
    (MOUNTS_BASE + '[[mounts]]\npath = "/ws"\n', "mounts[0].transport", "expected a transport plugin name (string)", "found nothing"),
    (MOUNTS_BASE + '[[mounts]]\npath = "/ws"\ntransport = "pigeon"\n', "mounts[0].transport", "expected a transport plugin name (available: ", 'found string "pigeon"'),
    (MOUNTS_BASE + '[[mounts]]\npath = "/ws"\ntransport = "engineio"\nhandler = "mirror"\n', "mounts[0].handler", 'expected one of "prism", "echo"', 'found string "mirror"'),
    (MOUNTS_BASE + '[[mounts]]\npath = "/ws"\ntransport = "websocket"\nhandler = "echo"\n', "mounts[0].handler", "'websocket' transport has no echo handler", 'found string "echo"'),
    (MOUNTS_BASE + '[[mounts]]\npath = "/ws"\ntransport = "engineio"\noptions = 3\n', "mounts[0].options", "expected a table ([mounts.options])", "found integer 3"),
    (MOUNTS_BASE + '[[mounts]]\npath = "/e"\ntransport = "engineio"\noptions = { ping_interval = 0 }\n', "mounts[0].options.ping_interval", "expected a number of seconds > 0", "found integer 0"),
    (MOUNTS_BASE + '[[mounts]]\npath = "/e"\ntransport = "engineio"\noptions = { handler = "echo" }\n', "mounts[0].options.handler", "set the mount's handler (mounts[0].handler) instead", None),
    (MOUNTS_BASE + '[[mounts]]\npath = "/e"\ntransport = "engineio"\noptions = { colour = 1 }\n', "mounts[0].options.colour", "unknown option of the transport plugin 'engineio'", "accepted options: "),
    (MOUNTS_BASE + '[[mounts]]\npath = "/e"\ntransport = "engineio"\nwhere = 1\n', "mounts[0].where", "unknown key", "accepted keys: path, transport, handler, options"),
    (MOUNTS_BASE + '[[mounts]]\npath = "/e"\ntransport = "loopback"\n', "mounts[0].transport", "the 'loopback' transport cannot be served in a web site", None),
]


@pytest.mark.parametrize("text, key, expected, found", MOUNT_INVALID, ids=[case[1] + str(i) for i, case in enumerate(MOUNT_INVALID)])
def test_invalid_mounts_name_file_key_expected_and_found(tmp_path, text, key, expected, found):
    message = oneError(tmp_path, text)
    assert message.startswith(str(tmp_path / "prism.toml") + ": " + key + ": "), message
    assert expected in message, message
    if found is not None:
        assert found in message, message
    assert "\n" not in message


def _mountsConfig(tmp_path):
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "index.html").write_text("<h1>mounts</h1>")
    (tmp_path / "tests_config_mount_handlers.py").write_text("def add(a, b):\n    return a + b\n")
    return load(tmp_path, 'pythonpath = ["."]\n' + MOUNTS)


def test_mounts_are_loaded_and_summarized(tmp_path):
    config = _mountsConfig(tmp_path)
    assert [(m.path, m.transport.plugin, m.handler, m.key) for m in config.mounts] == [
        ("/ws", "websocket", "prism", "mounts[0]"),
        ("/engine.io", "engineio", "prism", "mounts[1]"),
        ("/echo", "sockjs", "echo", "mounts[2]"),
    ]
    assert config.mounts[1].transport.kwargs == {"pingInterval": 7, "transports": ["polling", "websocket"], "handler": "prism"}
    assert config.mounts[2].transport.kwargs == {"heartbeatDelay": 9, "handler": "echo"}
    summary = "\n".join(config.summary())
    assert "mounts:" in summary and "/engine.io -> engineio (ping_interval=7" in summary
    assert "/echo -> sockjs (heartbeat_delay=9) (echo handler)" in summary


@pytest_twisted.ensureDeferred
async def test_mounts_share_the_static_site_on_a_real_port(tmp_path, prism, reactor):
    import json
    from io import BytesIO

    from twisted.web.client import Agent, FileBodyProducer, readBody

    config = _mountsConfig(tmp_path)
    top = config.buildService(reactor=reactor)
    child = top.getServiceNamed("prism")
    server = child.server
    assert server.clientPath == "/ws"  # the server's own transport is websocket
    top.startService()
    try:
        await within(child.listening)
        host = "127.0.0.1:{}".format(child.ports[0].getHost().port)
        agent = Agent(reactor)

        async def request(method, path, body=None):
            response = await within(agent.request(
                method, "http://{}{}".format(host, path).encode("ascii"), None,
                FileBodyProducer(BytesIO(body)) if body is not None else None,
            ))
            return response.code, (await within(readBody(response))).decode("utf-8")

        assert await request(b"GET", "/") == (200, "<h1>mounts</h1>")

        # /ws: Prism over WebSocket.
        client = await prism.connect("ws://{}/ws".format(host), reconnect=False)
        assert await within(client.api.rpc.call("tests_config_mount_handlers.add", 1, 2)) == 3

        # /engine.io/: Prism over Engine.IO, with the mount's options.
        code, body = await request(b"GET", "/engine.io/?EIO=4&transport=polling")
        assert code == 200 and json.loads(body[1:])["pingInterval"] == 7000
        eio = await prism.connect("http://{}/engine.io/".format(host), transport="engineio", reconnect=False)
        assert await within(eio.api.rpc.call("tests_config_mount_handlers.add", 2, 3)) == 5

        # /echo: SockJS with the raw echo handler (no Prism framing).
        code, info = await request(b"GET", "/echo/info")
        assert code == 200 and json.loads(info)["websocket"] is True
        assert await request(b"POST", "/echo/000/mountsession/xhr") == (200, "o\n")
        assert (await request(b"POST", "/echo/000/mountsession/xhr_send", '["héllo"]'.encode("utf-8")))[0] == 204
        assert await request(b"POST", "/echo/000/mountsession/xhr") == (200, 'a["héllo"]\n')
        echoResource = child.site.echoMounts[0]
        assert "mountsession" in echoResource.sessions
        # Prism saw the two clients, and the raw Engine.IO handshake; the echo mount is not Prism.
        assert sorted(c.transport for c in server.connections.values()) == ["engineio", "engineio", "websocket"]
    finally:
        await within(top.stopService(), 10)
    assert not echoResource.sessions


def test_a_mount_refusing_its_options_is_reported_at_build_with_its_key(tmp_path):
    config = load(
        tmp_path,
        'static = "."\n' + MINIMAL + '[[mounts]]\npath = "/e"\ntransport = "engineio"\noptions = { transports = ["carrier"] }\n',
    )
    with pytest.raises(PrismConfigError) as info:
        config.buildServer(MemoryReactorClock())
    assert info.value.errors == [
        "{}: mounts[0]: the transport plugin 'engineio' refused its options: "
        "engineio: transports must be a non-empty list of polling, websocket".format(tmp_path / "prism.toml")
    ]


@pytest.mark.parametrize("doc", ["configuration.md", "transports.md"])
def test_the_documented_mounts_examples_are_valid(tmp_path, doc):
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / doc).read_text(encoding="utf-8")
    blocks = [b for b in re.findall(r"```toml\n(.*?)```", text, re.S) if "[[mounts]]" in b]
    assert blocks
    (tmp_path / "www").mkdir()
    for block in blocks:
        body = block.replace('handlers = "myapp.rpc"', 'handlers = "json"')
        if "[[services]]" not in body:
            body = body + "\n" + MINIMAL
        config = load(tmp_path, body)
        assert [m.path for m in config.mounts] == ["/ws", "/engine.io", "/echo"]
        assert config.mounts[2].handler == "echo"


def test_pythonpath_dropins_are_found_after_twisted_plugins_was_imported(tmp_path, monkeypatch):
    """
    Under twistd, twisted.plugins is imported (its search path fixed) before
    the configuration file is read: a dropin reachable only through the
    file's pythonpath must still be found, as `prism check` finds it.
    """
    import twisted.plugins

    monkeypatch.setattr(twisted.plugins, "__path__", list(twisted.plugins.__path__))
    monkeypatch.setattr(sys, "path", list(sys.path))
    package = tmp_path / "plug" / "greetx_pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(
        "from prism.services.base import Service\n"
        "class Greet(Service):\n"
        "    callbacks = True\n"
        "    def messageReceived(self, request):\n"
        "        return 'hi'\n"
    )
    dropins = tmp_path / "plug" / "twisted" / "plugins"
    dropins.mkdir(parents=True)
    (dropins / "greetx_plugin.py").write_text(
        "from prism.plugin import ServicePlugin\n"
        "greetx = ServicePlugin('greetx', 'greetx_pkg.Greet', 'a test dropin')\n"
    )
    path = tmp_path / "prism.toml"
    path.write_text('pythonpath = ["plug"]\n[[services]]\nname = "greetx"\n')
    config = loadConfig(str(path))
    assert [s.name for s in config.services] == ["greetx"]
    assert str(dropins) in twisted.plugins.__path__
