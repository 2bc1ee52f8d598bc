"""
Plugin descriptors for dropins in C{twisted/plugins/}.

A dropin only instantiates descriptors; each names its implementation by
dotted path, resolved with L{namedAny <twisted.python.reflect.namedAny>}
when the plugin is first used, so that importing a dropin does no work and
never installs a reactor::

    # twisted/plugins/prism_mypackage.py
    from prism.plugin import ServicePlugin

    chat = ServicePlugin("chat", "mypackage.chat.ChatService", "Chat rooms.")
"""

from twisted.plugin import IPlugin
from zope.interface import implementer

from prism.interfaces import (
    IMiddlewarePlugin,
    IServicePlugin,
    ISessionStorePlugin,
    ITransportPlugin,
)

__all__ = ["ServicePlugin", "TransportPlugin", "MiddlewarePlugin", "SessionStorePlugin"]


class _Plugin:
    def __init__(self, name, implementation, description=""):
        self.name = name
        self.implementation = implementation
        self.description = description

    def load(self):
        from twisted.python.reflect import namedAny

        return namedAny(self.implementation)

    def __repr__(self):
        return "<{} {!r} -> {}>".format(type(self).__name__, self.name, self.implementation)


@implementer(IPlugin, IServicePlugin)
class ServicePlugin(_Plugin):
    """Names an L{prism.interfaces.IService} factory."""


@implementer(IPlugin, ITransportPlugin)
class TransportPlugin(_Plugin):
    """Names an L{prism.interfaces.ITransport} factory."""


@implementer(IPlugin, IMiddlewarePlugin)
class MiddlewarePlugin(_Plugin):
    """Names an L{prism.interfaces.IMiddleware} factory."""


@implementer(IPlugin, ISessionStorePlugin)
class SessionStorePlugin(_Plugin):
    """Names an L{prism.interfaces.ISessionStore} factory."""
