"""
The Prism side of the over-the-wire benchmark: a Prism server with one service,
C{rpc}, whose only handler is C{echo(x) -> x}, over the WebSocket transport.

    python benchmarks/prism_rpc_server.py [--port 0] [--max-seconds 600]

Listens on 127.0.0.1 only, prints C{LISTENING <port>} once it listens, and
stops by itself after C{--max-seconds} (a bound in case its parent dies).
Run it with the checkout on C{PYTHONPATH} (C{benchmarks/wire.py} does).
"""

import argparse


def echo(x):
    return x


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="TCP port (0: any free one)")
    parser.add_argument(
        "--max-seconds", type=float, default=600.0, help="stop by itself after this long"
    )
    args = parser.parse_args(argv)

    from twisted.internet import reactor

    from prism.server import Server
    from prism.services.rpc import RPCService
    from prism.transports.websocket import WebSocketTransport

    server = Server(transport=WebSocketTransport(), reactor=reactor)
    server.service("rpc", RPCService(handlers={"echo": echo}))
    server.start()
    from serving import serveUntil

    serveUntil(server, reactor, args.port, args.max_seconds, "prism_rpc_server")


if __name__ == "__main__":
    main()
