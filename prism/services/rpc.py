"""
The C{rpc} service: clients call Python functions by name.

Handlers come from a package, a module, a mapping or a list of those::

    RPCService(handlers="myapp.rpc")          # myapp/rpc/demo.py: def add(a, b)
                                               #   -> clients call "demo.add"
    RPCService(handlers={"add": add})          # -> clients call "add"

Handlers are plain functions, functions returning a L{Deferred}, or
C{async def} coroutines. A handler decorated with L{withRequest} receives the
L{prism.interfaces.IRequest} as its first argument (session, connection id,
client address, transport). A raised exception becomes an error reply
(message always, traceback only in debug mode); raise
L{prism.server.ServiceError} to choose the error kind.

Authorization: C{RPCService(authorize=check)} calls C{check(request,
method, args)} before every call (and before looking the method up, so that
a refused client cannot probe which methods exist); C{request.session} and
C{request.connection} are available (setting C{authorize} loads sessions). A
false result (or a L{Deferred}/coroutine firing with one) refuses the call
with an error of kind C{forbidden}; raising L{prism.server.ServiceError}
picks another kind. L{requires} attaches a check to one handler.

Wire format (C{docs/protocol.md}): request C{cb|["method", args…]}, result
C{cb|value}, error C{cb!{"error": kind, "message": …}}.
"""

import importlib
import pkgutil
import types
from inspect import iscoroutine

from twisted.internet.defer import Deferred

from prism.errors import PrismConfigError
from prism.server import ServiceError
from prism.services.base import Service

__all__ = ["RPCService", "RPCAPI", "withRequest", "requires", "loadHandlers"]

_NEEDS_REQUEST = "__prism_request__"
_CHECKS = "__prism_checks__"


def requires(check):
    """
    Attach an authorization check to one handler::

        @requires(lambda request: request.session.get("role") == "admin")
        def purge():
            ...

    C{check(request)} runs before the handler (after the service-wide
    C{authorize}); a false result (or a L{Deferred}/coroutine firing with
    one) refuses the call with kind C{forbidden}. Handlers with checks get
    their session loaded when the service has C{sessions} or C{authorize}.
    """

    def decorate(function):
        checks = list(getattr(function, _CHECKS, ()))
        checks.append(check)
        setattr(function, _CHECKS, tuple(checks))
        return function

    return decorate


def _forbidden(method):
    return ServiceError("forbidden", "not allowed to call {!r}".format(method))


def _resolve(authorize):
    if authorize is None or callable(authorize):
        return authorize
    if isinstance(authorize, str):
        from twisted.python.reflect import namedAny

        try:
            found = namedAny(authorize)
        except Exception as e:
            raise PrismConfigError("rpc authorize: cannot load {!r}: {}".format(authorize, e)) from None
        if callable(found):
            return found
    raise PrismConfigError("rpc authorize must be a callable or the dotted name of one, not {!r}".format(authorize))


def withRequest(function):
    """
    Mark an RPC handler that takes the request as its first argument::

        @withRequest
        def whoami(request):
            return request.session.get("user")
    """
    setattr(function, _NEEDS_REQUEST, True)
    return function


def _publicFunctions(module, prefix):
    names = getattr(module, "__all__", None)
    found = {}
    for name, value in vars(module).items():
        if name.startswith("_") or not callable(value) or isinstance(value, type):
            continue
        if names is not None:
            if name not in names:
                continue
        elif getattr(value, "__module__", None) != module.__name__:
            continue  # imported helpers are not handlers
        found[prefix + name] = value
    return found


def loadHandlers(spec):
    """
    Resolve a handler specification into a C{{name: callable}} mapping.

    @param spec: a mapping of names to callables; a module object or dotted
        module path (its public functions, as C{"<module>.<function>"}); a
        package (every submodule's public functions, as
        C{"<submodule>.<function>"}, recursively with dots); or a list of
        those.
    @raise PrismConfigError: if a module cannot be imported or a value is
        not callable.
    """
    if spec is None:
        return {}
    if isinstance(spec, dict):
        for name, value in spec.items():
            if not callable(value):
                raise PrismConfigError("rpc handler {!r} is not callable".format(name))
        return dict(spec)
    if isinstance(spec, (list, tuple)):
        merged = {}
        for item in spec:
            merged.update(loadHandlers(item))
        return merged
    if isinstance(spec, str):
        try:
            spec = importlib.import_module(spec)
        except ImportError as e:
            raise PrismConfigError("rpc handlers: cannot import {!r}: {}".format(spec, e)) from None
    if not isinstance(spec, types.ModuleType):
        raise PrismConfigError("rpc handlers must be a package, module, dict or list, not {!r}".format(spec))
    if hasattr(spec, "__path__"):  # a package: one namespace per submodule
        handlers = {}
        for relative, module in _submodules(spec, ""):
            handlers.update(_publicFunctions(module, relative + "."))
        return handlers
    return _publicFunctions(spec, spec.__name__.rpartition(".")[2] + ".")


def _submodules(package, prefix):
    """
    Yield C{(relative name, module)} for every public submodule of
    C{package}, recursively. Private (underscore) modules and packages are
    neither exposed nor imported.
    """
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        name = package.__name__ + "." + info.name
        try:
            module = importlib.import_module(name)
        except ImportError as e:
            raise PrismConfigError("rpc handlers: cannot import {!r}: {}".format(name, e)) from None
        yield prefix + info.name, module
        if info.ispkg:
            for found in _submodules(module, prefix + info.name + "."):
                yield found


class RPCAPI:
    """
    The server-side API of the C{rpc} service (C{server.api.rpc}).

    @ivar handlers: the live C{{name: callable}} mapping.
    """

    def __init__(self, service):
        self._service = service
        self.handlers = service.handlers

    def register(self, name, function):
        """Add or replace a handler."""
        if not callable(function):
            raise PrismConfigError("rpc handler {!r} is not callable".format(name))
        self.handlers[name] = function
        self._service._refresh()

    def unregister(self, name):
        self.handlers.pop(name, None)
        self._service._refresh()

    def methods(self):
        return sorted(self.handlers)


class RPCService(Service):
    """
    @param handlers: see L{loadHandlers}.
    @param sessions: load the session for every call, so that
        L{withRequest} handlers can read and write C{request.session}.
    @param authorize: C{check(request, method, args)}, or its dotted name,
        called before every call; see the module docstring. Setting it
        loads sessions.
    """

    codec = "json"
    callbacks = True
    namedRequests = True  # logs and metrics report call[0] as the method

    def __init__(self, handlers=None, sessions=False, authorize=None):
        self.handlers = loadHandlers(handlers)
        self.authorize = _resolve(authorize)
        self.sessions = bool(sessions) or self.authorize is not None
        self._refresh()

    def _refresh(self):
        # (function, needs request, checks) triples, so the hot path does one lookup.
        self._table = {
            name: (f, bool(getattr(f, _NEEDS_REQUEST, False)), getattr(f, _CHECKS, None))
            for name, f in self.handlers.items()
        }

    def start(self, server, serviceId, name):
        Service.start(self, server, serviceId, name)
        return RPCAPI(self)

    def messageReceived(self, request):
        call = request.payload
        if type(call) is not list or not call or type(call[0]) is not str:
            raise ServiceError("malformed", 'an RPC call is ["method", arg, …]')
        metrics = self.server.metrics
        if metrics is not None and call[0] in self._table:  # (only known methods: a bounded label)
            return self._timed(metrics.rpcHistogram(self.name, call[0]), request, call)
        if self.authorize is not None:
            return self._authorize(request, call)
        return self._call(request, call)

    def _timed(self, histogram, request, call):
        """Run a call, observing its latency (to its result or failure) in C{histogram}."""
        seconds = self.server.reactor.seconds
        start = seconds()
        try:
            result = self._authorize(request, call) if self.authorize is not None else self._call(request, call)
        except Exception:
            histogram.observe(seconds() - start)
            raise
        if iscoroutine(result):
            result = Deferred.fromCoroutine(result)
        if isinstance(result, Deferred):
            return result.addBoth(_observed, histogram, seconds, start)
        histogram.observe(seconds() - start)
        return result

    def _authorize(self, request, call):
        verdict = self.authorize(request, call[0], call[1:])
        if verdict is not True:
            if iscoroutine(verdict):
                verdict = Deferred.fromCoroutine(verdict)
            if isinstance(verdict, Deferred):
                return verdict.addCallback(self._authorized, request, call, 0)
            if not verdict:
                raise _forbidden(call[0])
        return self._call(request, call)

    def _authorized(self, verdict, request, call, i):
        return self._checked(verdict, request, call, i)

    def _call(self, request, call, i=0):
        try:
            function, needsRequest, checks = self._table[call[0]]
        except KeyError:
            raise ServiceError("unknown_method", "no RPC method {!r}".format(call[0])) from None
        if checks is not None:
            while i < len(checks):
                verdict = checks[i](request)
                i += 1
                if iscoroutine(verdict):
                    verdict = Deferred.fromCoroutine(verdict)
                if isinstance(verdict, Deferred):
                    return verdict.addCallback(self._checked, request, call, i)
                if not verdict:
                    raise _forbidden(call[0])
        if needsRequest:
            return function(request, *call[1:])
        return function(*call[1:])

    def _checked(self, verdict, request, call, i):
        if not verdict:
            raise _forbidden(call[0])
        result = self._call(request, call, i)
        if iscoroutine(result):
            result = Deferred.fromCoroutine(result)
        return result

    def clientScript(self):
        """@return: C{prism/js/rpc.js}: C{call(method, ...args)} and C{notify(method, ...args)}."""
        from prism.builder import jsSource

        return jsSource("rpc.js")


def _observed(result, histogram, seconds, start):
    histogram.observe(seconds() - start)
    return result
