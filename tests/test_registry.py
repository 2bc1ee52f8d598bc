"""
Tests for L{prism._plugins.Registry}, the one place plugin names are resolved.

Most tests pass descriptors directly (C{plugins=[...]}); the C{package} tests
build a throwaway dropin package, as Twisted's own C{test_plugin} does.
"""

import sys
import types

import pytest
from zope.interface.verify import verifyObject

from prism._plugins import KINDS, Registry
from prism.errors import PrismError, PrismPluginError
from prism.interfaces import IServicePlugin, ITransportPlugin
from prism.plugin import MiddlewarePlugin, ServicePlugin, SessionStorePlugin, TransportPlugin


def test_descriptorsProvideTheirInterfaces():
    for cls, kind in [
        (ServicePlugin, "service"),
        (TransportPlugin, "transport"),
        (MiddlewarePlugin, "middleware"),
        (SessionStorePlugin, "session_store"),
    ]:
        plugin = cls("x", "types.SimpleNamespace", "A thing.")
        assert verifyObject(KINDS[kind], plugin)


def test_names():
    registry = Registry(
        "service",
        plugins=[
            ServicePlugin("rpc", "types.SimpleNamespace"),
            ServicePlugin("echo", "types.SimpleNamespace"),
        ],
    )
    assert registry.names() == ["echo", "rpc"]
    assert list(registry) == ["echo", "rpc"]
    assert "echo" in registry
    assert "chat" not in registry


def test_empty():
    registry = Registry("middleware", plugins=[])
    assert registry.names() == []
    with pytest.raises(PrismPluginError) as info:
        registry.get("log")
    assert "(none)" in str(info.value)


def test_duplicateNameNamesBoth():
    first = ServicePlugin("chat", "one.Chat", "The first chat.")
    second = ServicePlugin("chat", "two.Chat", "The second chat.")
    with pytest.raises(PrismPluginError) as info:
        Registry("service", plugins=[first, second])
    message = str(info.value)
    assert "'chat'" in message
    assert "one.Chat" in message
    assert "two.Chat" in message


def test_sameNameInDifferentKindsIsFine():
    """Names are per kind: a service and a transport may share one."""
    assert Registry("service", plugins=[ServicePlugin("x", "a.X")]).names() == ["x"]
    assert Registry("transport", plugins=[TransportPlugin("x", "b.X")]).names() == ["x"]


def test_unknownNameListsAvailable():
    registry = Registry(
        "transport",
        plugins=[
            TransportPlugin("websocket", "types.SimpleNamespace"),
            TransportPlugin("loopback", "types.SimpleNamespace"),
        ],
    )
    with pytest.raises(PrismPluginError) as info:
        registry.get("sockjs")
    message = str(info.value)
    assert "'sockjs'" in message
    assert "loopback, websocket" in message
    # load and create go through the same lookup.
    with pytest.raises(PrismPluginError):
        registry.load("sockjs")
    with pytest.raises(PrismPluginError):
        registry.create("sockjs")


def test_pluginErrorIsAPrismError():
    assert issubclass(PrismPluginError, PrismError)


def test_unknownKind():
    with pytest.raises(PrismPluginError) as info:
        Registry("gadget", plugins=[])
    assert "gadget" in str(info.value)
    assert "service" in str(info.value)


def test_getReturnsTheDescriptor():
    plugin = SessionStorePlugin("memory", "types.SimpleNamespace")
    assert Registry("session_store", plugins=[plugin]).get("memory") is plugin


def test_loadResolvesTheDottedPath():
    registry = Registry("service", plugins=[ServicePlugin("ns", "types.SimpleNamespace")])
    assert registry.load("ns") is types.SimpleNamespace


def test_createBuildsAnInstanceWithOptions():
    registry = Registry("service", plugins=[ServicePlugin("ns", "types.SimpleNamespace")])
    thing = registry.create("ns", size=3, codec="json")
    assert isinstance(thing, types.SimpleNamespace)
    assert thing.size == 3
    assert thing.codec == "json"


def test_createAcceptsAnOptionCalledName():
    registry = Registry("service", plugins=[ServicePlugin("ns", "types.SimpleNamespace")])
    assert registry.create("ns", name="x").name == "x"


def test_resolutionIsLazy():
    """A descriptor naming a missing module fails on use, not on registration."""
    registry = Registry(
        "service", plugins=[ServicePlugin("ghost", "prism_no_such_module_anywhere.Ghost")]
    )
    assert registry.names() == ["ghost"]
    assert "prism_no_such_module_anywhere" not in sys.modules
    with pytest.raises(Exception):
        registry.load("ghost")


def test_repr():
    assert repr(ServicePlugin("echo", "a.b.Echo")) == "<ServicePlugin 'echo' -> a.b.Echo>"


# --- discovery through a plugin package (the test seam) ----------------------


def _pluginPackage(tmp_path, monkeypatch, name, dropins):
    """
    Make an importable package C{name} holding the given dropins
    (C{{moduleName: source}}) and return it.
    """
    package = tmp_path / name
    package.mkdir()
    (package / "__init__.py").write_text("")
    for moduleName, source in dropins.items():
        (package / (moduleName + ".py")).write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    for module in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        monkeypatch.delitem(sys.modules, module)
    __import__(name)
    return sys.modules[name]


def test_packageDiscovery(tmp_path, monkeypatch):
    package = _pluginPackage(
        tmp_path,
        monkeypatch,
        "prism_test_dropins_found",
        {
            "prism_a": (
                "from prism.plugin import ServicePlugin, TransportPlugin\n"
                "chat = ServicePlugin('chat', 'types.SimpleNamespace', 'Chat.')\n"
                "sockjs = TransportPlugin('sockjs', 'types.SimpleNamespace', 'SockJS.')\n"
            ),
            "prism_b": (
                "from prism.plugin import ServicePlugin\n"
                "board = ServicePlugin('board', 'types.SimpleNamespace', 'Board.')\n"
            ),
        },
    )
    services = Registry("service", package=package)
    assert services.names() == ["board", "chat"]
    assert verifyObject(IServicePlugin, services.get("chat"))
    assert services.create("board", x=1).x == 1
    transports = Registry("transport", package=package)
    assert transports.names() == ["sockjs"]
    assert verifyObject(ITransportPlugin, transports.get("sockjs"))
    assert Registry("session_store", package=package).names() == []


def test_packageDuplicateAcrossDropins(tmp_path, monkeypatch):
    package = _pluginPackage(
        tmp_path,
        monkeypatch,
        "prism_test_dropins_duplicate",
        {
            "prism_one": (
                "from prism.plugin import ServicePlugin\n"
                "chat = ServicePlugin('chat', 'one.Chat')\n"
            ),
            "prism_two": (
                "from prism.plugin import ServicePlugin\n"
                "chat = ServicePlugin('chat', 'two.Chat')\n"
            ),
        },
    )
    with pytest.raises(PrismPluginError) as info:
        Registry("service", package=package)
    assert "one.Chat" in str(info.value)
    assert "two.Chat" in str(info.value)
