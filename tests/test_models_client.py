"""
The Python client of the C{models} service (L{prism.client.ModelsClient},
L{prism.client.Model}).

First against a fake client (no server, no reactor): the order in which
pushes and replies arrive (pushes held while a subscribe is in flight, a
gap, our own change confirmed before its push as with Redis, snapshots,
conflicts, reconnection). Then against a real server over 127.0.0.1 with
the memory store: open, change events, update and patch, conflicts,
update() retried by several clients at once, refused changes, and catching
up after a reconnection (with patches, and with a snapshot when more
changes were missed than the server keeps).
"""

import json

import pytest
import pytest_twisted
from twisted.internet.defer import Deferred, DeferredList, gatherResults
from twisted.logger import Logger

from conftest import nextEvent, waitUntil, within
from prism.client import Model, ModelsClient, Snapshot
from prism.errors import ConnectionLost, RemoteError
from prism.events import EventBus
from prism.services.models import ModelsService, allowAll
from prism.testing import failureOf, resultOf


def add(path, value):
    return {"op": "add", "path": path, "value": value}


# -- against a fake client: the order of pushes and replies


class FakeClient:
    """What L{ModelsClient} uses of a L{prism.client.Client}; requests wait in C{sent}."""

    log = Logger()

    def __init__(self):
        self.connected = True
        self.sent = []  # [(message, Deferred)]
        self._events = EventBus()

    def on(self, event, handler):
        return self._events.on(event, handler)

    def emit(self, event, *args):
        self._events.emit(event, *args)

    def _request(self, service, value, timeout):
        d = Deferred()
        self.sent.append((value, d))
        return d

    def reply(self, value, index=-1):
        message, d = self.sent.pop(index)
        d.callback(value)
        return message


def fake():
    client = FakeClient()
    return client, ModelsClient(client, "models", 1, "json", True)


def opened(client, models, name="doc", value=None, version=0):
    d = models.open(name)
    assert client.reply({"v": version, "value": {} if value is None else value}) == ["sub", name]
    model = resultOf(d)
    events = []
    model.onChange(lambda value, ops, version: events.append((version, ops, value)))
    return model, events


def test_openGivesAModel():
    client, models = fake()
    d = models.open("doc")
    assert not d.called and client.sent[0][0] == ["sub", "doc"]
    client.reply({"v": 3, "value": {"a": 1}})
    model = resultOf(d)
    assert isinstance(model, Model)
    assert (model.name, model.value, model.version) == ("doc", {"a": 1}, 3)
    assert models.models == {"doc": model}


def test_changesApplyInOrder():
    client, models = fake()
    model, events = opened(client, models, value={"a": 1}, version=3)
    before = model.value
    models._pushReceived(["c", "doc", 4, [add("/b", 2)]])
    assert (model.value, model.version) == ({"a": 1, "b": 2}, 4)
    assert before == {"a": 1}  # the copy is replaced, never changed in place
    models._pushReceived(["c", "doc", 4, [add("/c", 3)]])  # had it: ignored
    models._pushReceived(["c", "doc", 2, [add("/c", 3)]])
    models._pushReceived(["c", "other", 5, [add("/c", 3)]])  # not open
    assert model.value == {"a": 1, "b": 2}
    assert events == [(4, [add("/b", 2)], {"a": 1, "b": 2})]
    assert client.sent == []


def test_pushesHeldWhileSubscribing():
    client, models = fake()
    d = models.open("doc")
    models._pushReceived(["c", "doc", 3, [add("/x", 0)]])  # before the snapshot's reply: held
    models._pushReceived(["c", "doc", 4, [add("/y", 0)]])
    client.reply({"v": 3, "value": {"x": 0}})  # the snapshot has 3 already: 4 only is applied
    model = resultOf(d)
    assert (model.value, model.version) == ({"x": 0, "y": 0}, 4)


def test_aGapResubscribesWithTheVersionHeld():
    client, models = fake()
    model, events = opened(client, models, value={"n": 1}, version=1)
    models._pushReceived(["c", "doc", 3, [{"op": "replace", "path": "/n", "value": 3}]])
    assert model.version == 1
    assert client.sent[0][0] == ["sub", "doc", 1]
    models._pushReceived(["c", "doc", 4, [{"op": "replace", "path": "/n", "value": 4}]])  # held
    models._pushReceived(["c", "doc", 5, [{"op": "replace", "path": "/n", "value": 5}]])  # held
    client.reply({"v": 4, "patches": [[2, [{"op": "replace", "path": "/n", "value": 2}]],
                                      [3, [{"op": "replace", "path": "/n", "value": 3}]],
                                      [4, [{"op": "replace", "path": "/n", "value": 4}]]]})
    assert (model.value, model.version) == ({"n": 5}, 5)
    assert [e[0] for e in events] == [2, 3, 4, 5]
    assert client.sent == []


def test_aChangeThatDoesNotApplyFetchesASnapshot():
    client, models = fake()
    model, events = opened(client, models, value={"n": 1}, version=1)
    models._pushReceived(["c", "doc", 2, [{"op": "remove", "path": "/missing"}]])
    assert (model.value, model.version) == ({"n": 1}, 1)
    assert client.sent[0][0] == ["sub", "doc"]
    client.reply({"v": 2, "value": {"n": 2, "missing": None}})
    assert (model.value, model.version) == ({"n": 2, "missing": None}, 2)
    assert events == [(2, None, {"n": 2, "missing": None})]


def test_snapshotPushes():
    client, models = fake()
    model, events = opened(client, models, value={"n": 1}, version=1)
    models._pushReceived(["s", "doc", 7, {"n": 7}])
    assert (model.value, model.version) == ({"n": 7}, 7)
    # The server sends a snapshot only when it lost track (a document deleted,
    # Redis restarted empty): it is the current state even if its version went back.
    models._pushReceived(["s", "doc", 2, {"n": 2}])
    assert (model.value, model.version) == ({"n": 2}, 2)
    assert events == [(7, None, {"n": 7}), (2, None, {"n": 2})]


def test_ownPatchAppliedWhenConfirmedBeforeItsPush():
    """With Redis the reply may come before the push: the change is applied once."""
    client, models = fake()
    model, events = opened(client, models, value={"n": 1}, version=1)
    d = model.patch([{"op": "replace", "path": "/n", "value": 2}])
    message = client.reply({"v": 2})
    assert message == ["patch", "doc", 1, [{"op": "replace", "path": "/n", "value": 2}]]
    assert resultOf(d) == 2
    assert (model.value, model.version) == ({"n": 2}, 2)
    models._pushReceived(["c", "doc", 2, [{"op": "replace", "path": "/n", "value": 2}]])
    assert len(events) == 1


def test_updateResolvesWithTheNewState():
    client, models = fake()
    model, events = opened(client, models, value={"items": []}, version=5)
    d = model.update(lambda doc: doc["items"].append("milk"))
    message = client.sent[0][0]
    assert message == ["patch", "doc", 5, [add("/items/0", "milk")]]
    # the push first (memory store), then the reply
    models._pushReceived(["c", "doc", 6, message[3]])
    client.reply({"v": 6})
    snap = resultOf(d)
    assert snap == Snapshot(6, {"items": ["milk"]}) and snap.value is model.value


def test_updateRetriesAfterCatchingUp():
    client, models = fake()
    model, events = opened(client, models, value={"n": 0}, version=0)
    calls = []

    def increment(doc):
        calls.append(doc["n"])
        doc["n"] += 1

    d = model.update(increment)
    assert client.sent[0][0] == ["patch", "doc", 0, [{"op": "replace", "path": "/n", "value": 1}]]
    client.reply({"conflict": True, "v": 2, "patches": [[1, [{"op": "replace", "path": "/n", "value": 10}]],
                                                         [2, [{"op": "replace", "path": "/n", "value": 20}]]]})
    assert (model.value, model.version) == ({"n": 20}, 2)
    assert client.sent[0][0] == ["patch", "doc", 2, [{"op": "replace", "path": "/n", "value": 21}]]
    client.reply({"conflict": True, "v": 3, "value": {"n": 30}})  # a snapshot replaces the copy
    assert client.sent[0][0] == ["patch", "doc", 3, [{"op": "replace", "path": "/n", "value": 31}]]
    client.reply({"v": 4})
    assert resultOf(d) == Snapshot(4, {"n": 31})
    assert calls == [0, 20, 30]


def test_updateGivesUpAfterItsRetries():
    client, models = fake()
    model, _ = opened(client, models, value={"n": 0}, version=0)
    d = model.update(lambda doc: doc.update(n=doc["n"] + 1), retries=2)
    for v in (1, 2, 3):
        client.reply({"conflict": True, "v": v, "value": {"n": -v}})
    e = failureOf(d, RemoteError).value
    assert e.kind == "conflict" and e.version == 3
    assert client.sent == []


def test_updateWithoutChangeSendsNothing():
    client, models = fake()
    model, _ = opened(client, models, value={"n": 0}, version=4)
    assert resultOf(model.update(lambda doc: None)) == Snapshot(4, {"n": 0})
    assert resultOf(model.update(lambda doc: {"n": 0})) == Snapshot(4, {"n": 0})
    assert client.sent == []


def test_updateFunctionErrors():
    client, models = fake()
    model, _ = opened(client, models)

    def broken(doc):
        raise KeyError("nope")

    failureOf(model.update(broken), KeyError)
    failureOf(model.update(lambda doc: {"x": object()}), TypeError)  # not JSON
    assert client.sent == []


def test_patchConflict():
    client, models = fake()
    model, _ = opened(client, models, value={"n": 0}, version=0)
    d = model.patch([{"op": "replace", "path": "/n", "value": 1}])
    client.reply({"conflict": True, "v": 1, "patches": [[1, [{"op": "replace", "path": "/n", "value": 5}]]]})
    e = failureOf(d, RemoteError).value
    assert e.kind == "conflict" and e.version == 1 and "at version 1, not 0" in e.message
    assert (model.value, model.version) == ({"n": 5}, 1)  # caught up: ready for another try


def test_conflictBehindTheCopyIsNotApplied():
    """A conflict snapshot older than the copy (a document that was reset) does not roll the copy back."""
    client, models = fake()
    model, _ = opened(client, models, value={"n": 5}, version=5)
    d = model.patch([{"op": "replace", "path": "/n", "value": 6}])
    client.reply({"conflict": True, "v": 0, "value": None, "initial": True})
    assert failureOf(d, RemoteError).value.version == 0
    assert (model.value, model.version) == ({"n": 5}, 5)


def test_reconnectResubscribesWithTheVersionHeld():
    client, models = fake()
    a, _ = opened(client, models, "a", {"n": 3}, 3)
    b, _ = opened(client, models, "b", {}, 0)
    pending = models.open("c")  # not open yet: its subscribe fails with the connection
    client.sent.pop()[1].errback(ConnectionLost("gone"))
    failureOf(pending, ConnectionLost)
    client.emit("reconnect", {})
    assert sorted(m for m, _ in client.sent) == [["sub", "a", 3], ["sub", "b", 0]]
    client.reply({"v": 4, "patches": [[4, [{"op": "replace", "path": "/n", "value": 4}]]]}, 0)
    assert (a.value, a.version) == ({"n": 4}, 4)


def test_openTwiceAndClose():
    client, models = fake()
    d1 = models.open("doc")
    d2 = models.open("doc")
    assert len(client.sent) == 1
    client.reply({"v": 0, "value": {}})
    model = resultOf(d1)
    assert resultOf(d2) is model and resultOf(models.open("doc")) is model
    resultOf(model.close())
    resultOf(model.close())
    assert client.sent == [] and "doc" in models.models
    d = model.close()
    assert client.reply(True) == ["unsub", "doc"]
    assert resultOf(d) is None and models.models == {}
    resultOf(model.close())  # closed already
    models._pushReceived(["c", "doc", 1, [add("/x", 1)]])
    assert model.version == 0


def test_openFails():
    client, models = fake()
    d1, d2 = models.open("doc"), models.open("doc")
    client.sent.pop()[1].errback(RemoteError("forbidden", "no"))
    assert failureOf(d1, RemoteError).value.kind == "forbidden"
    assert failureOf(d2, RemoteError).value.kind == "forbidden"
    assert models.models == {}


def test_get():
    client, models = fake()
    d = models.get("doc")
    assert client.reply({"v": 2, "value": [1]}) == ["get", "doc"]
    assert resultOf(d) == Snapshot(2, [1])
    assert models.models == {}


# -- against a real server


SCHEMA = {
    "type": "object",
    "required": ["items"],
    "properties": {"items": {"type": "array", "maxItems": 5}},
}


def authorize(request, action, name):
    if name.startswith("secret:"):
        return False
    return action == "read" or not name.startswith("ro:")


async def served(prism, **options):
    options.setdefault("authorize", allowAll)
    return await prism.serve({"models": ModelsService(**options)})


def serverConnection(served, before):
    """The one server-side connection opened since C{before} (a set of ids)."""
    (conn,) = [c for cid, c in served.server.connections.items() if cid not in before]
    return conn


@pytest_twisted.ensureDeferred
async def test_openUpdatePatchGet(prism):
    s = await served(prism, initial={"items": []})
    a = await prism.connect(s.url)
    b = await prism.connect(s.url)
    assert isinstance(a.api.models, ModelsClient)
    doc = await within(a.api.models.open("todo:1"))
    other = await within(b.api.models.open("todo:1"))
    assert (doc.value, doc.version) == ({"items": []}, 0)
    seen = []
    other.onChange(lambda value, ops, version: seen.append((version, ops)))

    snap = await within(doc.update(lambda d: d["items"].append({"text": "milk"})))
    assert snap == Snapshot(1, {"items": [{"text": "milk"}]})
    assert (doc.version, doc.value) == snap
    version = await within(doc.patch([add("/items/-", {"text": "eggs"})]))
    assert version == 2 and doc.version == 2
    snap = await within(doc.update(lambda d: {"items": d["items"][1:], "done": True}))  # a new value
    assert snap == Snapshot(3, {"items": [{"text": "eggs"}], "done": True})

    await waitUntil(lambda: other.version == 3)
    assert other.value == doc.value
    assert [v for v, _ in seen] == [1, 2, 3] and all(ops for _, ops in seen)
    assert seen[1][1] == [add("/items/-", {"text": "eggs"})]

    assert await within(b.api.models.get("todo:1")) == Snapshot(3, doc.value)
    assert await within(b.api.models.get("todo:never")) == Snapshot(0, {"items": []})
    snap = await within(s.server.api.models.get("todo:1"))
    assert snap == Snapshot(3, doc.value)

    await within(other.close())
    await waitUntil(lambda: s.server.api.models.subscribers("todo:1") == 1)
    await within(doc.patch([{"op": "replace", "path": "/done", "value": False}]))
    assert other.version == 3  # closed: no longer follows


@pytest_twisted.ensureDeferred
async def test_concurrentPatchesOneConflict(prism):
    s = await served(prism)
    a = await prism.connect(s.url)
    b = await prism.connect(s.url)
    da = await within(a.api.models.open("doc"))
    db = await within(b.api.models.open("doc"))
    results = await within(
        DeferredList([da.patch([add("/who", "a")]), db.patch([add("/who", "b")])], consumeErrors=True)
    )
    wins = [r for ok, r in results if ok]
    losses = [r.value for ok, r in results if not ok]
    assert wins == [1] and len(losses) == 1
    assert isinstance(losses[0], RemoteError) and losses[0].kind == "conflict" and losses[0].version == 1
    await waitUntil(lambda: da.version == db.version == 1)
    assert da.value == db.value == (await within(s.server.api.models.get("doc"))).value


@pytest_twisted.ensureDeferred
async def test_updateRetriesUnderConcurrency(prism):
    """4 clients x 5 concurrent increments: each conflict means another one won, so 21 tries are enough."""
    s = await served(prism, initial={"n": 0, "log": []})
    clients = [await prism.connect(s.url) for _ in range(4)]
    docs = [await within(c.api.models.open("counter")) for c in clients]
    runs = []

    def increment(i):
        def change(doc):
            runs.append(i)
            doc["n"] += 1
            doc["log"].append(i)

        return change

    updates = [doc.update(increment(i)) for i, doc in enumerate(docs) for _ in range(5)]
    snaps = await within(gatherResults(updates), 20)
    assert sorted(snap.version for snap in snaps) == list(range(1, 21))
    assert all(snap.value["n"] == snap.version for snap in snaps)
    final = await within(s.server.api.models.get("counter"))
    assert final.version == 20 and final.value["n"] == 20
    assert sorted(final.value["log"]) == sorted([0, 1, 2, 3] * 5)
    await waitUntil(lambda: all(doc.version == 20 for doc in docs))
    assert all(doc.value == final.value for doc in docs)
    assert len(runs) > 20  # conflicts happened and were retried
    stats = s.server._byName["models"].service.stats
    assert stats["commits"] == 20 and stats["conflicts"] == len(runs) - 20


@pytest_twisted.ensureDeferred
async def test_resyncAfterReconnect(prism):
    s = await served(prism, historySize=5, initial={"n": 0})
    api = s.server.api.models
    before = set(s.server.connections)
    a = await prism.connect(s.url, initialDelay=0.2, maxDelay=0.5, jitter=0)
    conn = serverConnection(s, before)
    doc = await within(a.api.models.open("doc"))
    other = await within(a.api.models.open("other"))
    await within(api.set("doc", {"n": 0, "text": "x" * 10}))
    await waitUntil(lambda: doc.version == 1)
    events = []
    doc.onChange(lambda value, ops, version: events.append((version, ops is None)))

    def bump(d):
        d["n"] += 1

    version = 1
    for missed, snapshot in ((3, False), (5, False), (8, True)):
        before = set(s.server.connections)
        closed, reconnected = nextEvent(a, "close"), nextEvent(a, "reconnect")
        conn.close()
        await closed
        await waitUntil(lambda: api.subscribers("doc") == 0)
        for _ in range(missed):
            await within(api.update("doc", bump))
        version += missed
        await reconnected
        conn = serverConnection(s, before)
        await waitUntil(lambda: doc.version == version)
        assert doc.value == (await within(api.get("doc"))).value == {"n": version - 1, "text": "x" * 10}
        if snapshot:
            assert events[-1] == (version, True) and len(events) == 1
        else:
            assert events == [(v, False) for v in range(version - missed + 1, version + 1)]
        del events[:]
    assert other.version == 0 and api.subscribers("other") == 1

    # after catching up, the copy follows again
    await within(api.update("doc", bump))
    await waitUntil(lambda: doc.version == version + 1)
    assert doc.value["n"] == version


@pytest_twisted.ensureDeferred
async def test_catchUpAfterALostPush(prism):
    """A change missed on a live connection: the next one shows a gap, and the client resubscribes."""
    s = await served(prism, initial={"n": 0})
    a = await prism.connect(s.url)
    doc = await within(a.api.models.open("doc"))
    models = a.api.models
    dropped = []
    original = models._pushReceived

    def lossy(value):
        if value[2] == 2 and not dropped:
            dropped.append(value)
            return
        original(value)

    models._pushReceived = lossy
    api = s.server.api.models
    for n in (1, 2, 3):
        await within(api.patch("doc", [{"op": "replace", "path": "/n", "value": n}]))
    await waitUntil(lambda: doc.version == 3)
    assert dropped and doc.value == {"n": 3}


@pytest_twisted.ensureDeferred
async def test_refusedChanges(prism):
    s = await served(
        prism,
        authorize=authorize,
        types={"todo": {"schema": SCHEMA, "initial": {"items": []}}, "ro": {}, "secret": {}},
        maxDocumentSize=200,
        maxPatchOperations=5,
    )
    a = await prism.connect(s.url)
    models = a.api.models

    async def refused(d):
        f = await within(DeferredList([d], consumeErrors=True))
        ok, failure = f[0]
        assert not ok
        failure.trap(RemoteError)
        return failure.value

    assert (await refused(models.open("secret:x"))).kind == "forbidden"
    assert (await refused(models.open("nope:x"))).kind == "invalid"  # undeclared type
    assert (await refused(models.open("bad name"))).kind == "invalid"
    assert (await refused(models.get("secret:x"))).kind == "forbidden"
    assert models.models == {}

    ro = await within(models.open("ro:1"))
    assert (await refused(ro.patch([add("/x", 1)]))).kind == "forbidden"
    assert (await refused(ro.update(lambda d: d.update(x=1)))).kind == "forbidden"

    todo = await within(models.open("todo:1"))
    await within(todo.update(lambda d: d["items"].append(1)))
    state = (todo.value, todo.version)
    assert (await refused(todo.patch([{"op": "remove", "path": "/missing"}]))).kind == "invalid_patch"
    assert (await refused(todo.patch([{"op": "test", "path": "/items/0", "value": 2}]))).kind == "invalid_patch"
    assert (await refused(todo.patch({"op": "add"}))).kind == "invalid_patch"  # not a list
    assert (await refused(todo.patch([add("/items/-", 2)] * 6))).kind == "too_large"
    e = await refused(todo.update(lambda d: d["items"].extend([2, 3, 4, 5, 6])))
    assert e.kind == "invalid" and "5 items" in e.message
    assert (await refused(todo.update(lambda d: {"other": 1}))).kind == "invalid"  # no items
    assert (await refused(todo.update(lambda d: d.update(big="x" * 300)))).kind == "too_large"
    assert (todo.value, todo.version) == state  # nothing changed, locally or on the server
    assert (await within(s.server.api.models.get("todo:1"))) == state[::-1]
    assert models.models.keys() == {"ro:1", "todo:1"}


@pytest_twisted.ensureDeferred
async def test_subscriptionLimit(prism):
    s = await served(prism, maxSubscriptions=2)
    a = await prism.connect(s.url)
    await within(a.api.models.open("a"))
    await within(a.api.models.open("b"))
    f = (await within(DeferredList([a.api.models.open("c")], consumeErrors=True)))[0][1]
    assert f.check(RemoteError) and f.value.kind == "limit"
    doc = await within(a.api.models.open("a"))  # open already: no new subscription
    await within(doc.close())
    assert "a" in a.api.models.models
    await within(doc.close())
    assert "a" not in a.api.models.models
    await within(a.api.models.open("c"))  # the unsubscribe made room


@pytest.mark.parametrize("pair", [
    ({"a": [1, 2, 3]}, {"a": [1, 3]}),
    ({"a": {"b": [1, {"c": 2}]}}, {"a": {"b": [1, {"c": 3, "d": [4]}]}, "e": None}),
    ([1, "x", {"k": True}], {"now": "an object"}),
    ({"a/b": 1, "m~n": 2}, {"a/b": 2}),
    ({}, {"": {"": []}}),
    ({"x": True, "y": [1]}, {"x": 1, "y": [True]}),  # equal in Python, not in JSON
    ({"-": [[False, 2, "s"], 2, [3.5]]}, {"-": {}, "a/b": True}),  # jsonpatch 1.33's make_patch breaks on this
])
def test_diffGivesTheValue(pair):
    """update()'s diff (jsonpatch.make_patch) applied by the client itself gives the new value."""
    before, after = pair
    client, models = fake()
    model, _ = opened(client, models, value=before, version=1)
    d = model.update(lambda doc: after)
    client.reply({"v": 2})
    snap = resultOf(d)
    assert snap.version == 2 and model.value is snap.value
    assert json.dumps(snap.value, sort_keys=True) == json.dumps(after, sort_keys=True)  # True is not 1


def test_diffOnRandomChanges():
    """Seeded random documents and changes: the patch update() sends gives the new value."""
    import random

    import jsonpatch

    from prism.client import _diff

    rnd = random.Random(8)
    keys = ["a", "b", "", "~", "/", "a/b", "m~n", "-", "0", "1"]

    def value(depth):
        r = rnd.random()
        if depth > 2 or r < 0.4:
            return rnd.choice([2, 3.5, "s", "", True, False, None, 0, 1])
        if r < 0.7:
            return {rnd.choice(keys): value(depth + 1) for _ in range(rnd.randrange(4))}
        return [value(depth + 1) for _ in range(rnd.randrange(5))]

    def mutate(v, depth=0):
        if isinstance(v, dict) and v and rnd.random() < 0.8:
            v, k, r = dict(v), rnd.choice(sorted(v)), rnd.random()
            if r < 0.3:
                del v[k]
            elif r < 0.6:
                v[rnd.choice(keys)] = value(depth + 1)
            else:
                v[k] = mutate(v[k], depth + 1)
            return v
        if isinstance(v, list) and v and rnd.random() < 0.8:
            v, r, i = list(v), rnd.random(), rnd.randrange(len(v))
            if r < 0.3:
                del v[i]
            elif r < 0.6:
                v.insert(i, value(depth + 1))
            else:
                v[i] = mutate(v[i], depth + 1)
            return v
        return value(depth)

    for _ in range(3000):
        a = value(0)
        b = a
        for _ in range(rnd.randrange(1, 4)):
            b = mutate(b)
        ops = _diff(a, json.loads(json.dumps(b)))
        got = jsonpatch.JsonPatch(ops).apply(a, in_place=False)
        assert json.dumps(got, sort_keys=True) == json.dumps(b, sort_keys=True), (a, b, ops)
