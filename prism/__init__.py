"""
Prism: a fast, modular realtime server for Twisted.

The core multiplexes I{Realtime Services} over one connection per client, runs
a middleware chain on every incoming message and manages sessions; every
feature (RPC, echo, and later PubSub, model syncing, live reload) is a plugin.

Importing this package is cheap: it never imports the reactor or txredisapi.
"""

__all__ = ["Server", "DROP", "Drop", "__version__"]

__version__ = "0.1.0"


def __getattr__(name):
    # Lazy re-exports keep `import prism` (and every plugin dropin) cheap.
    if name == "Server":
        from prism.server import Server

        return Server
    if name in ("DROP", "Drop"):
        from prism import middleware

        return getattr(middleware, name)
    raise AttributeError("module 'prism' has no attribute {!r}".format(name))
