"""
The seed suite's session case (loopback.py case 4: echo, raw codec, the
service declares sessions) through three session stores, side by side in one
invocation: the memory store, and the Redis store with the session cache on
and off.

    python benchmarks/sessions.py [--count 20000] [--redis-url redis://127.0.0.1:PORT] [--json]

Without --redis-url it starts a private redis-server on a free port (nothing
kept on disk) and stops it at the end. It runs on the real reactor (Redis is
a real server): the client and the server talk through the in-process
loopback transport, so what differs between the rows is only the store.
With the cache on, the session is loaded once per connection; with it off,
every message costs one GETEX round trip to Redis (messages of a connection
stay in order, so they wait for one another: the rate is per connection).
"""

import argparse
import gc
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))


def _freePort():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class PrivateRedis:
    def __init__(self):
        if not shutil.which("redis-server"):
            raise SystemExit("sessions.py: redis-server not found (give --redis-url or install redis-server)")
        self.dir = tempfile.mkdtemp(prefix="prism-bench-redis.")
        self.port = _freePort()
        self.process = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--dir", self.dir,
             "--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", os.path.join(self.dir, "log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 5
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise SystemExit("sessions.py: could not start redis-server")
                time.sleep(0.05)
        self.url = "redis://127.0.0.1:{}".format(self.port)

    def stop(self):
        self.process.terminate()
        self.process.wait(5)
        shutil.rmtree(self.dir, ignore_errors=True)


async def _run(reactor, store, cache, count):
    from twisted.internet.defer import Deferred, succeed
    from twisted.internet.task import deferLater

    from prism.client import Client
    from prism.server import Server
    from prism.services.echo import EchoService
    from prism.transports.loopback import LoopbackTransport

    transport = LoopbackTransport()
    server = Server(transport=transport, reactor=reactor, secret=b"bench", sessionStore=store, cacheSessions=cache)
    server.service("echo", EchoService(codec="raw", sessions=True))
    server.start()
    client = Client(connector=lambda: succeed(transport.connect(server)), reactor=reactor, timeout=None, reconnect=False)
    await client.connect()
    echo = client.api.echo
    finished = Deferred()
    done = [0]
    message = "Hello"

    def received(value):
        done[0] += 1
        if done[0] == target[0] and not finished.called:
            finished.callback(None)

    echo.on(received)
    # Warm up: the new session is stored and (cache on) cached.
    target = [1]
    echo.send(message)
    await finished
    await deferLater(reactor, 0.05, lambda: None)
    finished = Deferred()
    done[0] = 0
    target[0] = count
    send = echo.send
    gc.collect()
    start = time.perf_counter()
    for _ in range(count):
        send(message)
    await finished
    elapsed = time.perf_counter() - start
    errors = []
    client.close()
    await server.stop()
    return count / elapsed, errors


async def main(reactor, args):
    from prism.sessions import MemorySessionStore
    from prism.stores.redis import RedisSessionStore

    private = None
    url = args.redis_url
    if url is None:
        private = PrivateRedis()
        url = private.url
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    impl = "{} {}".format(platform.python_implementation(), platform.python_version())
    print("Prism session benchmark on {}: loopback case 4 (echo with sessions), {} messages, best of {}; Redis at {}".format(
        impl, args.count, args.rounds, url))
    rows = [
        ("memory store, cache on", lambda: MemorySessionStore(reactor=reactor), True, args.count),
        ("redis store, cache on", None, True, args.count),
        ("redis store, cache off", None, False, args.cache_off_count or max(1000, args.count // 5)),
    ]
    results = []
    try:
        for name, makeStore, cache, count in rows:
            best = 0.0
            for _ in range(args.rounds):
                if makeStore is None:
                    store = RedisSessionStore(host=parts.hostname, port=parts.port, prefix="prism-bench:", ttl=600)
                else:
                    store = makeStore()
                rate, _ = await _run(reactor, store, cache, count)
                if makeStore is None:
                    await store.close()
                best = max(best, rate)
            results.append({"name": name, "messages_per_second": round(best), "count": count})
            print("  {:<24} {:>10,.0f} messages/s  ({} messages)".format(name, best, count))
        memory = results[0]["messages_per_second"]
        for r in results:
            r["vs_memory"] = round(r["messages_per_second"] / memory, 3)
        print("  ratios to the memory store: " + ", ".join("{} {:.2f}".format(r["name"], r["vs_memory"]) for r in results[1:]))
        if args.json:
            print(json.dumps({"implementation": impl, "redis": url, "sessions": results}))
    finally:
        if private is not None:
            private.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--count", type=int, default=20000, help="messages per run (cache on)")
    parser.add_argument("--cache-off-count", type=int, default=None, help="messages per run with the cache off (default count/5)")
    parser.add_argument("--rounds", type=int, default=3, help="best of N rounds")
    parser.add_argument("--redis-url", default=None, help="an existing Redis (default: start a private one)")
    parser.add_argument("--json", action="store_true", help="print one JSON summary line at the end")
    args = parser.parse_args()
    from twisted.internet import defer, task

    task.react(lambda reactor: defer.ensureDeferred(main(reactor, args)))
