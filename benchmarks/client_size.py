"""
The size of the generated JavaScript client (docs/javascript-client.md).

Builds the ES-module client for a few configurations on the WebSocket
transport, minifies it with esbuild (`npm ci` at the repository root) and
compresses it with gzip -9, then prints raw, minified and min+gzip sizes.

    .venv/bin/python benchmarks/client_size.py           # a Markdown table
    .venv/bin/python benchmarks/client_size.py --json

The headline target is min+gzip <= 3 KB (3072 bytes) for WebSocket + RPC.
"""

import argparse
import gzip
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prism.server import Server  # noqa: E402
from prism.services.echo import EchoService  # noqa: E402
from prism.services.models import ModelsService  # noqa: E402
from prism.services.rpc import RPCService  # noqa: E402
from prism.services.pubsub import PubSubService  # noqa: E402

TARGET = 3072

CONFIGURATIONS = [
    ("WebSocket + RPC", [("rpc", RPCService)]),
    ("WebSocket + echo", [("echo", EchoService)]),
    ("WebSocket + RPC + echo", [("rpc", RPCService), ("echo", EchoService)]),
    ("WebSocket + RPC + pubsub", [("rpc", RPCService), ("pubsub", PubSubService)]),
    ("WebSocket + models", [("models", ModelsService)]),
    ("WebSocket + RPC + models", [("rpc", RPCService), ("models", ModelsService)]),
]


def measure(services, format="esm"):
    server = Server(secret=b"size")
    for name, factory in services:
        server.service(name, factory())
    raw = server.build_client(format=format).encode("utf-8")
    small = server.build_client(format=format, minify=True).encode("utf-8")
    return {
        "raw": len(raw),
        "raw_gzip": len(gzip.compress(raw, 9)),
        "min": len(small),
        "min_gzip": len(gzip.compress(small, 9)),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--format", default="esm", choices=["esm", "script", "cjs"])
    options = parser.parse_args(argv)
    rows = [(label, measure(services, options.format)) for label, services in CONFIGURATIONS]
    if options.json:
        print(json.dumps({label: sizes for label, sizes in rows}, indent=2))
        return 0
    print("| client ({}) | raw | raw+gzip | minified | min+gzip |".format(options.format))
    print("|---|---:|---:|---:|---:|")
    for label, s in rows:
        print("| {} | {:,} B | {:,} B | {:,} B | **{:,} B** |".format(label, s["raw"], s["raw_gzip"], s["min"], s["min_gzip"]))
    headline = rows[0][1]["min_gzip"]
    print()
    print(
        "WebSocket + RPC, min+gzip: {} bytes ({:.2f} KB); target <= {} bytes: {}".format(
            headline, headline / 1024, TARGET, "met" if headline <= TARGET else "MISSED"
        )
    )
    return 0 if headline <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
