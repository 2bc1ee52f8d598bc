"""
Log observer factories for the runners (C{docs/logging.md}).

C{twistd --logger} takes the dotted name of a factory called with no
argument; Twisted's own L{twisted.logger.jsonFileLogObserver} needs a file,
so it cannot be named there directly. This one can::

    twistd -n --logger=prism.logs.jsonObserver prism --config prism.toml --log-requests

(C{twist --log-format=json} needs nothing: C{twist} writes JSON itself.)

Importing this module imports nothing but L{twisted.logger}.
"""

import sys

from twisted.logger import jsonFileLogObserver

__all__ = ["jsonObserver"]


def jsonObserver():
    """
    @return: an observer writing every event as one JSON record
        (L{twisted.logger.jsonFileLogObserver}: each record starts with the
        ASCII record separator C{\\x1e} and ends with a newline) to standard
        output, for a supervisor (systemd, Docker, Kubernetes) to collect.
        Read such a stream back with L{twisted.logger.eventsFromJSONLogFile}.
    """
    return jsonFileLogObserver(sys.stdout)
