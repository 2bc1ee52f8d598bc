"""
The middleware chain every incoming message passes before its service.

A middleware is any callable C{mw(request)} (see
L{prism.interfaces.IMiddleware}) returning the request to pass on (possibly
transformed), L{DROP} or a L{Drop} with a reason for the client, or a
L{Deferred}/coroutine resolving to one of those. The chain stays synchronous
(no L{Deferred} allocated) until a middleware actually returns something
asynchronous.
"""

from inspect import iscoroutine

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from zope.interface import implementer

from prism.interfaces import IMiddleware

__all__ = ["DROP", "Drop", "Chain", "LogRequests"]


class Drop:
    """
    Returned by a middleware to drop a request.

    @ivar reason: a message for the client (sent as a C{dropped} error when
        the request has a callback id), or L{None} to drop silently.
    """

    __slots__ = ("reason",)

    def __init__(self, reason=None):
        self.reason = reason

    def __repr__(self):
        return "Drop({!r})".format(self.reason)


DROP = Drop()
"""Drop the request silently."""


class Chain:
    """
    An ordered list of middleware.

    L{run} returns the final request, a L{Drop}, or a L{Deferred} firing with
    one of those when some middleware went asynchronous. Exceptions raised by
    synchronous middleware propagate to the caller, which contains them.
    """

    def __init__(self, steps=()):
        self._steps = list(steps)

    def append(self, step):
        self._steps.append(step)

    def __len__(self):
        return len(self._steps)

    def __bool__(self):
        return bool(self._steps)

    def run(self, request, i=0):
        steps = self._steps
        n = len(steps)
        while i < n:
            result = steps[i](request)
            i += 1
            if result is request:
                continue
            if isinstance(result, Drop):
                return result
            if iscoroutine(result):
                result = Deferred.fromCoroutine(result)
            if isinstance(result, Deferred):
                return result.addCallback(self._resume, i)
            if result is None:
                raise TypeError(
                    "middleware {!r} returned None; return the request, DROP or Drop(reason)".format(
                        steps[i - 1]
                    )
                )
            request = result
        return request

    def _resume(self, result, i):
        if isinstance(result, Drop):
            return result
        if result is None:
            raise TypeError("asynchronous middleware returned None")
        return self.run(result, i)


# Module level on purpose: a Logger stored as a class attribute is a
# descriptor that renames itself after the class, losing this namespace.
_requestLog = Logger(namespace="prism.request")


@implementer(IMiddleware)
class LogRequests:
    """
    Log every request through L{twisted.logger} (event
    C{prism.request}: connection, service, callback id, size) and pass it on.
    """

    def __call__(self, request):
        _requestLog.info(
            "{peer} -> {service} cb={callbackId} ({size} bytes)",
            peer=request.connection.peer,
            connectionId=request.connection.id,
            service=request.service,
            callbackId=request.callbackId,
            size=request.size,
        )
        return request
