"""
Round trips per second and p99 latency over each transport and mode, at 10
connections: a Prism echo service (raw codec, requests with callbacks) served
under this interpreter, driven by the generated JavaScript client under
Node.js (the official client library of each fallback protocol inside it).

    .venv/bin/python benchmarks/transports.py [--seconds 5] [--connections 10]

Rows: C{websocket} (the native transport, the baseline) and C{sockjs} in each
mode sockjs-client has under Node.js (websocket, xhr-streaming, xhr-polling,
eventsource). Other transports add their rows to C{ROWS}. Needs C{npm ci} at
the checkout's root. Targets 127.0.0.1 only.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
LOAD = os.path.join(HERE, "transports_load.mjs")


def _websocket():
    from prism.transports.websocket import WebSocketTransport

    return WebSocketTransport(maxConnectionsPerAddress=0)


def _sockjs():
    from prism.transports.sockjs import SockJSTransport

    return SockJSTransport(maxConnectionsPerAddress=0)


def _engineio():
    from prism.transports.engineio import EngineIOTransport

    return EngineIOTransport()


# (transport label, mode, transport factory); mode is passed to the client
ROWS = [
    ("websocket", "-", _websocket),
    ("sockjs", "websocket", _sockjs),
    ("sockjs", "xhr-streaming", _sockjs),
    ("sockjs", "xhr-polling", _sockjs),
    ("sockjs", "eventsource", _sockjs),
    ("engineio", "polling", _engineio),
    ("engineio", "websocket", _engineio),
    ("engineio", "upgrade", _engineio),
]


def measure(reactor, factory, mode, connections, seconds, workdir):
    """Serve, run the load in a thread, return its JSON report."""
    from twisted.internet import threads

    from prism.server import Server
    from prism.services.echo import EchoService

    server = Server(transport=factory(), reactor=reactor)
    server.service("echo", EchoService())
    client = os.path.join(workdir, "client.cjs")
    with open(client, "w", encoding="utf-8") as f:
        f.write(server.build_client(format="cjs"))

    def run(port):
        url = "http://127.0.0.1:{}".format(port.getHost().port)
        args = ["node", LOAD, client, url, mode, str(connections), str(seconds)]
        d = threads.deferToThread(subprocess.run, args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=seconds + 60)
        d.addBoth(lambda result: (port.stopListening(), server.stop(), result)[2])
        return d

    return server.listen("tcp:0:interface=127.0.0.1").addCallback(run)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--json", action="store_true", help="(accepted for run_all.py: the JSON summary is always the last line)")
    args = parser.parse_args()
    from twisted.internet import reactor
    from twisted.internet.defer import ensureDeferred

    workdir = tempfile.mkdtemp(prefix="prism-transports-")
    os.symlink(os.path.join(ROOT, "node_modules"), os.path.join(workdir, "node_modules"))
    results = []

    async def all_rows():
        for label, mode, factory in ROWS:
            result = await measure(reactor, factory, mode, args.connections, args.seconds, workdir)
            if result.returncode != 0:
                report = {"error": result.stderr.decode("utf-8", "replace")[-500:]}
            else:
                report = json.loads(result.stdout.decode("utf-8").strip().splitlines()[-1])
            results.append(dict(transport=label, mode=mode, **report))

    def done(_):
        reactor.stop()
        return _

    reactor.callWhenRunning(lambda: ensureDeferred(all_rows()).addBoth(done))
    reactor.run()
    print("{:<10} {:<14} {:>10} {:>9} {:>9}".format("transport", "mode", "rt/s", "p50 ms", "p99 ms"))
    for r in results:
        if "error" in r:
            print("{:<10} {:<14} error: {}".format(r["transport"], r["mode"], r["error"]))
        else:
            print("{:<10} {:<14} {:>10.0f} {:>9.2f} {:>9.2f}".format(r["transport"], r["mode"], r["rps"], r["p50"], r["p99"]))
    print(json.dumps({"interpreter": sys.implementation.name, "connections": args.connections, "rows": results}))
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
