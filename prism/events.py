"""
The event bus shared by the server (C{server.events}) and the Python client.
"""

from twisted.logger import Logger

__all__ = ["EventBus"]


class EventBus:
    """
    Named events with synchronous handlers; a failing handler is logged and
    never disturbs the others.

    The server's bus (C{server.events}) carries C{connect} (connection),
    C{disconnect} (connection, code, reason), C{error} (an
    L{prism.server.ErrorEvent}), C{drop} (connection, service, reason) and any
    event a service emits (named C{"<service>.<event>"}). The Python client
    uses one for its own events (C{open}, C{close}, C{reconnect}, …).
    """

    log = Logger()

    def __init__(self):
        self._handlers = {}

    def on(self, event, handler):
        """Call C{handler(*args)} whenever C{event} is emitted; returns C{handler}."""
        self._handlers.setdefault(event, []).append(handler)
        return handler

    def off(self, event, handler):
        """Stop calling C{handler} for C{event}."""
        handlers = self._handlers.get(event, [])
        if handler in handlers:
            handlers.remove(handler)

    def has(self, event):
        return bool(self._handlers.get(event))

    def emit(self, event, *args):
        for handler in tuple(self._handlers.get(event, ())):
            try:
                handler(*args)
            except Exception:
                self.log.failure("event handler {handler!r} for {event} failed", handler=handler, event=event)
