"""
The Prism side of the fan-out benchmark (benchmarks/fanout.py): a pubsub
service (clients may publish on "bench") over the WebSocket transport.

    python benchmarks/prism_pubsub_server.py [--port 0] [--engine memory|redis]
        [--redis redis://127.0.0.1:PORT] [--max-seconds 600]

Listens on 127.0.0.1 only, prints C{LISTENING <port>}, stops by itself after
C{--max-seconds}.
"""

import argparse


def authorize(request, action, channel):
    return channel == "bench"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--engine", default="memory", choices=["memory", "redis"])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379")
    parser.add_argument("--prefix", default="bench:")
    parser.add_argument("--max-seconds", type=float, default=600.0)
    args = parser.parse_args(argv)

    from twisted.internet import reactor

    from prism.server import Server
    from prism.services.pubsub import PubSubService
    from prism.transports.websocket import WebSocketTransport

    import inspect

    options = dict(pingInterval=0)
    accepted = inspect.signature(WebSocketTransport).parameters
    for name in ("maxConnectionsPerAddress", "maxConnections"):  # 1,001 clients from 127.0.0.1
        if name in accepted:
            options[name] = 0
    server = Server(transport=WebSocketTransport(**options), reactor=reactor)
    server.service(
        "pubsub",
        PubSubService(engine=args.engine, redisUrl=args.redis, redisPrefix=args.prefix, authorize=authorize),
    )
    server.start()
    engine = server._byName["pubsub"].service.engine

    from serving import serveUntil

    serveUntil(server, reactor, args.port, args.max_seconds, "prism_pubsub_server",
               ready=lambda: args.engine != "redis" or engine.up)


if __name__ == "__main__":
    main()
