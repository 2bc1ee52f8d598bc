"""
Helpers for the heavy real-socket tests (test_scale, test_backpressure):
the Node.js client script, resident memory, raw WebSocket frames.
"""

import json
import os
import shutil
import struct
from pathlib import Path

from twisted.internet.defer import Deferred
from twisted.internet.protocol import ProcessProtocol

ROOT = Path(__file__).resolve().parent.parent
WSCLIENTS = Path(__file__).resolve().parent / "js" / "wsclients.js"


def rss():
    """@return: this process's resident set size, in bytes."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def resetPeakRSS():
    """Reset VmHWM (Linux >= 4.0); @return: whether it could."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peakRSS():
    """@return: VmHWM, the peak resident set size, in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc/self/status")


def raiseFileLimit(wanted):
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class NodeClients(ProcessProtocol):
    """Runs tests/js/wsclients.js; C{lines} collects its JSON output."""

    def __init__(self):
        self.lines = []
        self.err = b""
        self._out = b""
        self.ended = Deferred()
        self._waiting = []

    def outReceived(self, data):
        self._out += data
        while b"\n" in self._out:
            line, self._out = self._out.split(b"\n", 1)
            self.lines.append(json.loads(line))
            waiting, self._waiting = self._waiting, []
            for key, d in waiting:
                if key in self.lines[-1]:
                    d.callback(self.lines[-1])
                else:
                    self._waiting.append((key, d))

    def errReceived(self, data):
        self.err += data

    def processEnded(self, reason):
        self.exitCode = reason.value.exitCode
        for _, d in self._waiting:
            d.errback(AssertionError("wsclients.js ended ({}): {}".format(self.exitCode, self.err.decode()[-2000:])))
        self._waiting = []
        self.ended.callback(self.exitCode)

    def line(self, key):
        """@return: a Deferred firing with the first output line holding C{key}."""
        for line in self.lines:
            if key in line:
                d = Deferred()
                d.callback(line)
                return d
        d = Deferred()
        self._waiting.append((key, d))
        return d


def spawnNode(reactor, *args):
    node = shutil.which("node")
    assert node, "node is required (scripts/test installs it)"
    proto = NodeClients()
    transport = reactor.spawnProcess(
        proto, node, [node, str(WSCLIENTS)] + [str(a) for a in args], env=dict(os.environ), path=str(ROOT)
    )
    return proto, transport


def mask(payload, key=b"\x01\x02\x03\x04"):
    """Mask a client frame's payload quickly (whole 8-byte words)."""
    n = len(payload)
    k = int.from_bytes((key * ((n + 3) // 4))[:n], "big")
    return (int.from_bytes(payload, "big") ^ k).to_bytes(n, "big") if n else b""


def clientFrame(payload, opcode=0x1, rsv1=False, length=None):
    """@return: a masked client frame; C{length} may lie about the size."""
    key = b"\x01\x02\x03\x04"
    n = len(payload) if length is None else length
    first = 0x80 | (0x40 if rsv1 else 0) | opcode
    if n < 126:
        head = struct.pack("!BB", first, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", first, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", first, 0x80 | 127, n)
    return head + key + mask(payload, key)


def closeCode(data):
    """@return: the code of the first close frame the server sent after its HTTP response, or None."""
    body = data.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in data else b""
    i = 0
    while i + 2 <= len(body):
        opcode = body[i] & 0x0F
        n = body[i + 1] & 0x7F
        j = i + 2
        if n == 126:
            n = struct.unpack("!H", body[j : j + 2])[0]
            j += 2
        elif n == 127:
            n = struct.unpack("!Q", body[j : j + 8])[0]
            j += 8
        if opcode == 0x8:
            return struct.unpack("!H", body[j : j + 2])[0] if n >= 2 and len(body) >= j + 2 else None
        i = j + n
    return None
