"""
A convenient base class for services.

Subclasses set the class attributes and override L{messageReceived}; the
rest of L{prism.interfaces.IService} gets sensible defaults.
"""

from inspect import iscoroutine

from twisted.internet.defer import Deferred
from zope.interface import implementer

from prism.errors import PrismConfigError
from prism.interfaces import IService

__all__ = ["Service", "then", "resolveCallable", "checkAllowed"]


def then(result, f, *args):
    """
    Call C{f(value, *args)} now when C{result} is a plain value, or when it
    fires when it is a L{Deferred} or a coroutine: the synchronous path
    allocates no L{Deferred}.
    """
    if iscoroutine(result):
        result = Deferred.fromCoroutine(result)
    if isinstance(result, Deferred):
        return result.addCallback(f, *args)
    return f(result, *args)


def resolveCallable(value, what, owner):
    """
    @param value: L{None}, a callable, or the dotted name of one (from a
        configuration file).
    @param what: the option's name, for errors.
    @param owner: the service's name, for errors.
    @return: L{None} or the callable.
    @raise PrismConfigError: for anything else, or a name that does not import.
    """
    if value is None or callable(value):
        return value
    if isinstance(value, str):
        from twisted.python.reflect import namedAny

        try:
            value = namedAny(value)
        except Exception as e:
            raise PrismConfigError("{}: cannot import {} {!r}: {}".format(owner, what, value, e)) from None
        if callable(value):
            return value
    raise PrismConfigError("{}: {} must be a callable or a dotted name of one".format(owner, what))


def checkAllowed(allowed, action, target, f, args):
    """
    The verdict of an C{authorize(request, action, target)} hook: call
    C{f(*args)} if it allowed C{action}, else raise a C{forbidden} error.
    """
    if not allowed:
        from prism.server import ServiceError

        raise ServiceError("forbidden", "{} on {!r} is not allowed".format(action, target))
    return f(*args)


@implementer(IService)
class Service:
    codec = "json"
    callbacks = False
    sessions = False
    private = False

    server = None
    serviceId = None
    name = None

    def start(self, server, serviceId, name):
        self.server = server
        self.serviceId = serviceId
        self.name = name
        return None

    def stop(self):
        return None

    def connected(self, connection):
        pass

    def disconnected(self, connection):
        pass

    def messageReceived(self, request):
        raise NotImplementedError

    def clientScript(self):
        return None

    def browserAssets(self):
        return []

    # helpers for subclasses

    def push(self, connection, value):
        """Send C{value} to one connection on this service."""
        connection.send(self.serviceId, value)

    def emit(self, event, *args):
        """Emit C{"<name>.<event>"} on the server's event bus."""
        self.server.events.emit("{}.{}".format(self.name, event), *args)
