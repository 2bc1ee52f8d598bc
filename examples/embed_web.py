"""
Embedding Prism in an existing twisted.web site: one port serves a page at
C{/} and Prism at C{/ws}.

    python examples/embed_web.py            # then open http://127.0.0.1:8080/
    python examples/embed_web.py tcp:9000:interface=127.0.0.1

L{build} makes the site without touching the network or the global reactor,
so tests (and other hosts) can listen on it themselves.
"""

import sys

from twisted.web.resource import Resource
from twisted.web.server import Site

PAGE = b"""<!doctype html>
<html>
<head><meta charset="utf-8"><title>Prism embedded in twisted.web</title></head>
<body>
<h1>Prism embedded in twisted.web</h1>
<p id="out">connecting...</p>
<script>
  // The wire protocol is small enough to speak by hand (docs/protocol.md).
  var ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");
  var out = document.getElementById("out");
  ws.onopen = function () { ws.send('01|["hello",{"v":1}]'); ws.send('11|["add",2,3]'); };
  ws.onmessage = function (e) { if (e.data.indexOf("11|") === 0) out.textContent = "add(2, 3) = " + e.data.slice(3); };
</script>
</body>
</html>
"""


def add(a, b):
    return a + b


class Page(Resource):
    """The page at C{/}; children (C{ws}) are looked up as usual."""

    def __init__(self, body):
        Resource.__init__(self)
        self.body = body

    def getChild(self, path, request):
        from twisted.web.pages import notFound

        if path == b"":
            return self
        return notFound()

    def render_GET(self, request):
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        return self.body


def build(reactor=None, **serverOptions):
    """
    @return: C{(site, server)}: a L{Site} serving the page at C{/} and a
        started Prism L{prism.server.Server} (C{rpc} with C{add}, C{echo})
        at C{/ws}.
    """
    from prism.server import Server
    from prism.services.echo import EchoService
    from prism.services.rpc import RPCService

    server = Server(reactor=reactor, **serverOptions)
    server.service("rpc", RPCService(handlers={"add": add}))
    server.service("echo", EchoService())
    server.start()
    root = Page(PAGE)
    root.putChild(b"ws", server.resource())
    return Site(root), server


def main(argv):
    from twisted.internet import reactor  # only when run as a program
    from twisted.internet.endpoints import serverFromString

    endpoint = argv[1] if len(argv) > 1 else "tcp:8080:interface=127.0.0.1"
    site, server = build(reactor)
    serverFromString(reactor, endpoint).listen(site).addErrback(lambda f: (print(f.getErrorMessage()), reactor.stop()))
    # Tell clients we are going away before the process exits.
    reactor.addSystemEventTrigger("before", "shutdown", server.stop)
    reactor.run()


if __name__ == "__main__":
    main(sys.argv)
