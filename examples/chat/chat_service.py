"""
The C{chat} service: a room that pushes every message to every connection.

Clients never write to it: they post through RPC (C{chat.post}, in
C{examples/chat/rpc/chat.py}), which validates the text, reads the nickname
from the session and calls this service's server-side API::

    server.api.chat.broadcast({"nick": "ada", "text": "hello"})

Each connection then receives the push C{["message", message]} (message
gains an C{id} and a timestamp C{at}). The service keeps the last
C{keep} messages for C{server.api.chat.history()}, which the page fetches
(through C{chat.join}) when it connects or reconnects.

It needs no browser half of its own: the generated client's generic
handle already gives C{app.api.chat.on(handler)} for pushes.
"""

from collections import deque
from itertools import count

from prism.server import ServiceError
from prism.services.base import Service

__all__ = ["ChatService", "ChatAPI"]

class ChatAPI:
    """The server-side API of the C{chat} service (C{server.api.chat})."""

    def __init__(self, service):
        self._service = service

    def broadcast(self, message):
        """
        Stamp C{message} (a dict) with an C{id} and C{at} (seconds since the
        epoch), remember it, and push it to every connection.

        @return: the stamped message.
        """
        return self._service.broadcast(message)

    def history(self):
        """@return: the remembered messages, oldest first."""
        return list(self._service.messages)


class ChatService(Service):
    """
    @param keep: how many messages to remember for clients that join later.
    """

    codec = "json"

    def __init__(self, keep=50):
        self.messages = deque(maxlen=int(keep))
        self._ids = count(1)

    def start(self, server, serviceId, name):
        Service.start(self, server, serviceId, name)
        return ChatAPI(self)

    def broadcast(self, message):
        message = dict(message, id=next(self._ids), at=round(self.server.reactor.seconds(), 3))
        self.messages.append(message)
        push = ["message", message]
        for connection in list(self.server.connections.values()):
            if connection.open and connection.welcomed:
                self.push(connection, push)
        self.emit("message", message)
        return message

    def messageReceived(self, request):
        raise ServiceError("invalid", "the chat service only pushes; post with the rpc method chat.post")

    def clientScript(self):
        return None  # the generic handle (send, request, on, off) is enough
