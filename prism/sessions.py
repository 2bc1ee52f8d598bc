"""
Sessions: signed session tokens, the L{Session} mapping services see, and the
in-memory L{MemorySessionStore} (the default store, with expiry).

A session id is 32 characters of base64url (192 random bits). Clients only
ever hold the I{token}: the id and its HMAC-SHA256 signature, so the server
never adopts an id it did not issue.
"""

import base64
import hashlib
import hmac
import json
import secrets

from twisted.internet.defer import fail, succeed
from zope.interface import implementer

from prism.errors import NoSuchSession
from prism.interfaces import ISession, ISessionStore

try:
    from collections.abc import MutableMapping
except ImportError:  # pragma: no cover
    from collections import MutableMapping

__all__ = ["newSessionId", "sign", "verify", "Session", "MemorySessionStore"]


def newSessionId():
    """@return: a fresh, unguessable session id (192 random bits)."""
    return secrets.token_urlsafe(24)


def _mac(secret, sessionId):
    if isinstance(secret, str):
        secret = secret.encode("utf-8")
    digest = hmac.new(secret, sessionId.encode("ascii"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def sign(secret, sessionId):
    """@return: the token C{sessionId + "." + signature}."""
    return sessionId + "." + _mac(secret, sessionId)


def verify(secret, token):
    """
    @return: the session id inside C{token} if its signature is valid for
        C{secret}, else L{None}.
    """
    if not isinstance(token, str) or len(token) > 256:
        return None
    sessionId, dot, signature = token.rpartition(".")
    if not dot or not sessionId:
        return None
    try:
        expected = _mac(secret, sessionId)
    except (UnicodeEncodeError, ValueError):
        return None
    if hmac.compare_digest(expected.encode("ascii"), signature.encode("utf-8", "replace")):
        return sessionId
    return None


@implementer(ISession)
class Session(MutableMapping):
    """
    A session's data as services see it: a mutable mapping that records
    whether it changed, so the server writes it back only when it did.

    Nested values are not tracked: after mutating a nested list or dict in
    place, call L{touch} (or reassign the key).
    """

    __slots__ = ("id", "_data", "dirty", "_store")

    def __init__(self, sessionId, data, store):
        self.id = sessionId
        self._data = data
        self.dirty = False
        self._store = store

    def __getitem__(self, key):
        return self._data[key]

    def __setitem__(self, key, value):
        self._data[key] = value
        self.dirty = True

    def __delitem__(self, key):
        del self._data[key]
        self.dirty = True

    def __iter__(self):
        return iter(self._data)

    def __len__(self):
        return len(self._data)

    def __repr__(self):
        return "<Session {}… {!r}>".format(self.id[:6], self._data)

    def touch(self):
        """Mark the session changed (after an in-place nested mutation)."""
        self.dirty = True

    def save(self):
        if not self.dirty:
            return succeed(None)
        self.dirty = False
        return self._store.save(self.id, self._data).addErrback(self._saveFailed)

    def _saveFailed(self, failure):
        # Not stored: still dirty, so it is written again with the next
        # change, on disconnect or on server.stop(). (Data the store refuses
        # outright, such as non-JSON values, is not retried.)
        if not failure.check(TypeError, ValueError):
            self.dirty = True
        return failure


_jsonEncode = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode
_jsonDecode = json.JSONDecoder().decode


@implementer(ISessionStore)
class MemorySessionStore:
    """
    Sessions in this process's memory, each expiring C{ttl} seconds after it
    was last used. Data is copied in and out, so callers never share mutable
    state with the store, and must be JSON-compatible (checked on save).

    Fine for development and single-node deployments; use a shared store
    (Redis) to scale out.

    @param ttl: seconds of inactivity after which a session expires.
    @param reactor: provides C{seconds()}; the global reactor by default.
    """

    def __init__(self, ttl=86400, reactor=None):
        self.ttl = ttl
        self._reactor = reactor
        self._sessions = {}
        self._saves = 0

    def _now(self):
        if self._reactor is None:
            from twisted.internet import reactor

            self._reactor = reactor
        return self._reactor.seconds()

    def _live(self, sessionId, now):
        entry = self._sessions.get(sessionId)
        if entry is None:
            return None
        if entry[0] <= now:
            del self._sessions[sessionId]
            return None
        return entry

    def load(self, sessionId):
        now = self._now()
        entry = self._live(sessionId, now)
        if entry is None:
            return fail(NoSuchSession(sessionId))
        entry[0] = now + self.ttl
        return succeed(_jsonDecode(entry[1]))

    def save(self, sessionId, data):
        # Kept encoded, as a shared store keeps it: every load is a fresh
        # copy, and the data comes back exactly as from Redis (tuples as
        # lists, keys as strings).
        try:
            encoded = _jsonEncode(dict(data))
        except (TypeError, ValueError) as e:
            return fail(TypeError("session data must be JSON-compatible: {}".format(e)))
        now = self._now()
        self._sessions[sessionId] = [now + self.ttl, encoded]
        self._saves += 1
        if self._saves % 1000 == 0:
            self._sweep(now)
        return succeed(None)

    def touch(self, sessionId):
        now = self._now()
        entry = self._live(sessionId, now)
        if entry is None:
            return fail(NoSuchSession(sessionId))
        entry[0] = now + self.ttl
        return succeed(None)

    def delete(self, sessionId):
        self._sessions.pop(sessionId, None)
        return succeed(None)

    def _sweep(self, now):
        for sessionId in [k for k, v in self._sessions.items() if v[0] <= now]:
            del self._sessions[sessionId]

    def __len__(self):
        self._sweep(self._now())
        return len(self._sessions)
