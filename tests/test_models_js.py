"""
The generated JavaScript client's models half (C{prism/js/models.js}) under
Node.js.

Without a server (C{tests/js/models_offline.mjs}): its protocol with a fake
service handle, and its JSON Patch code against the examples of RFC 6902,
fast-json-patch on random documents and patches, and update()'s diff; the
random cases are then replayed here with C{jsonpatch}, the library the
server applies patches with, so that the client and the server agree (all
of them with a jsonpatch that follows RFC 6902; with an old one, which
departs from it in edge cases, the plain add/remove/replace cases only).

Against a real server (C{tests/js/models_scenario.mjs}): open, change
events, update and patch, a conflict, update() from three clients at once
converging, refused changes, and catching up after reconnections (with
patches, then with a snapshot).
"""

import gzip
import json
from pathlib import Path

import jsonpatch
import jsonpointer
import pytest
import pytest_twisted

from prism.builder import jsSource
from prism.services.models import ModelsService
from prism.services.rpc import RPCService, withRequest
from test_jsclient import _nodeCheck, _server, nodeModules, runNode  # noqa: F401  (a fixture)

ROOT = Path(__file__).resolve().parents[1]
OFFLINE = ROOT / "tests" / "js" / "models_offline.mjs"
SCENARIO = ROOT / "tests" / "js" / "models_scenario.mjs"
SCHEMA = {"type": "object", "required": ["items"], "properties": {"items": {"type": "array"}}}

_ERRORS = (
    jsonpatch.JsonPatchException,
    jsonpointer.JsonPointerException,
    KeyError,
    IndexError,
    TypeError,
    ValueError,
    AttributeError,
)


def test_builtClientHasTheModelsHalf(nodeModules, tmp_path):  # noqa: F811
    server = _server(("models", ModelsService()))
    source = server.build_client()
    assert '"models": (' in source and "HALVES[name](handle, app)" in source
    for format, suffix in (("esm", ".mjs"), ("script", ".js")):
        path = tmp_path / ("client" + suffix)
        path.write_text(server.build_client(format=format, minify=True), encoding="utf-8")
        _nodeCheck(path)


def test_sizeBound(nodeModules):
    """A generous bound only; the figures are in benchmarks/client_size.py."""
    half = _server(("models", ModelsService())).build_client(minify=True)
    assert len(gzip.compress(half.encode("utf-8"), 9)) <= 4096


def _fails(ops, doc):
    try:
        jsonpatch.JsonPatch(ops).apply(doc, in_place=False)
    except _ERRORS:
        return True
    return False


def _conformant():
    """
    Whether the installed jsonpatch (and jsonpointer) follows RFC 6902 where
    old versions do not (jsonpatch 1.33, with its jsonpointer, departs in
    all six).
    """
    return (
        not _fails([{"op": "copy", "from": "", "path": "/x"}], {})  # from the root
        and not _fails([{"op": "replace", "path": "/-", "value": 1}], {"-": 0})  # "-" as a member name
        and _fails([{"op": "move", "from": "/0", "path": "/0/0"}], [[1], [2]])  # into its own child
        and _fails([{"op": "replace", "path": "/01", "value": 1}], [0, 0])  # a leading zero
        and _fails([{"op": "test", "path": "/0", "value": 1}], [True])  # true is not 1
        and _fails([{"op": "test", "path": "/0/0", "value": "a"}], ["a"])  # a string is no array
    )


def _plain(ops):
    """Only add, remove and replace, without "-" (but appending) or leading zeros: what old jsonpatch gets right."""
    for op in ops:
        if not isinstance(op, dict) or op.get("op") not in ("add", "remove", "replace"):
            return False
        path = op["path"][:-2] if op["op"] == "add" and op["path"].endswith("/-") else op["path"]
        if any(part == "-" or (len(part) > 1 and part.startswith("0")) for part in path.split("/")):
            return False
    return True


@pytest_twisted.ensureDeferred
async def test_modelsOffline(reactor, nodeModules, tmp_path):  # noqa: F811
    cases = tmp_path / "cases.json"
    source = tmp_path / "models.js"
    source.write_text(jsSource("models.js"), encoding="utf-8")
    (tmp_path / "node_modules").symlink_to(nodeModules)
    code, out, err = await runNode(reactor, [str(OFFLINE), str(source), str(cases), "20260", "3000"], tmp_path)
    assert code == 0, (out, err)
    seen = json.loads(out.strip().splitlines()[-1])
    assert "fatal" not in seen, seen
    assert seen["protocol"] is True
    assert seen["table"] >= 45
    assert seen["oracle"] + seen["quirks"] == 3000 and seen["quirks"] < 20 and 500 < seen["oracleErrors"] < 2500
    assert seen["diff"] == 3000 and set(seen["diffOps"]) == {"add", "remove", "replace"}

    # the server's library agrees with the client on every case; with an old
    # jsonpatch, on the cases it gets right
    conformant = _conformant()
    replayed = skipped = 0
    for doc, ops, expected, error in json.loads(cases.read_text(encoding="utf-8")):
        if not conformant and not _plain(ops):
            skipped += 1
            continue
        try:
            got, failed = jsonpatch.JsonPatch(ops).apply(doc, in_place=False), False
        except _ERRORS:
            got, failed = None, True
        assert failed == error, (doc, ops, expected, got)
        if not failed:
            assert json.dumps(got, sort_keys=True) == json.dumps(expected, sort_keys=True), (doc, ops, expected, got)
        replayed += 1
    assert replayed > (2500 if conformant else 500), (replayed, skipped)


def authorize(request, action, name):
    if name.startswith("secret:"):
        return False
    return action == "read" or not name.startswith("ro:")


@pytest_twisted.ensureDeferred
async def test_nodeClientModels(prism, reactor, nodeModules, tmp_path):  # noqa: F811
    models = ModelsService(
        authorize=authorize,
        historySize=5,
        types={"todo": {"schema": SCHEMA, "initial": {"items": []}}, "ro": {}, "secret": {}},
    )

    def bump(doc):
        doc["k"] = doc.get("k", 0) + 1

    @withRequest
    def dropAndChange(request, name, n):
        api = request.server.api.models

        def later():
            request.connection.close()
            for _ in range(n):
                api.update(name, bump)

        reactor.callLater(0.01, later)
        return True

    served = await prism.serve({"models": models, "rpc": RPCService(handlers={"dropAndChange": dropAndChange})})
    client = tmp_path / "prism-client.cjs"
    client.write_text(served.server.build_client(format="cjs"), encoding="utf-8")
    (tmp_path / "node_modules").symlink_to(nodeModules)
    code, out, err = await runNode(reactor, [str(SCENARIO), str(client), served.url], tmp_path)
    assert code == 0, (out, err)
    seen = json.loads(out.strip().splitlines()[-1])
    assert "fatal" not in seen, seen

    milk, eggs = {"text": "milk", "done": False}, {"text": "eggs", "done": False}
    assert seen["open"] == ["todo:js", 0, {"items": []}]
    assert seen["update"] == {"v": 1, "value": {"items": [milk]}}
    assert seen["patch"] == 2 and seen["afterPatch"] == [2, {"items": [milk, eggs]}]
    assert seen["get"] == {"v": 2, "value": {"items": [milk, eggs]}}
    assert seen["events"] == [[1, 1, True], [2, 1, True]]

    assert seen["othersOpen"] == [2, 2, 2]
    assert sorted(seen["race"], key=str) == [3, ["conflict", 3]]
    winner = 1 if seen["race"][0] == 3 else 2
    assert seen["raceCopies"] == [[3, winner], [3, winner]]
    assert seen["updates"] == [[v, v - 3] for v in range(4, 22)]
    assert seen["runs"] > 18  # conflicts happened and were retried
    assert seen["converged"] == [[21, 18, True]] * 3

    assert seen["invalidPatch"] == "invalid_patch" and seen["invalidUpdate"] == "invalid"
    assert seen["unchanged"] is True
    assert seen["readOnly"] == seen["readOnlyUpdate"] == "forbidden"
    assert seen["secret"] == seen["secretGet"] == "forbidden"
    assert seen["badName"] == "invalid"

    # 3 changes missed: 3 patches; 8 (more than history_size): one snapshot
    assert seen["resync3"] == {"events": [[22, 1, True], [23, 1, True], [24, 1, True]], "version": 24, "k": 3}
    assert seen["resync8"] == {"events": [[32, None, True]], "version": 32, "k": 11}
    assert seen["final"]["v"] == 32 and seen["finalSame"] is True
    assert seen["after"]["v"] == 33 and seen["after"]["value"]["items"] == [milk]
    snap = await served.server.api.models.get("todo:js")
    assert snap.version == 33 and snap.value == seen["after"]["value"]
