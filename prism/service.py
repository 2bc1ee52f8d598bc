"""
Run a Prism server as a L{twisted.application.service.IService}: a child of
an existing L{Application}/L{MultiService}, or the service C{twistd prism}
builds.

    from prism.service import PrismService
    PrismService(server, ["tcp:3001"]).setServiceParent(application)
"""

from twisted.application.service import Service
from twisted.internet.defer import DeferredList
from twisted.logger import Logger

__all__ = ["PrismService"]


class PrismService(Service):
    """
    Starts C{server} and listens on C{endpoints} when started; stops it
    gracefully (clients are told the server is going away) when stopped.

    @ivar ports: the listening ports, once started.
    """

    log = Logger()

    def __init__(self, server, endpoints=()):
        self.server = server
        self.endpoints = list(endpoints)
        self.ports = []
        self.listening = None

    def startService(self):
        Service.startService(self)
        self.server.start()
        waits = []
        for endpoint in self.endpoints:
            d = self.server.listen(endpoint)
            d.addCallback(self.ports.append)
            d.addErrback(self._listenFailed, endpoint)
            waits.append(d)
        self.listening = DeferredList(waits)

    def _listenFailed(self, failure, endpoint):
        self.log.failure("Prism cannot listen on {endpoint}", failure=failure, endpoint=endpoint)
        from twisted.internet.error import ReactorNotRunning

        try:
            self.server.reactor.stop()
        except ReactorNotRunning:
            pass

    def stopService(self):
        Service.stopService(self)
        return self.server.stop()
