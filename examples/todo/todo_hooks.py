"""
The todo demo's C{authorize} hook for the C{models} service
(C{examples/todo/prism.toml}: C{authorize = "todo_hooks.authorize"}).

The service asks it before every open (C{action} C{"read"}) and every
change (C{"write"}) a client makes; the server's own API is not asked.
"""

__all__ = ["authorize"]


def authorize(request, action, name):
    """
    Everyone may read and write every todo list (the documents
    C{todo:<list>}), and nothing else.

    A stricter hook reads the session (with C{sessions = true} on the
    service), for instance::

        return action == "read" or request.session.get("user") is not None

    @param request: the client's request (C{request.connection},
        C{request.session}).
    @param action: C{"read"} or C{"write"}.
    @param name: the document's name, e.g. C{"todo:shared"}.
    @return: whether to allow it (a L{bool}; a Deferred or coroutine of
        one would do too).
    """
    return action in ("read", "write") and name.startswith("todo:")
