"""
Prism's configuration file: load a TOML file, validate all of it, then build
a server (or the service tree C{twistd prism --config} runs) from it.

For example::

    from prism.config import loadConfig

    config = loadConfig("prism.toml")      # PrismConfigError listing every problem
    server = config.buildServer()          # services registered, middleware used
    service = config.buildService()        # a MultiService, not started

Loading validates the whole file before anything is built, and building
starts nothing: no port is opened and the reactor is not touched (it is
resolved lazily, when the service starts). Every error names the file, the
key path (C{services[1].handlers}), what was expected and what was found;
all the errors of a file are reported at once. The keys are documented in
C{docs/configuration.md}.
"""

import inspect
import json
import os
import re
import sys

from twisted.application.service import Service
from twisted.internet.defer import DeferredList, maybeDeferred
from twisted.internet.endpoints import serverFromString
from twisted.web.pages import forbidden
from twisted.web.resource import Resource
from twisted.web.server import Site
from twisted.web.static import File

from prism.errors import PrismConfigError, PrismError
from prism.service import OrderedMultiService, PrismService

__all__ = [
    "AdminConfig",
    "Config",
    "MountConfig",
    "PluginConfig",
    "ServiceConfig",
    "SiteService",
    "StaticFiles",
    "checkEndpoint",
    "configFromDict",
    "loadConfig",
]

DEFAULT_LISTEN = "tcp:3001"
DEFAULT_PATH = "/ws"
MIN_SECRET_LENGTH = 16

_MISSING = object()


# -- describing values and errors


def _describe(value):
    """@return: a TOML-flavoured description of C{value} for "found …"."""
    if isinstance(value, bool):
        return "boolean " + ("true" if value else "false")
    if isinstance(value, int):
        return "integer {}".format(value)
    if isinstance(value, float):
        return "float {}".format(value)
    if isinstance(value, str):
        return "string " + _short(json.dumps(value, ensure_ascii=False))
    if isinstance(value, list):
        try:
            text = json.dumps(value, ensure_ascii=False, default=str)
        except (TypeError, ValueError):
            text = repr(value)
        return "array " + _short(text)
    if isinstance(value, dict):
        return "table {{{}}}".format(_short(", ".join(value), 50))
    return "{} {}".format(type(value).__name__, _short(str(value)))


def _short(text, limit=60):
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _Invalid(Exception):
    """Raised by a validator: C{expected} says what would have been right."""

    def __init__(self, expected, detail=None, found=None):
        Exception.__init__(self, expected)
        self.expected = expected
        self.detail = detail
        self.found = found


class _Errors:
    """Collects the errors of one file, each a complete one-line message."""

    def __init__(self, filename):
        self.filename = filename
        self.messages = []

    def expected(self, key, expected, value=_MISSING, detail=None, found=None):
        if found is None:
            found = "nothing" if value is _MISSING else _describe(value)
        if detail:
            found += " ({})".format(detail)
        self.add(key, "expected {}, found {}".format(expected, found))

    def invalid(self, key, value, error):
        self.expected(key, error.expected, value, error.detail, error.found)

    def add(self, key, message):
        self.messages.append("{}: {}: {}".format(self.filename, key, message) if key else "{}: {}".format(self.filename, message))

    def raiseIfAny(self):
        if self.messages:
            raise _configError(self.messages)


def _configError(messages):
    error = PrismConfigError("\n".join(messages))
    error.errors = list(messages)
    return error


# -- validators: value -> converted value, or raise _Invalid


def _bool(value):
    if not isinstance(value, bool):
        raise _Invalid("a boolean (true or false)")
    return value


def _positiveInt(value):
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise _Invalid("a positive integer")
    return value


def _seconds(allowZero):
    expected = "a number of seconds >= 0" if allowZero else "a number of seconds > 0"

    def check(value):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _Invalid(expected)
        if value < 0 or (value == 0 and not allowZero):
            raise _Invalid(expected)
        return value

    return check


def _stringList(value):
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise _Invalid("an array of non-empty strings")
    return list(value)


def _choice(*choices):
    expected = "one of " + ", ".join(json.dumps(c) for c in choices)

    def check(value):
        if value not in choices or isinstance(value, bool):
            raise _Invalid(expected)
        return value

    return check


_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def _importable(name):
    """Raise L{_Invalid} unless C{name} is a dotted name that imports."""
    import importlib

    expected = "an importable module or package name"
    if not isinstance(name, str) or not _DOTTED.match(name):
        raise _Invalid(expected + " (dotted, like \"myapp.rpc\")")
    try:
        importlib.import_module(name)
    except ImportError as e:
        raise _Invalid(expected, "cannot import it: {}".format(e))
    except Exception as e:  # the handler module itself is broken: report, don't crash
        raise _Invalid(expected, "importing it raised {}: {}".format(type(e).__name__, e))
    return name


def _handlers(value):
    if isinstance(value, list):
        if not value:
            raise _Invalid("a module name or a non-empty array of module names")
        for item in value:
            _importable(item)
        return list(value)
    if isinstance(value, str):
        return _importable(value)
    raise _Invalid("an importable module or package name, or an array of them")


_COOKIE = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


def _cookieName(value):
    if not isinstance(value, str) or not _COOKIE.match(value):
        raise _Invalid("a cookie name (letters, digits and !#$%&'*+-.^_`|~)")
    return value


_SEGMENT = re.compile(r"^[A-Za-z0-9._~-]+$")


def _urlPath(value):
    expected = 'a URL path like "/ws" (segments of letters, digits and ._~-)'
    if not isinstance(value, str) or not value.startswith("/"):
        raise _Invalid(expected)
    segments = value.strip("/").split("/")
    if value.strip("/") == "" or not all(_SEGMENT.match(s) and s not in (".", "..") for s in segments):
        raise _Invalid(expected)
    return "/" + "/".join(segments)


def _string(value):
    if not isinstance(value, str):
        raise _Invalid("a string")
    return value


def _nonEmptyString(value):
    if not isinstance(value, str) or not value:
        raise _Invalid("a non-empty string")
    return value


def _nonNegativeInt(value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _Invalid("an integer >= 0")
    return value


def _port(value):
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
        raise _Invalid("a port number (1-65535)")
    return value


SESSION_CODECS = ("prism", "express", "flask")
_HIDDEN_OPTIONS = frozenset(["password", "secret"])  # never echoed by prism check


def _number(allowZero):
    expected = "a number >= 0" if allowZero else "a number > 0"

    def check(value):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or (value == 0 and not allowZero):
            raise _Invalid(expected)
        return value

    return check


def _networks(value):
    import ipaddress

    expected = 'an array of IP addresses or networks (like "10.0.0.0/8")'
    if not isinstance(value, list):
        raise _Invalid(expected)
    for entry in value:
        try:
            ipaddress.ip_network(entry, strict=False)
        except (TypeError, ValueError):
            raise _Invalid(expected, "{!r} is not one".format(entry))
    return list(value)


def _sizes(value):
    expected = "a table of service names to positive integers (bytes)"
    if not isinstance(value, dict):
        raise _Invalid(expected)
    for name, size in value.items():
        if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
            raise _Invalid(expected, "{} = {!r}".format(name, size))
    return dict(value)


def _callableName(value):
    """A dotted name (C{"myapp.auth.check"}) of a callable that imports."""
    from twisted.python.reflect import namedAny

    expected = 'the dotted name of a callable (like "myapp.auth.check")'
    if not isinstance(value, str) or not _DOTTED.match(value) or "." not in value:
        raise _Invalid(expected)
    try:
        found = namedAny(value)
    except Exception as e:
        raise _Invalid(expected, "cannot import it: {}: {}".format(type(e).__name__, e))
    if not callable(found):
        raise _Invalid(expected, "it is not callable")
    return value


def _retryDelays(value):
    """C{[initial, maximum]} reconnection delays in seconds (pubsub's redis_retry)."""
    expected = "an array of two numbers of seconds > 0, [initial, maximum]"
    if not isinstance(value, list) or len(value) != 2:
        raise _Invalid(expected)
    for v in value:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
            raise _Invalid(expected)
    if value[0] > value[1]:
        raise _Invalid(expected, "the initial delay exceeds the maximum")
    return tuple(value)


def _modelTypes(value, directory=None):
    """
    The C{types} table of the models service: C{{type: {schema, validate,
    initial}}}; a C{schema} given as a path is relative to C{directory} (the
    configuration file's) and returned absolute.
    """
    expected = "a table of document types, each a table with schema, validate and/or initial"
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise _Invalid(expected)
    from prism.services.models import _Type

    types = {}
    for name, spec in value.items():
        spec = dict(spec)
        if isinstance(spec.get("schema"), str):
            spec["schema"] = os.path.normpath(os.path.join(directory or os.getcwd(), os.path.expanduser(spec["schema"])))
        try:
            _Type(name, spec)
        except PrismConfigError as e:
            raise _Invalid(expected, str(e))
        types[name] = spec
    return types


_modelTypes.relative = True  # _plugin passes the configuration file's directory


def _directories(value, directory=None):
    """
    An array of existing directories; relative ones are resolved against
    C{directory} (the configuration file's), and returned absolute.
    """
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise _Invalid("an array of directory paths (strings)")
    resolved = []
    for entry in value:
        path = os.path.normpath(os.path.join(directory or os.getcwd(), os.path.expanduser(entry)))
        if not os.path.isdir(path):
            raise _Invalid(
                "an array of existing directories",
                "{} {}".format(path, "is not a directory" if os.path.exists(path) else "does not exist"),
            )
        resolved.append(path)
    return resolved


_directories.relative = True  # _plugin passes the configuration file's directory

_LIVERELOAD = "prism.services.livereload.LiveReloadService"


def _jsonValue(value):
    """Any value JSON can hold (the models service's C{initial}); TOML dates and times cannot."""
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        raise _Invalid("a JSON value (TOML dates and times are not)")
    return value


# Options of the built-in plugins, by implementation: TOML key ->
# (constructor parameter, validator). Third-party plugins are introspected
# instead (see _optionTable); their factories validate their own values.
_BUILTIN_OPTIONS = {
    "prism.transports.websocket.WebSocketTransport": {
        "max_message_size": ("maxMessageSize", _positiveInt),
        "allowed_origins": ("allowedOrigins", _stringList),
        "ping_interval": ("pingInterval", _seconds(allowZero=True)),
        "ping_timeout": ("pingTimeout", _seconds(allowZero=False)),
        "handshake_timeout": ("handshakeTimeout", _seconds(allowZero=False)),
        "compression": ("compression", _bool),
        "max_connections": ("maxConnections", _nonNegativeInt),
        "max_connections_per_address": ("maxConnectionsPerAddress", _nonNegativeInt),
        "idle_timeout": ("idleTimeout", _seconds(allowZero=True)),
        "max_outgoing_buffer": ("maxOutgoingBuffer", _positiveInt),
        "trusted_proxies": ("trustedProxies", _networks),
        "proxy_header": ("proxyHeader", _nonEmptyString),
    },
    "prism.transports.loopback.LoopbackTransport": {},
    "prism.transports.engineio.EngineIOTransport": {
        "ping_interval": ("pingInterval", _seconds(allowZero=False)),
        "ping_timeout": ("pingTimeout", _seconds(allowZero=False)),
        "max_payload": ("maxPayload", _positiveInt),
        "allowed_origins": ("allowedOrigins", _stringList),
        "transports": ("transports", _stringList),
        "allow_upgrades": ("allowUpgrades", _bool),
        "upgrade_timeout": ("upgradeTimeout", _seconds(allowZero=False)),
        "max_outgoing_buffer": ("maxOutgoingBuffer", _positiveInt),
        "max_sessions": ("maxSessions", _positiveInt),
        "max_packets_per_poll": ("maxPacketsPerPoll", _positiveInt),
        "node_name": ("nodeName", _nonEmptyString),
        "handler": ("handler", _choice("prism", "echo")),
    },
    "prism.services.rpc.RPCService": {
        "handlers": ("handlers", _handlers),
        "sessions": ("sessions", _bool),
        "authorize": ("authorize", _callableName),
    },
    "prism.services.echo.EchoService": {
        "codec": ("codec", _choice("raw", "json", "msgpack")),
        "sessions": ("sessions", _bool),
    },
    "prism.services.pubsub.PubSubService": {
        "engine": ("engine", _choice("memory", "redis")),
        "redis_url": ("redisUrl", _nonEmptyString),
        "redis_prefix": ("redisPrefix", _nonEmptyString),
        "authorize": ("authorize", _callableName),
        "presence_info": ("presenceInfo", _callableName),
        "max_subscriptions": ("maxSubscriptions", _nonNegativeInt),
        "exclude_sender": ("excludeSender", _bool),
        "presence": ("presence", _bool),
        "presence_ttl": ("presenceTtl", _seconds(allowZero=False)),
        "history_size": ("historySize", _nonNegativeInt),
        "history_ttl": ("historyTtl", _seconds(allowZero=False)),
        "history_channels": ("historyChannels", _stringList),
        "sessions": ("sessions", _bool),
        "redis_retry": ("redisRetry", _retryDelays),
    },
    "prism.services.models.ModelsService": {
        "store": ("store", _choice("memory", "redis")),
        "redis_url": ("redisUrl", _nonEmptyString),
        "redis_prefix": ("redisPrefix", _nonEmptyString),
        "authorize": ("authorize", _callableName),
        "types": ("types", _modelTypes),
        "initial": ("initial", _jsonValue),
        "history_size": ("historySize", _nonNegativeInt),
        "max_document_size": ("maxDocumentSize", _positiveInt),
        "max_patch_operations": ("maxPatchOperations", _positiveInt),
        "max_subscriptions": ("maxSubscriptions", _nonNegativeInt),
        "sessions": ("sessions", _bool),
        "redis_retry": ("redisRetry", _retryDelays),
    },
    "prism.services.livereload.LiveReloadService": {
        "paths": ("paths", _directories),
        "ignore": ("ignore", _stringList),
        "debounce": ("debounce", _seconds(allowZero=True)),
        "watcher": ("watcher", _choice("auto", "inotify", "poll")),
        "poll_interval": ("pollInterval", _seconds(allowZero=False)),
        "css_extensions": ("cssExtensions", _stringList),
        "max_files": ("maxFiles", _positiveInt),
    },
    "prism.middleware.LogRequests": {},
    "prism.limits.RateLimit": {
        "rate": ("rate", _number(allowZero=False)),
        "burst": ("burst", _number(allowZero=False)),
        "address_rate": ("addressRate", _number(allowZero=True)),
        "address_burst": ("addressBurst", _number(allowZero=False)),
        "action": ("action", _choice("drop", "close")),
        "pause": ("pause", _bool),
        "max_pause": ("maxPause", _seconds(allowZero=False)),
        "services": ("services", _stringList),
    },
    "prism.limits.MaxSize": {
        "limit": ("limit", _positiveInt),
        "services": ("services", _sizes),
    },
    "prism.limits.Auth": {
        "services": ("services", _stringList),
        "methods": ("methods", _stringList),
        "key": ("key", _nonEmptyString),
        "rpc": ("rpc", _nonEmptyString),
    },
    "prism.sessions.MemorySessionStore": {
        "ttl": ("ttl", _seconds(allowZero=False)),
    },
    "prism.stores.redis.RedisSessionStore": {
        "host": ("host", _nonEmptyString),
        "port": ("port", _port),
        "unix": ("unix", _nonEmptyString),
        "db": ("db", _nonNegativeInt),
        "password": ("password", _nonEmptyString),
        "prefix": ("prefix", _string),
        "ttl": ("ttl", _seconds(allowZero=False)),
        "pool_size": ("poolSize", _positiveInt),
        "connect_timeout": ("connectTimeout", _seconds(allowZero=False)),
        "reply_timeout": ("replyTimeout", _seconds(allowZero=False)),
        "codec": ("codec", _choice(*SESSION_CODECS)),  # the storage format only; normally [session] codec
    },
}


# Transports whose resource() is None: they cannot serve static mode.
_NOT_IN_A_SITE = frozenset(["prism.transports.loopback.LoopbackTransport"])


def _snake(name):
    """C{maxMessageSize} -> C{max_message_size}."""
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def _signature(factory):
    try:
        return inspect.signature(factory)
    except (TypeError, ValueError):
        return None


def _acceptsReactor(factory):
    signature = _signature(factory)
    return signature is not None and "reactor" in signature.parameters


def _optionTable(plugin, factory):
    """
    @return: C{(table, open)}: C{{toml key: (parameter, validator or None)}}
        for the plugin's options, and whether the factory takes C{**kwargs}
        (then any other key is passed through unchanged).
    """
    known = _BUILTIN_OPTIONS.get(getattr(plugin, "implementation", None))
    if known is not None:
        return known, False
    signature = _signature(factory)
    if signature is None:
        return {}, True
    table = {}
    open_ = False
    for parameter in signature.parameters.values():
        if parameter.kind == parameter.VAR_KEYWORD:
            open_ = True
        elif parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY):
            if parameter.name not in ("self", "reactor"):
                table[_snake(parameter.name)] = (parameter.name, None)
    return table, open_


def checkEndpoint(description):
    """
    Parse a Twisted endpoint string the way C{listen} will, against a
    L{MemoryReactor <twisted.internet.testing.MemoryReactor>}: nothing
    listens and the global reactor is not touched.

    @return: L{None} if it is valid, else a short explanation.
    """
    from twisted.internet.testing import MemoryReactor

    if not isinstance(description, str) or not description:
        return "not a non-empty string"
    if description.split(":", 1)[0] == "systemd" and "LISTEN_FDS" not in os.environ:
        # Parsing looks the descriptor up in what systemd passed this
        # process; outside systemd (prism check on a laptop) check the syntax.
        return _checkSystemd(description)
    try:
        endpoint = serverFromString(MemoryReactor(), description)
    except Exception as e:  # parsers raise ValueError, TypeError, OSError, SSL errors…: all mean "invalid"
        message = str(e) or type(e).__name__
        if isinstance(e, TypeError) and "unexpected keyword" in message:
            message = "unknown parameter: " + message.split("argument", 1)[-1].strip()
        return message
    port = getattr(endpoint, "_port", None)
    if isinstance(port, int) and not 0 <= port <= 65535:
        return "port {} is out of range (0-65535)".format(port)
    return None


def _checkSystemd(description):
    from twisted.internet.endpoints import _parse

    args, kwargs = _parse(description)
    unknown = sorted(set(kwargs) - {"domain", "index", "name"})
    if unknown or len(args) > 1:
        return "unknown parameter: {!r}".format(unknown[0] if unknown else args[1])
    if "domain" not in kwargs or not ("index" in kwargs or "name" in kwargs):
        return "systemd endpoints need domain= and index= or name="
    return None


# -- the validated structure


class PluginConfig:
    """
    One configured plugin.

    @ivar kind: C{"service"}, C{"transport"}, C{"middleware"} or
        C{"session_store"}.
    @ivar plugin: the plugin name.
    @ivar options: the options as written in the file (TOML keys).
    @ivar key: where it is in the file (C{"services[1]"}, C{"transport"}).
    """

    def __init__(self, kind, plugin, options, key, factory=None, kwargs=None):
        self.kind = kind
        self.plugin = plugin
        self.options = dict(options)
        self.key = key
        self.factory = factory
        self.kwargs = dict(kwargs if kwargs is not None else options)

    def build(self, reactor=None):
        """@return: a new instance of the plugin's implementation."""
        kwargs = dict(self.kwargs)
        if reactor is not None and _acceptsReactor(self.factory):
            kwargs["reactor"] = reactor
        return self.factory(**kwargs)

    def describe(self):
        if not self.options:
            return self.plugin
        return "{} ({})".format(
            self.plugin,
            ", ".join(
                "{}={}".format(k, '"***"' if k in _HIDDEN_OPTIONS else json.dumps(v, default=str))
                for k, v in self.options.items()
            ),
        )

    def __repr__(self):
        return "<{} {} {!r} {!r}>".format(type(self).__name__, self.kind, self.plugin, self.options)


class ServiceConfig(PluginConfig):
    """A configured service: a L{PluginConfig} with the C{name} clients use."""

    def __init__(self, name, plugin, options, key, factory=None, kwargs=None, kind="service"):
        PluginConfig.__init__(self, kind, plugin, options, key, factory, kwargs)
        self.name = name

    def describe(self):
        text = PluginConfig.describe(self)
        return text if self.name == self.plugin else "{} = {}".format(self.name, text)


class MountConfig:
    """
    One C{[[mounts]]} entry: a transport served at C{path} of the web site.

    @ivar path: the URL path (C{"/engine.io"}: no trailing slash).
    @ivar handler: C{"prism"} (the server's pipeline) or C{"echo"} (every
        message sent back as it is, with no Prism framing).
    @ivar transport: a L{PluginConfig} (kind C{"transport"}); its C{kwargs}
        carry the C{handler} for transports that take one.
    @ivar key: where it is in the file (C{"mounts[1]"}).
    """

    def __init__(self, path, handler, transport, key):
        self.path = path
        self.handler = handler
        self.transport = transport
        self.key = key

    def describe(self):
        return "{} -> {} ({} handler)".format(self.path, self.transport.describe(), self.handler)

    def __repr__(self):
        return "<MountConfig {} {} {}>".format(self.path, self.transport.plugin, self.handler)


class Config:
    """
    A fully validated configuration (see C{docs/configuration.md}).

    @ivar filename: the file it came from.
    @ivar pythonpath: directories added to C{sys.path} (absolute).
    @ivar debug: L{bool}.
    @ivar logRequests: L{bool}.
    @ivar listen: the endpoint strings, a L{list}.
    @ivar static: the absolute path of the static files directory, or L{None}.
    @ivar path: the URL path of the socket when served in a web site
        (C{static} set), e.g. C{"/ws"}.
    @ivar secret: the session secret (L{str}), or L{None} for a random one.
    @ivar secretSource: C{"secret"}, C{"secret_file <path>"} or L{None}.
    @ivar sessionCookie: L{str}.
    @ivar cacheSessions: L{bool}.
    @ivar sessionCodec: the session codec's name (C{"prism"}, C{"express"},
        C{"flask"}).
    @ivar sessionSigned: for the C{flask} codec, whether its cookie is
        signed (L{bool}).
    @ivar sessionStore: a L{PluginConfig}.
    @ivar transport: a L{PluginConfig}.
    @ivar services: a L{list} of L{ServiceConfig}.
    @ivar middleware: a L{list} of L{PluginConfig}.
    @ivar mounts: a L{list} of L{MountConfig} (C{[[mounts]]}): with them,
        the site serves the static files and every mount, and nothing at
        C{path}.
    @ivar drainTime: seconds to drain before the graceful stop (C{drain_time}).
    @ivar admin: an L{AdminConfig} (C{[admin]}).
    """

    def __init__(self, filename):
        self.filename = filename
        self.pythonpath = []
        self.debug = False
        self.logRequests = False
        self.shutdownTimeout = None
        self.drainTime = 0
        self.admin = AdminConfig()
        self.listen = [DEFAULT_LISTEN]
        self.static = None
        self.path = DEFAULT_PATH
        self.secret = None
        self.secretSource = None
        self.sessionCookie = "prism.sid"
        self.cacheSessions = True
        self.sessionCodec = "prism"
        self.sessionSigned = True
        self.sessionStore = None
        self.transport = None
        self.services = []
        self.middleware = []
        self.mounts = []

    def override(self, listen=None, debug=None, logRequests=None, adminListen=None):
        """
        Apply command-line overrides (L{None} leaves a value alone).

        @param listen: endpoint strings replacing C{listen}.
        @param adminListen: endpoint strings replacing C{[admin] listen}.
        @raise PrismConfigError: for an invalid endpoint string.
        @return: C{self}.
        """
        errors = []
        for flag, given in (("--listen", listen), ("--admin-listen", adminListen)):
            for description in given or ():
                problem = checkEndpoint(description)
                if problem is not None:
                    errors.append(
                        "{}: expected a Twisted endpoint string, found {} ({})".format(
                            flag, _describe(description), problem
                        )
                    )
        if errors:
            raise _configError(errors)
        if listen:
            self.listen = list(listen)
        if adminListen:
            self.admin.listen = list(adminListen)
        if debug is not None:
            self.debug = bool(debug)
        if logRequests is not None:
            self.logRequests = bool(logRequests)
        return self

    @property
    def web(self):
        """Whether Prism is served in a L{twisted.web} site (C{static} is set)."""
        return self.static is not None

    def _codec(self):
        from prism.sessioncodecs import sessionCodec

        if self.sessionCodec == "flask":
            return sessionCodec("flask", signed=self.sessionSigned)
        return sessionCodec(self.sessionCodec)

    # -- building (starts nothing)

    def buildServer(self, reactor=None, transport=None):
        """
        Build the server: session store, transport, services (registered in
        file order) and middleware (in file order). Nothing starts.

        @param reactor: passed to the L{Server} and to plugins that take a
            C{reactor}; the global reactor, resolved lazily, by default.
        @param transport: an L{prism.interfaces.ITransport} to use instead
            of the configured one (tests: a loopback transport).
        @return: a L{prism.server.Server}.
        @raise PrismConfigError: naming the file and key of every plugin
            that refused its options.
        """
        from prism.server import Server

        errors = _Errors(self.filename)

        def build(config):
            try:
                return config.build(reactor)
            except (PrismError, TypeError, ValueError) as e:
                errors.add(config.key, "the {} plugin {!r} refused its options: {}".format(_kindName(config.kind), config.plugin, e))
                return None

        store = build(self.sessionStore)
        if transport is None:
            transport = build(self.transport)
        built = [(s, build(s)) for s in self.services]
        middleware = [(m, build(m)) for m in self.middleware]
        mounts = [(m, build(m.transport)) for m in self.mounts]
        errors.raiseIfAny()
        server = Server(
            transport=transport,
            debug=self.debug,
            sessionStore=store,
            secret=self.secret,
            sessionCookie=self.sessionCookie,
            cacheSessions=self.cacheSessions,
            sessionCodec=self._codec(),
            logRequests=self.logRequests,
            reactor=reactor,
        )
        for config, service in built:
            try:
                server.service(config.name, service)
            except PrismError as e:
                errors.add(config.key, str(e))
        for config, mw in middleware:
            try:
                server.use(mw)
            except PrismError as e:
                errors.add(config.key, str(e))
        errors.raiseIfAny()
        if self.mounts:
            # The mounts, built: buildSite serves them. The generated client's
            # default URL: the first Prism mount of the server's own transport.
            server.configMounts = mounts
            for mount, _ in mounts:
                if mount.handler == "prism" and mount.transport.plugin == self.transport.plugin:
                    server.clientPath = mount.path
                    break
        elif self.web:
            # The generated client's default URL: this path on the page's origin.
            server.clientPath = self.path
        if self.shutdownTimeout is not None:
            server.shutdownTimeout = self.shutdownTimeout
        return server

    def buildSite(self, server):
        """
        With C{[[mounts]]}, every mount is served at its path instead of
        C{server} at C{path} (each a transport with the server's pipeline or
        the echo handler); the echo mounts are in C{site.echoMounts}, for
        closing their sessions when the site stops.

        @return: a L{twisted.web.server.Site} serving the C{static} directory
            at C{/} and C{server} at C{path}. (This builds the transport's
            resource, which resolves the server's reactor: call it once the
            reactor is installed, or pass one to L{buildServer}.)
        @raise PrismConfigError: if the transport cannot be mounted in a site.
        """
        root = StaticFiles(self.static)
        for service in self.services:  # livereload asks for no-store: a reload must fetch every file again
            control = getattr(service.factory, "staticCacheControl", None)
            if control:
                root.cacheControl = control.encode("ascii")
                break
        echoMounts = []
        if self.mounts:
            built = getattr(server, "configMounts", None)
            if built is None:  # a server built elsewhere: build the mounts' transports now
                built = [(m, m.transport.build(server.reactor)) for m in self.mounts]
            for mount, transport in built:
                resource = server.resource(transport)
                if resource is None:
                    raise _configError(
                        ["{}: {}.transport: the {!r} transport cannot be served in a web site".format(
                            self.filename, mount.key, mount.transport.plugin)]
                    )
                if mount.handler == "echo":
                    echoMounts.append(resource)
                _mount(root, mount.path, resource)
        else:
            resource = server.resource()
            if resource is None:
                raise _configError(
                    [
                        "{}: static: the {!r} transport cannot be served in a web site; "
                        "remove static or use the websocket transport".format(self.filename, self.transport.plugin)
                    ]
                )
            _mount(root, self.path, resource)
        if self.admin.health:
            # A single-port deployment can be health-checked (docs/scaling.md).
            from prism.admin import HealthResource

            root.putChild(b"health", HealthResource(server))
        site = PrismSite(root)
        site.logRequests = self.logRequests
        site.echoMounts = echoMounts
        return site

    def buildService(self, reactor=None, server=None):
        """
        Build the service tree C{twistd prism --config} runs: a
        L{MultiService <twisted.application.service.MultiService>} whose
        child C{"prism"} starts the server and listens
        on every C{listen} endpoint (with the transport directly, or with a
        web site when C{static} is set) and, with C{[admin] listen}, a child
        C{"admin"} (L{prism.admin.AdminService}), stopped after C{"prism"}
        has (an L{OrderedMultiService}). Nothing starts until the service
        does.

        @param server: a server from L{buildServer}; built here by default.
        @return: the L{twisted.application.service.MultiService}.
        """
        if server is None:
            server = self.buildServer(reactor)
        top = OrderedMultiService()
        if self.admin.listen:
            admin = self.admin.buildService(server)
            admin.setName("admin")
            admin.setServiceParent(top)
        if self.web:
            child = SiteService(server, self.listen, lambda: self.buildSite(server))
        else:
            child = PrismService(server, self.listen)
        child.drainTime = self.drainTime
        child.setName("prism")
        child.setServiceParent(top)
        return top

    # -- reporting

    def summary(self):
        """@return: lines describing what would run (for C{prism check})."""
        lines = ["{}: OK".format(self.filename)]

        def add(key, value):
            lines.append("  {:<11} {}".format(key + ":" if key else "", value))

        add("listen", ", ".join(self.listen))
        add("transport", self.transport.describe())
        if self.mounts:
            add("web", "static files from {} at /".format(self.static))
            for i, mount in enumerate(self.mounts):
                add("mounts" if i == 0 else "", mount.describe())
        elif self.web:
            add("web", "static files from {} at /, Prism at {}".format(self.static, self.path))
        for i, service in enumerate(self.services):
            add("services" if i == 0 else "", service.describe())
        add("middleware", ", ".join(m.describe() for m in self.middleware) or "(none)")
        add(
            "sessions",
            "store {}, cookie {}, cache {}{}".format(
                self.sessionStore.describe(),
                self.sessionCookie,
                "on" if self.cacheSessions else "off",
                "" if self.sessionCodec == "prism" else ", codec {}{}".format(
                    self.sessionCodec, " (unsigned)" if self.sessionCodec == "flask" and not self.sessionSigned else ""
                ),
            ),
        )
        add("secret", "from " + self.secretSource if self.secretSource else "random (sessions end with the process)")
        add("debug", "on" if self.debug else "off")
        add("log", "every request" if self.logRequests else "off")
        add("admin", self.admin.describe(self.web))
        add("stop", "drain {} s, then requests in flight get {} s".format(
            _numberText(self.drainTime), _numberText(self.shutdownTimeout if self.shutdownTimeout is not None else 10)))
        return lines

    def __repr__(self):
        return "<Config {} listen={!r} services={!r}>".format(
            self.filename, self.listen, [s.name for s in self.services]
        )


def _kindName(kind):
    return kind.replace("_", " ")


def _mount(root, path, resource):
    """Put C{resource} at C{path} under C{root}, making the parents it needs."""
    segments = [s.encode("utf-8") for s in path.strip("/").split("/")]
    parent = root
    for segment in segments[:-1]:
        child = parent.children.get(segment)
        if child is None:
            child = Resource()
            parent.putChild(segment, child)
        parent = child
    parent.putChild(segments[-1], resource)


# -- web site pieces


class StaticFiles(File):
    """Static files; a directory without an index file is not listed."""

    cacheControl = None
    """A C{Cache-Control} value (L{bytes}) sent with every file, or L{None}."""

    def directoryListing(self):
        return forbidden("Directory listing is disabled.")

    def createSimilarFile(self, path):
        similar = File.createSimilarFile(self, path)
        similar.cacheControl = self.cacheControl
        return similar

    def render(self, request):
        if self.cacheControl is not None:
            request.setHeader(b"cache-control", self.cacheControl)
        return File.render(self, request)


class PrismSite(Site):
    """A site whose access log follows C{log_requests} (silent by default)."""

    logRequests = False

    def log(self, request):
        if self.logRequests:
            Site.log(self, request)


class SiteService(PrismService):
    """
    A L{PrismService} that listens with a L{twisted.web.server.Site} (static
    files and Prism's resource) instead of the bare transport, and stops like
    it: the ports first, then the server, gracefully.

    @param site: the site, or a callable building it on first use of
        L{site}: the WebSocket resource's factory resolves the reactor, which
        must wait until C{twistd} has installed its own.
    """

    def __init__(self, server, endpoints, site):
        PrismService.__init__(self, server, endpoints)
        self._site = site

    @property
    def site(self):
        if callable(self._site) and not isinstance(self._site, Site):
            self._site = self._site()
        return self._site

    def startService(self):
        site = self.site
        Service.startService(self)
        self.server.start()
        waits = []
        for endpoint in self.endpoints:
            d = serverFromString(self.server.reactor, endpoint).listen(site)
            d.addCallback(self.ports.append)
            d.addErrback(self._listenFailed, endpoint)
            waits.append(d)
        self.listening = DeferredList(waits)

    def _gracefulStop(self):
        # (PrismService.stopService drains first, with the ports open.)
        ports, self.ports = self.ports, []
        d = DeferredList([maybeDeferred(p.stopListening) for p in ports], consumeErrors=True)
        d.addCallback(lambda _: closeEchoMounts(self.site))
        d.addCallback(lambda _: PrismService._gracefulStop(self))
        return d


def closeEchoMounts(site):
    """Close the sessions of the site's echo mounts (the server owns only its own)."""
    for resource in getattr(site, "echoMounts", ()):
        closeAll = getattr(resource, "closeAll", None)
        if closeAll is not None:
            closeAll()


# -- loading


_TOP_KEYS = (
    "pythonpath",
    "debug",
    "log_requests",
    "listen",
    "static",
    "path",
    "secret",
    "secret_file",
    "session",
    "transport",
    "services",
    "middleware",
    "mounts",
    "shutdown_timeout",
    "drain_time",
    "admin",
)
_SESSION_KEYS = ("cookie", "cache", "store", "options", "codec", "signed")
_MOUNT_KEYS = ("path", "transport", "handler", "options")
MOUNT_HANDLERS = ("prism", "echo")


def _unknownKeys(errors, prefix, table, accepted):
    for key in table:
        if key not in accepted:
            errors.add(
                prefix + key if not prefix else "{}.{}".format(prefix, key),
                "unknown key (accepted keys: {})".format(", ".join(accepted) or "(none)"),
            )


class _Registries:
    """Discovers each plugin kind at most once per load."""

    def __init__(self, given):
        self._given = dict(given or {})

    def __call__(self, kind):
        if kind not in self._given:
            from prism._plugins import Registry

            self._given[kind] = Registry(kind)
        return self._given[kind]


def _plugin(
    errors, registries, kind, pluginName, nameKey, options, optionsKey, key, factoryClass=PluginConfig, directory=None, **extra
):
    """
    Resolve a plugin by name and validate its options.

    @return: a L{PluginConfig} (or C{factoryClass}), or L{None} after
        recording errors.
    """
    try:
        registry = registries(kind)
    except PrismError as e:
        errors.add(nameKey, str(e))
        return None
    if pluginName not in registry:
        errors.expected(
            nameKey,
            "a {} plugin name (available: {}){}".format(
                _kindName(kind),
                ", ".join(registry.names()) or "none",
                "; the name is the plugin unless plugin is set" if nameKey.endswith("].name") else "",
            ),
            pluginName,
        )
        return None
    plugin = registry.get(pluginName)
    try:
        factory = plugin.load()
    except Exception as e:  # an installed plugin whose implementation does not import
        errors.add(nameKey, "cannot load the {} plugin {!r} ({}): {}: {}".format(
            _kindName(kind), pluginName, getattr(plugin, "implementation", "?"), type(e).__name__, e))
        return None
    table, open_ = _optionTable(plugin, factory)
    kwargs = {}
    ok = True
    for option, value in options.items():
        where = "{}.{}".format(optionsKey, option) if optionsKey else option
        if option not in table:
            if open_:
                kwargs[option] = value
                continue
            ok = False
            hint = "did you mean {}? ".format(_snake(option)) if _snake(option) in table else ""
            errors.add(
                where,
                "unknown option of the {} plugin {!r} ({}accepted options: {})".format(
                    _kindName(kind), pluginName, hint, ", ".join(sorted(table)) or "(none)"
                ),
            )
            continue
        parameter, validator = table[option]
        if validator is not None:
            try:
                value = validator(value, directory) if getattr(validator, "relative", False) else validator(value)
            except _Invalid as e:
                ok = False
                errors.invalid(where, value, e)
                continue
        kwargs[parameter] = value
    if not ok:
        return None
    return factoryClass(kind=kind, plugin=pluginName, options=options, key=key, kwargs=kwargs, factory=factory, **extra)


def _addPluginDirectory(directory):
    """
    Make the dropins of C{directory}/twisted/plugins visible to
    L{twisted.plugin.getPlugins}: C{twisted.plugins} computed its search path
    from C{sys.path} when it was first imported (under C{twistd}, before the
    configuration file was read), so a C{pythonpath} entry added now must
    also be added there.
    """
    dropins = os.path.join(directory, "twisted", "plugins")
    if os.path.isdir(dropins):
        import twisted.plugins

        if dropins not in twisted.plugins.__path__:
            twisted.plugins.__path__.append(dropins)


def _secretOption(errors, table, key, fileKey, directory, prefix="", stripped=False):
    """
    A secret given inline (C{key}) or in a file (C{fileKey}, relative to
    C{directory}; its content stripped), at least C{MIN_SECRET_LENGTH}
    characters. Errors never echo the value.

    @param stripped: the inline value may not have surrounding whitespace.
    @return: C{(value, source)} (the source names the key or the file), or
        C{(None, None)} when absent or invalid (the error is recorded).
    """
    if key in table and fileKey in table:
        errors.add(prefix + fileKey, "expected either {} or {}, found both".format(key, fileKey))
    elif key in table:
        value = table[key]
        if not isinstance(value, str):
            errors.expected(prefix + key, "a string", found=_describe(value).split(" ")[0])
        elif len(value) < MIN_SECRET_LENGTH or (stripped and value != value.strip()):
            errors.expected(
                prefix + key,
                "a string of at least {} characters{}".format(
                    MIN_SECRET_LENGTH, ", without surrounding whitespace" if stripped else ""
                ),
                found="a string of {} characters".format(len(value)),
            )
        else:
            return value, key
    elif fileKey in table:
        name = table[fileKey]
        if not isinstance(name, str) or not name:
            errors.expected(prefix + fileKey, "a file path (string)", name)
            return None, None
        resolved = os.path.normpath(os.path.join(directory, os.path.expanduser(name)))
        try:
            with open(resolved, "r", encoding="utf-8") as f:
                value = f.read().strip()
        except (OSError, UnicodeDecodeError) as e:
            errors.expected(
                prefix + fileKey, "a readable UTF-8 text file", name, "{}: {}".format(resolved, getattr(e, "strerror", None) or e)
            )
            return None, None
        if len(value) < MIN_SECRET_LENGTH:
            errors.expected(
                prefix + fileKey,
                "a file holding at least {} characters".format(MIN_SECRET_LENGTH),
                found="{} characters in {}".format(len(value), resolved),
            )
        else:
            return value, fileKey + " " + resolved
    return None, None


def configFromDict(data, filename="<config>", directory=None, registries=None):
    """
    Validate parsed TOML data; see L{loadConfig}.

    @param directory: what relative C{static} and C{secret_file} paths are
        relative to (the current directory by default).
    @param registries: C{{kind: Registry}} to use instead of discovering
        plugins (a test seam).
    """
    errors = _Errors(filename)
    registries = _Registries(registries)
    directory = os.path.abspath(directory if directory is not None else os.getcwd())
    config = Config(filename)

    _unknownKeys(errors, "", data, _TOP_KEYS)

    # pythonpath: first, so that handler modules next to the file import
    pythonpath = data.get("pythonpath", [])
    if isinstance(pythonpath, str):
        pythonpath = [pythonpath]
    if not isinstance(pythonpath, list):
        errors.expected("pythonpath", "an array of directories", pythonpath)
    else:
        for i, entry in enumerate(pythonpath):
            key = "pythonpath[{}]".format(i)
            if not isinstance(entry, str) or not entry:
                errors.expected(key, "a directory path (string)", entry)
                continue
            resolved = os.path.normpath(os.path.join(directory, os.path.expanduser(entry)))
            if not os.path.isdir(resolved):
                errors.expected(key, "an existing directory", entry, "{} is not one".format(resolved))
                continue
            config.pythonpath.append(resolved)
            if resolved not in sys.path:
                sys.path.insert(0, resolved)
            _addPluginDirectory(resolved)

    if "drain_time" in data:
        try:
            config.drainTime = _seconds(allowZero=True)(data["drain_time"])
        except _Invalid as e:
            errors.invalid("drain_time", data["drain_time"], e)

    if "shutdown_timeout" in data:
        try:
            config.shutdownTimeout = _seconds(allowZero=True)(data["shutdown_timeout"])
        except _Invalid as e:
            errors.invalid("shutdown_timeout", data["shutdown_timeout"], e)

    for key, attribute in (("debug", "debug"), ("log_requests", "logRequests")):
        if key in data:
            try:
                setattr(config, attribute, _bool(data[key]))
            except _Invalid as e:
                errors.invalid(key, data[key], e)

    # listen
    listen = data.get("listen", _MISSING)
    if listen is not _MISSING:
        if isinstance(listen, str):
            listen = [listen]
        if not isinstance(listen, list) or not listen:
            errors.expected("listen", "a non-empty array of Twisted endpoint strings", data["listen"])
        else:
            for i, description in enumerate(listen):
                key = "listen[{}]".format(i) if isinstance(data["listen"], list) else "listen"
                problem = checkEndpoint(description)
                if problem is not None:
                    errors.expected(
                        key, 'a Twisted endpoint string (like "tcp:3001" or "unix:/run/prism.sock")', description, problem
                    )
            config.listen = list(listen)

    # static, path
    if "static" in data:
        static = data["static"]
        if not isinstance(static, str) or not static:
            errors.expected("static", "a directory path (string)", static)
        else:
            resolved = os.path.normpath(os.path.join(directory, os.path.expanduser(static)))
            if not os.path.isdir(resolved):
                errors.expected(
                    "static",
                    "an existing directory",
                    static,
                    "{} is not a directory".format(resolved) if os.path.exists(resolved) else "{} does not exist".format(resolved),
                )
            else:
                config.static = resolved
    if "path" in data:
        try:
            config.path = _urlPath(data["path"])
        except _Invalid as e:
            errors.invalid("path", data["path"], e)
        else:
            if "static" not in data:
                errors.add("path", "only used with static (the socket's path in the web site); set static or remove path")

    # secret, secret_file (never echo a secret's value)
    secret, source = _secretOption(errors, data, "secret", "secret_file", directory)
    if secret is not None:
        config.secret, config.secretSource = secret, source

    # [session]
    session = data.get("session", {})
    storeName, storeOptions = "memory", {}
    if not isinstance(session, dict):
        errors.expected("session", "a table ([session])", session)
    else:
        _unknownKeys(errors, "session", session, _SESSION_KEYS)
        if "cookie" in session:
            try:
                config.sessionCookie = _cookieName(session["cookie"])
            except _Invalid as e:
                errors.invalid("session.cookie", session["cookie"], e)
        if "cache" in session:
            try:
                config.cacheSessions = _bool(session["cache"])
            except _Invalid as e:
                errors.invalid("session.cache", session["cache"], e)
        if "codec" in session:
            try:
                config.sessionCodec = _choice(*SESSION_CODECS)(session["codec"])
            except _Invalid as e:
                errors.invalid("session.codec", session["codec"], e)
            else:
                if "cookie" not in session:
                    from prism.sessioncodecs import sessionCodec

                    config.sessionCookie = sessionCodec(config.sessionCodec).cookieName
        if "signed" in session:
            try:
                config.sessionSigned = _bool(session["signed"])
            except _Invalid as e:
                errors.invalid("session.signed", session["signed"], e)
            else:
                if config.sessionCodec != "flask" and not config.sessionSigned:
                    errors.add("session.signed", "only the flask codec has unsigned cookies; remove signed or set codec = \"flask\"")
        if "store" in session:
            if isinstance(session["store"], str) and session["store"]:
                storeName = session["store"]
            else:
                errors.expected("session.store", "a session store plugin name (string)", session["store"])
                storeName = None
        if "options" in session:
            if isinstance(session["options"], dict):
                storeOptions = session["options"]
            else:
                errors.expected("session.options", "a table ([session.options])", session["options"])
                storeName = None
    if storeName is not None:
        config.sessionStore = _plugin(
            errors, registries, "session_store", storeName, "session.store", storeOptions, "session.options", "session"
        )

    # [transport]
    transport = data.get("transport", {})
    if not isinstance(transport, dict):
        errors.expected("transport", "a table ([transport])", transport)
    else:
        name = transport.get("name", "websocket")
        if not isinstance(name, str) or not name:
            errors.expected("transport.name", "a transport plugin name (string)", name)
        else:
            options = {k: v for k, v in transport.items() if k != "name"}
            config.transport = _plugin(
                errors, registries, "transport", name, "transport.name", options, "transport", "transport"
            )

    # [[services]]
    services = data.get("services", _MISSING)
    if services is _MISSING or services == []:
        errors.expected("services", "at least one [[services]] table", found="none")
    elif not isinstance(services, list) or not all(isinstance(s, dict) for s in services):
        errors.expected("services", "an array of tables ([[services]])", services)
    else:
        seen = {}
        for i, entry in enumerate(services):
            key = "services[{}]".format(i)
            name = entry.get("name", _MISSING)
            if name is _MISSING:
                errors.expected(key + ".name", "the service's name (a string)")
                continue
            if not isinstance(name, str) or not name.isidentifier() or len(name) > 32 or name == "system":
                errors.expected(
                    key + ".name", 'a short identifier of at most 32 characters, other than "system"', name
                )
                continue
            if name in seen:
                errors.expected(key + ".name", "a unique service name", name, "already used by services[{}]".format(seen[name]))
                continue
            seen[name] = i
            if "plugin" in entry:
                plugin, pluginKey = entry["plugin"], key + ".plugin"
                if not isinstance(plugin, str) or not plugin:
                    errors.expected(pluginKey, "a service plugin name (string)", plugin)
                    continue
            else:
                plugin, pluginKey = name, key + ".name"
            options = {k: v for k, v in entry.items() if k not in ("name", "plugin")}
            service = _plugin(
                errors, registries, "service", plugin, pluginKey, options, key, key,
                factoryClass=ServiceConfig, name=name, directory=directory,
            )
            if service is not None:
                if "paths" not in service.kwargs and registries("service").get(plugin).implementation == _LIVERELOAD:
                    # livereload watches the static directory, else the file's own
                    service.kwargs["paths"] = [config.static or directory]
                config.services.append(service)

    # [[middleware]]
    middleware = data.get("middleware", [])
    if not isinstance(middleware, list) or not all(isinstance(m, dict) for m in middleware):
        errors.expected("middleware", "an array of tables ([[middleware]])", middleware)
    else:
        for i, entry in enumerate(middleware):
            key = "middleware[{}]".format(i)
            plugin = entry.get("plugin", _MISSING)
            if plugin is _MISSING or not isinstance(plugin, str) or not plugin:
                errors.expected(key + ".plugin", "a middleware plugin name (string)", plugin)
                continue
            options = {k: v for k, v in entry.items() if k != "plugin"}
            mw = _plugin(
                errors, registries, "middleware", plugin, key + ".plugin", options, key, key
            )
            if mw is not None:
                config.middleware.append(mw)

    _mounts(errors, registries, data, config)
    _admin(errors, data, config, directory)

    if config.web and config.transport is not None and not config.mounts and "mounts" not in data:
        implementation = registries("transport").get(config.transport.plugin).implementation
        if implementation in _NOT_IN_A_SITE or not hasattr(config.transport.factory, "resource"):
            errors.add(
                "static",
                "the {!r} transport cannot be served in a web site; remove static or use the websocket "
                "transport".format(config.transport.plugin),
            )

    errors.raiseIfAny()
    return config


def _numberText(value):
    return "{:g}".format(value)


class AdminConfig:
    """
    The C{[admin]} section: the operations listener (L{prism.admin}).

    @ivar listen: endpoint strings (empty: no admin listener).
    @ivar token: the admin token (L{str}), or L{None}.
    @ivar tokenSource: C{"token"}, C{"token_file <path>"} or L{None}.
    @ivar health: serve C{/health} (on the admin listener and, with
        C{static}, on the main port).
    @ivar pages: the names of the optional pages switched on
        (C{"metrics"}; L{prism.admin.OPTIONAL_PAGES}).
    @ivar dashboard: serve the status dashboard at C{/status}
        (L{prism.status.StatusDashboard}).
    @ivar dashboardInterval: seconds between the dashboard's samples.
    @ivar dashboardHistory: samples the dashboard keeps and shows.
    """

    def __init__(self):
        self.listen = []
        self.token = None
        self.tokenSource = None
        self.health = True
        self.pages = []
        self.dashboard = False
        self.dashboardInterval = 1.0
        self.dashboardHistory = 120

    def buildService(self, server):
        """@return: a L{prism.admin.AdminService} (not started)."""
        from twisted.python.reflect import namedAny

        from prism.admin import OPTIONAL_PAGES, AdminService

        pages = {name: namedAny(OPTIONAL_PAGES[name]) for name in self.pages}
        if self.dashboard:
            from prism.status import StatusDashboard

            pages["status"] = StatusDashboard(server, interval=self.dashboardInterval, history=self.dashboardHistory)
        return AdminService(server, self.listen, token=self.token, health=self.health, pages=pages)

    def describe(self, web=False):
        served = (["/health"] if self.health else []) + ["/" + name for name in self.pages]
        if self.dashboard:
            served.append("/status (dashboard: a sample every {} s, {} kept)".format(
                _numberText(self.dashboardInterval), self.dashboardHistory))
        if not self.listen:
            return "/health on the main port" if web and self.health else "off"
        text = "{} ({}, /drain{})".format(
            ", ".join(self.listen),
            ", ".join(served) if served else "no health check",
            "; token from " + self.tokenSource if self.tokenSource else "; no token: /drain refused",
        )
        if web and self.health:
            text += "; /health on the main port too"
        return text


def _admin(errors, data, config, directory):
    """Validate C{[admin]} and C{drain_time} into C{config.admin}."""
    from prism.admin import OPTIONAL_PAGES

    admin = data.get("admin", {})
    result = config.admin
    if not isinstance(admin, dict):
        errors.expected("admin", "a table ([admin])", admin)
        return
    _unknownKeys(errors, "admin", admin, ("listen", "token", "token_file", "health") + tuple(OPTIONAL_PAGES) + DASHBOARD_KEYS)
    if "listen" in admin:
        listen = admin["listen"]
        if isinstance(listen, str):
            listen = [listen]
        if not isinstance(listen, list) or not listen:
            errors.expected("admin.listen", "a non-empty array of Twisted endpoint strings", admin["listen"])
        else:
            for i, description in enumerate(listen):
                key = "admin.listen[{}]".format(i) if isinstance(admin["listen"], list) else "admin.listen"
                problem = checkEndpoint(description)
                if problem is not None:
                    errors.expected(key, 'a Twisted endpoint string (like "tcp:9001:interface=127.0.0.1")', description, problem)
            result.listen = list(listen)
    for key in ("health",) + tuple(OPTIONAL_PAGES):
        if key in admin:
            try:
                on = _bool(admin[key])
            except _Invalid as e:
                errors.invalid("admin." + key, admin[key], e)
                continue
            if key == "health":
                result.health = on
            elif on:
                problem = _importProblem(OPTIONAL_PAGES[key])
                if problem is not None:
                    errors.expected("admin." + key, "false (the {} page is not available)".format(key), admin[key], problem)
                else:
                    result.pages.append(key)
    # token, token_file (never echo a token's value)
    token, source = _secretOption(errors, admin, "token", "token_file", directory, "admin.", stripped=True)
    if token is not None:
        result.token, result.tokenSource = token, source
    if not result.listen:
        for key in ("token", "token_file") + tuple(OPTIONAL_PAGES) + DASHBOARD_KEYS:
            if key in admin and admin[key] is not False:
                errors.add("admin." + key, "only used with admin.listen (the admin listener's endpoints); set it or remove " + key)
    _dashboard(errors, admin, result)
    # /health on the main port (static): nothing else may claim that path.
    if config.web and result.health:
        if not config.mounts and config.path.split("/")[1] == "health":
            errors.add("path", '/health is the health check in a web site; choose another path or set [admin] health = false')
        for mount in config.mounts:
            if mount.path.split("/")[1] == "health":
                errors.add(mount.key + ".path", '/health is the health check in a web site; choose another path or set [admin] health = false')


DASHBOARD_KEYS = ("dashboard", "dashboard_interval", "dashboard_history")
"""The C{[admin]} keys of the status dashboard (L{prism.status}; C{docs/status.md})."""


def _dashboard(errors, admin, result):
    """Validate C{[admin] dashboard}, C{dashboard_interval} and C{dashboard_history}."""
    from prism.status import MAX_HISTORY

    checks = (
        ("dashboard", _bool),
        ("dashboard_interval", _dashboardInterval),
        ("dashboard_history", _dashboardHistory(MAX_HISTORY)),
    )
    values = {}
    for key, check in checks:
        if key in admin:
            try:
                values[key] = check(admin[key])
            except _Invalid as e:
                errors.invalid("admin." + key, admin[key], e)
    if not values.get("dashboard"):
        for key in ("dashboard_interval", "dashboard_history"):
            if key in admin and result.listen:  # (without listen, already reported)
                errors.add("admin." + key, "only used with admin.dashboard = true; set it or remove " + key)
        return
    if result.listen and result.token is None and "token" not in admin and "token_file" not in admin:
        errors.add("admin.dashboard", "the status dashboard needs the admin token: set admin.token_file (or admin.token)")
    result.dashboard = True
    result.dashboardInterval = values.get("dashboard_interval", result.dashboardInterval)
    result.dashboardHistory = values.get("dashboard_history", result.dashboardHistory)


def _dashboardInterval(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.05 <= value <= 3600:
        raise _Invalid("a number of seconds from 0.05 to 3600")
    return value


def _dashboardHistory(maximum):
    def check(value):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
            raise _Invalid("an integer from 1 to {}".format(maximum))
        return value

    return check


def _importProblem(dotted):
    """@return: L{None} if C{dotted} names something that imports, else why not."""
    import importlib

    module, _, name = dotted.rpartition(".")
    try:
        getattr(importlib.import_module(module), name)
    except ImportError as e:
        return "cannot import {}: {}".format(dotted, e)
    except Exception as e:  # AttributeError, or the module itself is broken
        return "cannot import {}: {}: {}".format(dotted, type(e).__name__, e)
    return None


def _mounts(errors, registries, data, config):
    """Validate C{[[mounts]]} into C{config.mounts}."""
    mounts = data.get("mounts", _MISSING)
    if mounts is _MISSING:
        return
    if not isinstance(mounts, list) or not mounts or not all(isinstance(m, dict) for m in mounts):
        errors.expected("mounts", "a non-empty array of tables ([[mounts]])", mounts)
        return
    if "static" not in data:
        errors.add("mounts", "only used with static (the mounts are served in its web site); set static or remove mounts")
    if "path" in data:
        errors.add("path", "not used with [[mounts]] (each mount has its own path); remove path")
    taken = []  # (segments, key)
    for i, entry in enumerate(mounts):
        key = "mounts[{}]".format(i)
        _unknownKeys(errors, key, entry, _MOUNT_KEYS)
        ok = True
        path = entry.get("path", _MISSING)
        if path is _MISSING:
            errors.expected(key + ".path", 'a URL path like "/ws" (segments of letters, digits and ._~-)')
            ok = False
        else:
            try:
                path = _urlPath(path)
            except _Invalid as e:
                errors.invalid(key + ".path", path, e)
                ok = False
            else:
                segments = path.strip("/").split("/")
                for other, otherKey in taken:
                    shortest = min(len(segments), len(other))
                    if segments[:shortest] == other[:shortest]:
                        errors.expected(
                            key + ".path",
                            "a path neither equal to, inside nor above another mount's",
                            entry["path"],
                            "{} is at {}".format(otherKey, "/" + "/".join(other)),
                        )
                        ok = False
                        break
                else:
                    taken.append((segments, key + ".path"))
        handler = entry.get("handler", "prism")
        try:
            handler = _choice(*MOUNT_HANDLERS)(handler)
        except _Invalid as e:
            errors.invalid(key + ".handler", handler, e)
            ok = False
        name = entry.get("transport", _MISSING)
        if name is _MISSING or not isinstance(name, str) or not name:
            errors.expected(key + ".transport", "a transport plugin name (string)", name)
            continue
        options = entry.get("options", {})
        if not isinstance(options, dict):
            errors.expected(key + ".options", "a table ([mounts.options])", options)
            continue
        if "handler" in options:
            errors.add(key + ".options.handler", "set the mount's handler (mounts[{}].handler) instead".format(i))
            continue
        transport = _plugin(errors, registries, "transport", name, key + ".transport", options, key + ".options", key)
        if transport is None or not ok:
            continue
        plugin = registries("transport").get(name)
        if plugin.implementation in _NOT_IN_A_SITE or not hasattr(transport.factory, "resource"):
            errors.add(key + ".transport", "the {!r} transport cannot be served in a web site".format(name))
            continue
        table, _ = _optionTable(plugin, transport.factory)
        if "handler" in table:
            transport.kwargs[table["handler"][0]] = handler
        elif handler != "prism":
            errors.expected(
                key + ".handler",
                '"prism" (the {!r} transport has no echo handler; the engineio and sockjs transports have one)'.format(name),
                handler,
            )
            continue
        config.mounts.append(MountConfig(path, handler, transport, key))


def loadConfig(path, registries=None):
    """
    Read and validate a TOML configuration file. Nothing is built or started.

    Relative C{static} and C{secret_file} paths are relative to the file's
    directory.

    @param path: the file's path.
    @param registries: C{{kind: Registry}} to use instead of discovering
        plugins (a test seam).
    @return: a L{Config}.
    @raise PrismConfigError: listing every problem, one line each, each
        naming the file and key; C{.errors} holds the lines.
    """
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        import tomli as tomllib

    filename = os.fspath(path)
    try:
        with open(filename, "rb") as f:
            data = tomllib.load(f)
    except OSError as e:
        raise _configError(["{}: cannot read the configuration file: {}".format(filename, e.strerror or e)]) from None
    except tomllib.TOMLDecodeError as e:
        raise _configError(["{}: not valid TOML: {}".format(filename, e)]) from None
    return configFromDict(data, filename, os.path.dirname(os.path.abspath(filename)), registries)
