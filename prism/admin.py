"""
The operations HTTP listener: health checks for load balancers, metrics,
and draining a node, on a port of its own (C{[admin]} in the configuration
file; C{docs/configuration.md}, C{docs/scaling.md}). For example::

    from prism.admin import AdminService

    AdminService(server, ["tcp:9001:interface=10.0.0.11"], token="…").setServiceParent(application)

It serves, as JSON::

    GET  /health    200 {"status": "ok"} while the server serves; 503
                    {"status": "draining"} (or "stopping", "stopped")
                    otherwise. No token: load balancers call it.
    GET  /metrics   the metrics page (C{prism.metrics.MetricsResource}),
                    with C{metrics=True}.
    POST /drain     start draining: /health answers 503, so the load
                    balancer sends new clients elsewhere; connected clients
                    keep working. Needs the token.
    POST /undrain   stop draining. Needs the token.
    GET  /          the list of the pages.

Every page but /health needs the token (C{Authorization: Bearer <token>} or
C{?token=<token>}); without a token configured, /drain and /undrain are
refused (403) and the read-only pages are open. More pages (a status
dashboard) are added with L{AdminResource.putChild}, or switched on by
configuration through L{OPTIONAL_PAGES}.

Nothing here touches the reactor until the service starts.
"""

import hmac
import json

from twisted.application.service import Service
from twisted.internet.defer import DeferredList, maybeDeferred
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import Site

__all__ = ["AdminResource", "AdminService", "HealthResource", "OPTIONAL_PAGES", "healthOf"]

OPTIONAL_PAGES = {
    "metrics": "prism.metrics.MetricsResource",
}
"""Pages switched on by the C{[admin]} key of the same name: page name ->
dotted name of a L{twisted.web.resource.IResource} class taking the
L{prism.server.Server}. A status dashboard is added here (and as a key of
C{[admin]} in C{prism/config.py} and C{docs/configuration.md})."""


def healthOf(server):
    """
    @return: C{(httpStatus, body)}: C{200, {"status": "ok"}} while C{server}
        serves; 503 with C{"draining"} (L{prism.server.Server.drain}),
        C{"stopping"} (a graceful stop under way) or C{"stopped"} (not
        started, or stopped).
    """
    state = server.state
    if state == "running":
        return 200, {"status": "ok"}
    return 503, {"status": state}


def _json(request, code, body):
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"application/json")
    request.setHeader(b"cache-control", b"no-store")
    return json.dumps(body).encode("utf-8") + b"\n"


class HealthResource(Resource):
    """
    C{GET /health}: 200 while the server serves, 503 while it drains or
    stops (see L{healthOf}). Cheap: no I/O, no allocation beyond the reply.
    """

    isLeaf = True

    def __init__(self, server):
        Resource.__init__(self)
        self.prism = server

    def render_GET(self, request):
        code, body = healthOf(self.prism)
        return _json(request, code, body)


class _Drain(Resource):
    """C{POST /drain} and C{POST /undrain}."""

    isLeaf = True

    def __init__(self, server, drain):
        Resource.__init__(self)
        self.prism = server
        self.drain = drain

    def render_POST(self, request):
        if self.drain:
            self.prism.drain()
        else:
            self.prism.undrain()
        return _json(request, 200, healthOf(self.prism)[1])


class _Refused(Resource):
    isLeaf = True

    def __init__(self, code, body, challenge=False):
        Resource.__init__(self)
        self.code = code
        self.body = body
        self.challenge = challenge

    def render(self, request):
        if self.challenge:
            request.setHeader(b"www-authenticate", b'Bearer realm="prism admin"')
        return _json(request, self.code, self.body)


class _Index(Resource):
    isLeaf = True

    def __init__(self, root):
        Resource.__init__(self)
        self.root = root

    def render_GET(self, request):
        return _json(request, 200, {"pages": ["/" + name.decode("ascii") for name in sorted(self.root.children) if name]})


class AdminResource(Resource):
    """
    The admin site's root: checks the token for every page but the public
    ones (L{putChild} with C{public=True}; /health).

    @param server: the L{prism.server.Server}.
    @param token: the admin token (L{str}), or L{None}.
    @param health: serve /health.
    @param pages: C{{name: IResource}}, more (protected) pages.
    """

    def __init__(self, server, token=None, health=True, pages=None):
        Resource.__init__(self)
        self.prism = server
        self._token = token.encode("utf-8") if isinstance(token, str) else token
        self.public = set()
        self.needsToken = set()
        if health:
            self.putChild(b"health", HealthResource(server), public=True)
        for name, page in (pages or {}).items():
            # A page may declare needsToken = True (the status dashboard).
            needsToken = getattr(page, "needsToken", False) is True
            self.putChild(name.encode("ascii") if isinstance(name, str) else name, page, needsToken=needsToken)
        self.putChild(b"drain", _Drain(server, True), needsToken=True)
        self.putChild(b"undrain", _Drain(server, False), needsToken=True)
        self.putChild(b"", _Index(self))

    def putChild(self, path, child, public=False, needsToken=False):
        """
        Add a page. C{public} pages are served without the token;
        C{needsToken} pages are refused (403) when no token is configured;
        the others need the token when there is one.
        """
        Resource.putChild(self, path, child)
        if public:
            self.public.add(path)
        else:
            self.public.discard(path)
        if needsToken:
            self.needsToken.add(path)
        else:
            self.needsToken.discard(path)

    def authorized(self, request):
        """@return: whether C{request} carries the token (C{Authorization: Bearer} or C{?token=})."""
        if self._token is None:
            return False
        given = None
        header = request.getHeader(b"authorization")
        if header:
            scheme, _, value = header.strip().partition(b" ")
            if scheme.lower() == b"bearer":
                given = value.strip()
        if given is None:
            values = request.args.get(b"token")
            if values:
                given = values[0]
        return given is not None and hmac.compare_digest(given, self._token)

    def getChildWithDefault(self, path, request):
        if path in self.public:
            return Resource.getChildWithDefault(self, path, request)
        if self._token is None:
            if path in self.needsToken:
                return _Refused(403, {"error": "no admin token is configured: set [admin] token_file"})
        elif not self.authorized(request):
            return _Refused(401, {"error": "unauthorized"}, challenge=True)
        return Resource.getChildWithDefault(self, path, request)


class AdminSite(Site):
    """The admin site: no access log (health checks come every second)."""

    def log(self, request):
        pass


class AdminService(Service):
    """
    Serves the admin pages on C{endpoints} while running. Stop it after the
    L{prism.service.PrismService} of the same server (the configuration's
    service tree does: L{prism.service.OrderedMultiService}), so that
    /health answers 503 during the drain and the graceful stop instead of
    refusing connections.

    @param server: the L{prism.server.Server}.
    @param endpoints: Twisted endpoint strings.
    @param token: the admin token (L{str}), or L{None}.
    @param health: serve /health.
    @param pages: C{{name: IResource or callable(server) -> IResource}}:
        more pages, built when the service starts (C{"metrics"}:
        C{prism.metrics.MetricsResource}). A page with C{startService} and
        C{stopService} methods (C{prism.status.StatusDashboard}) is started
        with this service and stopped after its ports (C{stopService} may
        return a L{Deferred}).
    """

    log = Logger()

    def __init__(self, server, endpoints, token=None, health=True, pages=None):
        self.server = server
        self.endpoints = list(endpoints)
        self.token = token
        self.health = health
        self.pages = dict(pages or {})
        self.ports = []
        self.site = None
        self.listening = None

    def buildResource(self):
        """@return: the L{AdminResource} (pages given as callables are built now)."""
        pages = {}
        for name, page in self.pages.items():
            pages[name] = page(self.server) if callable(page) and not isinstance(page, Resource) else page
        return AdminResource(self.server, token=self.token, health=self.health, pages=pages)

    def startService(self):
        from twisted.internet.endpoints import serverFromString

        Service.startService(self)
        if self.site is None:
            # Built here, not in __init__: Site() resolves the reactor.
            self.site = AdminSite(self.buildResource(), reactor=self.server.reactor)
        for page in self._pagesWithLifecycle():
            page.startService()
        waits = []
        for endpoint in self.endpoints:
            d = serverFromString(self.server.reactor, endpoint).listen(self.site)
            d.addCallbacks(self._listening, self._failed, (endpoint,), None, (endpoint,))
            waits.append(d)
        self.listening = DeferredList(waits)

    def _listening(self, port, endpoint):
        self.ports.append(port)
        address = port.getHost()
        self.log.info(
            "Prism admin listening on {endpoint} (port {port})",
            endpoint=endpoint,
            port=getattr(address, "port", None) or getattr(address, "name", None),
        )
        return port

    def _failed(self, failure, endpoint):
        self.log.failure("Prism admin cannot listen on {endpoint}", failure=failure, endpoint=endpoint)
        from twisted.internet.error import ReactorNotRunning

        try:
            self.server.reactor.stop()
        except ReactorNotRunning:
            pass

    def _pagesWithLifecycle(self):
        """@return: the pages with C{startService} and C{stopService}."""
        children = self.site.resource.children.values() if self.site is not None else ()
        return [p for p in children if callable(getattr(p, "startService", None)) and callable(getattr(p, "stopService", None))]

    def stopService(self):
        Service.stopService(self)
        ports, self.ports = self.ports, []
        d = DeferredList([maybeDeferred(p.stopListening) for p in ports], consumeErrors=True)
        pages = self._pagesWithLifecycle()
        if pages:
            d.addCallback(lambda _: DeferredList([maybeDeferred(p.stopService) for p in pages], consumeErrors=True))
        return d
