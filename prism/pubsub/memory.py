"""
The C{memory} engine of the C{pubsub} service: one process, no I/O.

Publishing delivers synchronously to the local subscribers of the channel
and of every matching pattern; history is a L{MemoryHistory} ring buffer
per channel; presence is a dict per channel.
"""

from fnmatch import fnmatchcase

from prism.pubsub.history import MemoryHistory

__all__ = ["MemoryEngine"]


class MemoryEngine:
    """See the module docstring and C{docs/pubsub.md}."""

    name = "memory"

    def __init__(self):
        self._service = None
        self._history = None
        self._presence = {}  # channel -> {connection id: info}
        self._sweep = None

    def start(self, service):
        self._service = service
        reactor = service.server.reactor
        if service.historySize:
            self._history = MemoryHistory(service.historySize, service.historyTtl, reactor.seconds)
            self._sweep = reactor.callLater(service.historyTtl, self._sweepHistory)

    def _sweepHistory(self):
        self._history.sweep()
        self._sweep = self._service.server.reactor.callLater(self._service.historyTtl, self._sweepHistory)

    def stop(self):
        sweep, self._sweep = self._sweep, None
        if sweep is not None and sweep.active():
            sweep.cancel()
        return None

    # -- subscriptions: nothing to set up in one process

    def listen(self, key, isPattern):
        return None

    def unlisten(self, key, isPattern):
        return None

    # -- publishing

    def publish(self, channel, data, exclude=None):
        """@return: C{(offset, epoch)}, or C{(None, None)} without history."""
        service = self._service
        offset = epoch = None
        if self._history is not None and service.historyFor(channel):
            offset, epoch = self._history.add(channel, data)
        service._deliverExact(channel, data, offset, epoch, exclude)
        for pattern in service._matchingPatterns(channel, fnmatchcase):
            service._deliverPattern(pattern, channel, data, offset, epoch, exclude)
        return offset, epoch

    def control(self, kind, target, channel, data):
        self._service._control(kind, target, channel, data)
        return None

    # -- history

    def position(self, channel):
        return self._history.position(channel)

    def recover(self, channel, offset, epoch):
        return self._history.recover(channel, offset, epoch)

    # -- presence

    def join(self, channel, connectionId, info):
        members = self._presence.setdefault(channel, {})
        if connectionId not in members:
            members[connectionId] = info
            self._service._presenceEvent("join", channel, info)
        return None

    def leave(self, channel, connectionId):
        members = self._presence.get(channel)
        if members is None or connectionId not in members:
            return None
        info = members.pop(connectionId)
        if not members:
            del self._presence[channel]
        self._service._presenceEvent("leave", channel, info)
        return None

    def presence(self, channel):
        return list(self._presence.get(channel, {}).values())
