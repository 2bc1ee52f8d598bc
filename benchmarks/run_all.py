"""
Run every Prism benchmark, on CPython and on PyPy: the one benchmark command.

    python3 benchmarks/run_all.py

For each interpreter found (C{.venv/bin/python}, CPython, and
C{.venv-pypy/bin/python}, PyPy, both made by C{scripts/test}; or those given
with C{--python}, repeatable) it runs:

  1. C{benchmarks/loopback.py}, the in-process loopback benchmarks, if present,
     with that interpreter;
  2. C{benchmarks/sessions.py}: the session case (loopback case 4) through
     the memory store and the Redis store with the cache on and off (it
     starts a private redis-server);
  3. the over-the-wire benchmark (C{benchmarks/wire.py}): Prism RPC echo next
     to a bare Autobahn echo server, both measured by the Node.js load
     generator in alternating rounds, and their ratio;
  4. C{benchmarks/transports.py}: round trips per second and p99 over each
     transport and mode (WebSocket; SockJS websocket, xhr-streaming,
     xhr-polling, eventsource; Engine.IO polling, websocket, upgrade) at 10
     connections (C{--skip-transports} omits it);
  5. the pubsub fan-out benchmark (C{benchmarks/fanout.py}): 1,000
     subscribers on one Prism node, on two nodes through Redis, and in a
     Node.js Socket.IO room, with the ratios (C{--skip-fanout} omits it);
  6. the models benchmark (C{benchmarks/models.py}): 10 writers on one
     document (accepted patches/s, conflict rate, vs an RPC echo) and the
     propagation of a change to 100 subscribers (p50/p99, vs pubsub), on
     the memory and the Redis store (C{--skip-models} omits it).

It prints a table and, as its last line, one JSON summary. It exits non-zero
if any benchmark failed. Every load is bounded in count and time and targets
127.0.0.1 only. This runner needs only the standard library; the servers run
under the interpreter being measured, with the checkout on C{PYTHONPATH}.
"""

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import wire  # noqa: E402  (benchmarks/wire.py, a sibling script)
import fanout  # noqa: E402  (benchmarks/fanout.py: pubsub fan-out vs Socket.IO)
import models  # noqa: E402  (benchmarks/models.py: shared documents, memory and Redis stores)

LOOPBACK = os.path.join(HERE, "loopback.py")
SESSIONS = os.path.join(HERE, "sessions.py")
TRANSPORTS = os.path.join(HERE, "transports.py")
DEFAULT_PYTHONS = [
    os.path.join(ROOT, ".venv", "bin", "python"),
    os.path.join(ROOT, ".venv-pypy", "bin", "python"),
]
LOOPBACK_TIMEOUT = 900


def run_loopback(python, log, script=None, title="loopback (in-process) benchmarks"):
    """Run benchmarks/loopback.py (or C{script}), passing its output through; its last JSON line is its result."""
    script = script or LOOPBACK
    log.write("\n--- %s: %s\n" % (title, python))
    log.flush()
    try:
        out = subprocess.run(
            [python, script, "--json"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=wire.python_env(),
            cwd=ROOT,
            timeout=LOOPBACK_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        return {"error": "%s ran past %ss" % (os.path.basename(script), LOOPBACK_TIMEOUT)}
    log.write(out.stdout)
    log.flush()
    result = None
    for line in reversed(out.stdout.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                result = json.loads(line)
            except ValueError:
                continue
            break
    if out.returncode != 0:
        return {"error": "%s exited with %d" % (os.path.basename(script), out.returncode), "result": result}
    return result if result is not None else {"output": out.stdout[-4000:]}


def format_table(entries):
    rows = [
        "%-28s %12s %12s %7s %9s %9s"
        % ("interpreter", "bare/s", "prism/s", "ratio", "bare p99", "prism p99")
    ]
    for e in entries:
        w = e.get("wire")
        name = e.get("implementation") or e["python"]
        if w is None or "error" in w:
            rows.append("%-28s %s" % (name, (w or {}).get("error", "wire: skipped")))
            continue
        rows.append(
            "%-28s %12.0f %12.0f %7.3f %7.2fms %7.2fms"
            % (name, w["bare"]["rate"], w["prism"]["rate"], w["ratio"],
               w["bare"]["p99_ms"], w["prism"]["p99_ms"])
        )
    return "\n".join(rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument(
        "--python",
        action="append",
        help="an interpreter to benchmark (repeatable; default: .venv and .venv-pypy)",
    )
    parser.add_argument("--skip-loopback", action="store_true", help="skip benchmarks/loopback.py")
    parser.add_argument("--skip-transports", action="store_true", help="skip benchmarks/transports.py (round trips per transport and mode)")
    parser.add_argument("--skip-sessions", action="store_true", help="skip benchmarks/sessions.py (memory vs Redis stores)")
    parser.add_argument("--skip-wire", action="store_true", help="skip the over-the-wire benchmark")
    parser.add_argument("--skip-fanout", action="store_true", help="skip the pubsub fan-out benchmark (benchmarks/fanout.py)")
    parser.add_argument("--skip-models", action="store_true", help="skip the models benchmark (benchmarks/models.py)")
    parser.add_argument("--soak", action="store_true", help="also run the soak benchmark (benchmarks/soak.py: a million messages, RSS over time; long)")
    parser.add_argument("--json", metavar="PATH", help="also write the JSON summary to PATH")
    wire.add_options(parser)
    fanout.add_options(parser)
    models.add_options(parser)
    args = parser.parse_args(argv)
    log = sys.stdout

    pythons = args.python or [p for p in DEFAULT_PYTHONS if os.path.exists(p)]
    if not pythons:
        sys.stderr.write(
            "run_all: no interpreter: neither .venv nor .venv-pypy exists "
            "(scripts/test creates both), and no --python was given\n"
        )
        return 1

    started = time.time()
    entries = []
    failed = False
    for python in pythons:
        entry = {"python": python}
        try:
            entry["implementation"] = wire.describe_python(python)
        except (OSError, subprocess.SubprocessError) as e:
            entry["error"] = "cannot run %s: %s" % (python, e)
            entries.append(entry)
            failed = True
            continue
        log.write("\n===== %s (%s) =====\n" % (entry["implementation"], python))
        log.flush()

        if not args.skip_loopback:
            if os.path.exists(LOOPBACK):
                entry["loopback"] = run_loopback(python, log)
                failed = failed or "error" in entry["loopback"]
            else:
                log.write("(benchmarks/loopback.py does not exist yet: skipped)\n")
                entry["loopback"] = None

        if not args.skip_sessions:
            entry["sessions"] = run_loopback(python, log, SESSIONS, "session stores (loopback case 4: memory, redis cache on/off)")
            failed = failed or "error" in entry["sessions"]

        if not args.skip_transports:
            entry["transports"] = run_loopback(python, log, TRANSPORTS, "round trips per transport and mode (websocket, sockjs, engineio)")
            failed = failed or "error" in entry["transports"]

        if not args.skip_wire:
            log.write("\n--- over the wire: Prism RPC echo vs bare Autobahn echo\n")
            log.flush()
            try:
                entry["wire"] = wire.run_wire(
                    python, log=log, node=args.node, **wire.wire_options(args)
                )
                log.write(wire.format_summary(entry["wire"]) + "\n")
            except (wire.BenchmarkError, OSError, subprocess.SubprocessError) as e:
                log.write("wire benchmark failed: %s\n" % (e,))
                entry["wire"] = {"error": str(e)}
                failed = True

        if not args.skip_fanout:
            log.write("\n--- fan-out: Prism pubsub (1 node, 2 nodes + Redis) vs a Socket.IO room\n")
            log.flush()
            try:
                entry["fanout"] = fanout.run_fanout(python, log=log, node=args.node, **fanout.fanout_options(args))
                log.write(fanout.format_summary(entry["fanout"]) + "\n")
            except (wire.BenchmarkError, OSError, subprocess.SubprocessError) as e:
                log.write("fan-out benchmark failed: %s\n" % (e,))
                entry["fanout"] = {"error": str(e)}
                failed = True

        if not args.skip_models:
            log.write("\n--- models: 10 writers on one document, a change to 100 subscribers (memory and Redis stores)\n")
            log.flush()
            try:
                entry["models"] = models.run_models(python, log=log, node=args.node, **models.models_options(args))
                log.write(models.format_summary(entry["models"]) + "\n")
            except (wire.BenchmarkError, OSError, subprocess.SubprocessError) as e:
                log.write("models benchmark failed: %s\n" % (e,))
                entry["models"] = {"error": str(e)}
                failed = True

        if args.soak:
            log.write("\n--- soak: one million messages, server RSS over time (benchmarks/soak.py)\n")
            log.flush()
            out = subprocess.run(
                [sys.executable, os.path.join(HERE, "soak.py"), "--python", python],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
            )
            log.write(out.stdout)
            try:
                entry["soak"] = json.loads(out.stdout.strip().splitlines()[-1])
            except (ValueError, IndexError):
                entry["soak"] = {"error": "soak.py failed (exit %s)" % (out.returncode,)}
            failed = failed or out.returncode != 0
        entries.append(entry)

    summary = {
        "benchmarks": entries,
        "seconds": round(time.time() - started, 1),
        "target_ratio": 0.9,
    }
    if not args.skip_wire:
        log.write("\n===== over the wire: Prism / bare Autobahn (target >= 0.9) =====\n")
        log.write(format_table(entries) + "\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=2, sort_keys=True)
            f.write("\n")
    log.write(json.dumps(summary, sort_keys=True) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
