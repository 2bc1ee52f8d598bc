"""
The chat demo's server side (examples/chat) with the Python client, under
both interpreters: the site's routes, the RPC handlers (nickname in the
session, validation errors of kind C{invalid}) and the C{chat} service's
pushes. The browser half is in C{test_browser.py}.
"""

import pytest
import pytest_twisted
from twisted.internet.endpoints import serverFromString
from twisted.web.client import Agent, readBody

from conftest import waitUntil, within
from prism.errors import RemoteError

# Importing twisted.web.static warns about its own module-level resources.
pytestmark = pytest.mark.filterwarnings("ignore:twisted.web.resource._Unsafe:DeprecationWarning")


@pytest.fixture
def chatExample():
    from examples.chat import server

    return server


def test_build_does_not_touch_the_network(chatExample):
    from twisted.internet.testing import MemoryReactorClock

    clock = MemoryReactorClock()
    site, server = chatExample.build(reactor=clock)
    assert server.running
    assert [s[0] for s in server.services()] == ["rpc", "chat"]
    assert server.api.rpc.methods() == ["chat.join", "chat.nick", "chat.post"]
    assert {b"ws", b"prism-client.js"} <= set(site.resource.children)
    assert clock.tcpServers == []


async def _serve(prism, reactor, chatExample):
    site, server = chatExample.build(reactor=reactor, secret=b"chat-test")
    prism._servers.append(server)
    port = prism.track(await within(serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(site)))
    return server, "127.0.0.1:{}".format(port.getHost().port)


@pytest.mark.filterwarnings("ignore:Using readBody with a transport:DeprecationWarning")
@pytest_twisted.ensureDeferred
async def test_one_port_serves_page_client_and_socket(prism, reactor, chatExample):
    server, host = await _serve(prism, reactor, chatExample)
    agent = Agent(reactor)

    async def get(path):
        response = await within(agent.request(b"GET", "http://{}{}".format(host, path).encode("ascii")))
        body = await within(readBody(response))
        return response.code, (response.headers.getRawHeaders(b"content-type") or [b""])[0], body

    code, kind, body = await get("/")
    assert code == 200 and kind.startswith(b"text/html") and b'<script type="module" src="app.js">' in body
    code, kind, body = await get("/app.js")
    assert code == 200 and b"javascript" in kind and b'from "./prism-client.js"' in body
    code, kind, body = await get("/prism-client.js")
    assert code == 200 and b"javascript" in kind
    assert body.decode("utf-8") == server.build_client(format="esm")

    client = await prism.connect("ws://{}/ws".format(host))
    assert await within(client.api.rpc.call("chat.join")) == {"nick": "anonymous", "history": []}


@pytest_twisted.ensureDeferred
async def test_chat_between_two_sessions(prism, reactor, chatExample):
    server, host = await _serve(prism, reactor, chatExample)
    url = "ws://{}/ws".format(host)
    ada = await prism.connect(url)
    bob = await prism.connect(url)
    assert ada.session != bob.session

    assert await within(ada.api.rpc.call("chat.nick", "  Ada   Lovelace ")) == "Ada Lovelace"
    received = []
    bob.api.chat.on(received.append)
    messageId = await within(ada.api.rpc.call("chat.post", " hello "))
    await waitUntil(lambda: any(m[1]["id"] == messageId for m in received))
    (event, message) = [m for m in received if m[1]["id"] == messageId][0]
    assert event == "message"
    assert message["nick"] == "Ada Lovelace" and message["text"] == "hello" and "at" in message

    # The nickname is in the session: a new connection of the same session sees it.
    again = await prism.connect(url, session=ada.session)
    assert again.session == ada.session
    joined = await within(again.api.rpc.call("chat.join"))
    assert joined["nick"] == "Ada Lovelace"
    assert [m["text"] for m in joined["history"]] == ["Ada Lovelace joined", "hello"]
    assert (await within(bob.api.rpc.call("chat.join")))["nick"] == "anonymous"

    # Mistakes a person can make are errors of kind "invalid".
    for method, args, text in [
        ("chat.post", [""], "cannot post an empty message"),
        ("chat.post", ["   "], "cannot post an empty message"),
        ("chat.post", [None], "cannot post an empty message"),
        ("chat.post", ["x" * 501], "a message has at most 500 characters"),
        ("chat.nick", [""], "a nickname cannot be empty"),
        ("chat.nick", ["n" * 25], "a nickname has at most 24 characters"),
    ]:
        with pytest.raises(RemoteError) as caught:
            await within(bob.api.rpc.call(method, *args))
        assert (caught.value.kind, caught.value.message) == ("invalid", text)

    # Only the last 50 messages are kept.
    for i in range(60):
        server.api.chat.broadcast({"nick": "bot", "text": str(i)})
    history = server.api.chat.history()
    assert len(history) == 50 and history[-1]["text"] == "59"
    assert [m["id"] for m in history] == sorted(m["id"] for m in history)



def test_the_toml_variant_validates():
    """
    C{scripts/demo toml} runs the same app from examples/chat/prism.toml; its
    C{chat} service plugin is found when examples/chat is on the path.
    """
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), str(root / "examples" / "chat")]))
    result = subprocess.run(
        [sys.executable, "-m", "prism.cli", "check", "--config", "examples/chat/prism.toml"],
        cwd=str(root), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60,
    )
    out = result.stdout.decode("utf-8", "replace")
    assert result.returncode == 0, out
    assert "static files from {} at /, Prism at /ws".format(root / "examples" / "chat" / "static") in out
    assert 'rpc (handlers="examples.chat.rpc", sessions=true)' in out and "chat (keep=50)" in out
