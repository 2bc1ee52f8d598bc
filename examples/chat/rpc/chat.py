"""
The chat's RPC methods. Each takes the request (L{withRequest}) to reach the
session (the nickname lives there, so it survives reloads and reconnects)
and the server-side API of the C{chat} service.

Errors a user can cause are raised as C{ServiceError("invalid", …)}: the
browser's C{app.api.rpc.call(…)} Promise rejects with an C{Error} whose
C{kind} is C{"invalid"}, and the page shows its message.
"""

from prism.server import ServiceError
from prism.services.rpc import withRequest

__all__ = ["join", "nick", "post"]

MAX_NICK = 24
MAX_TEXT = 500
ANONYMOUS = "anonymous"


def _nick(request):
    return request.session.get("nick") or ANONYMOUS


@withRequest
def join(request):
    """@return: C{{"nick": …, "history": [message, …]}}, for a page that (re)connects."""
    return {"nick": _nick(request), "history": request.server.api.chat.history()}


@withRequest
def nick(request, name):
    """Set this session's nickname; tells the room. @return: the nickname."""
    if not isinstance(name, str) or not name.strip():
        raise ServiceError("invalid", "a nickname cannot be empty")
    name = " ".join(name.split())
    if len(name) > MAX_NICK:
        raise ServiceError("invalid", "a nickname has at most {} characters".format(MAX_NICK))
    old = _nick(request)
    if name != old:
        request.session["nick"] = name
        text = "{} joined".format(name) if old == ANONYMOUS else "{} is now known as {}".format(old, name)
        request.server.api.chat.broadcast({"notice": True, "nick": name, "text": text})
    return name


@withRequest
def post(request, text):
    """Post C{text} to the room as this session's nickname. @return: the message id."""
    if not isinstance(text, str) or not text.strip():
        raise ServiceError("invalid", "cannot post an empty message")
    text = text.strip()
    if len(text) > MAX_TEXT:
        raise ServiceError("invalid", "a message has at most {} characters".format(MAX_TEXT))
    return request.server.api.chat.broadcast({"nick": _nick(request), "text": text})["id"]
