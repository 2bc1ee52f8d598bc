"""
The C{livereload} service, a development tool: it watches directories and
tells every connected page to refresh when a file changes. A stylesheet
change swaps the page's matching C{<link rel="stylesheet">} in place (no
reload); any other change reloads the page. For example::

    from prism.services.livereload import LiveReloadService

    server.service("livereload", LiveReloadService(paths=["static"]))
    server.start()
    server.api.livereload.notify(["templates/index.html"])   # by hand
    server.events.on("livereload.change", lambda change: print(change["paths"]))

Watching: inotify on Linux (C{twisted.internet.inotify}, one watch per
directory, new directories watched as they appear), otherwise a bounded
C{stat} scan every C{pollInterval} seconds. Dotfiles, editor backups and
temporary files are never reported (L{DEFAULT_IGNORE}). A burst of changes
(a save, a checkout, a build) becomes one notification once the files have
been quiet for C{debounce} seconds.

Wire: the service (codec C{json}, no callbacks) only pushes, to every
connection: C{{"paths": ["css/app.css"], "reload": false}}. C{paths} are
relative to the watched directory holding them (C{/}-separated);
C{reload} is false only when every path is a stylesheet. The JavaScript
half is C{prism/js/livereload.js}; C{docs/livereload.md} has the rest.

Never enable it in production: it reads the file system on the server's
thread and reloads every connected page.
"""

import os
import re
import sys
from fnmatch import translate

from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from prism import wire
from prism.errors import PrismConfigError
from prism.server import PreparedFrame, ServiceError
from prism.services.base import Service

__all__ = [
    "LiveReloadService",
    "LiveReloadAPI",
    "Ignore",
    "InotifyWatcher",
    "PollingWatcher",
    "WatcherUnavailable",
    "DEFAULT_IGNORE",
    "WATCHERS",
]

DEFAULT_IGNORE = (
    ".*",  # dotfiles and dot-directories: .git, .venv, .#emacs-lock, .file.swp
    "*~",  # editor backups
    "#*#",  # emacs auto-save
    "*.swp",
    "*.swx",
    "*.swo",
    "4913",  # vim's probe file
    "*.tmp",
    "*.bak",
    "*___jb_tmp___",  # JetBrains IDEs' safe write
    "*___jb_old___",
    "__pycache__",
    "*.pyc",
    "*.pyo",
    "node_modules",
)
"""Names never reported, whatever the configuration adds."""

WATCHERS = ("auto", "inotify", "poll")

MAX_PATHS = 100
"""Paths listed in one notification; beyond them the page simply reloads."""


class WatcherUnavailable(Exception):
    """This watcher cannot run here (no inotify, a reactor without file descriptors…)."""


class Ignore:
    """
    Decides which paths are never reported.

    @param globs: extra C{fnmatch} globs added to L{DEFAULT_IGNORE}. A glob
        without C{/} is matched against every component of the path (so
        C{"build"} hides every C{build} directory and what it holds); one
        with C{/} against the whole path relative to the watched directory
        (C{"vendor/*.js"}; C{*} crosses C{/} there).
    """

    def __init__(self, globs=()):
        globs = list(DEFAULT_IGNORE) + list(globs)
        names = [g for g in globs if "/" not in g]
        paths = [g.strip("/") for g in globs if "/" in g]
        self._name = re.compile("|".join(translate(g) for g in names)).match
        self._path = re.compile("|".join(translate(g) for g in paths)).match if paths else None
        self.hasPathGlobs = bool(paths)

    def name(self, name):
        """@return: whether a file or directory called C{name} is ignored wherever it is."""
        return self._name(name) is not None

    def path(self, relative):
        """@return: whether a path relative to a watched directory (C{/}-separated) matches a glob with C{/}."""
        return self._path is not None and self._path(relative) is not None

    def __call__(self, relative):
        """@return: whether C{relative} (C{/}-separated, relative to a watched directory) is ignored."""
        return any(self._name(part) is not None for part in relative.split("/")) or self.path(relative)


def _relative(root, path):
    return os.path.relpath(path, root).replace(os.sep, "/")


def _walk(root, directory, ignore):
    """
    Yield C{(directory, [file paths])} for C{directory} and every directory
    below it that is not ignored (symbolic links to directories are not
    followed).
    """
    prefix = len(os.path.join(root, ""))
    stack = [directory]
    while stack:
        current = stack.pop()
        files = []
        try:
            entries = list(os.scandir(current))
        except OSError:  # vanished, or unreadable
            continue
        dirs = []
        for entry in entries:
            if ignore.name(entry.name):
                continue
            try:
                isDir = entry.is_dir(follow_symlinks=False)
            except OSError:
                continue
            if ignore.hasPathGlobs and ignore.path(entry.path[prefix:].replace(os.sep, "/")):
                continue
            (dirs if isDir else files).append(entry.path)
        yield current, files
        stack.extend(sorted(dirs, reverse=True))


class PollingWatcher:
    """
    Compares C{stat} results (modification time in ns, size, inode) of
    every file below the roots every C{interval} seconds, and reports what
    appeared, changed or disappeared.

    @param maxFiles: at most this many files are tracked (the scan stops
        there, with one warning), so a huge tree costs a bounded amount of
        work per poll.
    """

    log = Logger()
    name = "poll"

    def __init__(self, roots, ignore, report, reactor, interval=1.0, maxFiles=10000):
        self.roots = list(roots)
        self.ignore = ignore
        self.report = report
        self.reactor = reactor
        self.interval = interval
        self.maxFiles = maxFiles
        self.truncated = False
        self._snapshot = {}
        self._loop = None

    def start(self):
        self._snapshot = self.scan()
        self._loop = LoopingCall(self.poll)
        self._loop.clock = self.reactor
        self._loop.start(self.interval, now=False).addErrback(
            lambda f: self.log.failure("livereload: polling stopped", failure=f)
        )

    def stop(self):
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None
        self._snapshot = {}

    @property
    def running(self):
        return self._loop is not None and self._loop.running

    def scan(self):
        """@return: C{{path: (mtime_ns, size, inode)}} of the files below the roots."""
        found = {}
        limit = self.maxFiles
        for root in self.roots:
            for _, files in _walk(root, root, self.ignore):
                for path in files:
                    if len(found) >= limit:
                        if not self.truncated:
                            self.truncated = True
                            self.log.warn(
                                "livereload: more than {limit} files to poll; files beyond them are not "
                                "watched (narrow paths, add ignore globs, or raise max_files)",
                                limit=limit,
                            )
                        return found
                    try:
                        st = os.stat(path)
                    except OSError:
                        continue
                    found[path] = (st.st_mtime_ns, st.st_size, st.st_ino)
        return found

    def poll(self):
        before, after = self._snapshot, self.scan()
        self._snapshot = after
        changed = [p for p, s in after.items() if before.get(p) != s]
        changed += [p for p in before if p not in after]
        for path in sorted(changed):
            self.report(path)


_notifierClass = None


def _notifier():
    """
    @return: a subclass of Twisted's C{INotify} that survives the deletion
        of a watched directory (Twisted's closes itself on any
        C{IN_DELETE_SELF}; a tree watcher sees that whenever a
        subdirectory is removed).
    @raise WatcherUnavailable: without inotify (not Linux, no libc support).
    """
    global _notifierClass
    if _notifierClass is None:
        try:
            from twisted.internet.inotify import INotify
        except (ImportError, OSError) as e:
            raise WatcherUnavailable("inotify is not available: {}".format(e)) from None

        class _Notifier(INotify):
            closing = False

            def loseConnection(self, *args, **kwargs):
                if self.closing:
                    return INotify.loseConnection(self, *args, **kwargs)
                return None

        _notifierClass = _Notifier
    return _notifierClass


class InotifyWatcher:
    """
    Watches every directory below the roots with one inotify watch each;
    directories created (or moved in) later are watched as they appear and
    the files already in them reported.
    """

    log = Logger()
    name = "inotify"

    def __init__(self, roots, ignore, report, reactor):
        self.roots = list(roots)
        self.ignore = ignore
        self.report = report
        self.reactor = reactor
        self.directories = set()  # the watched directories (str)
        self._notifier = None
        self._warned = False

    def start(self):
        from twisted.internet.interfaces import IReactorFDSet

        if not sys.platform.startswith("linux"):
            raise WatcherUnavailable("inotify is Linux only")
        if not IReactorFDSet.providedBy(self.reactor):
            raise WatcherUnavailable("the reactor cannot watch file descriptors")
        cls = _notifier()
        from twisted.internet.inotify import INotifyError

        try:
            self._notifier = cls(reactor=self.reactor)
        except (INotifyError, OSError) as e:
            raise WatcherUnavailable("cannot start inotify: {}".format(e)) from None
        try:
            for root in self.roots:
                self._watchTree(root, root, catchUp=False, strict=True)
        except WatcherUnavailable:
            self.stop()
            raise
        self._notifier.startReading()

    def stop(self):
        notifier, self._notifier = self._notifier, None
        if notifier is None:
            return
        from twisted.python.filepath import FilePath

        for directory in self.directories:
            try:
                notifier.ignore(FilePath(directory))
            except KeyError:  # removed with its directory
                pass
        self.directories.clear()
        notifier.closing = True
        notifier.loseConnection()

    @property
    def running(self):
        return self._notifier is not None

    def _mask(self):
        from twisted.internet import inotify as i

        return (
            i.IN_MODIFY | i.IN_ATTRIB | i.IN_CLOSE_WRITE | i.IN_CREATE | i.IN_DELETE
            | i.IN_MOVED_FROM | i.IN_MOVED_TO | i.IN_MOVE_SELF | i.IN_ONLYDIR
        )

    def _watch(self, root, directory, strict=False):
        from twisted.internet.inotify import INotifyError
        from twisted.python.filepath import FilePath

        try:
            self._notifier.watch(FilePath(directory), mask=self._mask(), callbacks=[self._callback(root)])
        except (INotifyError, OSError) as e:
            if strict:
                raise WatcherUnavailable("cannot watch {}: {}".format(directory, e)) from None
            if not self._warned and os.path.isdir(directory):
                self._warned = True  # most likely fs.inotify.max_user_watches
                self.log.warn("livereload: cannot watch {directory}: {error}", directory=directory, error=e)
            return False
        self.directories.add(directory)
        return True

    def _watchTree(self, root, directory, catchUp, strict=False):
        for current, files in _walk(root, directory, self.ignore):
            self._watch(root, current, strict)
            if catchUp:  # created before the watch was: report them now
                for path in files:
                    self.report(path)

    def _unwatchTree(self, directory):
        from twisted.python.filepath import FilePath

        prefix = os.path.join(directory, "")
        for watched in [d for d in self.directories if d == directory or d.startswith(prefix)]:
            self.directories.discard(watched)
            try:
                self._notifier.ignore(FilePath(watched))
            except KeyError:
                pass

    def _callback(self, root):
        def callback(_, filepath, mask):
            try:
                self._event(root, os.fsdecode(filepath.path), mask)
            except Exception:  # never let an event kill the notifier
                self.log.failure("livereload: cannot handle an inotify event")

        return callback

    def _event(self, root, path, mask):
        from twisted.internet import inotify as i

        if self._notifier is None or mask & i.IN_IGNORED:
            return
        if mask & (i.IN_DELETE_SELF | i.IN_MOVE_SELF):
            # The watched directory itself went away; its parent reports it
            # (a root's disappearance is only logged). After IN_DELETE_SELF
            # Twisted removes the watch itself, right after this callback.
            if mask & i.IN_DELETE_SELF:
                self.directories.discard(path)
            else:
                self._unwatchTree(path)
            if path in self.roots:
                self.log.warn("livereload: {root} was moved or deleted; it is no longer watched", root=path)
            return
        relative = _relative(root, path)
        if relative.startswith("../") or self.ignore(relative):
            return
        if mask & i.IN_ISDIR:
            if mask & (i.IN_CREATE | i.IN_MOVED_TO):
                self._watchTree(root, path, catchUp=True)
            elif mask & (i.IN_DELETE | i.IN_MOVED_FROM):
                self._unwatchTree(path)
                self.report(path)
            return
        self.report(path)


class LiveReloadService(Service):
    """
    @param paths: the directories to watch, recursively (relative ones
        against the working directory); by default the working directory.
        An empty list watches nothing (L{LiveReloadAPI.notify} only).
    @param ignore: C{fnmatch} globs never reported, in addition to
        L{DEFAULT_IGNORE} (see L{Ignore}).
    @param debounce: seconds of quiet after a change before the
        notification goes out (a burst is sent once, at most ten times
        C{debounce} after its first change).
    @param watcher: C{"auto"} (inotify where it works, else polling),
        C{"inotify"} (fail if unavailable) or C{"poll"}.
    @param pollInterval: seconds between two scans when polling.
    @param cssExtensions: extensions of the files a page restyles without
        reloading.
    @param maxFiles: at most this many files are tracked when polling.
    @param reactor: for timers and inotify; the server's by default.
    """

    codec = "json"
    callbacks = False
    log = Logger()

    staticCacheControl = "no-store"
    """Asked of the configuration file's C{static} site while this service
    is configured: a reload must fetch every file again."""

    def __init__(
        self,
        paths=None,
        ignore=(),
        debounce=0.1,
        watcher="auto",
        pollInterval=1.0,
        cssExtensions=(".css",),
        maxFiles=10000,
        reactor=None,
    ):
        if paths is None:
            paths = ["."]
        if isinstance(paths, (str, bytes)) or not all(isinstance(p, str) and p for p in paths):
            raise PrismConfigError("livereload: paths must be a list of directory paths")
        roots = []
        for path in paths:
            path = os.path.abspath(os.path.expanduser(path))
            if not os.path.isdir(path):
                raise PrismConfigError("livereload: {} is not a directory".format(path))
            if path not in roots:
                roots.append(path)
        if isinstance(ignore, str) or not all(isinstance(g, str) and g for g in ignore):
            raise PrismConfigError("livereload: ignore must be a list of glob patterns")
        if isinstance(cssExtensions, str) or not all(isinstance(e, str) and e.strip(".") for e in cssExtensions):
            raise PrismConfigError("livereload: cssExtensions must be a list of extensions (\".css\")")
        for name, value, allowZero in (("debounce", debounce, True), ("pollInterval", pollInterval, False)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or (value == 0 and not allowZero):
                raise PrismConfigError("livereload: {} must be a number of seconds {}".format(name, ">= 0" if allowZero else "> 0"))
        if watcher not in WATCHERS:
            raise PrismConfigError("livereload: watcher must be one of {}".format(", ".join(WATCHERS)))
        if isinstance(maxFiles, bool) or not isinstance(maxFiles, int) or maxFiles <= 0:
            raise PrismConfigError("livereload: maxFiles must be a positive integer")
        self.paths = roots
        self.ignore = Ignore(ignore)
        self.debounce = debounce
        self.maxWait = 10 * debounce
        self.watcherName = watcher
        self.pollInterval = pollInterval
        self.cssExtensions = tuple("." + e.strip(".").lower() for e in cssExtensions)
        self.maxFiles = maxFiles
        self._reactor = reactor
        self._byLength = sorted(roots, key=len, reverse=True)  # the innermost root first
        self.watcher = None
        self._pending = {}  # relative path -> absolute path, in order of arrival
        self._overflow = False
        self._timer = None
        self._first = None

    # -- lifecycle

    def start(self, server, serviceId, name):
        Service.start(self, server, serviceId, name)
        if self._reactor is None:
            self._reactor = server.reactor
        self.watcher = self._startWatcher()
        if self.watcher is not None:
            self.log.info(
                "livereload: watching {paths} ({watcher}); a development tool, not for production",
                paths=", ".join(self.paths),
                watcher=self.watcher.name,
            )
        return LiveReloadAPI(self)

    def _startWatcher(self):
        if not self.paths:
            return None
        if self.watcherName in ("auto", "inotify"):
            watcher = InotifyWatcher(self.paths, self.ignore, self.changed, self._reactor)
            try:
                watcher.start()
                return watcher
            except WatcherUnavailable as e:
                if self.watcherName == "inotify":
                    raise PrismConfigError("livereload: {}".format(e)) from None
                self.log.info("livereload: {why}; polling every {interval} s instead", why=e, interval=self.pollInterval)
        watcher = PollingWatcher(self.paths, self.ignore, self.changed, self._reactor, self.pollInterval, self.maxFiles)
        watcher.start()
        return watcher

    def stop(self):
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        self._pending = {}
        self._overflow = False
        watcher, self.watcher = self.watcher, None
        if watcher is not None:
            watcher.stop()
        return None

    def messageReceived(self, request):
        raise ServiceError("malformed", "the livereload service only pushes; it accepts no messages")

    def clientScript(self):
        """@return: C{prism/js/livereload.js}: restyle or reload the page."""
        from prism.builder import jsSource

        return jsSource("livereload.js")

    # -- changes

    def relative(self, path):
        """
        @return: what clients are told about C{path}: relative to the
            innermost watched directory holding it (C{/}-separated), else
            C{path} itself without a leading C{/} (so that a URL path such
            as C{"/css/app.css"} matches the stylesheet served there).
        """
        if os.path.isabs(path):
            for root in self._byLength:
                prefix = os.path.join(root, "")
                if path.startswith(prefix):
                    return path[len(prefix):].replace(os.sep, "/")
        return path.replace(os.sep, "/").lstrip("/")

    def isStylesheet(self, relative):
        """@return: whether C{relative} has one of the C{cssExtensions}."""
        return relative.lower().endswith(self.cssExtensions)

    def changed(self, path):
        """
        A file changed (what the watchers call): remember it and send one
        notification for the burst, C{debounce} seconds after the last
        change of the burst (at most ten times C{debounce} after its first).
        """
        self._add(path)
        now = self._reactor.seconds()
        timer = self._timer
        if timer is None or not timer.active():
            self._first = now
            self._timer = self._reactor.callLater(self.debounce, self.flush)
        else:
            timer.reset(max(0.0, min(self.debounce, self._first + self.maxWait - now)))

    def _add(self, path):
        relative = self.relative(path)
        if relative in self._pending:
            return
        if len(self._pending) >= MAX_PATHS:
            self._overflow = True
            return
        self._pending[relative] = path

    def flush(self, reload=False):
        """
        Send the pending changes now (with C{reload}, a reload even when
        nothing is pending).

        @return: the change sent (see L{LiveReloadAPI.notify}), or L{None}.
        """
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        pending, self._pending = self._pending, {}
        overflow, self._overflow = self._overflow, False
        if not (pending or overflow or reload):
            return None
        paths = list(pending)
        reload = reload or overflow or not paths or not all(self.isStylesheet(p) for p in paths)
        message = {"paths": paths, "reload": reload}
        if self.server is not None and self.serviceId is not None:
            frame, isBinary = wire.frame(self.serviceId, None, message, wire.codec(self.codec))
            prepared = PreparedFrame(frame, isBinary)  # encoded once, for every page
            for conn in list(self.server.connections.values()):
                if conn.welcomed:
                    conn.sendPrepared(prepared)
            change = dict(message, files=list(pending.values()))
            self.log.info("livereload: {action} for {paths}", action="reload" if reload else "restyle", paths=paths)
            self.emit("change", change)
            return change
        return dict(message, files=list(pending.values()))


class LiveReloadAPI:
    """The server-side API of the C{livereload} service (C{server.api.livereload})."""

    def __init__(self, service):
        self._service = service

    @property
    def paths(self):
        """The watched directories (absolute)."""
        return list(self._service.paths)

    @property
    def watcher(self):
        """C{"inotify"}, C{"poll"}, or L{None} when nothing is watched (or after C{stop})."""
        watcher = self._service.watcher
        return watcher.name if watcher is not None else None

    def changed(self, path):
        """
        Report a changed file as the watchers do: it goes out with the rest
        of its burst, after the debounce (for build tools that know what
        they wrote). Ignore globs do not apply.
        """
        self._service.changed(path)

    def notify(self, paths=()):
        """
        Tell every page now that C{paths} changed, with any change still
        being debounced. Ignore globs do not apply. Without paths: reload
        every page.

        @param paths: a path or a list of them: absolute (made relative to
            the watched directory holding them) or relative, as clients
            should see them (C{"css/app.css"}).
        @return: the change sent, as emitted on the bus (C{livereload.change}):
            C{{"paths": [...], "reload": bool, "files": [...]}}, where
            C{paths} is what pages were sent and C{files} what was given or
            detected.
        """
        service = self._service
        if isinstance(paths, str):
            paths = [paths]
        for path in paths:
            service._add(path)
        return service.flush(reload=not paths)
