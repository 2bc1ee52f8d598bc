"""
The C{models} service on the loopback transport and the memory store (no
sockets, a fake clock), frame by frame (C{1} is the service id of
C{models}, then the callback id): snapshots and versions, ordered change
pushes, compare-and-set conflicts, refused patches that change nothing,
validation (JSON Schema and callables), limits, authorization, cleanup, the
server-side API (C{server.api.models}), the TOML configuration and the
plugin name.
"""

import json

import pytest
from twisted.internet.defer import Deferred, succeed

from prism.errors import PrismConfigError
from prism.server import ServiceError
from prism.services.models import Conflict, ModelsService, Snapshot, allowAll, typeOf, validName
from prism.testing import EventRecorder, PrismTestServer, failureOf, resultOf


def make(**options):
    options.setdefault("authorize", allowAll)
    return PrismTestServer(services={"models": ModelsService(**options)})


class Raw:
    """A handshaken raw client speaking the models protocol (service id 1)."""

    def __init__(self, ts):
        self.raw = ts.raw()
        self.raw.hello()
        self.cb = 0

    def ask(self, *command):
        """Send a request; @return: C{("ok", reply)} or C{("error", {"error", "message"})}."""
        self.cb += 1
        head = "1{}".format(self.cb)
        before = len(self.raw.frames)
        self.raw.send(head + "|" + json.dumps(list(command)))
        answers = [f for f in self.raw.frames[before:] if f.startswith((head + "|", head + "!"))]
        assert len(answers) == 1, self.raw.frames[before:]
        frame = answers[0]
        return ("ok" if frame[len(head)] == "|" else "error"), json.loads(frame[len(head) + 1:])

    def ok(self, *command):
        status, reply = self.ask(*command)
        assert status == "ok", reply
        return reply

    def error(self, *command):
        status, reply = self.ask(*command)
        assert status == "error", reply
        return reply["error"], reply["message"]

    def pushes(self):
        """@return: every push of the models service so far, decoded."""
        return [json.loads(f[2:]) for f in self.raw.frames if f.startswith("1|")]

    @property
    def frames(self):
        return self.raw.frames


def add(path, value):
    return {"op": "add", "path": path, "value": value}


# -- names


def test_namesAndTypes():
    assert validName("todo:shared") and validName("a.b-c_d:e@f/g=h+i,j") and validName("x" * 200)
    assert not validName("") and not validName("x" * 201) and not validName("a b") and not validName("é")
    assert not validName(3) and not validName(None)
    assert typeOf("todo:shared:x") == "todo" and typeOf("plain") == "plain"


# -- subscribing and changes


def test_subscribeGivesSnapshotAndVersion():
    ts = make(types={"todo": {"initial": {"items": []}}})
    a = Raw(ts)
    assert a.ok("sub", "todo:a") == {"v": 0, "value": {"items": []}}
    assert a.ok("patch", "todo:a", 0, [add("/items/-", "milk")]) == {"v": 1}
    b = Raw(ts)
    assert b.ok("sub", "todo:a") == {"v": 1, "value": {"items": ["milk"]}}
    assert b.ok("get", "todo:a") == {"v": 1, "value": {"items": ["milk"]}}
    assert b.ok("sub", "todo:other") == {"v": 0, "value": {"items": []}}  # never changed: initial at 0
    assert ts.api.models.subscribers("todo:a") == 2


def test_defaultInitialIsAnEmptyObjectOrTheServiceInitial():
    assert Raw(make()).ok("sub", "anything") == {"v": 0, "value": {}}
    assert Raw(make(initial={"n": 0})).ok("sub", "counter:1") == {"v": 0, "value": {"n": 0}}


def test_changesArePushedInOrderToEverySubscriber():
    ts = make()
    writer, reader, other = Raw(ts), Raw(ts), Raw(ts)
    writer.ok("sub", "doc")
    reader.ok("sub", "doc")
    other.ok("sub", "elsewhere")
    for i in range(5):
        before = len(writer.frames)
        assert writer.ok("patch", "doc", i, [add("/k{}".format(i), i)]) == {"v": i + 1}
        # the writer receives its own change as a push, before the reply (docs/models.md)
        assert writer.frames[before:] == [
            '1|["c","doc",{},[{{"op":"add","path":"/k{}","value":{}}}]]'.format(i + 1, i, i),
            "1{}|{{\"v\":{}}}".format(writer.cb, i + 1),
        ]
    expected = [["c", "doc", i + 1, [add("/k{}".format(i), i)]] for i in range(5)]
    assert reader.pushes() == expected
    assert writer.pushes() == expected
    assert other.pushes() == []
    assert reader.ok("get", "doc") == {"v": 5, "value": {"k0": 0, "k1": 1, "k2": 2, "k3": 3, "k4": 4}}


def test_changeEventOnTheServerBus():
    ts = make()
    recorder = EventRecorder(ts.server, "models.change")
    a = Raw(ts)
    a.ok("sub", "doc")
    a.ok("patch", "doc", 0, [add("/x", 1)])
    assert recorder.named("models.change") == [("doc", 1, [add("/x", 1)])]


def test_subscribeSinceCatchesUpWithPatchesOrASnapshot():
    ts = make(historySize=3)
    a = Raw(ts)
    for i in range(5):
        a.ok("patch", "doc", i, [add("/k{}".format(i), i)])
    b = Raw(ts)
    assert b.ok("sub", "doc", 3) == {"v": 5, "patches": [[4, [add("/k3", 3)]], [5, [add("/k4", 4)]]]}
    assert b.ok("sub", "doc", 2) == {"v": 5, "patches": [[3, [add("/k2", 2)]], [4, [add("/k3", 3)]], [5, [add("/k4", 4)]]]}
    assert b.ok("sub", "doc", 5) == {"v": 5, "patches": []}
    full = {"v": 5, "value": {"k0": 0, "k1": 1, "k2": 2, "k3": 3, "k4": 4}}
    assert b.ok("sub", "doc", 1) == full  # the log keeps 3 changes: 4 missed is too many
    assert b.ok("sub", "doc", 9) == full  # a version from the future (a restarted memory store)
    assert b.ok("sub", "fresh", 0) == {"v": 0, "patches": []}
    assert b.ok("sub", "fresh2", 4) == {"v": 0, "value": {}}
    assert ts.api.models.subscribers("doc") == 1  # subscribing again is one subscription


def test_historySizeZeroAlwaysCatchesUpWithASnapshot():
    ts = make(historySize=0)
    a = Raw(ts)
    a.ok("patch", "doc", 0, [add("/x", 1)])
    assert a.ok("sub", "doc", 0) == {"v": 1, "value": {"x": 1}}
    status, reply = a.ask("patch", "doc", 0, [add("/y", 1)])
    assert reply == {"conflict": True, "v": 1, "value": {"x": 1}}


# -- compare-and-set


def test_conflictCarriesThePatchesMissed():
    ts = make()
    a, b = Raw(ts), Raw(ts)
    b.ok("sub", "doc")
    assert a.ok("patch", "doc", 0, [add("/a", 1)]) == {"v": 1}
    assert a.ok("patch", "doc", 1, [add("/b", 2)]) == {"v": 2}
    pushed = len(b.pushes())
    reply = a.ok("patch", "doc", 0, [add("/c", 3)])
    assert reply == {"conflict": True, "v": 2, "patches": [[1, [add("/a", 1)]], [2, [add("/b", 2)]]]}
    assert a.ok("get", "doc") == {"v": 2, "value": {"a": 1, "b": 2}}
    assert len(b.pushes()) == pushed  # nothing was sent for the refused change
    assert ts.server._byName["models"].service.stats == {"commits": 2, "conflicts": 1, "invalid": 0}
    # rebased on the missed patches, the same change is accepted
    assert a.ok("patch", "doc", 2, [add("/c", 3)]) == {"v": 3}


def test_conflictCarriesASnapshotWhenTheLogIsExceeded():
    ts = make(historySize=2)
    a = Raw(ts)
    for i in range(4):
        a.ok("patch", "doc", i, [add("/k{}".format(i), i)])
    assert a.ok("patch", "doc", 1, [add("/z", 0)]) == {
        "conflict": True, "v": 4, "value": {"k0": 0, "k1": 1, "k2": 2, "k3": 3}}
    assert a.ok("patch", "doc", 2, [add("/z", 0)]) == {
        "conflict": True, "v": 4, "patches": [[3, [add("/k2", 2)]], [4, [add("/k3", 3)]]]}
    assert a.ok("patch", "doc", 7, [add("/z", 0)])["conflict"] is True  # ahead of the document: a conflict too
    assert a.ok("patch", "new", 3, [add("/z", 0)]) == {"conflict": True, "v": 0, "value": {}}


def test_everyWriterRetryingOnConflictLosesNothing():
    """Read-modify-write with retry, interleaved by hand: every increment lands."""
    ts = make(initial={"n": 0})
    writers = [Raw(ts) for _ in range(4)]
    held = [w.ok("sub", "counter") for w in writers]
    state = [(h["v"], h["value"]["n"]) for h in held]
    accepted = conflicts = 0
    for rnd in range(10):
        for i, w in enumerate(writers):  # all four submit against what they hold
            version, n = state[i]
            reply = w.ok("patch", "counter", version, [{"op": "test", "path": "/n", "value": n},
                                                     {"op": "replace", "path": "/n", "value": n + 1}])
            if "conflict" in reply:
                conflicts += 1
                latest = w.ok("get", "counter")
                state[i] = (latest["v"], latest["value"]["n"])
            else:
                accepted += 1
                state[i] = (reply["v"], n + 1)
    final = writers[0].ok("get", "counter")
    assert final == {"v": accepted, "value": {"n": accepted}}
    assert accepted >= 10 and conflicts > 0


# -- refused patches change nothing


BAD_PATCHES = [
    ({"op": "add"}, "invalid_patch"),  # not an array
    ([{"op": "add", "value": 1}], "invalid_patch"),  # no path
    ([{"path": "/x", "value": 1}], "invalid_patch"),  # no op
    (["add"], "invalid_patch"),
    ([{"op": "frobnicate", "path": "/x"}], "invalid_patch"),
    ([{"op": "add", "path": "/x"}], "invalid_patch"),  # no value
    ([{"op": "test", "path": "/items/0", "value": "eggs"}], "invalid_patch"),  # a failing test
    ([{"op": "remove", "path": "/nope"}], "invalid_patch"),
    ([{"op": "replace", "path": "/nope", "value": 1}], "invalid_patch"),
    ([{"op": "add", "path": "/nope/deeper", "value": 1}], "invalid_patch"),
    ([{"op": "add", "path": "/items/7", "value": 1}], "invalid_patch"),  # index out of range
    ([{"op": "move", "from": "/nope", "path": "/x"}], "invalid_patch"),
    ([{"op": "copy", "from": "/nope", "path": "/x"}], "invalid_patch"),
    ([{"op": "add", "path": "items", "value": 1}], "invalid_patch"),  # not a JSON pointer
    ([{"op": "add", "path": "/items/-", "value": 1}, {"op": "remove", "path": "/nope"}], "invalid_patch"),  # all or nothing
]


@pytest.mark.parametrize("ops, kind", BAD_PATCHES)
def test_refusedPatchesLeaveTheDocumentUnchanged(ops, kind):
    ts = make()
    a, watcher = Raw(ts), Raw(ts)
    a.ok("patch", "doc", 0, [add("/items", ["milk"])])
    watcher.ok("sub", "doc")
    error, message = a.error("patch", "doc", 1, ops)
    assert error == kind and message
    assert a.ok("get", "doc") == {"v": 1, "value": {"items": ["milk"]}}
    assert watcher.pushes() == []
    assert a.ok("patch", "doc", 1, [add("/items/-", "eggs")]) == {"v": 2}  # still writable at the same version


def test_refusedPatchMessagesSayWhy():
    ts = make()
    a = Raw(ts)
    a.ok("patch", "doc", 0, [add("/items", ["milk"])])
    kind, message = a.error("patch", "doc", 1, [{"op": "test", "path": "/items/0", "value": "eggs"}])
    assert kind == "invalid_patch" and "JsonPatchTestFailed" in message
    kind, message = a.error("patch", "doc", 1, [{"op": "remove", "path": "/nope"}])
    assert kind == "invalid_patch" and "nope" in message
    kind, message = a.error("patch", "doc", 1, "ops")
    assert kind == "invalid_patch" and "RFC 6902" in message


def test_malformedAndUnknownCommands():
    ts = make()
    a = Raw(ts)
    for command in (["patch", "doc", "1", []], ["patch", "doc", -1, []], ["patch", "doc", 1], ["patch", "doc", 1.5, []],
                    ["sub"], ["sub", "doc", "3"], ["sub", "doc", -2]):
        assert a.error(*command)[0] == "malformed", command
    a.cb += 1
    a.raw.send("1{}|\"sub\"".format(a.cb))
    assert json.loads(a.frames[-1].split("!", 1)[1])["error"] == "malformed"
    assert a.error("frob", "doc")[0] == "unknown_command"
    for command in (["sub", "a b"], ["get", ""], ["patch", "x" * 201, 0, []], ["unsub", "é"], ["sub", 5]):
        assert a.error(*command)[0] == "invalid", command
    assert ts.server._byName["models"].service._subs == {}


# -- validation


SCHEMA = {
    "type": "object",
    "required": ["items"],
    "properties": {"items": {"type": "array", "maxItems": 3, "items": {"type": "string"}}},
}


def test_schemaValidation():
    ts = make(types={"todo": {"schema": SCHEMA, "initial": {"items": []}}})
    a, watcher = Raw(ts), Raw(ts)
    watcher.ok("sub", "todo:x")
    for i in range(3):
        assert a.ok("patch", "todo:x", i, [add("/items/-", str(i))]) == {"v": i + 1}
    kind, message = a.error("patch", "todo:x", 3, [add("/items/-", "3")])
    assert kind == "invalid"
    assert message == "todo:x would be invalid: data.items must contain less than or equal to 3 items"
    assert a.error("patch", "todo:x", 3, [{"op": "remove", "path": "/items"}]) == (
        "invalid", "todo:x would be invalid: data must contain ['items'] properties")
    assert a.error("patch", "todo:x", 3, [{"op": "replace", "path": "/items/0", "value": 5}])[0] == "invalid"
    assert a.ok("get", "todo:x") == {"v": 3, "value": {"items": ["0", "1", "2"]}}
    assert len(watcher.pushes()) == 3
    assert ts.server._byName["models"].service.stats["invalid"] == 3


def test_schemaFromAFile(tmp_path):
    path = tmp_path / "todo.json"
    path.write_text(json.dumps(SCHEMA))
    ts = make(types={"todo": {"schema": str(path), "initial": {"items": []}}})
    a = Raw(ts)
    assert a.error("patch", "todo:x", 0, [add("/items/-", 1)])[0] == "invalid"
    assert a.ok("patch", "todo:x", 0, [add("/items/-", "ok")]) == {"v": 1}


def test_badTypesAreConfigErrors(tmp_path):
    for types in (
        {"todo": {"schema": {"type": "nonsense"}}},
        {"todo": {"schema": str(tmp_path / "missing.json")}},
        {"todo": {"schema": SCHEMA}},  # the initial {} lacks "items"
        {"todo": {"initial": {"items": []}, "colour": 1}},
        {"todo": {"validate": "no_such_module_prism.check"}},
        {"todo": {"validate": 3}},
        {"todo": {"initial": {"x": object()}}},
        {"todo": "x"},
        ["todo"],
    ):
        with pytest.raises(PrismConfigError):
            ModelsService(types=types)


def _positive(value):
    if value.get("n", 0) < 0:
        raise ValueError("n must be >= 0")


def test_callableValidators():
    def notBig(value):
        return value.get("n", 0) <= 10  # True or False

    def noSecret(value):
        return "no secrets" if "secret" in value else None

    ts = make(types={
        "a": {"validate": notBig},
        "b": {"validate": noSecret},
        "c": {"validate": "test_models._positive", "initial": {"n": 0}},
    })
    x = Raw(ts)
    assert x.ok("patch", "a:1", 0, [add("/n", 10)]) == {"v": 1}
    assert x.error("patch", "a:1", 1, [{"op": "replace", "path": "/n", "value": 11}]) == (
        "invalid", "a:1 would be invalid: rejected by the validator")
    assert x.error("patch", "b:1", 0, [add("/secret", 1)]) == ("invalid", "b:1 would be invalid: no secrets")
    assert x.error("patch", "c:1", 0, [{"op": "replace", "path": "/n", "value": -1}]) == (
        "invalid", "c:1 would be invalid: n must be >= 0")
    assert x.ok("patch", "c:1", 0, [{"op": "replace", "path": "/n", "value": 1}]) == {"v": 1}
    assert [x.ok("get", n) for n in ("a:1", "b:1", "c:1")] == [
        {"v": 1, "value": {"n": 10}}, {"v": 0, "value": {}}, {"v": 1, "value": {"n": 1}}]


def test_schemaAndValidatorBothApply():
    ts = make(types={"todo": {"schema": SCHEMA, "validate": lambda v: "x" not in v["items"], "initial": {"items": []}}})
    a = Raw(ts)
    assert a.error("patch", "todo:1", 0, [add("/items/-", "x")])[0] == "invalid"
    assert a.error("patch", "todo:1", 0, [add("/items/-", 1)])[0] == "invalid"
    assert a.ok("patch", "todo:1", 0, [add("/items/-", "y")]) == {"v": 1}


def test_withTypesUnknownTypesDoNotExist():
    ts = make(types={"todo": {"initial": {"items": []}}})
    a = Raw(ts)
    for command in (["sub", "note:1"], ["get", "note:1"], ["patch", "note:1", 0, []], ["sub", "note"]):
        kind, message = a.error(*command)
        assert kind == "invalid" and "no document type" in message, command
    assert a.ok("sub", "todo:1") == {"v": 0, "value": {"items": []}}
    assert a.ok("sub", "todo") == {"v": 0, "value": {"items": []}}  # a name without ":" is its own type
    f = failureOf(ts.api.models.get("note:1"), ServiceError)
    assert f.value.kind == "invalid"
    assert failureOf(ts.api.models.set("note:1", {}), ServiceError).value.kind == "invalid"


# -- limits


def test_tooLarge():
    ts = make(maxDocumentSize=64, maxPatchOperations=3)
    a = Raw(ts)
    kind, message = a.error("patch", "doc", 0, [add("/x", "y" * 100)])
    assert kind == "too_large" and "limit is 64" in message
    kind, message = a.error("patch", "doc", 0, [add("/a", 1), add("/b", 2), add("/c", 3), add("/d", 4)])
    assert kind == "too_large" and "at most 3 operations" in message
    assert a.ok("patch", "doc", 0, [add("/a", 1), add("/b", 2), add("/c", 3)]) == {"v": 1}
    assert a.ok("get", "doc") == {"v": 1, "value": {"a": 1, "b": 2, "c": 3}}
    assert failureOf(ts.api.models.set("doc", {"x": "y" * 100}), ServiceError).value.kind == "too_large"


def test_maxSubscriptions():
    ts = make(maxSubscriptions=2)
    a = Raw(ts)
    a.ok("sub", "one")
    a.ok("sub", "two")
    a.ok("sub", "two")  # again: still two
    kind, message = a.error("sub", "three")
    assert kind == "limit" and "at most 2" in message
    assert a.ok("get", "three") == {"v": 0, "value": {}}  # reading without subscribing is fine
    assert a.ok("unsub", "one") is True
    assert a.ok("sub", "three") == {"v": 0, "value": {}}
    assert Raw(ts).ok("sub", "four") == {"v": 0, "value": {}}  # the limit is per connection


# -- authorization


def test_withoutAnAuthorizeHookClientsMayReadButNotWrite():
    ts = PrismTestServer(services={"models": ModelsService()})
    a = Raw(ts)
    assert a.ok("sub", "doc") == {"v": 0, "value": {}}
    kind, message = a.error("patch", "doc", 0, [add("/x", 1)])
    assert kind == "forbidden" and "no authorize hook" in message
    assert a.ok("get", "doc") == {"v": 0, "value": {}}
    # the server-side API is not a client: it may write
    assert resultOf(ts.api.models.set("doc", {"x": 1})) == 1
    assert a.pushes() == [["c", "doc", 1, [{"op": "replace", "path": "", "value": {"x": 1}}]]]


def test_authorizeHookSyncReadAndWrite():
    seen = []

    def authorize(request, action, name):
        seen.append((action, name, request.connection.id))
        if action == "read":
            return not name.startswith("secret")
        return name.startswith("public")

    ts = make(authorize=authorize)
    a = Raw(ts)
    assert a.error("sub", "secret:1") == ("forbidden", "read on 'secret:1' is not allowed")
    assert a.error("get", "secret:1")[0] == "forbidden"
    assert a.ok("sub", "public:1") == {"v": 0, "value": {}}
    assert a.ok("patch", "public:1", 0, [add("/x", 1)]) == {"v": 1}
    assert a.error("patch", "notes:1", 0, [add("/x", 1)]) == ("forbidden", "write on 'notes:1' is not allowed")
    assert a.ok("get", "notes:1") == {"v": 0, "value": {}}
    connId = a.raw.connection.id
    assert ("read", "secret:1", connId) in seen and ("write", "notes:1", connId) in seen
    assert ts.server._byName["models"].service._subs == {connId: {"public:1": True}}  # the refused sub left nothing


def test_authorizeHookDeferred():
    pending = []

    def authorize(request, action, name):
        d = Deferred()
        pending.append((action, d))
        return d

    ts = make(authorize=authorize)
    a = Raw(ts)
    a.raw.send('11|["sub","doc"]')
    a.raw.send('12|["patch","doc",0,[{"op":"add","path":"/x","value":1}]]')
    a.raw.send('13|["patch","doc",0,[{"op":"add","path":"/y","value":1}]]')
    assert [action for action, _ in pending] == ["read", "write", "write"]
    assert not [f for f in a.frames if f.startswith(("11", "12", "13"))]
    pending[0][1].callback(True)
    pending[1][1].callback(True)
    pending[2][1].callback(False)
    replies = [f for f in a.frames if f.startswith(("11", "12", "13"))]
    assert replies[0] == '11|{"v":0,"value":{}}'
    assert replies[1] == '12|{"v":1}'
    assert replies[2].startswith('13!{"error":"forbidden"')
    assert a.pushes() == [["c", "doc", 1, [add("/x", 1)]]]


def test_authorizeHookCoroutineAndDottedName():
    async def authorize(request, action, name):
        await succeed(None)
        return action == "read" or name == "mine"

    ts = make(authorize=authorize)
    a = Raw(ts)
    assert a.ok("sub", "mine") == {"v": 0, "value": {}}
    assert a.ok("patch", "mine", 0, [add("/x", 1)]) == {"v": 1}
    assert a.error("patch", "yours", 0, [add("/x", 1)])[0] == "forbidden"
    service = ModelsService(authorize="prism.services.models.allowAll")
    assert service._authorize is allowAll


def test_authorizeHookThatFailsIsAnError():
    def authorize(request, action, name):
        raise RuntimeError("boom")

    ts = make(authorize=authorize)
    a = Raw(ts)
    kind, _ = a.error("sub", "doc")
    assert kind == "handler"
    assert ts.server._byName["models"].service._subs == {}
    assert ts.errors and ts.errors[-1].kind == "handler"


def test_authorizeHookSeesTheSessionWhenSessionsAreOn():
    seen = []

    def authorize(request, action, name):
        seen.append(request.session)
        return request.session is not None and request.session.get("user") == "ada"

    ts = make(authorize=authorize, sessions=True)
    a = Raw(ts)
    assert a.error("patch", "doc", 0, [add("/x", 1)])[0] == "forbidden"
    session = seen[-1]
    assert session is not None
    session["user"] = "ada"
    assert a.ok("patch", "doc", 0, [add("/x", 1)]) == {"v": 1}


# -- unsubscribe and disconnect


def test_unsubscribeStopsPushes():
    ts = make()
    a, b = Raw(ts), Raw(ts)
    a.ok("sub", "doc")
    b.ok("patch", "doc", 0, [add("/x", 1)])
    assert a.ok("unsub", "doc") is True
    assert a.ok("unsub", "doc") is True  # not subscribed: fine
    assert a.ok("unsub", "never") is True
    b.ok("patch", "doc", 1, [add("/y", 1)])
    assert a.pushes() == [["c", "doc", 1, [add("/x", 1)]]]
    service = ts.server._byName["models"].service
    assert ts.api.models.subscribers("doc") == 0
    assert service._subscribers == {} and service._subs == {a.raw.connection.id: {}}


def test_disconnectCleansUp():
    ts = make()
    service = ts.server._byName["models"].service
    listened = []
    store = service.store
    store.listen = lambda name: listened.append(("listen", name))
    store.unlisten = lambda name: listened.append(("unlisten", name))
    a, b = Raw(ts), Raw(ts)
    for name in ("one", "two", "three"):
        a.ok("sub", name)
    b.ok("sub", "two")
    assert ts.api.models.subscribers("two") == 2
    a.raw.close()
    assert ts.api.models.subscribers("two") == 1
    assert sorted(service._subscribers) == ["two"] and list(service._subs) == [b.raw.connection.id]
    # listen is idempotent (called for every new subscriber); unlisten when the last one leaves
    assert {name for call, name in listened if call == "listen"} == {"one", "two", "three"}
    assert sorted(name for call, name in listened if call == "unlisten") == ["one", "three"]
    b.raw.close()
    assert service._subscribers == {} and service._subs == {}
    assert ("unlisten", "two") in listened
    b2 = Raw(ts)
    b2.ok("patch", "two", 0, [add("/x", 1)])  # delivering to nobody is fine
    assert b2.ok("get", "two")["v"] == 1


def test_subscribeRacingADisconnectLeavesNothing():
    pending = []
    ts = make(authorize=lambda request, action, name: pending.append(Deferred()) or pending[-1])
    a = Raw(ts)
    a.raw.send('11|["sub","doc"]')
    a.raw.close()
    pending[0].callback(True)
    service = ts.server._byName["models"].service
    assert service._subscribers == {} and service._subs == {}


# -- the server-side API


def test_apiGetPatchSet():
    ts = make()
    api = ts.api.models
    a = Raw(ts)
    a.ok("sub", "doc")
    snap = resultOf(api.get("doc"))
    assert snap == Snapshot(0, {}) and isinstance(snap, Snapshot)
    assert resultOf(api.patch("doc", [add("/items", [])])) == 1
    assert resultOf(api.patch("doc", [add("/items/-", "a")], version=1)) == 2
    f = failureOf(api.patch("doc", [add("/items/-", "b")], version=1), Conflict)
    assert f.value.kind == "conflict" and f.value.version == 2 and "at version 2, not 1" in f.value.message
    assert resultOf(api.set("doc", {"items": ["z"]})) == 3
    snap = resultOf(api.get("doc"))
    assert snap == Snapshot(3, {"items": ["z"]})
    snap.value["items"].append("private copy")
    assert resultOf(api.get("doc")).value == {"items": ["z"]}
    assert [p[2] for p in a.pushes()] == [1, 2, 3]
    assert failureOf(api.patch("doc", [{"op": "remove", "path": "/nope"}]), ServiceError).value.kind == "invalid_patch"
    assert failureOf(api.patch("doc", "nope"), ServiceError).value.kind == "invalid_patch"
    assert failureOf(api.get("bad name"), ServiceError).value.kind == "invalid"
    assert resultOf(api.patch("doc", [])) == 3  # nothing to do: no new version
    assert resultOf(api.get("doc")).version == 3


def test_apiUpdateReturnsTheNewSnapshot():
    ts = make(types={"todo": {"initial": {"items": []}}})
    api = ts.api.models
    snap = resultOf(api.update("todo:a", lambda doc: doc["items"].append("milk")))
    assert snap == Snapshot(1, {"items": ["milk"]})
    snap = resultOf(api.update("todo:a", lambda doc: {"items": doc["items"] + ["eggs"]}))  # returning a new value
    assert snap == Snapshot(2, {"items": ["milk", "eggs"]})
    assert resultOf(api.get("todo:a")) == snap
    assert resultOf(api.update("todo:a", lambda doc: None)) == snap  # no change: no new version


def test_apiUpdateRetriesOnConflict():
    ts = make(initial={"n": 0})
    api = ts.api.models
    calls = []

    def increment(doc):
        calls.append(doc["n"])
        if len(calls) == 1:  # another writer wins the race meanwhile
            assert resultOf(api.patch("counter", [{"op": "replace", "path": "/n", "value": 100}])) == 1
        doc["n"] += 1

    snap = resultOf(api.update("counter", increment))
    assert calls == [0, 100]
    assert snap == Snapshot(2, {"n": 101}) == resultOf(api.get("counter"))
    stats = ts.server._byName["models"].service.stats
    assert stats["conflicts"] == 1 and stats["commits"] == 2


def test_apiUpdateGivesUpAfterItsRetries():
    ts = make(initial={"n": 0})
    api = ts.api.models

    def alwaysLoses(doc):
        resultOf(api.patch("counter", [{"op": "replace", "path": "/n", "value": doc["n"] + 10}]))
        doc["n"] += 1

    f = failureOf(api.update("counter", alwaysLoses, retries=2), Conflict)
    assert f.value.version == 3
    assert resultOf(api.get("counter")) == Snapshot(3, {"n": 30})


def test_apiUpdateRefusedByValidation():
    ts = make(types={"todo": {"schema": SCHEMA, "initial": {"items": []}}})
    f = failureOf(ts.api.models.update("todo:a", lambda doc: doc["items"].append(5)), ServiceError)
    assert f.value.kind == "invalid"
    assert resultOf(ts.api.models.get("todo:a")) == Snapshot(0, {"items": []})


# -- configuration and plugin


def test_badOptions():
    for options in (
        {"store": "mongo"},
        {"store": 3},
        {"historySize": -1},
        {"maxDocumentSize": "big"},
        {"maxPatchOperations": True},
        {"maxSubscriptions": 1.5},
        {"authorize": "no_such_module_prism.f"},
        {"authorize": 3},
        {"redisPrefix": "bad prefix"},
        {"types": "todo"},
    ):
        with pytest.raises(PrismConfigError):
            ModelsService(**options)


def test_tomlConfiguration(tmp_path):
    from prism.config import loadConfig

    schema = tmp_path / "todo.schema.json"
    schema.write_text(json.dumps(SCHEMA))
    path = tmp_path / "prism.toml"
    path.write_text(
        '[[services]]\n'
        'name = "models"\n'
        'store = "memory"\n'
        'authorize = "prism.services.models.allowAll"\n'
        'history_size = 7\n'
        'max_document_size = 4096\n'
        'max_patch_operations = 50\n'
        'max_subscriptions = 5\n'
        'sessions = true\n'
        'redis_retry = [0.5, 2]\n'
        'initial = { n = 0 }\n'
        '[services.types.todo]\n'
        'initial = { items = [] }\n'
        'schema = "' + str(schema) + '"\n'
        '[services.types.note]\n'
        'schema = { type = "object", properties = { text = { type = "string", maxLength = 5 } } }\n'
    )
    config = loadConfig(str(path))
    service = config.services[0].build()
    assert isinstance(service, ModelsService)
    assert (service.storeName, service.historySize, service.maxDocumentSize, service.maxPatchOperations,
            service.maxSubscriptions, service.sessions, service.redisRetry) == ("memory", 7, 4096, 50, 5, True, (0.5, 2))
    assert service._authorize is allowAll and service._default.initial == {"n": 0}
    assert sorted(service.types) == ["note", "todo"]
    ts = PrismTestServer(services={"models": service})
    a = Raw(ts)
    assert a.ok("sub", "todo:x") == {"v": 0, "value": {"items": []}}
    assert a.error("patch", "note:x", 0, [add("/text", "too long")])[0] == "invalid"
    assert a.ok("patch", "note:x", 0, [add("/text", "short")]) == {"v": 1}


@pytest.mark.parametrize(
    "extra, key",
    [
        ('store = "mongo"\n', "store"),
        ("history_size = -1\n", "history_size"),
        ("max_document_size = 0\n", "max_document_size"),
        ('authorize = "no_such_module_prism.f"\n', "authorize"),
        ("types = 3\n", "types"),
        ("[services.types.todo]\nschema = { type = \"nonsense\" }\n", "types"),
        ("[services.types.todo]\ncolour = 1\n", "types"),
        ("redis_retry = [5, 1]\n", "redis_retry"),
        ("colour = 1\n", "colour"),
        ("initial = 1979-05-27\n", "initial"),
    ],
)
def test_tomlErrorsNameTheKey(tmp_path, extra, key):
    from prism.config import loadConfig

    path = tmp_path / "prism.toml"
    path.write_text('[[services]]\nname = "models"\n' + extra)
    with pytest.raises(PrismConfigError) as e:
        loadConfig(str(path))
    assert "services[0].{}".format(key) in str(e.value), str(e.value)


def test_pluginName():
    from prism._plugins import Registry

    registry = Registry("service")
    assert "models" in registry.names()
    assert registry.load("models") is ModelsService
    service = registry.create("models", authorize="prism.services.models.allowAll", historySize=3)
    assert isinstance(service, ModelsService) and service.historySize == 3


def test_memoryStoreNeedsNoRedis():
    import subprocess
    import sys

    code = (
        "import sys; from prism.server import Server; from prism.services.models import ModelsService;"
        "from prism.transports.loopback import LoopbackTransport;"
        "s = Server(transport=LoopbackTransport(), reactor=object()); s.service('models', ModelsService());"
        "assert 'txredisapi' not in sys.modules and 'twisted.internet.reactor' not in sys.modules; print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "ok", out.stderr
