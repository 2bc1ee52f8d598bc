"""
The example application of examples/scaling/ (docs/scaling.md): three RPC
handlers and the pubsub authorization hook. Replace it with your own.

    scaling_app.whoami()         -> {"node": ..., "address": ...}
    scaling_app.remember(value)  -> true; kept in the session (in Redis)
    scaling_app.recall()         -> the value remembered, from any node
"""

import os
import socket

from prism.services.rpc import withRequest

__all__ = ["whoami", "remember", "recall"]  # the RPC methods (authorize is not one)


@withRequest
def whoami(request):
    """Which node serves this connection (C{PRISM_NODE}, or host:pid), and the client's address."""
    node = os.environ.get("PRISM_NODE") or "{}:{}".format(socket.gethostname(), os.getpid())
    return {"node": node, "address": request.connection.address}


@withRequest
def remember(request, value):
    request.session["remembered"] = value
    return True


@withRequest
def recall(request):
    return request.session.get("remembered")


def authorize(request, action, channel):
    """Clients may subscribe to, publish on and see the presence of C{chat.*} channels."""
    return channel.startswith("chat.")
