"""
Embedding Prism as a child service of an existing Twisted application.

The "existing application" is small but typical: a periodic job (a
L{TimerService}) and a twisted.web status page on its own port. Prism joins
them as one more child service (L{prism.service.PrismService}) and shares
their state: its RPC handlers read and change the application's
L{HostState}, and application code follows Prism's event bus. Starting the
application starts Prism; stopping it stops Prism gracefully (clients are
told the server is going away) before the process exits.

As a C{.tac} file (twistd reads the module-level C{application}):

    twistd -ny examples/embed_app.py
    PRISM_EMBED_WEB=tcp:9080 PRISM_EMBED_LISTEN=tcp:9001 twistd -ny examples/embed_app.py
    PRISM_EMBED_CONFIG=prism.toml twistd -ny examples/embed_app.py

As a program (L{main} runs the same service tree):

    python examples/embed_app.py [--config prism.toml] [WEB_ENDPOINT [PRISM_ENDPOINT]]

Then http://127.0.0.1:8080/ is the application's status page and
ws://127.0.0.1:3001/ is Prism (C{rpc}: C{host.status}, C{host.note};
C{echo}), for example from the Python client:

    await client.api.rpc.call("host.note", "hello")   # 1
    await client.api.rpc.call("host.status")          # {"ticks": 7, "online": 1, "notes": ["hello"]}

With a configuration file (C{--config} or C{PRISM_EMBED_CONFIG}), Prism's
services, transport, sessions and listen endpoints come from the file
(L{prism.config.Config.buildService}) instead of L{buildPrism}; the
application still follows its event bus. See C{docs/embedding.md}.

L{makeService} touches neither the network nor the global reactor until the
service starts, so tests (and other hosts) build it with their own reactor.
"""

import json
import os
import sys

from twisted.application.internet import StreamServerEndpointService, TimerService
from twisted.application.service import Application, MultiService
from twisted.web.resource import Resource
from twisted.web.server import Site

WEB = "tcp:8080:interface=127.0.0.1"
"""Where the application's own web page listens (C{PRISM_EMBED_WEB})."""

PRISM = "tcp:3001:interface=127.0.0.1"
"""Where Prism listens (C{PRISM_EMBED_LISTEN}), unless a config file says."""


class HostState:
    """The existing application's state, which Prism's handlers share."""

    def __init__(self):
        self.ticks = 0
        self.online = 0
        self.notes = []

    def tick(self):
        self.ticks += 1

    def status(self):
        return {"ticks": self.ticks, "online": self.online, "notes": list(self.notes)}

    def note(self, text):
        if not isinstance(text, str) or not text:
            from prism.server import ServiceError

            raise ServiceError("invalid", "a note is a non-empty string")
        self.notes.append(text)
        return len(self.notes)


class StatusPage(Resource):
    """The application's page: its state as JSON."""

    isLeaf = True

    def __init__(self, state):
        Resource.__init__(self)
        self.state = state

    def render_GET(self, request):
        request.setHeader(b"content-type", b"application/json")
        return json.dumps(self.state.status()).encode("utf-8")


def buildPrism(state, reactor=None, **serverOptions):
    """
    @return: an unstarted L{prism.server.Server} whose RPC handlers are
        C{state}'s methods (C{host.status}, C{host.note}), plus C{echo}.
    """
    from prism.server import Server
    from prism.services.echo import EchoService
    from prism.services.rpc import RPCService

    server = Server(reactor=reactor, **serverOptions)
    server.service("rpc", RPCService(handlers={"host.status": state.status, "host.note": state.note}))
    server.service("echo", EchoService())
    return server


def follow(server, state):
    """Application code listening to Prism's event bus."""

    def connected(connection):
        state.online += 1

    def disconnected(connection, code, reason):
        state.online -= 1

    server.events.on("connect", connected)
    server.events.on("disconnect", disconnected)


def makeService(reactor=None, web=WEB, listen=None, config=None, tick=1.0, **serverOptions):
    """
    The whole application: a L{MultiService} with the children C{"ticker"}
    (the periodic job), C{"web"} (the status page) and C{"prism"}.

    @param reactor: the reactor (the global one, resolved when needed, by
        default).
    @param web: the endpoint string of the status page.
    @param listen: Prism's endpoint string; default L{PRISM}, or with
        C{config} the file's C{listen}.
    @param config: the path of a Prism TOML file: Prism is then built by
        L{prism.config.Config.buildService}, and the child C{"prism"} is the
        L{MultiService} it returns (whose own child C{"prism"} listens).
    @param serverOptions: passed to L{prism.server.Server} (without
        C{config}): C{debug=True}, C{secret=…}, …
    @return: the L{MultiService}, not started.
    """
    from prism.service import PrismService

    state = HostState()
    top = MultiService()
    top.state = state

    ticker = TimerService(tick, state.tick)
    if reactor is not None:
        ticker.clock = reactor
    ticker.setName("ticker")
    ticker.setServiceParent(top)

    page = _WebService(web, Site(StatusPage(state)), reactor)
    page.setName("web")
    page.setServiceParent(top)

    if config is None:
        server = buildPrism(state, reactor, **serverOptions)
        prism = PrismService(server, [listen or PRISM])
    else:
        from prism.config import loadConfig

        prismConfig = loadConfig(config)  # PrismConfigError names the file and key
        if listen:
            prismConfig.override(listen=[listen])
        server = prismConfig.buildServer(reactor)
        prism = prismConfig.buildService(reactor, server=server)
    follow(server, state)
    top.server = server
    prism.setName("prism")
    prism.setServiceParent(top)
    return top


class _WebService(StreamServerEndpointService):
    """
    The status page's service: a L{StreamServerEndpointService} whose
    endpoint is parsed when it starts (when C{twistd} has installed its
    reactor), not when the application is built.
    """

    def __init__(self, description, factory, reactor=None):
        StreamServerEndpointService.__init__(self, None, factory)
        self.description = description
        self.reactor = reactor

    def _endpoint(self):
        from twisted.internet.endpoints import serverFromString

        if self.endpoint is None:
            reactor = self.reactor
            if reactor is None:
                from twisted.internet import reactor
            self.endpoint = serverFromString(reactor, self.description)

    def privilegedStartService(self):  # twistd calls this before startService
        self._endpoint()
        StreamServerEndpointService.privilegedStartService(self)

    def startService(self):
        self._endpoint()
        StreamServerEndpointService.startService(self)


def prismPorts(top):
    """@return: the listening ports of Prism in C{top} (once started)."""
    prism = top.getServiceNamed("prism")
    if isinstance(prism, MultiService):  # built from a config file
        prism = prism.getServiceNamed("prism")
    return prism.ports, prism.listening


def makeApplication(environ=os.environ):
    """@return: the L{Application} C{twistd -y} runs (settings from C{environ})."""
    application = Application("prism-embed-app")
    makeService(
        web=environ.get("PRISM_EMBED_WEB", WEB),
        listen=environ.get("PRISM_EMBED_LISTEN") or None,
        config=environ.get("PRISM_EMBED_CONFIG") or None,
    ).setServiceParent(application)
    return application


def main(argv=None):
    """Run the application without twistd: start the tree, stop it on shutdown."""
    import argparse

    from twisted.internet import reactor  # only when run as a program
    from twisted.logger import globalLogBeginner, textFileLogObserver

    parser = argparse.ArgumentParser(description="An existing Twisted application with Prism embedded.")
    parser.add_argument("--config", help="build Prism from this TOML file")
    parser.add_argument("web", nargs="?", default=WEB, help="endpoint of the status page (default: %(default)s)")
    parser.add_argument("listen", nargs="?", help="Prism's endpoint (default: {}, or the file's)".format(PRISM))
    args = parser.parse_args(argv)
    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stdout)], redirectStandardIO=False)
    top = makeService(reactor, web=args.web, listen=args.listen, config=args.config)
    top.startService()
    # stopService returns a Deferred: the reactor waits for the graceful stop.
    reactor.addSystemEventTrigger("before", "shutdown", top.stopService)

    def listening(results):
        ports, _ = prismPorts(top)
        for port in ports:
            host = port.getHost()
            print("Prism: ws://{}:{}/".format(host.host, host.port), flush=True)

    prismPorts(top)[1].addCallback(listening)
    reactor.run()


if __name__ == "__main__":
    main()
elif __name__ == "builtins":  # executed by twistd -y as a .tac file
    application = makeApplication()
