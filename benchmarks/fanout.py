"""
The fan-out benchmark (issue 5): one publisher, 1,000 subscribers, 64-byte
messages, over real WebSockets on 127.0.0.1, side by side in one invocation:

  - C{prism-1}: one Prism node, pubsub on the memory engine;
  - C{prism-2}: two Prism nodes on the redis engine (a private redis-server
    started here), subscribers split between them, the publisher on the first;
  - C{socketio}: a Node.js Socket.IO 4 server, a room broadcast.

The same Node.js load generator (C{fanout_load.js}) measures all three:
deliveries per second and p50/p99 latency from publish to receipt, with at
most C{--window} messages not yet delivered to every subscriber. It prints a
table and the ratios Prism / Socket.IO, then one JSON line.

    python3 benchmarks/fanout.py --python .venv/bin/python [--subscribers 1000] [--messages 2000]

Every run is bounded in messages and seconds; servers (and Redis) stop by
themselves and are killed when the runner exits. With two cores, servers
are pinned to one and the load generator to the other (both Prism nodes of
C{prism-2} then share a core: that row shows the cost of the Redis path, not
scale-out). The npm packages (ws, socket.io, socket.io-client) are installed
into benchmarks/node_modules on first use.
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import wire  # noqa: E402

LOAD = os.path.join(HERE, "fanout_load.js")
PRISM = os.path.join(HERE, "prism_pubsub_server.py")
SOCKETIO = os.path.join(HERE, "socketio_server.js")

DEFAULTS = dict(subscribers=1000, messages=2000, payload=64, window=20, max_seconds=90.0)


def ensure_node_deps(node="node", npm="npm", log=sys.stderr):
    wire.ensure_node_deps(node, npm, log)
    if all(os.path.isdir(os.path.join(HERE, "node_modules", p)) for p in ("socket.io", "socket.io-client")):
        return
    if shutil.which(npm) is None:
        raise wire.BenchmarkError("npm is not on PATH: cannot install socket.io")
    log.write("installing socket.io for the fan-out benchmark (npm install --prefix benchmarks)\n")
    subprocess.run([npm, "install", "--prefix", HERE, "--no-audit", "--no-fund"], check=True, timeout=300, stdout=log, stderr=log)


def _freePort():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Redis:
    """A private redis-server on a free port (no persistence), for the two-node run."""

    def __init__(self):
        if shutil.which("redis-server") is None:
            raise wire.BenchmarkError("redis-server is not on PATH (apt-get install redis-server)")
        self.dir = tempfile.mkdtemp(prefix="prism-fanout-redis.")
        self.port = _freePort()
        self.proc = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no",
             "--dir", self.dir, "--logfile", os.path.join(self.dir, "redis.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.stop()
                    raise wire.BenchmarkError("redis-server did not start")
                time.sleep(0.05)
        self.url = "redis://127.0.0.1:%d" % (self.port,)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


def run_load(mode, pub, subs, o, node="node"):
    cmd = [node, LOAD, mode, pub, ",".join(subs), str(o["subscribers"]), str(o["messages"]),
           str(o["max_seconds"]), str(o["payload"]), str(o["window"])]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=o["max_seconds"] + 30, cwd=HERE,
                             preexec_fn=wire._pinned(wire.LOADGEN_CPUS))
    except subprocess.TimeoutExpired:
        raise wire.BenchmarkError("fanout_load.js hung past its bound")
    lines = [l for l in out.stdout.splitlines() if l.startswith("{")]
    if not lines:
        raise wire.BenchmarkError("fanout_load.js (%s) printed nothing: %s" % (mode, out.stderr[-2000:]))
    result = json.loads(lines[-1])
    if out.returncode != 0:
        raise wire.BenchmarkError("fanout_load.js (%s) failed: %s" % (mode, result.get("error") or out.stderr[-2000:]))
    return result


def run_fanout(python, log=sys.stderr, node="node", **options):
    """Run the three configurations once each; @return: a summary dict."""
    o = dict(DEFAULTS, **{k: v for k, v in options.items() if v is not None})
    ensure_node_deps(node, log=log)
    budget = o["max_seconds"] * 3 + 120
    results = {}
    started = []
    try:
        log.write("fan-out: %(subscribers)d subscribers, %(messages)d messages of %(payload)d bytes, window %(window)d\n" % o)
        one = wire.Server("prism-1", python, PRISM, budget, ["--engine", "memory"])
        started.append(one)
        results["prism-1"] = run_load("prism", one.url, [one.url], o, node)
        one.stop()
        log.write("  prism (1 node, memory): %s\n" % (_line(results["prism-1"]),))

        redis = Redis()
        started.append(redis)
        a = wire.Server("prism-2a", python, PRISM, budget, ["--engine", "redis", "--redis", redis.url])
        started.append(a)
        b = wire.Server("prism-2b", python, PRISM, budget, ["--engine", "redis", "--redis", redis.url])
        started.append(b)
        results["prism-2"] = run_load("prism", a.url, [a.url, b.url], o, node)
        log.write("  prism (2 nodes, redis): %s\n" % (_line(results["prism-2"]),))
        a.stop()
        b.stop()
        redis.stop()

        sio = wire.Server("socketio", node, SOCKETIO, budget)
        started.append(sio)
        url = "http://127.0.0.1:%d/" % (sio.port,)
        results["socketio"] = run_load("socketio", url, [url], o, node)
        log.write("  socket.io (1 node):     %s\n" % (_line(results["socketio"]),))
    finally:
        for s in started:
            s.stop()
    base = results["socketio"]["rate"]
    summary = {
        "python": python,
        "implementation": wire.describe_python(python),
        "options": o,
        "results": results,
        "ratios": {k: results[k]["rate"] / base for k in ("prism-1", "prism-2")},
    }
    return summary


def _line(r):
    return "%9.0f deliveries/s  p50 %6.2f ms  p99 %6.2f ms" % (r["rate"], r["p50_ms"], r["p99_ms"])


def format_summary(s):
    rows = ["%-24s %14s %10s %10s %22s" % ("fan-out (%s)" % s["implementation"].split()[0], "deliveries/s", "p50", "p99", "rate vs Socket.IO")]
    for key, label in (("prism-1", "Prism, 1 node"), ("prism-2", "Prism, 2 nodes + Redis"), ("socketio", "Socket.IO room")):
        r = s["results"][key]
        ratio = s["ratios"].get(key, 1.0)
        rows.append("%-24s %14.0f %8.2fms %8.2fms %22.2f" % (label, r["rate"], r["p50_ms"], r["p99_ms"], ratio))
    return "\n".join(rows)


def add_options(parser):
    parser.add_argument("--subscribers", type=int, default=None, help="default %d" % DEFAULTS["subscribers"])
    parser.add_argument("--messages", type=int, default=None, help="default %d" % DEFAULTS["messages"])
    parser.add_argument("--window", type=int, default=None, help="messages in flight (default %d)" % DEFAULTS["window"])
    parser.add_argument("--fanout-max-seconds", dest="fanout_max_seconds", type=float, default=None)


def fanout_options(args):
    return dict(subscribers=args.subscribers, messages=args.messages, window=args.window, max_seconds=args.fanout_max_seconds)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--python", default=os.path.join(ROOT, ".venv", "bin", "python"))
    parser.add_argument("--node", default="node")
    parser.add_argument("--json", action="store_true", help="print only the JSON summary")
    add_options(parser)
    args = parser.parse_args(argv)
    try:
        s = run_fanout(args.python, log=sys.stderr if args.json else sys.stdout, node=args.node, **fanout_options(args))
    except (wire.BenchmarkError, OSError, subprocess.SubprocessError) as e:
        sys.stderr.write("fan-out benchmark failed: %s\n" % (e,))
        return 1
    if not args.json:
        print(format_summary(s))
    print(json.dumps(s, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
