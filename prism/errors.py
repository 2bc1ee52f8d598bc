"""
Prism's exceptions. Every error Prism raises derives from L{PrismError}.
"""

__all__ = [
    "PrismError",
    "PrismConfigError",
    "PrismPluginError",
    "ProtocolError",
    "SessionError",
    "NoSuchSession",
    "SessionStoreUnavailable",
    "RemoteError",
    "CallTimeout",
    "ConnectionLost",
]


class PrismError(Exception):
    """Base class of every Prism error."""


class PrismConfigError(PrismError):
    """A server or plugin was configured with invalid options."""


class PrismPluginError(PrismError):
    """A plugin name is unknown, or two plugins claim the same name."""


class ProtocolError(PrismError):
    """
    A frame or payload broke the wire protocol.

    @ivar kind: the protocol error kind (C{"malformed"}, C{"unknown_service"},
        C{"decode"}, C{"too_large"}; see C{docs/protocol.md}).
    """

    def __init__(self, kind, message):
        PrismError.__init__(self, message)
        self.kind = kind
        self.message = message


class SessionError(PrismError):
    """A session could not be loaded, saved or verified."""


class NoSuchSession(SessionError):
    """The store has no (unexpired) session with that id."""


class SessionStoreUnavailable(SessionError):
    """The session store cannot be reached, or did not answer in time."""

    def __init__(self, detail=None):
        message = "session store unavailable"
        SessionError.__init__(self, message if not detail else "{} ({})".format(message, detail))


class RemoteError(PrismError):
    """
    The server answered a request with an error (client side).

    @ivar kind: the error kind sent by the server (C{"handler"},
        C{"unknown_method"}, …).
    @ivar message: the server's message.
    @ivar traceback: the server-side traceback, when the server runs in debug
        mode, else L{None}.
    """

    def __init__(self, kind, message, traceback=None):
        PrismError.__init__(self, "{}: {}".format(kind, message))
        self.kind = kind
        self.message = message
        self.traceback = traceback


class CallTimeout(RemoteError):
    """No reply arrived before the request's timeout (client side)."""

    def __init__(self, message):
        RemoteError.__init__(self, "timeout", message)


class ConnectionLost(PrismError):
    """The connection closed before a reply arrived (client side)."""
