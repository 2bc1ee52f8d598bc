"""
The anchor of the over-the-wire benchmark: a bare Autobahn WebSocket echo server.

Nothing but Autobahn on Twisted: C{onMessage} sends every message straight back
(text stays text, binary stays binary). It runs with the WebSocket protocol
options Prism's websocket transport uses by default (no compression, the same
payload limits and timeouts), so that the ratio Prism / bare measures Prism's
own overhead and nothing else.

    python benchmarks/bare_autobahn_echo.py [--port 0] [--max-seconds 600]

Listens on 127.0.0.1 only, prints C{LISTENING <port>} once it listens, and
stops by itself after C{--max-seconds} (a bound in case its parent dies).
"""

import argparse
import sys

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from twisted.internet.endpoints import serverFromString

# The options Prism's websocket transport sets with its defaults
# (prism/transports/websocket.py, WebSocketTransport.factory): keep these in
# step, so that both servers do the same WebSocket work. Prism's 1 MiB message
# limit is its own check in onMessage; Autobahn's hard limits are twice that.
HARD_LIMIT = max(2 * (1 << 20), (1 << 20) + 65536)
PROTOCOL_OPTIONS = dict(
    maxMessagePayloadSize=HARD_LIMIT,
    maxFramePayloadSize=HARD_LIMIT,
    autoPingInterval=0,  # Prism sends its (25 s) pings itself, not through Autobahn
    openHandshakeTimeout=10.0,
    closeHandshakeTimeout=5,
    failByDrop=False,
    # No permessage-deflate: the factory accepts no compression offer unless
    # perMessageCompressionAccept is set, which neither server does.
)


class EchoProtocol(WebSocketServerProtocol):
    def onMessage(self, payload, isBinary):
        self.sendMessage(payload, isBinary)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="TCP port (0: any free one)")
    parser.add_argument(
        "--max-seconds", type=float, default=600.0, help="stop by itself after this long"
    )
    args = parser.parse_args(argv)

    from twisted.internet import reactor

    factory = WebSocketServerFactory(reactor=reactor)
    factory.protocol = EchoProtocol
    factory.setProtocolOptions(**PROTOCOL_OPTIONS)

    endpoint = serverFromString(reactor, "tcp:%d:interface=127.0.0.1" % (args.port,))
    d = endpoint.listen(factory)

    def listening(port):
        sys.stdout.write("LISTENING %d\n" % (port.getHost().port,))
        sys.stdout.flush()

    def failed(f):
        sys.stderr.write("bare_autobahn_echo: cannot listen: %s\n" % (f.getErrorMessage(),))
        reactor.stop()

    d.addCallbacks(listening, failed)
    reactor.callLater(args.max_seconds, reactor.stop)
    reactor.run()


if __name__ == "__main__":
    main()
