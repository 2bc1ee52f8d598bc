"""
How every Prism benchmark server runs: listen on 127.0.0.1 once it is
ready, print C{LISTENING <port>} for the parent to read, and stop by itself
after C{maxSeconds} (a bound in case the parent dies).
"""

import sys


def serveUntil(server, reactor, port, maxSeconds, name, ready=lambda: True):
    """
    Run C{reactor} with C{server} listening on C{127.0.0.1:port} (0: any
    free port) as soon as C{ready()} is true (polled every 50 ms: a Redis
    engine connecting, say).
    """

    def listen():
        if not ready():
            reactor.callLater(0.05, listen)
            return
        server.listen("tcp:%d:interface=127.0.0.1" % (port,)).addCallbacks(listening, failed)

    def listening(listeningPort):
        sys.stdout.write("LISTENING %d\n" % (listeningPort.getHost().port,))
        sys.stdout.flush()

    def failed(f):
        sys.stderr.write("%s: cannot listen: %s\n" % (name, f.getTraceback()))
        reactor.stop()

    reactor.callWhenRunning(listen)
    reactor.callLater(maxSeconds, reactor.stop)
    reactor.run()
