"""
The C{echo} service: every message goes back to its sender unchanged — as
the result of the request when it carries a callback id, as a push otherwise.

Useful to check a deployment end to end, and the subject of the benchmarks.
"""

from prism.errors import PrismConfigError
from prism.services.base import Service
from prism.wire import CODECS

__all__ = ["EchoService"]

class EchoService(Service):
    """
    @param codec: C{"raw"} (the default), C{"json"} or C{"msgpack"}.
    @param sessions: declare a need for sessions (each message then sees
        C{request.session}); for benchmarks and tests.
    """

    callbacks = True

    def __init__(self, codec="raw", sessions=False):
        if codec not in CODECS:
            raise PrismConfigError("echo: unknown codec {!r}; codecs: {}".format(codec, ", ".join(sorted(CODECS))))
        self.codec = codec
        self.sessions = bool(sessions)

    def messageReceived(self, request):
        if request.callbackId is None:
            request.connection.send(request.serviceId, request.payload)
            return None
        return request.payload

    def clientScript(self):
        """
        Echo has no client half of its own: the generated client's generic
        handle (C{send}, C{request}, C{on}, C{off}) is all it needs.
        """
        return None
