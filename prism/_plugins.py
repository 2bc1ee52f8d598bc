"""
The one registry that maps plugin names to plugins, per kind.

Discover once (for example when building a server from a config file) and
pass the result down; never call L{getPlugins} per connection.
"""

from twisted.plugin import getPlugins

from prism.errors import PrismPluginError
from prism.interfaces import (
    IMiddlewarePlugin,
    IServicePlugin,
    ISessionStorePlugin,
    ITransportPlugin,
)

KINDS = {
    "service": IServicePlugin,
    "transport": ITransportPlugin,
    "middleware": IMiddlewarePlugin,
    "session_store": ISessionStorePlugin,
}


class Registry:
    """
    Plugins of one kind, by name.

    @param kind: one of C{"service"}, C{"transport"}, C{"middleware"},
        C{"session_store"}.
    @param plugins: the plugins to register; by default those found by
        L{getPlugins} in C{package} (the C{twisted.plugins} namespace).
    @raise PrismPluginError: if two plugins claim the same name.
    """

    def __init__(self, kind, plugins=None, package=None):
        if kind not in KINDS:
            raise PrismPluginError(
                "unknown plugin kind {!r}; kinds: {}".format(kind, ", ".join(sorted(KINDS)))
            )
        self.kind = kind
        if plugins is None:
            plugins = getPlugins(KINDS[kind], package) if package is not None else getPlugins(KINDS[kind])
        self._byName = {}
        for plugin in plugins:
            existing = self._byName.get(plugin.name)
            if existing is not None:
                raise PrismPluginError(
                    "two {} plugins are named {!r}: {!r} and {!r}".format(
                        kind, plugin.name, existing, plugin
                    )
                )
            self._byName[plugin.name] = plugin

    def names(self):
        """@return: the sorted list of registered names."""
        return sorted(self._byName)

    def get(self, name):
        """
        @return: the plugin registered as C{name}.
        @raise PrismPluginError: naming the plugins available, if none is.
        """
        try:
            return self._byName[name]
        except KeyError:
            raise PrismPluginError(
                "unknown {} plugin {!r}; available: {}".format(
                    self.kind, name, ", ".join(self.names()) or "(none)"
                )
            ) from None

    def load(self, name):
        """@return: the implementation the plugin named C{name} names."""
        return self.get(name).load()

    def create(self, name, /, **options):
        """@return: an instance of the implementation, built with C{options}."""
        return self.load(name)(**options)

    def __contains__(self, name):
        return name in self._byName

    def __iter__(self):
        return iter(self.names())


def registry(kind, package=None):
    """Discover the plugins of C{kind}; see L{Registry}."""
    return Registry(kind, package=package)
