"""
The original Prism benchmark suite, in process, through the loopback
transport: client -> server -> client echo round trips through the whole
stack (client API, framing, kernel, middleware chain, sessions, service).

    python benchmarks/loopback.py [--count 100000] [--json] [--metrics] [--log-requests]

Cases (as in socketstream/prism's benchmarks/1-4.js):
  1. simple echo                    raw codec, pushes back
  2. echo with JSON                 json codec, pushes back
  3. echo with callbacks            raw codec, request -> reply by callback id
  4. echo with sessions from cache  raw codec, the service declares sessions

Each case also runs an anchor in the same invocation (a JSON encode+decode of
a small message per iteration), so the ratio is comparable across machines.

C{--metrics} runs the same cases with C{server.enableMetrics()} (the cost of
counting, docs/metrics.md); C{--log-requests} with C{logRequests=True} and
a JSON log observer writing to /dev/null (the cost of request logs,
docs/logging.md).
"""

import argparse
import gc
import json
import os
import platform
import sys
import time

from twisted.internet.defer import succeed
from twisted.internet.task import Clock

from prism.client import Client
from prism.server import Server
from prism.services.echo import EchoService
from prism.transports.loopback import LoopbackTransport

ORIGINAL = {1: 124000, 2: 61000, 3: 69000, 4: 75000}
NAMES = {
    1: "Simple echo service",
    2: "Simple echo service (with JSON)",
    3: "Simple echo service (with callbacks)",
    4: "Simple echo service (with sessions from cache)",
}


OPTIONS = {"metrics": False, "logRequests": False}


def _setup(case):
    clock = Clock()
    transport = LoopbackTransport()
    server = Server(transport=transport, reactor=clock, secret=b"bench", logRequests=OPTIONS["logRequests"])
    if OPTIONS["metrics"]:
        server.enableMetrics()
    from prism.sessions import MemorySessionStore

    server.sessionStore = MemorySessionStore(reactor=clock)
    server.service("echo", EchoService(codec="json" if case == 2 else "raw", sessions=(case == 4)))
    server.start()
    client = Client(connector=lambda: succeed(transport.connect(server)), reactor=clock, timeout=None, reconnect=False)
    client.connect()
    assert client.connected
    return client


def run(case, count):
    client = _setup(case)
    echo = client.api.echo
    message = {"hello": "world", "n": 1} if case == 2 else "Hello"
    done = [0]
    sizes = []
    link = client._link
    originalSend = link.send

    def measuringSend(frame, isBinary=False):
        sizes.append(len(frame))
        originalSend(frame, isBinary)

    if case in (1, 2, 4):

        def received(value):
            if value == message:
                done[0] += 1

        echo.on(received)
        # one measured message for the byte count
        link.send = measuringSend
        echo.send(message)
        link.send = originalSend
        done[0] = 0
        send = echo.send
        gc.collect()
        start = time.perf_counter()
        for _ in range(count):
            send(message)
        elapsed = time.perf_counter() - start
    else:

        def replied(value):
            if value == message:
                done[0] += 1

        link.send = measuringSend
        echo.request(message).addCallback(replied)
        link.send = originalSend
        done[0] = 0
        request = echo.request
        gc.collect()
        start = time.perf_counter()
        for _ in range(count):
            request(message).addCallback(replied)
        elapsed = time.perf_counter() - start
    assert done[0] == count, (case, done[0], count)
    return count / elapsed, sizes[0]


def anchor(count):
    """
    A machine-speed reference run in the same invocation: one JSON encode and
    decode of a small message per iteration (the least work any JSON-based
    realtime server does per message). Prism's rate divided by this one is
    comparable across machines and runs.
    """
    dumps, loads = json.dumps, json.loads
    message = ["echo", "Hello"]
    n = 0
    gc.collect()
    start = time.perf_counter()
    for _ in range(count):
        if loads(dumps(message)) == message:
            n += 1
    elapsed = time.perf_counter() - start
    assert n == count
    return count / elapsed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=100000)
    parser.add_argument("--rounds", type=int, default=3, help="best of N rounds per case")
    parser.add_argument("--json", action="store_true", help="print one JSON summary line at the end")
    parser.add_argument("--metrics", action="store_true", help="with server.enableMetrics()")
    parser.add_argument("--log-requests", action="store_true", help="with logRequests and a JSON observer to /dev/null")
    args = parser.parse_args(argv)
    OPTIONS["metrics"] = args.metrics
    OPTIONS["logRequests"] = args.log_requests
    if args.log_requests:
        from twisted.logger import globalLogPublisher, jsonFileLogObserver

        globalLogPublisher.addObserver(jsonFileLogObserver(open(os.devnull, "w")))
    count = min(max(args.count, 1000), 1000000)  # bounded
    impl = "{} {}".format(platform.python_implementation(), platform.python_version())
    extras = [name for name, on in (("metrics", args.metrics), ("request logs", args.log_requests)) if on]
    print(
        "Prism loopback benchmarks on {} ({} round trips per case, best of {}){}".format(
            impl, count, args.rounds, ", with " + " and ".join(extras) if extras else ""
        )
    )
    results = {}
    for case in (1, 2, 3, 4):
        best = 0
        size = None
        anchorBest = 0
        for _ in range(args.rounds):
            rate, size = run(case, count)
            best = max(best, rate)
            anchorBest = max(anchorBest, anchor(count))
        results[case] = {
            "name": NAMES[case],
            "rps": round(best),
            "bytes_per_message": size,
            "original_rps": ORIGINAL[case],
            "vs_original": round(best / ORIGINAL[case], 2),
            "anchor_rps": round(anchorBest),
            "vs_anchor": round(best / anchorBest, 3),
        }
        r = results[case]
        print(
            "Benchmark {}: {}\n  requests per second: {:>9,}   bytes per message: {}   "
            "original (Node.js, 2009 iMac): {:,}  x{:.2f}   json anchor: {:,} (ratio {:.3f})".format(
                case, r["name"], r["rps"], r["bytes_per_message"], r["original_rps"], r["vs_original"],
                r["anchor_rps"], r["vs_anchor"],
            )
        )
        sys.stdout.flush()
    if args.json:
        print(json.dumps({"implementation": impl, "count": count, "metrics": args.metrics, "cases": results}))
    return results


if __name__ == "__main__":
    main()
