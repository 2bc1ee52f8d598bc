"""
The C{prism} command.

Usage::

    prism check [--config prism.toml]          validate; print what would run
    prism run [--config prism.toml] [--listen ENDPOINT]... [--admin-listen ENDPOINT]... [--debug]
                                               the same as twistd -n prism --config …
    prism build-client [--config prism.toml] [-o client.js] [--format esm|script|cjs] [--minify] [--url URL]
                                               write the JavaScript client for the configured server

Exit status: 0 on success, 1 when the configuration is invalid (one line per
problem on standard error, each naming the file and key), 2 for a usage
error.
"""

import argparse
import os
import sys

__all__ = ["main"]

DEFAULT_CONFIG = "prism.toml"


def _parser():
    parser = argparse.ArgumentParser(prog="prism", description="Prism realtime server.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    def withConfig(sub):
        sub.add_argument(
            "-c",
            "--config",
            default=DEFAULT_CONFIG,
            metavar="FILE",
            help="TOML configuration file (default: %(default)s)",
        )
        return sub

    check = withConfig(commands.add_parser("check", help="validate a configuration file and summarise it"))
    check.set_defaults(handler=_check)

    run = withConfig(commands.add_parser("run", help="run the server (twistd -n prism --config FILE)"))
    run.add_argument(
        "--listen", action="append", metavar="ENDPOINT", help="Twisted endpoint string replacing listen (repeatable)"
    )
    run.add_argument(
        "--admin-listen", action="append", metavar="ENDPOINT",
        help="Twisted endpoint string replacing [admin] listen (repeatable)",
    )
    run.add_argument("-d", "--debug", action="store_true", help="send error details to clients")
    run.add_argument("--log-requests", action="store_true", help="log every incoming request")
    run.add_argument("--reactor", metavar="NAME", help="the reactor twistd installs (e.g. asyncio, epoll)")
    run.set_defaults(handler=_run)

    build = withConfig(
        commands.add_parser("build-client", help="write the JavaScript client for the configured server")
    )
    build.add_argument("-o", "--output", default="-", metavar="FILE", help="output file (default: standard output)")
    build.add_argument("--format", choices=("esm", "script", "cjs"), default="esm", help="module format (default: esm)")
    build.add_argument("--minify", action="store_true", help="minify the output (esbuild)")
    build.add_argument("--url", metavar="URL", help="the default server URL baked into the client")
    build.set_defaults(handler=_buildClient)
    return parser


def _load(args, **overrides):
    """@return: the validated L{Config} and its built server, or exit 1."""
    from prism.config import loadConfig
    from prism.errors import PrismError

    try:
        config = loadConfig(args.config)
        if overrides:
            config.override(**overrides)
        server = config.buildServer()
    except PrismError as e:
        for line in str(e).splitlines():
            print("prism: " + line, file=sys.stderr)
        raise SystemExit(1)
    return config, server


def _check(args):
    config, server = _load(args)
    print("\n".join(config.summary()))
    return 0


def _run(args):
    # Validate first, for clean errors and a non-zero exit on every Twisted
    # version (twistd before 26 exits 0 after printing a usage error).
    _load(
        args, listen=args.listen, debug=args.debug or None, logRequests=args.log_requests or None,
        adminListen=args.admin_listen,
    )
    argv = ["-n", "--pidfile="]
    if args.reactor:
        argv.append("--reactor=" + args.reactor)
    argv += ["prism", "--config", args.config]
    for endpoint in args.listen or ():
        argv += ["--listen", endpoint]
    for endpoint in args.admin_listen or ():
        argv += ["--admin-listen", endpoint]
    if args.debug:
        argv.append("--debug")
    if args.log_requests:
        argv.append("--log-requests")
    # A fresh process: this one imported the application's modules while
    # validating, and twistd must install its reactor before anything does.
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-c", _TWISTD] + argv)


_TWISTD = "import sys; sys.argv[0] = 'twistd'; from twisted.scripts.twistd import run; run()"


def _buildClient(args):
    config, server = _load(args)
    build = getattr(server, "build_client", None)
    if build is None:
        print(
            "prism: build-client is not available yet: this Prism's Server has no build_client()",
            file=sys.stderr,
        )
        return 2
    from prism.errors import PrismError

    try:
        options = {"format": args.format, "minify": args.minify}
        if args.url:
            options["url"] = args.url
        code = build(**options)
    except PrismError as e:
        print("prism: cannot build the client: {}".format(e), file=sys.stderr)
        return 1
    if isinstance(code, bytes):
        code = code.decode("utf-8")
    if args.output == "-":
        sys.stdout.write(code)
    else:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(code)
        print("prism: wrote {} ({} bytes)".format(args.output, len(code.encode("utf-8"))), file=sys.stderr)
    return 0


def main(argv=None):
    """The C{prism} console script. @return: the exit status."""
    args = _parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
