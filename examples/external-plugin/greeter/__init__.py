"""
An external Prism service: C{greeter}.

Clients send a name as a request and get a greeting back::

    await client.api.greeter.request("Ada")        # -> "Hello, Ada!"

Server-side code pushes a message to every connected client::

    server.api.greeter.greet_all("Good morning!")
"""

from prism.server import ServiceError
from prism.services.base import Service

__all__ = ["GreeterService", "GreeterAPI"]


class GreeterAPI:
    """The server-side API, published as C{server.api.greeter}."""

    def __init__(self, service):
        self._service = service

    def greet_all(self, text):
        """
        Push C{text} to every connection that completed its handshake.

        @return: the number of connections it was sent to.
        """
        return self._service.broadcast(text)


class GreeterService(Service):
    """
    @param greeting: the format of a greeting; C{{name}} is replaced.
    """

    codec = "json"
    callbacks = True

    def __init__(self, greeting="Hello, {name}!"):
        self.greeting = greeting

    def start(self, server, serviceId, name):
        Service.start(self, server, serviceId, name)
        return GreeterAPI(self)

    def messageReceived(self, request):
        name = request.payload
        if not isinstance(name, str) or not name:
            raise ServiceError("handler", "send a name (a non-empty string)")
        return self.greeting.format(name=name)

    def broadcast(self, text):
        sent = 0
        for connection in list(self.server.connections.values()):
            if connection.welcomed and connection.open:
                self.push(connection, text)
                sent += 1
        return sent
