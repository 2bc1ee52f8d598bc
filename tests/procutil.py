"""
The one process protocol the tests use to run subprocesses (node, twistd,
the browser drivers) through the reactor, without blocking it.
"""

from twisted.internet.defer import Deferred
from twisted.internet.protocol import ProcessProtocol


class Collect(ProcessProtocol):
    """
    Collects a subprocess's output.

    @ivar out: stdout chunks. @ivar err: stderr chunks.
    @ivar output: stdout and stderr together, in arrival order.
    @ivar exitCode: the exit code (L{None} when killed by a signal).
    @ivar signal: the signal that killed it, if any.
    @ivar ended: fires with C{exitCode} when the process has ended.
    """

    def __init__(self):
        self.out = []
        self.err = []
        self.output = b""
        self.ended = Deferred()
        self.exitCode = self.signal = None

    def outReceived(self, data):
        self.out.append(data)
        self.output += data

    def errReceived(self, data):
        self.err.append(data)
        self.output += data

    def processEnded(self, reason):
        self.exitCode = getattr(reason.value, "exitCode", None)
        self.signal = getattr(reason.value, "signal", None)
        self.ended.callback(self.exitCode)

    @property
    def text(self):
        return self.output.decode("utf-8", "replace")
