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
    @ivar kind: the error kind sent with C{reason} (C{dropped} when
        L{None}); also the C{reason} label of the drop in the
        C{prism_middleware_drops_total} metric (C{docs/metrics.md}), so a
        silent drop may have one too (C{Drop(kind="rate_limited")}).
    """

    __slots__ = ("reason", "kind")

    def __init__(self, reason=None, kind=None):
        self.reason = reason
        self.kind = kind

    def __repr__(self):
        if self.kind is not None:
            return "Drop({!r}, kind={!r})".format(self.reason, self.kind)
        return "Drop({!r})".format(self.reason)


DROP = Drop()
"""Drop the request silently."""


class Chain:
    """
    An ordered list of middleware.

    L{run} returns the final request, a L{Drop}, or a L{Deferred} firing with
    one of those when some middleware went asynchronous. Exceptions raised by
    synchronous middleware propagate to the caller, which contains them.

    @ivar droppedBy: the middleware that dropped (or raised on) the last
        request refused, for metrics; read it right after L{run} returned a
        L{Drop} or raised, or in the callbacks of the L{Deferred} it
        returned.
    """

    droppedBy = None

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
        step = None
        try:
            while i < n:
                step = steps[i]
                result = step(request)
                i += 1
                if result is request:
                    continue
                if isinstance(result, Drop):
                    self.droppedBy = step
                    return result
                if iscoroutine(result):
                    result = Deferred.fromCoroutine(result)
                if isinstance(result, Deferred):
                    return result.addCallbacks(self._resume, self._failed, (i, step), None, (step,))
                if result is None:
                    raise TypeError(
                        "middleware {!r} returned None; return the request, DROP or Drop(reason)".format(step)
                    )
                request = result
        except Exception:
            self.droppedBy = step
            raise
        return request

    def _resume(self, result, i, step=None):
        if isinstance(result, Drop):
            self.droppedBy = step
            return result
        if result is None:
            self.droppedBy = step
            raise TypeError("asynchronous middleware returned None")
        return self.run(result, i)

    def _failed(self, failure, step):
        self.droppedBy = step
        return failure


# Module level on purpose: a Logger stored as a class attribute is a
# descriptor that renames itself after the class, losing this namespace.
# The server's logRequests events use it too (prism.server).
_requestLog = Logger(namespace="prism.request")


def _requestFields(request):
    """The fields every C{prism.request} event carries (C{docs/logging.md})."""
    conn = request.connection
    return {
        "connection": conn.id,
        "peer": conn.peer,
        "transport": conn.transport,
        "service": request.service,
        "method": getattr(request, "method", None),
        "callbackId": request.callbackId,
        "size": request.size,
    }


@implementer(IMiddleware)
class LogRequests:
    """
    Log every request through L{twisted.logger} as it passes this point of
    the chain, and pass it on: one event, namespace C{prism.request}, with
    the fields C{connection} (id), C{peer}, C{transport}, C{service},
    C{method}, C{callbackId} and C{size} (C{docs/logging.md}; C{connectionId}
    repeats C{connection}, for older observers). The server's
    C{logRequests} option logs requests when they are done instead, with
    their latency.
    """

    name = "log"

    def __call__(self, request):
        fields = _requestFields(request)
        _requestLog.info(
            "{peer} -> {service} cb={callbackId} ({size} bytes)", connectionId=fields["connection"], **fields
        )
        return request
