"""
Per-channel history and the recovery rule shared by both engines.

A channel with history numbers its publications 1, 2, 3, … (the I{offset})
within an I{epoch}, a random string chosen when the channel's history is
created. When a history expires or is lost (a restart of the memory engine,
Redis flushed), the offsets start again under a new epoch, and a client
still holding the old epoch cannot recover: it is told so and resyncs.
"""

import secrets
from collections import deque

__all__ = ["newEpoch", "recovery", "MemoryHistory"]


def newEpoch():
    """@return: a fresh epoch: a short string that never looks like a number."""
    return "e" + secrets.token_hex(5)


def recovery(entries, top, epoch, offset, clientEpoch):
    """
    Decide whether a client that has seen everything up to C{offset} in
    C{clientEpoch} can recover.

    @param entries: the retained publications after C{offset}, as
        C{(offset, data)} in increasing order.
    @param top: the channel's latest offset (0: nothing published).
    @param epoch: the channel's current epoch.
    @return: C{(recovered, publications)}: on success, every publication
        the client missed, in order (possibly none); otherwise C{False, []}.
    """
    if clientEpoch != epoch or offset > top or offset < 0:
        return False, []
    if offset == top:
        return True, []
    missed = [(o, d) for o, d in entries if o > offset]
    if not missed or missed[0][0] != offset + 1 or missed[-1][0] != top:
        return False, []
    return True, missed


class _Stream:
    __slots__ = ("entries", "top", "epoch", "touched")

    def __init__(self, size, now):
        self.entries = deque(maxlen=size)
        self.top = 0
        self.epoch = newEpoch()
        self.touched = now


class MemoryHistory:
    """
    Ring buffers of the last C{size} publications per channel; a channel's
    history is dropped C{ttl} seconds after its last publication, and its
    entries are not returned once older than C{ttl}.

    @param seconds: the clock (C{reactor.seconds}).
    """

    def __init__(self, size, ttl, seconds):
        self.size = size
        self.ttl = ttl
        self._seconds = seconds
        self._streams = {}

    def _stream(self, channel, create):
        now = self._seconds()
        stream = self._streams.get(channel)
        if stream is not None and now - stream.touched > self.ttl:
            del self._streams[channel]
            stream = None
        if stream is None and create:
            stream = self._streams[channel] = _Stream(self.size, now)
        return stream, now

    def add(self, channel, data):
        """@return: C{(offset, epoch)} of the new publication."""
        stream, now = self._stream(channel, True)
        stream.top += 1
        stream.touched = now
        stream.entries.append((stream.top, data, now))
        return stream.top, stream.epoch

    def position(self, channel):
        """@return: C{(top offset, epoch)}; a new epoch for an empty channel."""
        stream, _ = self._stream(channel, True)
        return stream.top, stream.epoch

    def recover(self, channel, offset, epoch):
        """@return: C{(recovered, publications, top, epoch)}."""
        stream, now = self._stream(channel, True)
        oldest = now - self.ttl
        entries = [(o, d) for o, d, t in stream.entries if o > offset and t >= oldest]
        recovered, missed = recovery(entries, stream.top, stream.epoch, offset, epoch)
        return recovered, missed, stream.top, stream.epoch

    def sweep(self):
        """Drop the histories of channels idle for longer than C{ttl}."""
        now = self._seconds()
        for channel in [c for c, s in self._streams.items() if now - s.touched > self.ttl]:
            del self._streams[channel]

    def __len__(self):
        return len(self._streams)
