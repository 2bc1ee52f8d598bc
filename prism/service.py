"""
Run a Prism server as a L{twisted.application.service.IService}: a child of
an existing L{Application <twisted.application.service.Application>}/L{MultiService
<twisted.application.service.MultiService>}, or the service C{twistd prism}
builds.

For example::

    from prism.service import PrismService
    PrismService(server, ["tcp:3001"]).setServiceParent(application)
"""

from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred, succeed
from twisted.logger import Logger

__all__ = ["OrderedMultiService", "PrismService"]


class PrismService(Service):
    """
    Starts C{server} and listens on C{endpoints} when started; stops it
    gracefully (clients are told the server is going away) when stopped,
    after draining for C{drainTime} seconds.

    @param drainTime: seconds to drain (L{prism.server.Server.drain}: health
        checks fail, so a load balancer sends new clients elsewhere, while
        connected clients keep working and the ports keep accepting) before
        the graceful stop. C{0}, the default, stops at once.
    @ivar ports: the listening ports, once started.
    """

    log = Logger()

    closeTimeout = 5.0
    """Seconds L{stopService} waits for clients to complete the closing handshake."""

    def __init__(self, server, endpoints=(), drainTime=0):
        self.server = server
        self.endpoints = list(endpoints)
        self.drainTime = drainTime
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
        Drain for C{drainTime} seconds (less the time already spent
        draining, if an operator started it), then stop gracefully; the
        returned L{Deferred} fires once every client has completed its
        closing handshake (or C{closeTimeout} seconds passed), so that
        C{twistd} and C{twist} do not tear down connections that are still
        closing when they stop the reactor.
        """
        Service.stopService(self)
        d = self._drainFirst()
        d.addCallback(lambda _: self._gracefulStop())
        return d

    def _drainFirst(self):
        """@return: a L{Deferred} firing once the drain time has passed."""
        server = self.server
        if not self.drainTime or not server.running:
            return succeed(None)
        server.drain()
        since = getattr(server, "drainedAt", None)
        elapsed = server.reactor.seconds() - since if since is not None else 0
        remaining = max(0.0, self.drainTime - elapsed)
        if not remaining:
            return succeed(None)
        self.log.info(
            "Prism draining for {seconds:.1f} s before stopping ({count} client(s) connected)",
            seconds=remaining,
            count=len(server.connections),
        )
        from twisted.internet.task import deferLater

        return deferLater(server.reactor, remaining, lambda: None)

    def _gracefulStop(self):
        """Stop the server gracefully, then wait for the closing handshakes."""
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


class OrderedMultiService(MultiService):
    """
    A L{MultiService} that stops its children one at a time, the last added
    first, each once the previous one has stopped (L{MultiService} stops
    them all at once). The configuration's service tree adds the admin
    listener before the Prism service, so that health checks answer 503
    during the drain and the graceful stop rather than being refused.
    """

    def stopService(self):
        Service.stopService(self)
        children = list(self)
        children.reverse()
        d = succeed(None)
        for child in children:
            d.addCallback(lambda _, child=child: maybeDeferred(child.stopService))
            d.addErrback(self._stopFailed, child)
        return d

    def _stopFailed(self, failure, child):
        PrismService.log.failure("stopping {child} failed", failure=failure, child=child)
