"""
Soak benchmark (not a test): push a million messages through a running Prism
server and watch its resident memory.

    python benchmarks/soak.py [--messages 1000000] [--connections 20] [--python .venv/bin/python]

Starts C{benchmarks/prism_rpc_server.py} (Prism, C{rpc.echo}, WebSocket on
127.0.0.1) under the chosen interpreter, drives it with the Node.js load
generator (C{benchmarks/loadgen.js}, prism mode) in rounds of
C{--round} calls, each round over fresh connections (so connection setup and
teardown are soaked too), and samples the server's RSS from
C{/proc/<pid>/status} every C{--interval} seconds. It prints one line per
sample, then a summary: RSS after the first round (warm), at the end, the
peak, and the growth from warm to end, and as its last line one JSON object.

Growth is what matters: a leak shows as RSS rising round after round; a
healthy server levels off once its allocator and (on PyPy) its JIT have
warmed up.
"""

import argparse
import json
import os
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import wire  # noqa: E402  (benchmarks/wire.py: python_env)

MiB = 1024 * 1024


def rss(pid):
    with open("/proc/{}/status".format(pid)) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--python", default=os.path.join(ROOT, ".venv", "bin", "python"))
    parser.add_argument("--messages", type=int, default=1000000)
    parser.add_argument("--round", type=int, default=100000, help="calls per load-generator run")
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--inflight", type=int, default=10)
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between RSS samples")
    parser.add_argument("--max-seconds", type=float, default=1800)
    args = parser.parse_args(argv)

    server = subprocess.Popen(
        [args.python, os.path.join(HERE, "prism_rpc_server.py"), "--max-seconds", str(args.max_seconds + 60)],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=wire.python_env(),
        cwd=ROOT,
    )
    try:
        line = server.stdout.readline()
        if not line.startswith("LISTENING"):
            sys.exit("soak: the server did not start: {!r}".format(line))
        port = int(line.split()[1])
        url = "ws://127.0.0.1:{}/".format(port)
        samples = []
        stop = threading.Event()
        started = time.monotonic()

        def sample():
            while not stop.is_set():
                value = rss(server.pid)
                samples.append((time.monotonic() - started, value))
                print("t={:7.1f}s  rss={:7.1f} MiB".format(samples[-1][0], value / MiB), flush=True)
                stop.wait(args.interval)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        done = 0
        warm = None
        rounds = []
        while done < args.messages:
            calls = min(args.round, args.messages - done)
            out = subprocess.run(
                [
                    "node",
                    os.path.join(HERE, "loadgen.js"),
                    url,
                    "prism",
                    str(args.connections),
                    str(args.inflight),
                    str(calls),
                    str(args.max_seconds),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                cwd=ROOT,
            )
            result = json.loads(out.stdout.strip().splitlines()[-1])
            if out.returncode != 0:
                sys.exit("soak: loadgen failed: {}".format(out.stdout[-2000:]))
            done += calls
            now = rss(server.pid)
            rounds.append({"messages": done, "rss_mib": round(now / MiB, 1), "rate": result.get("rate")})
            print("round: {} messages so far, {:.0f} calls/s, rss {:.1f} MiB".format(done, result.get("rate", 0), now / MiB), flush=True)
            if warm is None:
                warm = now
        stop.set()
        sampler.join()
        end = rss(server.pid)
        peak = max(v for _, v in samples + [(0, end)])
        summary = {
            "python": args.python,
            "messages": done,
            "seconds": round(time.monotonic() - started, 1),
            "rss_warm_mib": round(warm / MiB, 1),
            "rss_end_mib": round(end / MiB, 1),
            "rss_peak_mib": round(peak / MiB, 1),
            "growth_mib": round((end - warm) / MiB, 1),
            "rounds": rounds,
        }
        print(
            "soak: {} messages in {} s; RSS warm {} MiB, end {} MiB, peak {} MiB: growth {} MiB".format(
                done, summary["seconds"], summary["rss_warm_mib"], summary["rss_end_mib"], summary["rss_peak_mib"],
                summary["growth_mib"],
            )
        )
        print(json.dumps(summary))
        return 0
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    sys.exit(main())
