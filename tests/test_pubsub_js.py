"""
The generated JavaScript client's pubsub half (C{prism/js/pubsub.js}) under
Node.js against a real server: subscribe, patterns, publish, presence
events, authorization, and automatic resubscribe with recovery of the
messages published while it was disconnected.
"""

import json
from pathlib import Path

import pytest_twisted

from prism.services.pubsub import PubSubService
from prism.services.rpc import RPCService, withRequest
from test_jsclient import _server, nodeModules, runNode  # noqa: F401  (a fixture)

SCENARIO = Path(__file__).resolve().parent / "pubsub" / "scenario.js"


def authorize(request, action, channel):
    return action != "publish" or channel == "chat" or channel.startswith("room.")


def test_builtClientHasThePubSubHalf():
    source = _server(("pubsub", PubSubService())).build_client()
    assert '"pubsub": (' in source and "onUnrecovered" in source
    assert "HALVES[name](handle, app)" in source


@pytest_twisted.ensureDeferred
async def test_nodeClientPubSub(prism, reactor, nodeModules, tmp_path):  # noqa: F811
    pubsub = PubSubService(authorize=authorize, historySize=10, presence=True)

    @withRequest
    def dropAndPublish(request):
        api = request.server.api.pubsub

        def later():
            request.connection.close()
            api.publish("chat", "m1")
            api.publish("chat", "m2")

        reactor.callLater(0.01, later)
        return True

    served = await prism.serve({"pubsub": pubsub, "rpc": RPCService(handlers={"dropAndPublish": dropAndPublish})})
    client = tmp_path / "prism-client.cjs"
    client.write_text(served.server.build_client(format="cjs"), encoding="utf-8")
    (tmp_path / "node_modules").symlink_to(nodeModules)
    code, out, err = await runNode(reactor, [str(SCENARIO), str(client), served.url], tmp_path)
    assert code == 0, (out, err)
    seen = json.loads(out.strip().splitlines()[-1])
    assert "fatal" not in seen, seen
    assert seen["subOffset"] == 0 and seen["hasEpoch"] is True
    assert seen["pub"] == 1
    assert seen["presence"] == 1
    assert seen["forbidden"] == "forbidden"
    assert seen["got"] == [["chat", "hello"], ["chat", "m1"], ["chat", "m2"], ["chat", "after"]]
    assert seen["pat"] == [["room.7", "r7"], ["room.8", "r8"]]
    assert seen["events"][0] == "join"
