"""
A convenient base class for services.

Subclasses set the class attributes and override L{messageReceived}; the
rest of L{prism.interfaces.IService} gets sensible defaults.
"""

from zope.interface import implementer

from prism.interfaces import IService

__all__ = ["Service"]


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
