"""
Run every Prism benchmark, on CPython and on PyPy: the one benchmark command.

    python3 benchmarks/run_all.py

For each interpreter found (C{.venv/bin/python}, CPython, and
C{.venv-pypy/bin/python}, PyPy, both made by C{scripts/test}; or those given
with C{--python}, repeatable) it runs:

  1. C{benchmarks/loopback.py}, the in-process loopback benchmarks, if present,
     with that interpreter;
  2. the over-the-wire benchmark (C{benchmarks/wire.py}): Prism RPC echo next
     to a bare Autobahn echo server, both measured by the Node.js load
     generator in alternating rounds, and their ratio.

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

LOOPBACK = os.path.join(HERE, "loopback.py")
DEFAULT_PYTHONS = [
    os.path.join(ROOT, ".venv", "bin", "python"),
    os.path.join(ROOT, ".venv-pypy", "bin", "python"),
]
LOOPBACK_TIMEOUT = 900


def run_loopback(python, log):
    """Run benchmarks/loopback.py, passing its output through; its last JSON line is its result."""
    log.write("\n--- loopback (in-process) benchmarks: %s\n" % (python,))
    log.flush()
    try:
        out = subprocess.run(
            [python, LOOPBACK, "--json"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=wire.python_env(),
            cwd=ROOT,
            timeout=LOOPBACK_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        return {"error": "loopback.py ran past %ss" % (LOOPBACK_TIMEOUT,)}
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
        return {"error": "loopback.py exited with %d" % (out.returncode,), "result": result}
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
    parser.add_argument("--skip-wire", action="store_true", help="skip the over-the-wire benchmark")
    parser.add_argument("--json", metavar="PATH", help="also write the JSON summary to PATH")
    wire.add_options(parser)
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
