"""
The private system service (id 0): the handshake (hello → welcome), session
binding and discovery. See C{docs/protocol.md}.
"""

from prism.errors import NoSuchSession, SessionStoreUnavailable
from prism.server import NO_REPLY, PROTOCOL_VERSION, REFUSED_COOKIE, SYSTEM, ServiceError
from prism.services.base import Service
from prism.sessions import newSessionId, verify


class SystemService(Service):
    codec = "json"
    callbacks = True
    private = True

    def messageReceived(self, request):
        payload = request.payload
        if not isinstance(payload, list) or not payload or not isinstance(payload[0], str):
            raise ServiceError("malformed", "system messages are [command, …] arrays")
        command = payload[0]
        if command == "hello":
            return self._hello(request, payload[1] if len(payload) > 1 else {})
        if command == "discover":
            return self.server.services()
        if command == "ping":
            return "pong"
        raise ServiceError("malformed", "unknown system command {!r}".format(command))

    def _hello(self, request, options):
        conn = request.connection
        server = self.server
        if not isinstance(options, dict):
            raise ServiceError("malformed", "hello takes an object")
        if conn.welcomed:
            raise ServiceError("malformed", "hello was already sent on this connection")
        if conn.refusedCookie and server.debug:
            conn.sendError(SYSTEM, None, "session", REFUSED_COOKIE)
        token = options.get("session")
        if token is not None and conn._newSession:
            sessionId = verify(server.secret, token)
            if sessionId is None:
                # Reported like any error about a frame without callback
                # id: to the client only in debug mode.
                server._error("session", "refused a session token with a bad signature", conn, None, None, None)
            else:
                conn.sessionId = sessionId
                conn._newSession = False
                conn._session = None
        if conn._newSession or not server.usesSessions:
            return self._welcome(conn)
        # A presented session must still exist, or the client gets a fresh
        # one (never adopt an id the store does not know). Later frames of
        # this connection wait until the welcome is written.
        conn._hold()

        def missing(f):
            f.trap(NoSuchSession)
            conn.sessionId = newSessionId()
            conn._newSession = True

        def welcome(_):
            if conn.open:
                conn.send(self.serviceId, self._welcome(conn), request.callbackId)
            conn._release()
            return NO_REPLY

        def failed(f):
            if f.check(SessionStoreUnavailable):
                # The store is down: welcome the client with the id its
                # valid token names, so that services without sessions work
                # meanwhile. Nothing is adopted: the session is loaded (and
                # replaced if unknown) before any service sees it.
                server.log.warn(
                    "cannot check the session of {peer}: {message}", peer=conn.peer, message=f.getErrorMessage()
                )
                return welcome(None)
            # The store failed: answer the hello with an error (the client
            # may say hello again), then release the frames held behind it.
            server._error(
                "session",
                "cannot check the session: {}".format(f.getErrorMessage()),
                conn,
                server._entries[self.serviceId],
                request.callbackId,
                f,
            )
            conn._release()
            return NO_REPLY

        return server.sessionStore.touch(conn.sessionId).addErrback(missing).addCallbacks(welcome, failed)

    def _welcome(self, conn):
        self.server._connectionOpened(conn)
        return {
            "v": PROTOCOL_VERSION,
            "session": conn.sessionToken,
            "services": self.server.services(),
        }
