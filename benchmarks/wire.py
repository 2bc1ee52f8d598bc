"""
The over-the-wire benchmark (issue 2): Prism RPC echo next to bare Autobahn.

For one Python interpreter this starts two servers as subprocesses of that
interpreter, both on 127.0.0.1:

  - C{bare_autobahn_echo.py}: Autobahn alone, echoing every message (the anchor);
  - C{prism_rpc_server.py}: a Prism server whose RPC service has C{echo(x) -> x},

and measures both with the same Node.js load generator (C{loadgen.js}: 10
connections, 10 calls in flight on each, 64-character payloads, identical
request frames) in alternating rounds: bare, prism, bare, prism, ... after one
untimed warm-up run against each (for PyPy's JIT). It prints the median rate
of each, and their ratio prism / bare: the share of bare Autobahn's throughput
that Prism keeps, its framework overhead (the target is >= 0.9).

    python3 benchmarks/wire.py --python .venv/bin/python [--rounds 5] [--calls 300000]

With two or more cores, the servers run pinned to the last core and the load
generator to the others. See docs/benchmarks.md for how to read the output.

This runner itself needs only the standard library (any Python 3). Every load
run is bounded in calls and seconds, each server stops by itself after the
whole budget, and both are killed when the runner exits. Only 127.0.0.1.
"""

import argparse
import json
import os
import queue
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
LOADGEN = os.path.join(HERE, "loadgen.js")
BARE = os.path.join(HERE, "bare_autobahn_echo.py")
PRISM = os.path.join(HERE, "prism_rpc_server.py")

DEFAULTS = dict(
    rounds=5,
    calls=300000,
    connections=10,
    inflight=10,
    payload=64,
    max_seconds=60.0,
    warmup_runs=1,
)


def _cpus():
    """The (server, load generator) CPU sets: one core each when there are two or more."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None, None
    if len(cpus) < 2:
        return None, None
    return {cpus[-1]}, set(cpus[:-1])


SERVER_CPUS, LOADGEN_CPUS = _cpus()


def _pinned(cpus):
    """A preexec_fn pinning the child to C{cpus} (None: no pinning)."""
    if cpus is None:
        return None
    return lambda: os.sched_setaffinity(0, cpus)


LOADGEN_BUSY = 0.9
"""Above this share of a core, the load generator may be what limits a rate."""


class BenchmarkError(Exception):
    """A benchmark could not run (a server did not start, the load generator failed)."""


def ensure_node_deps(node="node", npm="npm", log=sys.stderr):
    """Install the load generator's npm dependencies (benchmarks/node_modules) if missing."""
    if shutil.which(node) is None:
        raise BenchmarkError("node is not on PATH (Node.js 20 runs the load generator)")
    if os.path.isdir(os.path.join(HERE, "node_modules", "ws")):
        return
    if shutil.which(npm) is None:
        raise BenchmarkError("npm is not on PATH: cannot install the 'ws' package")
    log.write("installing the load generator's npm dependencies (npm install --prefix benchmarks)\n")
    subprocess.run(
        [npm, "install", "--prefix", HERE, "--no-audit", "--no-fund"],
        check=True,
        timeout=300,
        stdout=log,
        stderr=log,
    )


def python_env():
    """The environment for server subprocesses: the checkout's prism importable."""
    env = dict(os.environ)
    paths = [ROOT] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.setdefault("PYTHONHASHSEED", "0")
    return env


def describe_python(python, timeout=60):
    """'CPython 3.11.7' / 'PyPy 3.9.16 (7.3.11)' for an interpreter path."""
    code = (
        "import platform, sys;"
        "impl = platform.python_implementation();"
        "extra = ' (%d.%d.%d)' % sys.pypy_version_info[:3] if impl == 'PyPy' else '';"
        "print(impl + ' ' + platform.python_version() + extra)"
    )
    out = subprocess.run(
        [python, "-c", code], capture_output=True, text=True, timeout=timeout, check=True
    )
    return out.stdout.strip()


class Server:
    """A benchmark server subprocess that prints C{LISTENING <port>} when ready."""

    def __init__(self, name, python, script, max_seconds, extra_args=(), start_timeout=60.0):
        self.name = name
        self.stderr = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(
            [python, script, "--max-seconds", str(max_seconds)] + list(extra_args),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            env=python_env(),
            cwd=ROOT,
            text=True,
            preexec_fn=_pinned(SERVER_CPUS),
        )
        self.port = None
        lines = queue.Queue()

        def drain(stream=self.proc.stdout):
            for line in stream:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=drain, daemon=True).start()
        deadline = time.monotonic() + start_timeout
        while self.port is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                errors = self.errors()
                self.stop()
                raise BenchmarkError(
                    "%s server did not start within %ss:\n%s" % (name, start_timeout, errors)
                )
            try:
                line = lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                errors = self.errors()
                self.stop()
                raise BenchmarkError("%s server exited before listening:\n%s" % (name, errors))
            if line.startswith("LISTENING "):
                self.port = int(line.split()[1])

    @property
    def url(self):
        return "ws://127.0.0.1:%d/" % (self.port,)

    def errors(self, limit=4000):
        self.stderr.seek(0)
        return self.stderr.read()[-limit:]

    def stop(self):
        """Terminate (then kill) this subprocess; only this one, by its own handle."""
        if self.stderr.closed:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.stderr.close()


def run_loadgen(url, mode, calls, connections, inflight, payload, max_seconds, node="node"):
    """One bounded load run; returns the load generator's JSON result."""
    cmd = [
        node,
        LOADGEN,
        url,
        mode,
        str(connections),
        str(inflight),
        str(calls),
        str(max_seconds),
        str(payload),
    ]
    try:
        out = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=max_seconds + 30,
            cwd=ROOT,
            preexec_fn=_pinned(LOADGEN_CPUS),
        )
    except subprocess.TimeoutExpired:
        raise BenchmarkError("load generator hung past its own bound (%ss)" % (max_seconds,))
    lines = [l for l in out.stdout.splitlines() if l.startswith("{")]
    if not lines:
        raise BenchmarkError(
            "load generator (%s) printed no result (exit %d): %s"
            % (mode, out.returncode, out.stderr.strip()[-2000:])
        )
    result = json.loads(lines[-1])
    if out.returncode != 0:
        raise BenchmarkError(
            "load generator (%s) failed (exit %d): %s"
            % (mode, out.returncode, result.get("error") or out.stderr.strip()[-2000:])
        )
    return result


def _shown(path):
    """A script path relative to the checkout when inside it."""
    path = os.path.abspath(path)
    return os.path.relpath(path, ROOT) if path.startswith(ROOT + os.sep) else path


def _median(results, key):
    values = [r[key] for r in results if r.get(key) is not None]
    return statistics.median(values) if values else None


def run_wire(python, log=sys.stderr, node="node", prism_server=None, **options):
    """
    The whole over-the-wire comparison for one interpreter.

    @param prism_server: a script to run instead of C{prism_rpc_server.py}
        (same arguments and C{LISTENING} line), for A/B experiments.
    @return: a dict: interpreter, settings, the median C{bare} and C{prism}
        results, C{ratio} (prism rate / bare rate) and every round's results.
    """
    opts = dict(DEFAULTS)
    opts.update({k: v for k, v in options.items() if v is not None})
    if opts["rounds"] < 1 or opts["calls"] < 10 or opts["warmup_runs"] < 0:
        raise BenchmarkError("need --rounds >= 1, --calls >= 10 and --warmup-runs >= 0")
    ensure_node_deps(node=node, log=log)
    runs = opts["warmup_runs"] + opts["rounds"]
    # Each server outlives the whole comparison, and no longer.
    budget = int(runs * 2 * (opts["max_seconds"] + 30) + 120)
    load = dict(
        calls=opts["calls"],
        connections=opts["connections"],
        inflight=opts["inflight"],
        payload=opts["payload"],
        max_seconds=opts["max_seconds"],
        node=node,
    )
    summary = {
        "benchmark": "wire",
        "python": python,
        "implementation": describe_python(python),
        "settings": {k: opts[k] for k in sorted(opts)},
        "prism_server": _shown(prism_server or PRISM),
        "cpus": {
            "server": sorted(SERVER_CPUS) if SERVER_CPUS else None,
            "loadgen": sorted(LOADGEN_CPUS) if LOADGEN_CPUS else None,
        },
    }
    servers = []
    try:
        bare = Server("bare", python, BARE, budget)
        servers.append(bare)
        prism = Server("prism", python, prism_server or PRISM, budget)
        servers.append(prism)
        targets = [("bare", bare.url, "raw"), ("prism", prism.url, "prism")]
        rounds = {"bare": [], "prism": []}
        for i in range(runs):
            warm = i < opts["warmup_runs"]
            for name, url, mode in targets:
                r = run_loadgen(url, mode, **load)
                label = "warm-up" if warm else "round %d" % (i - opts["warmup_runs"] + 1)
                log.write(
                    "  %-8s %-5s %9.0f calls/s  p50 %6.2f ms  p99 %6.2f ms  load generator cpu %.2f\n"
                    % (label, name, r["rate"], r["p50_ms"], r["p99_ms"], r.get("loadgen_cpu") or 0)
                )
                log.flush()
                if not warm:
                    rounds[name].append(r)
        for s in servers:
            if s.proc.poll() is not None:
                raise BenchmarkError("%s server died during the run:\n%s" % (s.name, s.errors()))
    except BenchmarkError as e:
        # Add what the servers said: it is usually why a load run failed.
        said = "".join(
            "\n--- %s server stderr:\n%s" % (s.name, s.errors(1500))
            for s in servers
            if not s.stderr.closed and s.errors().strip()
        )
        raise BenchmarkError(str(e) + said) from None
    finally:
        for s in servers:
            s.stop()
    for name in ("bare", "prism"):
        rs = rounds[name]
        summary[name] = {
            "rate": _median(rs, "rate"),
            "p50_ms": _median(rs, "p50_ms"),
            "p99_ms": _median(rs, "p99_ms"),
            "bytes_per_call_out": rs[0]["bytes_per_call_out"],
            "bytes_per_call_in": rs[0]["bytes_per_call_in"],
            "rates": [r["rate"] for r in rs],
            "loadgen_cpu": _median(rs, "loadgen_cpu"),
        }
    summary["ratio"] = round(summary["prism"]["rate"] / summary["bare"]["rate"], 3)
    # Each prism round runs right after its bare round: the median of these
    # paired ratios is less sensitive to drifting background load.
    summary["round_ratios"] = [
        round(p["rate"] / b["rate"], 3) for b, p in zip(rounds["bare"], rounds["prism"])
    ]
    summary["ratio_paired_median"] = round(statistics.median(summary["round_ratios"]), 3)
    busy = [n for n in ("bare", "prism") if (summary[n]["loadgen_cpu"] or 0) > LOADGEN_BUSY]
    if busy:
        summary["warning"] = (
            "the load generator used more than %d%% of its core against %s: "
            "it may have limited that rate" % (LOADGEN_BUSY * 100, " and ".join(busy))
        )
    return summary


def format_summary(s):
    b, p = s["bare"], s["prism"]
    return "\n".join(
        [
            "%s  (%s)" % (s["implementation"], s["python"]),
            "  %-14s %12s %9s %9s %8s %8s"
            % ("server", "calls/s", "p50 ms", "p99 ms", "B out", "B in"),
            "  %-14s %12.0f %9.2f %9.2f %8.1f %8.1f"
            % ("bare Autobahn", b["rate"], b["p50_ms"], b["p99_ms"],
               b["bytes_per_call_out"], b["bytes_per_call_in"]),
            "  %-14s %12.0f %9.2f %9.2f %8.1f %8.1f"
            % ("Prism RPC", p["rate"], p["p50_ms"], p["p99_ms"],
               p["bytes_per_call_out"], p["bytes_per_call_in"]),
            "  ratio prism/bare: %.3f  (target >= 0.9; median of paired rounds %.3f: %s)"
            % (s["ratio"], s["ratio_paired_median"],
               ", ".join("%.3f" % r for r in s["round_ratios"])),
        ]
        + (["  WARNING: " + s["warning"]] if "warning" in s else [])
    )


def add_options(parser):
    parser.add_argument("--rounds", type=int, help="timed rounds per server (default 5)")
    parser.add_argument("--calls", type=int, help="calls per load run (default 300000)")
    parser.add_argument("--connections", type=int, help="connections (default 10)")
    parser.add_argument("--inflight", type=int, help="calls in flight per connection (default 10)")
    parser.add_argument("--payload", type=int, help="payload characters (default 64)")
    parser.add_argument("--max-seconds", type=float, help="time bound per load run (default 60)")
    parser.add_argument("--warmup-runs", type=int, help="untimed runs per server first (default 1)")
    parser.add_argument("--node", default="node", help="the Node.js binary (default: node)")


def wire_options(args):
    return {
        k: getattr(args, k)
        for k in ("rounds", "calls", "connections", "inflight", "payload", "max_seconds", "warmup_runs")
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument(
        "--python", default=sys.executable, help="interpreter for both servers (default: this one)"
    )
    parser.add_argument(
        "--prism-server",
        metavar="SCRIPT",
        help="run this script instead of prism_rpc_server.py (A/B experiments)",
    )
    add_options(parser)
    args = parser.parse_args(argv)
    try:
        summary = run_wire(
            args.python, node=args.node, prism_server=args.prism_server, **wire_options(args)
        )
    except (BenchmarkError, subprocess.SubprocessError) as e:
        sys.stderr.write("wire: %s\n" % (e,))
        return 1
    print(format_summary(summary))
    print(json.dumps(summary, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
