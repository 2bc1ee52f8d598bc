"""
The client builder: one JavaScript module holding exactly the client code a
server's configuration needs — the core (C{prism/js/core.js}), the client half
of its transport and the client halves of its public services, plus the
service table it was built for.

For example::

    source = server.build_client(format="esm")           # or "script", "cjs"
    source = server.build_client(format="esm", minify=True)  # needs esbuild

The contract with plugins (C{docs/javascript-client.md}):

  - L{ITransport.clientScript} returns a JavaScript I{expression} evaluating
    to C{(url, options, onFrame, onClose) => Promise<link>}, where a link has
    C{send(frame)} and C{close(code, reason)}; C{onFrame(frame)} is called
    for every incoming frame (a string), C{onClose(code, reason)} once, when
    an opened link closes. The Promise rejects if the link cannot be opened.
  - L{IService.clientScript} returns a JavaScript I{expression} evaluating to
    C{(handle) => ({...extra members})}: C{handle} is the generic service
    handle (C{name}, C{send(value)}, C{request(value, timeout)}, C{on(fn)},
    C{off(fn)}); C{app.api.<name>} is the handle with the returned members
    added (they may override the generic ones and call the handle's).
    The function also receives the C{app} as its second argument (its
    events: C{app.on("reconnect", …)}).
    L{None}: the generic handle alone.

Minification runs esbuild (from the npm registry) in a subprocess: this
module looks for it in C{$PRISM_ESBUILD}, C{./node_modules/.bin}, the
checkout's C{node_modules/.bin} and the C{PATH}. Building is synchronous
(and, with C{minify}, blocking): do it before the reactor runs, or once.
"""

import json
import os
import pkgutil
import shutil
import subprocess
from pathlib import Path

from prism.errors import PrismConfigError

__all__ = ["ClientBuildError", "buildClient", "browserAssets", "jsSource", "minifySource", "findEsbuild", "FORMATS"]

FORMATS = ("esm", "script", "cjs")

GLOBAL_NAME = "Prism"
"""The global the C{script} format defines (C{window.Prism})."""

CODECS = ("raw", "json")
"""The codecs the JavaScript client supports (msgpack: not yet)."""


class ClientBuildError(PrismConfigError):
    """The configuration cannot produce a JavaScript client, or esbuild is missing."""


def jsSource(name):
    """
    @param name: a file in C{prism/js/} (C{"core.js"}, C{"rpc.js"}, …).
    @return: its text (package data, so this works from a wheel).
    """
    return pkgutil.get_data("prism", "js/" + name).decode("utf-8")


def _expression(source, what):
    source = (source or "").strip()
    while source.endswith(";"):
        source = source[:-1].rstrip()
    if not source:
        raise ClientBuildError("{} has an empty client script".format(what))
    return source


def _indent(text, prefix="  "):
    return "\n".join(prefix + line if line else line for line in text.splitlines())


def _defaultURL(url):
    """
    @return: the JavaScript expression of the client's C{DEFAULT_URL}: the
        URL, or for a path (C{"/ws"}) the page's origin as C{ws:}/C{wss:}
        with that path (L{None} outside browsers).
    """
    if url is not None and url.startswith("/"):
        return '(typeof location == "object" ? location.origin.replace(/^http/, "ws") + {} : null)'.format(
            json.dumps(url)
        )
    return json.dumps(url)


def _publicServices(server):
    return [entry for entry in server._entries if not entry.private]


def buildClient(server, format="esm", minify=False, url=None):
    """
    Assemble the JavaScript client of C{server}.

    @param format: C{"esm"} (an ES module: C{export default createClient},
        and named C{createClient}, C{connect}), C{"script"} (a classic
        script defining the global C{Prism}), or C{"cjs"} (for C{require()}
        in Node.js: C{{createClient, connect}}).
    @param minify: minify with esbuild (see L{minifySource}).
    @param url: the default server URL baked into the client: a C{ws://}
        or C{wss://} URL, or an absolute path (C{"/ws"}) that browsers
        resolve against the page's origin (C{ws:}/C{wss:}; outside browsers
        the client then needs a C{url} option). By default the server's
        C{clientPath} (set by L{prism.config.Config.buildServer} when the
        socket is mounted at C{path} in a web site), else the page's origin
        with path C{/}.
    @return: the source (L{str}).
    @raise ClientBuildError: for an unknown format, a transport without
        client half, a service whose codec the JavaScript client does not
        support, or (with C{minify}) when esbuild is missing or fails.
    """
    if format not in FORMATS:
        raise ClientBuildError("unknown client format {!r}; formats: {}".format(format, ", ".join(FORMATS)))
    if url is None:
        url = getattr(server, "clientPath", None)
    if url is not None and not isinstance(url, str):
        raise ClientBuildError("the client's url must be a string, not {!r}".format(url))
    transport = server.transport
    transportName = getattr(transport, "name", type(transport).__name__)
    transportScript = transport.clientScript()
    if transportScript is None:
        raise ClientBuildError(
            "the {!r} transport has no JavaScript client half; build the client for a server "
            "using the websocket transport".format(transportName)
        )
    halves = []
    for entry in _publicServices(server):
        if entry.codec.name not in CODECS:
            raise ClientBuildError(
                "service {!r} uses the {} codec, which the JavaScript client does not support yet "
                "(supported: {})".format(entry.name, entry.codec.name, ", ".join(CODECS))
            )
        script = entry.service.clientScript() if hasattr(entry.service, "clientScript") else None
        if script is not None:
            halves.append((entry.name, _expression(script, "service {!r}".format(entry.name))))
    table = server.services()
    names = ", ".join(name for name, _, _, _ in table) or "none"
    parts = [
        "// Prism client: transport {}; services {}.".format(transportName, names),
        "// Generated by prism.builder (Server.build_client); docs/javascript-client.md.",
    ]
    # script and cjs wrap the module in a function: its names stay private
    # (and esbuild shortens them, as it does a module's top-level names).
    if format == "script":
        parts.append("var {} = (() => {{".format(GLOBAL_NAME))
    elif format == "cjs":
        parts.append("module.exports = (() => {")
    parts.append('"use strict";' if format != "esm" else "")
    parts.append(
        "const TRANSPORT = (\n{}\n);".format(_expression(transportScript, "transport {!r}".format(transportName)))
    )
    parts.append(
        "const HALVES = {{{}}};".format(
            "".join("\n  {}: (\n{}\n  ),".format(json.dumps(name), _indent(script, "    ")) for name, script in halves)
            + ("\n" if halves else "")
        )
    )
    parts.append("const TABLE = {};".format(json.dumps(table, separators=(",", ":"))))
    parts.append("const DEFAULT_URL = {};".format(_defaultURL(url)))
    parts.append(jsSource("core.js").strip())
    if format == "esm":
        parts.append("export { createClient, connect };\nexport default createClient;")
    elif format == "cjs":
        parts.append("return { createClient, connect, default: createClient };\n})();")
    else:
        parts.append("return { createClient, connect };\n})();")
    source = "\n".join(p for p in parts if p) + "\n"
    if minify:
        source = minifySource(source, format)
    return source


def browserAssets(server):
    """
    @return: the extra static files the browser needs: the union, in order
        and without duplicates, of the transport's and the public services'
        C{browserAssets()}.
    """
    assets = []
    seen = set()
    plugins = [server.transport] + [entry.service for entry in _publicServices(server)]
    for plugin in plugins:
        getter = getattr(plugin, "browserAssets", None)
        for asset in (getter() if getter is not None else None) or ():
            key = json.dumps(asset, sort_keys=True, default=str)
            if key not in seen:
                seen.add(key)
                assets.append(dict(asset))
    return assets


def findEsbuild():
    """
    @return: the path of the esbuild executable, or L{None}: C{$PRISM_ESBUILD},
        then C{node_modules/.bin/esbuild} in the working directory and in the
        checkout holding this package, then C{esbuild} on the C{PATH}.
    """
    candidates = []
    if os.environ.get("PRISM_ESBUILD"):
        candidates.append(Path(os.environ["PRISM_ESBUILD"]))
    candidates.append(Path.cwd() / "node_modules" / ".bin" / "esbuild")
    candidates.append(Path(__file__).resolve().parents[1] / "node_modules" / ".bin" / "esbuild")
    for candidate in candidates:
        if candidate.is_file() and os.access(str(candidate), os.X_OK):
            return str(candidate)
    return shutil.which("esbuild")


def minifySource(source, format="esm"):
    """
    Minify JavaScript with esbuild (C{--minify}; for C{esm} the module's
    top-level names are shortened too, the other formats wrap theirs in a
    function).

    @raise ClientBuildError: if esbuild is not installed or fails.
    """
    esbuild = findEsbuild()
    if esbuild is None:
        raise ClientBuildError(
            "minifying the client needs esbuild: run `npm ci` (or `npm install esbuild`) at the root of "
            "the Prism checkout, put esbuild on the PATH, or set PRISM_ESBUILD to its path"
        )
    args = [esbuild, "--minify", "--legal-comments=none", "--log-level=warning", "--loader=js"]
    if format == "esm":
        args.append("--format=esm")
    try:
        result = subprocess.run(
            args,
            input=source.encode("utf-8"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ClientBuildError("cannot run esbuild ({}): {}".format(esbuild, e)) from None
    if result.returncode != 0:
        raise ClientBuildError(
            "esbuild failed to minify the client: {}".format(result.stderr.decode("utf-8", "replace").strip())
        )
    return result.stdout.decode("utf-8")
