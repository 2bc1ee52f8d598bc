"""
The C{twistd prism} / C{twist prism} plugin.

Usage::

    twistd -n prism --config prism.toml [--listen tcp:3001] [--admin-listen tcp:9001] [--debug]
    twistd -n prism --listen tcp:3001 --service echo --service rpc \\
        --rpc-handlers myapp.rpc --debug

With C{--config}, the TOML file (C{docs/configuration.md}) declares
everything; C{--listen} (repeatable) replaces its C{listen},
C{--admin-listen} (repeatable) its C{[admin] listen}, and C{--debug} and
C{--log-requests} switch those on. Without it, the flags alone describe the
server.

The whole configuration is validated, and the server built, in
L{Options.postOptions}: every problem becomes one line of a
L{usage.UsageError} naming the file and key, before anything starts.

This module stays cheap to import: everything else is imported inside
L{Options.postOptions} and L{makeService}, after the runner installed its
reactor.
"""

from twisted.python import usage

# Flags that describe the server, which the configuration file does instead.
_FILE_ONLY = ("service", "rpc-handlers", "transport", "secret")


class Options(usage.Options):
    synopsis = "[--config FILE] [options]"
    longdesc = (
        "Run a Prism realtime server, described by a TOML configuration file "
        "(--config; see docs/configuration.md) or by the options below."
    )
    optFlags = [
        ["debug", "d", "Send error details (and tracebacks) to clients."],
        ["log-requests", None, "Log every incoming request."],
    ]
    optParameters = [
        ["config", "c", None, "TOML configuration file; --listen, --debug and --log-requests override it."],
        ["rpc-handlers", None, None, "Dotted name of the package or module of RPC handlers."],
        ["secret", None, None, "Key that signs session tokens (random by default)."],
        ["transport", None, None, "Transport plugin name (default: websocket)."],
    ]

    def __init__(self):
        usage.Options.__init__(self)
        self["listen"] = []
        self["admin-listen"] = []
        self["service"] = []
        self.config = None

    def opt_listen(self, endpoint):
        """Twisted endpoint string to listen on (repeatable; default tcp:3001)."""
        self["listen"].append(endpoint)

    def opt_admin_listen(self, endpoint):
        """Twisted endpoint string for the admin listener, replacing [admin] listen (repeatable; needs --config)."""
        self["admin-listen"].append(endpoint)

    def opt_service(self, name):
        """Service plugin to register, in order (repeatable; default echo and rpc)."""
        self["service"].append(name)

    def postOptions(self):
        # Validate everything, and build the server, before anything
        # starts: errors become one clean UsageError line per problem.
        from prism.errors import PrismError

        try:
            if self["config"] is not None:
                self._fromFile()
            else:
                self._fromFlags()
        except PrismError as e:
            raise usage.UsageError(str(e))

    def _fromFile(self):
        from prism.config import loadConfig

        given = [flag for flag in _FILE_ONLY if self[flag]]
        if given:
            raise usage.UsageError(
                "{} cannot be combined with --config: declare {} in {}".format(
                    ", ".join("--" + flag for flag in given),
                    "them" if len(given) > 1 else "it",
                    self["config"],
                )
            )
        config = loadConfig(self["config"])
        config.override(
            listen=self["listen"] or None,
            debug=True if self["debug"] else None,
            logRequests=True if self["log-requests"] else None,
            adminListen=self["admin-listen"] or None,
        )
        self.config = config
        self.server = config.buildServer()
        self["listen"] = list(config.listen)

    def _fromFlags(self):
        from prism._plugins import Registry
        from prism.server import Server

        if self["admin-listen"]:
            raise usage.UsageError("--admin-listen needs --config (the file's [admin] section configures the admin listener)")

        if not self["listen"]:
            self["listen"] = ["tcp:3001"]
        if not self["service"]:
            self["service"] = ["rpc", "echo"]
        if self["transport"] is None:
            self["transport"] = "websocket"
        services = Registry("service")
        transports = Registry("transport")
        self.transportPlugin = transports.get(self["transport"])
        self.services = []
        for name in self["service"]:
            factory = services.load(name)
            if name == "rpc":
                service = factory(handlers=self["rpc-handlers"])
            else:
                service = factory()
            self.services.append((name, service))
        self.transport = self.transportPlugin.load()()
        self.server = Server(
            transport=self.transport,
            debug=bool(self["debug"]),
            secret=self["secret"],
            logRequests=bool(self["log-requests"]),
        )
        for name, service in self.services:
            self.server.service(name, service)


def makeService(options):
    import txaio

    # Autobahn logs every frame at debug level through txaio; twistd -n
    # shows debug events, so keep Autobahn at info: Prism is silent by
    # default (use --log-requests for per-request lines).
    txaio.set_global_log_level("info")
    if options.config is not None:
        return options.config.buildService(server=options.server)
    from prism.service import PrismService

    return PrismService(options.server, options["listen"])
