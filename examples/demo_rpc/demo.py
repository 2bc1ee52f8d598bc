"""
The demo's RPC methods: C{demo.add}, C{demo.greet}, C{demo.later},
C{demo.whoami}.
"""

from prism.server import ServiceError
from prism.services.rpc import withRequest

__all__ = ["add", "greet", "later", "whoami"]


def add(a, b):
    """A plain function: its return value is the result."""
    return a + b


def greet(name):
    """Raise L{ServiceError} to choose the error kind the client sees."""
    if not isinstance(name, str) or not name:
        raise ServiceError("invalid", "greet() takes a non-empty name")
    return "Hello, {}!".format(name)


async def later(seconds, value):
    """An C{async def} handler: the reply is sent when it returns."""
    from twisted.internet import reactor
    from twisted.internet.task import deferLater

    await deferLater(reactor, min(float(seconds), 5.0), lambda: None)
    return value


@withRequest
def whoami(request):
    """A handler that sees the request: connection id, client address, transport."""
    connection = request.connection
    return {"connection": connection.id, "peer": connection.peer, "transport": connection.transport}
