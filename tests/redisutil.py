"""
Helpers for the tests that need a real Redis: the store harness of the
contract suite (tests/test_sessions.py), blocking waits for synchronous
tests, and a redis-server process a test starts, stops and restarts itself.
"""

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from urllib.parse import urlsplit

from twisted.python.failure import Failure

WAIT = 5.0


def hostPort(url):
    """@return: C{(host, port)} of a C{redis://host:port} URL."""
    parts = urlsplit(url)
    return parts.hostname, parts.port


def freePort():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _bounded(d):
    from twisted.internet import reactor

    return d.addTimeout(WAIT, reactor)


async def waitResult(d):
    """Wait (bounded) for C{d}; @return: its result."""
    return await _bounded(d)


async def waitFailure(d, *expected):
    """Wait (bounded) for C{d} to fail with one of C{expected}; @return: the L{Failure}."""
    results = []
    await _bounded(d).addBoth(results.append)
    result = results[0]
    if not isinstance(result, Failure):
        raise AssertionError("{!r} succeeded with {!r}".format(d, result))
    if expected and not result.check(*expected):
        raise AssertionError("{!r} failed with {!r}, not {!r}".format(d, result.value, expected))
    return result


def redisCli(port, *args):
    """@return: redis-cli's output (stripped) for one command."""
    out = subprocess.run(
        ["redis-cli", "-h", "127.0.0.1", "-p", str(port)] + [str(a) for a in args],
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    return out.stdout.strip()


async def passTime(store, seconds):
    """
    Make C{seconds} pass for the keys of C{store}: shorten each key's TTL by
    that much (PEXPIRE), deleting keys whose time is up. Real Redis, no
    sleeping.
    """
    keys = await waitResult(store._command("KEYS", store.prefix + "*"))
    for key in keys:
        pttl = await waitResult(store._command("PTTL", key))
        if pttl < 0:
            continue
        remaining = pttl - int(seconds * 1000)
        if remaining <= 0:
            await waitResult(store._command("DEL", key))
        else:
            await waitResult(store._command("PEXPIRE", key, remaining))


DELETE_MATCHING = "for _, k in ipairs(redis.call('KEYS', ARGV[1])) do redis.call('DEL', k) end"


def deleteKeys(port, pattern, host="127.0.0.1"):
    """Delete the keys matching C{pattern} (a test's own prefix) with redis-cli."""
    subprocess.run(
        ["redis-cli", "-h", host, "-p", str(port), "EVAL", DELETE_MATCHING, "0", pattern],
        capture_output=True,
        timeout=WAIT,
    )


def redisHarnessStore(request, ttl=60, codec=None, **options):
    """
    @return: a L{RedisSessionStore} on the private Redis of the test run
        with a key prefix of its own, whose keys are deleted and whose
        connections are closed at the end of the test.
    """
    from prism.stores.redis import RedisSessionStore

    host, port = hostPort(request.getfixturevalue("redis_url"))
    options.setdefault("prefix", "prism-test:{}:".format(secrets.token_hex(6)))
    store = RedisSessionStore(host=host, port=port, ttl=ttl, codec=codec, **options)

    def cleanup():
        store.close()
        deleteKeys(port, store.prefix + "*", host)

    request.addfinalizer(cleanup)
    return store


class RedisProcess:
    """
    A redis-server of the test's own, on a free port (TCP) or a unix socket,
    with nothing kept on disk; L{stop} and L{start} again keep the address.
    """

    def __init__(self, unix=False):
        self.dir = tempfile.mkdtemp(prefix="prism-redis-test.")
        self.port = freePort()
        self.unix = os.path.join(self.dir, "redis.sock") if unix else None
        self.process = None

    @property
    def url(self):
        return "redis://127.0.0.1:{}".format(self.port)

    def start(self):
        args = [
            "redis-server",
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", self.dir,
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--logfile", os.path.join(self.dir, "redis.log"),
        ]
        if self.unix:
            args += ["--unixsocket", self.unix, "--unixsocketperm", "700"]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + WAIT
        while redisCli(self.port, "PING") != "PONG":
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("redis-server did not start on port {}".format(self.port))
            time.sleep(0.05)
        return self

    def stop(self):
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            process.wait(WAIT)

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
