"""
The C{memory} store of the C{models} service: one process, no I/O, every
call synchronous. Documents end with the process.
"""

import json
from collections import deque

from prism.services.models import _INITIAL

__all__ = ["MemoryModelStore"]

_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


class _Doc:
    __slots__ = ("version", "value", "log")

    def __init__(self, size):
        self.version = 0
        self.value = _INITIAL
        self.log = deque(maxlen=size)  # [version, ops], oldest first


class MemoryModelStore:
    """
    The interface every store of the C{models} service implements (each
    method may return its result or a L{Deferred} of it).

    @param historySize: changes kept per document.
    """

    name = "memory"

    def __init__(self, historySize=100):
        self.historySize = historySize
        self._docs = {}
        self._service = None

    def start(self, service):
        self._service = service

    def stop(self):
        return None

    def listen(self, name):
        """
        A connection of this node subscribes to C{name}: deliver its changes
        (C{service._changed}) from now on. Called for every new subscriber.

        @return: L{None}, or a L{Deferred} firing once changes are delivered.
        """
        return None

    def unlisten(self, name):
        """This node's last subscriber of C{name} left."""
        return None

    def load(self, name, base):
        """
        @param base: the version the caller hopes to find (a hint for
            caching stores).
        @return: C{(version, value)}; the value is the store's own object,
            not to be changed, or C{_INITIAL} for a document never changed.
        """
        doc = self._docs.get(name)
        return (0, _INITIAL) if doc is None else (doc.version, doc.value)

    def since(self, name, version):
        """
        @param version: the version the caller holds, or L{None}.
        @return: C{(current version, patches, value)}: when the kept changes
            cover everything after C{version}, C{patches} is the list of
            C{[version, ops]} since then, oldest first, and C{value}
            L{None}; otherwise C{patches} is L{None} and C{value} the
            current value (or C{_INITIAL}).
        """
        doc = self._docs.get(name)
        if doc is None:
            if version == 0:
                return 0, [], None
            return 0, None, _INITIAL
        current = doc.version
        if version is not None and version <= current:
            missed = current - version
            if missed == 0:
                return current, [], None
            log = doc.log
            if missed <= len(log):
                return current, [log[i] for i in range(len(log) - missed, len(log))], None
        return current, None, doc.value

    def commit(self, name, base, ops, value, text):
        """
        Store C{value} (C{text}: its JSON) as the next version if the
        document is at version C{base}, and deliver the change.

        @return: C{("ok", new version)} or C{("conflict", current version)}.
        """
        doc = self._docs.get(name)
        if doc is None:
            doc = self._docs[name] = _Doc(self.historySize)
        if doc.version != base:
            return ("conflict", doc.version)
        doc.version = version = base + 1
        doc.value = value
        doc.log.append([version, ops])
        self._service._changed(name, version, _encode(ops))
        return ("ok", version)

    def names(self):
        """@return: the names of the documents kept (changed at least once)."""
        return sorted(self._docs)
