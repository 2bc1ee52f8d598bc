"""
One Prism node for the multi-process pubsub tests (tests/test_pubsub_redis.py)
and the fan-out benchmark: pubsub on the redis (or memory) engine, plus an
rpc service, on a pre-picked port on 127.0.0.1.

    python tests/pubsub/node_server.py --port 4001 --redis redis://127.0.0.1:6390 \
        [--prefix t1:] [--presence-ttl 2] [--history 100] [--engine redis] [--max-seconds 120]

Prints C{LISTENING <port>} once it listens, then one line per pubsub event
on the server's bus (C{EVENT pubsub.redis_down …}); Twisted's log goes to
stderr. Stops by itself after C{--max-seconds}.
"""

import argparse
import sys


def authorize(request, action, channel):
    return True


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis", default=None)
    parser.add_argument("--engine", default="redis")
    parser.add_argument("--prefix", default="prism:")
    parser.add_argument("--presence-ttl", type=float, default=2.0)
    parser.add_argument("--history", type=int, default=100)
    parser.add_argument("--max-seconds", type=float, default=120.0)
    args = parser.parse_args(argv)

    from twisted.internet import reactor
    from twisted.logger import globalLogBeginner, textFileLogObserver

    from prism.server import Server
    from prism.services.pubsub import PubSubService
    from prism.services.rpc import RPCService, withRequest
    from prism.transports.websocket import WebSocketTransport

    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stderr)], redirectStandardIO=False)
    server = Server(transport=WebSocketTransport(pingInterval=0), reactor=reactor, secret=b"prism-node-test-secret")
    server.service(
        "pubsub",
        PubSubService(
            engine=args.engine,
            redisUrl=args.redis or "redis://127.0.0.1:6379",
            redisPrefix=args.prefix,
            authorize=authorize,
            presence=True,
            presenceTtl=args.presence_ttl,
            historySize=args.history,
            historyTtl=60,
            redisRetry=(0.1, 0.5),
            maxSubscriptions=1000,
        ),
    )

    @withRequest
    def whoami(request):
        return request.connection.id

    server.service("rpc", RPCService(handlers={"whoami": whoami}))

    def event(name):
        def emit(*args):
            sys.stdout.write("EVENT {} {}\n".format(name, " ".join(map(str, args))))
            sys.stdout.flush()

        server.events.on(name, emit)

    for name in ("pubsub.redis_down", "pubsub.redis_up"):
        event(name)
    server.start()
    d = server.listen("tcp:{}:interface=127.0.0.1".format(args.port))

    def listening(port):
        sys.stdout.write("LISTENING {}\n".format(port.getHost().port))
        sys.stdout.flush()

    def failed(f):
        sys.stderr.write("node_server: cannot listen: {}\n".format(f.getTraceback()))
        reactor.stop()

    d.addCallbacks(listening, failed)
    reactor.callLater(args.max_seconds, reactor.stop)
    reactor.run()


if __name__ == "__main__":
    main()
