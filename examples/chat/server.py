"""
The Prism chat demo: one port serves the page (C{static/}) at C{/}, the
generated JavaScript client at C{/prism-client.js} and Prism at C{/ws}.

    scripts/demo                                   # the usual way
    .venv/bin/python -m examples.chat.server       # from the checkout root
    .venv/bin/python -m examples.chat.server 9000  # another port (or PRISM_DEMO_PORT)

Services: C{rpc} with sessions (the handlers of C{examples/chat/rpc/}:
C{chat.join}, C{chat.nick}, C{chat.post}) and C{chat}
(L{examples.chat.chat_service.ChatService}), which pushes every message to
every connection.

C{examples/chat/prism.toml} runs the same app with C{twistd -n prism
--config} (C{scripts/demo toml}); there the client is written beforehand
with C{prism build-client}, and the C{chat} service is found through the
dropin C{examples/chat/twisted/plugins/prism_chat.py}.

L{build} makes the site without touching the network, the disk or the global
reactor, so tests (and other hosts) can listen on it themselves.
"""

import os
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make "examples.chat" importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
CLIENT_NAME = "prism-client.js"
DEFAULT_PORT = 8080


def buildServer(reactor=None, **serverOptions):
    """@return: an unstarted L{prism.server.Server} with the chat's services."""
    from prism.server import Server
    from prism.services.rpc import RPCService

    from examples.chat.chat_service import ChatService

    server = Server(reactor=reactor, **serverOptions)
    server.service("rpc", RPCService(handlers="examples.chat.rpc", sessions=True))
    server.service("chat", ChatService(keep=50))
    return server


def clientSource(server):
    """@return: the generated ES-module client for C{server} (L{str})."""
    return server.build_client(format="esm")


def build(reactor=None, **serverOptions):
    """
    @return: C{(site, server)}: a L{twisted.web.server.Site} serving
        C{static/} at C{/}, the generated client at C{/prism-client.js} (from
        memory, so it always matches this server) and the started Prism
        L{prism.server.Server} at C{/ws}.
    """
    from twisted.web.server import Site
    from twisted.web.static import Data, File

    server = buildServer(reactor, **serverOptions)
    server.start()
    root = File(str(STATIC))
    root.putChild(CLIENT_NAME.encode("ascii"), Data(clientSource(server).encode("utf-8"), "text/javascript; charset=utf-8"))
    root.putChild(b"ws", server.resource())
    return Site(root), server


def writeClient(server, path=STATIC / CLIENT_NAME):
    """Write the generated client to C{path} (next to the page by default)."""
    path = Path(path)
    path.write_text(clientSource(server), encoding="utf-8")
    return path


def main(argv=None):
    from twisted.internet import reactor  # only when run as a program
    from twisted.internet.endpoints import serverFromString
    from twisted.logger import globalLogBeginner, textFileLogObserver

    argv = sys.argv[1:] if argv is None else argv
    port = int(argv[0] if argv else os.environ.get("PRISM_DEMO_PORT") or DEFAULT_PORT)
    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stdout)], redirectStandardIO=False)
    site, server = build(reactor)
    # The page is served with the in-memory copy; the file is for anyone
    # serving static/ some other way, and to read what the builder made.
    written = writeClient(server)

    def listening(p):
        print("Prism chat demo: open http://127.0.0.1:{}/ (Ctrl-C stops it)".format(p.getHost().port), flush=True)
        print("  generated client: {} ({} bytes)".format(written, written.stat().st_size), flush=True)

    def failed(f):
        print("cannot listen on 127.0.0.1:{}: {}".format(port, f.getErrorMessage()), file=sys.stderr, flush=True)
        reactor.stop()

    serverFromString(reactor, "tcp:{}:interface=127.0.0.1".format(port)).listen(site).addCallbacks(listening, failed)
    # Tell clients we are going away before the process exits.
    reactor.addSystemEventTrigger("before", "shutdown", server.stop)
    reactor.run()


if __name__ == "__main__":
    main()
