"""
Run a Prism server as a L{twisted.application.service.IService}: a child of
an existing L{Application}/L{MultiService}, or the service C{twistd prism}
builds.

    from prism.service import PrismService
    PrismService(server, ["tcp:3001"]).setServiceParent(application)
"""

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList
from twisted.logger import Logger

__all__ = ["PrismService"]


class PrismService(Service):
    """
    Starts C{server} and listens on C{endpoints} when started; stops it
    gracefully (clients are told the server is going away) when stopped.

    @ivar ports: the listening ports, once started.
    """

    log = Logger()

    closeTimeout = 5.0
    """Seconds L{stopService} waits for clients to complete the closing handshake."""

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
        """
        Stop gracefully; the returned L{Deferred} fires once every client
        has completed its closing handshake (or C{closeTimeout} seconds
        passed), so that C{twistd} and C{twist} do not tear down connections
        that are still closing when they stop the reactor.
        """
        Service.stopService(self)
        d = self.server.stop()
        d.addCallback(lambda _: self._drained())
        return d

    def _drained(self):
        server = self.server
        if not server.connections:
            return None
        done = Deferred()

        def check(*args):
            if not server.connections and not done.called:
                finish()

        def finish():
            server.events.off("disconnect", check)
            if timer.active():
                timer.cancel()
            for conn in list(server.connections.values()):  # overdue: drop them
                self.log.info("dropping {peer}: no closing handshake in time", peer=conn.peer)
                conn.connectionLost(1006, "server stopped")
            done.callback(None)

        timer = server.reactor.callLater(self.closeTimeout, finish)
        server.events.on("disconnect", check)
        return done
