"""
The models benchmark (issue 8): shared documents over real WebSockets on
127.0.0.1, for the memory store and the Redis store (a private redis-server
started here on a free port), each next to an anchor measured in the same
invocation:

  1. B{writes}: 10 writers on ONE document, each incrementing a counter
     with read-modify-write (a patch against the version it holds, with a
     C{test} of the value it read; on a conflict it catches up from the
     reply and tries again), one patch in flight per writer: accepted
     patches per second and the conflict rate (conflicts / attempts). The
     load generator then checks that the document's version and counter
     both equal the number of accepted patches (no update lost). Anchor:
     an RPC echo of the same patch array by 10 clients, one call in flight
     each (C{ratio} = patches/s / calls/s).
  2. B{propagation}: 100 subscribers of one document; one writer changes it
     (a 64-character value), one change at a time; latency from the send to
     each subscriber's receipt, p50/p99. Anchor: the same array published
     on a pubsub channel to 100 subscribers, on the engine matching the
     store (memory, or redis through the same Redis), same pacing
     (C{ratio} = models latency / pubsub latency).

One Prism server process per store (this script with C{--serve}: C{models},
C{pubsub} and C{rpc} services), pinned to one core with two or more cores;
the Node.js load generator (C{benchmarks/models_load.js}) on the others.
Each measurement is the median of C{--rounds} runs (alternating anchor and
models), each bounded in count and in seconds, the first 10% untimed.

    python3 benchmarks/models.py --python .venv/bin/python [--rounds 3] [--patches 5000] [--messages 300] [--json]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import wire  # noqa: E402  (benchmarks/wire.py: server subprocesses, pinning, node deps)

LOAD = os.path.join(HERE, "models_load.js")
SELF = os.path.abspath(__file__)

DEFAULTS = dict(writers=10, patches=5000, subscribers=100, messages=300, rounds=3, max_seconds=60.0)


# -- the server (run with --serve, under the interpreter being measured)


def echo(x):
    return x


def allowBench(request, action, channel):
    return channel == "bench"


def serve(args):
    from twisted.internet import reactor

    from prism.server import Server
    from prism.services.models import ModelsService, allowAll
    from prism.services.pubsub import PubSubService
    from prism.services.rpc import RPCService
    from prism.transports.websocket import WebSocketTransport

    transport = WebSocketTransport(pingInterval=0, maxConnections=0, maxConnectionsPerAddress=0)
    server = Server(transport=transport, reactor=reactor)
    server.service("models", ModelsService(store=args.store, redisUrl=args.redis, redisPrefix=args.prefix,
                                           authorize=allowAll, initial={"n": 0}))
    server.service("pubsub", PubSubService(engine=args.store, redisUrl=args.redis, redisPrefix=args.prefix,
                                           authorize=allowBench))
    server.service("rpc", RPCService(handlers={"echo": echo}))
    server.start()
    engines = [server._byName["pubsub"].service.engine]
    if args.store == "redis":
        engines.append(server._byName["models"].service.store.engine)

    from serving import serveUntil

    serveUntil(server, reactor, args.port, args.max_seconds, "models.py --serve",
               ready=lambda: all(getattr(e, "up", True) for e in engines))


# -- the runner


def run_load(mode, url, args, max_seconds, node="node"):
    cmd = [node, LOAD, mode, url] + [str(a) for a in args[:2]] + [str(max_seconds)] + [str(a) for a in args[2:]]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=max_seconds + 30, cwd=HERE,
                             preexec_fn=wire._pinned(wire.LOADGEN_CPUS))
    except subprocess.TimeoutExpired:
        raise wire.BenchmarkError("models_load.js hung past its bound")
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise wire.BenchmarkError("models_load.js (%s) printed nothing: %s" % (mode, out.stderr[-2000:]))
    result = json.loads(lines[-1])
    if out.returncode != 0 or "error" in result:
        raise wire.BenchmarkError("models_load.js (%s) failed: %s" % (mode, result.get("error") or out.stderr[-2000:]))
    return result


def _median(results, key):
    return statistics.median(r[key] for r in results)


def run_store(store, python, o, log, node, redisUrl=None):
    """One server for C{store}; @return: the medians of each measurement over the rounds."""
    extra = ["--serve", "--store", store, "--prefix", "bench-models-%d:" % (os.getpid(),)]
    if redisUrl:
        extra += ["--redis", redisUrl]
    budget = o["max_seconds"] * 4 * (o["rounds"] + 1) + 120
    server = wire.Server("models-" + store, python, SELF, budget, extra)
    runs = {"rpc": [], "writers": [], "pubsub": [], "models": []}
    try:
        for rnd in range(o["rounds"] + 1):  # round 0 warms up (PyPy's JIT) and is not kept
            small = rnd == 0
            patches = max(200, o["patches"] // 5) if small else o["patches"]
            messages = max(50, o["messages"] // 5) if small else o["messages"]
            doc = "bench:r%d" % (rnd,)
            got = {
                "rpc": run_load("rpc", server.url, [o["writers"], patches], o["max_seconds"], node),
                "writers": run_load("writers", server.url, [o["writers"], patches, doc + "w"], o["max_seconds"], node),
                "pubsub": run_load("fanout", server.url, [o["subscribers"], messages, "pubsub"], o["max_seconds"], node),
                "models": run_load("fanout", server.url, [o["subscribers"], messages, "models", doc + "f"],
                                   o["max_seconds"], node),
            }
            if not small:
                for key, value in got.items():
                    runs[key].append(value)
            log.write("  %s round %d%s: %s\n" % (store, rnd, " (warm-up)" if small else "", _roundLine(got)))
            log.flush()
    finally:
        server.stop()
    writes = _median(runs["writers"], "rate")
    calls = _median(runs["rpc"], "rate")
    result = {
        "writes": {
            "patches_per_s": writes,
            "attempts_per_s": _median(runs["writers"], "attempt_rate"),
            "conflict_rate": _median(runs["writers"], "conflict_rate"),
            "rpc_calls_per_s": calls,
            "ratio": writes / calls,
            "ratio_paired": statistics.median(w["rate"] / r["rate"] for w, r in zip(runs["writers"], runs["rpc"])),
            "runs": runs["writers"],
            "anchor_runs": runs["rpc"],
        },
        "propagation": {},
    }
    prop = result["propagation"]
    for key in ("models", "pubsub"):
        prop[key] = {"p50_ms": _median(runs[key], "p50_ms"), "p99_ms": _median(runs[key], "p99_ms"),
                     "deliveries_per_s": _median(runs[key], "rate"), "runs": runs[key]}
    prop["ratio_p50"] = prop["models"]["p50_ms"] / prop["pubsub"]["p50_ms"]
    prop["ratio_p99"] = prop["models"]["p99_ms"] / prop["pubsub"]["p99_ms"]
    pairs = list(zip(runs["models"], runs["pubsub"]))
    prop["ratio_p50_paired"] = statistics.median(m["p50_ms"] / p["p50_ms"] for m, p in pairs)
    prop["ratio_p99_paired"] = statistics.median(m["p99_ms"] / p["p99_ms"] for m, p in pairs)
    return result


def _roundLine(got):
    w, r, m, p = got["writers"], got["rpc"], got["models"], got["pubsub"]
    return "writes %.0f/s (conflicts %.0f%%), rpc %.0f/s; propagation p50/p99 models %.2f/%.2f ms, pubsub %.2f/%.2f ms" % (
        w["rate"], 100 * w["conflict_rate"], r["rate"], m["p50_ms"], m["p99_ms"], p["p50_ms"], p["p99_ms"])


def run_models(python, log=sys.stderr, node="node", **options):
    """Run both stores; @return: a summary dict."""
    import fanout  # benchmarks/fanout.py: its private redis-server

    o = dict(DEFAULTS, **{k: v for k, v in options.items() if v is not None})
    wire.ensure_node_deps(node, log=log)
    log.write("models: %(writers)d writers x %(patches)d patches on one document; %(subscribers)d subscribers x "
              "%(messages)d changes; median of %(rounds)d rounds\n" % o)
    results = {"memory": run_store("memory", python, o, log, node)}
    redis = fanout.Redis()
    try:
        results["redis"] = run_store("redis", python, o, log, node, redis.url)
    finally:
        redis.stop()
    return {
        "python": python,
        "implementation": wire.describe_python(python),
        "options": o,
        "cpus": {"server": sorted(wire.SERVER_CPUS) if wire.SERVER_CPUS else None,
                 "loadgen": sorted(wire.LOADGEN_CPUS) if wire.LOADGEN_CPUS else None},
        "results": results,
    }


def format_summary(s):
    rows = ["models (%s)" % (s["implementation"],)]
    rows.append("  %-7s %10s %11s %10s %12s %7s   %-20s %-20s %s" % (
        "store", "patches/s", "attempts/s", "conflicts", "rpc calls/s", "ratio", "models p50/p99", "pubsub p50/p99",
        "ratio p50/p99"))
    for store in ("memory", "redis"):
        r = s["results"].get(store)
        if r is None:
            continue
        w, p = r["writes"], r["propagation"]
        rows.append("  %-7s %10.0f %11.0f %9.1f%% %12.0f %7.3f   %-20s %-20s %.2f / %.2f" % (
            store, w["patches_per_s"], w["attempts_per_s"], 100 * w["conflict_rate"], w["rpc_calls_per_s"], w["ratio"],
            "%.2f / %.2f ms" % (p["models"]["p50_ms"], p["models"]["p99_ms"]),
            "%.2f / %.2f ms" % (p["pubsub"]["p50_ms"], p["pubsub"]["p99_ms"]),
            p["ratio_p50"], p["ratio_p99"]))
    rows.append("  (ratios: of the medians; the medians of the per-round ratios, more robust on a busy machine: %s)" % (
        ", ".join("%s writes %.3f, propagation %.2f / %.2f" % (
            store, s["results"][store]["writes"]["ratio_paired"], s["results"][store]["propagation"]["ratio_p50_paired"],
            s["results"][store]["propagation"]["ratio_p99_paired"]) for store in ("memory", "redis") if store in s["results"]),))
    return "\n".join(rows)


def add_options(parser):
    parser.add_argument("--models-rounds", dest="models_rounds", type=int, default=None,
                        help="models benchmark rounds (default %d)" % DEFAULTS["rounds"])
    parser.add_argument("--models-patches", dest="models_patches", type=int, default=None,
                        help="accepted patches per writes run (default %d)" % DEFAULTS["patches"])
    parser.add_argument("--models-messages", dest="models_messages", type=int, default=None,
                        help="changes per propagation run (default %d)" % DEFAULTS["messages"])


def models_options(args):
    return dict(rounds=args.models_rounds, patches=args.models_patches, messages=args.models_messages)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--store", default="memory", choices=["memory", "redis"], help=argparse.SUPPRESS)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379", help=argparse.SUPPRESS)
    parser.add_argument("--prefix", default="bench-models:", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--max-seconds", type=float, default=None,
                        help="bound of each load run (default %d s)" % DEFAULTS["max_seconds"])
    parser.add_argument("--python", default=os.path.join(ROOT, ".venv", "bin", "python"))
    parser.add_argument("--node", default="node")
    parser.add_argument("--rounds", type=int, default=None, help="default %d" % DEFAULTS["rounds"])
    parser.add_argument("--writers", type=int, default=None, help="default %d" % DEFAULTS["writers"])
    parser.add_argument("--patches", type=int, default=None, help="default %d" % DEFAULTS["patches"])
    parser.add_argument("--subscribers", type=int, default=None, help="default %d" % DEFAULTS["subscribers"])
    parser.add_argument("--messages", type=int, default=None, help="default %d" % DEFAULTS["messages"])
    parser.add_argument("--json", action="store_true", help="print only the JSON summary on stdout")
    args = parser.parse_args(argv)
    if args.serve:
        args.max_seconds = args.max_seconds or 600.0
        serve(args)
        return 0
    options = dict(rounds=args.rounds, writers=args.writers, patches=args.patches, subscribers=args.subscribers,
                   messages=args.messages, max_seconds=args.max_seconds)
    try:
        s = run_models(args.python, log=sys.stderr if args.json else sys.stdout, node=args.node, **options)
    except (wire.BenchmarkError, OSError, subprocess.SubprocessError) as e:
        sys.stderr.write("models benchmark failed: %s\n" % (e,))
        return 1
    if not args.json:
        print(format_summary(s))
    print(json.dumps(s, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
