"""
The C{twistd prism} / C{twist prism} plugin.

    twistd -n prism --listen tcp:3001 --service echo --service rpc \\
        --rpc-handlers myapp.rpc --debug

This module stays cheap to import: everything else is imported inside
L{makeService}, after the runner installed its reactor.
"""

from twisted.python import usage


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = "Run a Prism realtime server."
    optFlags = [
        ["debug", "d", "Send error details (and tracebacks) to clients."],
        ["log-requests", None, "Log every incoming request."],
    ]
    optParameters = [
        ["rpc-handlers", None, None, "Dotted name of the package or module of RPC handlers."],
        ["secret", None, None, "Key that signs session tokens (random by default)."],
        ["transport", None, "websocket", "Transport plugin name."],
    ]

    def __init__(self):
        usage.Options.__init__(self)
        self["listen"] = []
        self["service"] = []

    def opt_listen(self, endpoint):
        """Twisted endpoint string to listen on (repeatable; default tcp:3001)."""
        self["listen"].append(endpoint)

    def opt_service(self, name):
        """Service plugin to register, in order (repeatable; default echo and rpc)."""
        self["service"].append(name)

    def postOptions(self):
        # Validate everything, and build the services, before anything
        # starts: errors become one clean UsageError line from twistd.
        from prism._plugins import Registry
        from prism.errors import PrismError

        if not self["listen"]:
            self["listen"] = ["tcp:3001"]
        if not self["service"]:
            self["service"] = ["rpc", "echo"]
        try:
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
        except PrismError as e:
            raise usage.UsageError(str(e))


def makeService(options):
    import txaio

    from prism.errors import PrismError
    from prism.server import Server
    from prism.service import PrismService

    # Autobahn logs every frame at debug level through txaio; twistd -n
    # shows debug events, so keep Autobahn at info: Prism is silent by
    # default (use --log-requests for per-request lines).
    txaio.set_global_log_level("info")
    try:
        server = Server(
            transport=options.transport,
            debug=bool(options["debug"]),
            secret=options["secret"],
            logRequests=bool(options["log-requests"]),
        )
        for name, service in options.services:
            server.service(name, service)
    except PrismError as e:
        raise usage.UsageError(str(e))
    return PrismService(server, options["listen"])
