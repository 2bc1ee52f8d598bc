"""
The C{pubsub} service on the loopback transport and the memory engine (no
sockets, a fake clock): commands, authorization, patterns, exclude-sender,
validation, caps, the server-side API, presence, history and recovery, the
Python client's resubscribe/recover, encode-once fan-out, configuration.
"""

import json

import pytest
from twisted.internet.defer import Deferred, succeed

from prism import wire
from prism.errors import PrismConfigError, RemoteError
from prism.server import PreparedFrame
from prism.services.pubsub import PubSubService, isPattern, validChannel, validPattern
from prism.testing import PrismTestServer, failureOf, resultOf


def allowAll(request, action, channel):
    return True


def make(**options):
    options.setdefault("authorize", allowAll)
    ts = PrismTestServer(services={"pubsub": PubSubService(**options)})
    return ts


def collector():
    got = []

    def handler(data, channel):
        got.append((channel, data))

    handler.got = got
    return handler


def remote(d):
    return failureOf(d, RemoteError).value


# -- names


def test_names():
    assert validChannel("room.1") and validChannel("a:b/c@d=e+f,g-h_i")
    assert not validChannel("room.*") and not validChannel("") and not validChannel("a b")
    assert not validChannel("x" * 201) and not validChannel(3) and not validChannel("é")
    assert validPattern("room.*") and validPattern("r?om") and not validPattern("room[1]")
    assert isPattern("room.*") and not isPattern("room.1")


# -- subscribe, publish, patterns


def test_subscribePublishUnsubscribe():
    ts = make()
    a, b = ts.client(), ts.client()
    ha, hb = collector(), collector()
    assert resultOf(a.api.pubsub.subscribe("room.1", ha)) == {}
    resultOf(b.api.pubsub.subscribe("room.*", hb))
    assert resultOf(b.api.pubsub.publish("room.1", {"t": "hi"})) == {}
    assert ha.got == [("room.1", {"t": "hi"})]
    assert hb.got == [("room.1", {"t": "hi"})]
    resultOf(b.api.pubsub.publish("room.2", 2))
    assert ha.got == [("room.1", {"t": "hi"})] and hb.got[-1] == ("room.2", 2)
    resultOf(a.api.pubsub.unsubscribe("room.1"))
    resultOf(b.api.pubsub.publish("room.1", 3))
    assert len(ha.got) == 1 and hb.got[-1] == ("room.1", 3)
    assert ts.api.pubsub.channels() == ["room.*"]


def test_serverPublish():
    ts = make()
    a = ts.client()
    h = collector()
    resultOf(a.api.pubsub.subscribe("news", h))
    assert resultOf(ts.api.pubsub.publish("news", [1, "two"])) == {}
    assert h.got == [("news", [1, "two"])]
    with pytest.raises(Exception):
        ts.api.pubsub.publish("bad name", 1)


def test_publishDeniedByDefault():
    ts = PrismTestServer(services={"pubsub": PubSubService()})
    a = ts.client()
    h = collector()
    resultOf(a.api.pubsub.subscribe("news", h))  # subscribing is allowed
    e = remote(a.api.pubsub.publish("news", 1))
    assert e.kind == "forbidden"
    assert h.got == []


def test_authorizeHook():
    seen = []

    def authorize(request, action, channel):
        seen.append((action, channel))
        if action == "subscribe":
            return not channel.startswith("secret")
        return succeed(channel.startswith("chat."))  # Deferreds work too

    ts = make(authorize=authorize)
    a = ts.client()
    assert remote(a.api.pubsub.subscribe("secret.x", collector())).kind == "forbidden"
    h = collector()
    resultOf(a.api.pubsub.subscribe("chat.*", h))
    assert resultOf(a.api.pubsub.publish("chat.1", "ok")) == {}
    assert remote(a.api.pubsub.publish("news", "no")).kind == "forbidden"
    assert h.got == [("chat.1", "ok")]
    assert ("publish", "news") in seen and ("subscribe", "chat.*") in seen


def test_asyncAuthorize():
    pending = Deferred()
    ts = make(authorize=lambda request, action, channel: pending)
    a = ts.client()
    d = a.api.pubsub.subscribe("x", collector())
    assert not d.called
    pending.callback(True)
    assert resultOf(d) == {}


def test_excludeSender():
    ts = make()
    a, b = ts.client(), ts.client()
    ha, hb = collector(), collector()
    resultOf(a.api.pubsub.subscribe("c", ha))
    resultOf(b.api.pubsub.subscribe("c", hb))
    resultOf(a.api.pubsub.publish("c", 1, exclude=True))
    assert ha.got == [] and hb.got == [("c", 1)]
    resultOf(a.api.pubsub.publish("c", 2))
    assert ha.got == [("c", 2)]
    ts2 = make(excludeSender=True)
    c = ts2.client()
    hc = collector()
    resultOf(c.api.pubsub.subscribe("c", hc))
    resultOf(c.api.pubsub.publish("c", 1))
    resultOf(c.api.pubsub.publish("c", 2, exclude=False))
    assert hc.got == [("c", 2)]


def test_validationAndCap():
    ts = make(maxSubscriptions=2)
    a = ts.client()
    assert remote(a.api.pubsub.subscribe("bad name", collector())).kind == "invalid"
    assert remote(a.api.pubsub.publish("room.*", 1)).kind == "invalid"
    resultOf(a.api.pubsub.subscribe("one", collector()))
    resultOf(a.api.pubsub.subscribe("one", collector()))  # the same one again: no new slot
    resultOf(a.api.pubsub.subscribe("two.*", collector()))
    assert remote(a.api.pubsub.subscribe("three", collector())).kind == "limit"
    resultOf(a.api.pubsub.unsubscribe("one"))
    resultOf(a.api.pubsub.subscribe("three", collector()))
    raw = ts.raw()
    raw.hello()
    sid = ts.server.serviceId("pubsub")
    for bad, kind in (('"x"', "malformed"), ('["nope","x"]', "unknown_command"), ('["pub","x"]', "malformed")):
        raw.send("{}7|{}".format(wire.ALPHABET[sid], bad))
        assert json.loads(raw.frames[-1][3:])["error"] == kind


def test_unsubscribedOnDisconnect():
    ts = make(presence=True)
    a = ts.client(reconnect=False)
    resultOf(a.api.pubsub.subscribe("c", collector()))
    resultOf(a.api.pubsub.subscribe("p.*", collector()))
    service = ts.server._byName["pubsub"].service
    assert service._channels and service._patterns and service.local
    a.close()
    assert not service._channels and not service._patterns and not service._subs and not service.local
    assert resultOf(ts.api.pubsub.presence("c")) == []


def test_publishToConnectionSessionAll():
    ts = make()
    a, b = ts.client(), ts.client()
    ga, gb = collector(), collector()
    a.api.pubsub.onMessage(ga)
    b.api.pubsub.onMessage(gb)
    connA = [c for c in ts.server.connections.values() if c.sessionId in a.session][0]
    resultOf(ts.api.pubsub.publishTo(connA.id, "you", 1))
    assert ga.got == [("you", 1)] and gb.got == []
    resultOf(ts.api.pubsub.publishToSession(connA.sessionId, "yours", 2))
    assert ga.got[-1] == ("yours", 2) and gb.got == []
    resultOf(ts.api.pubsub.broadcast("all", 3))
    assert ga.got[-1] == ("all", 3) and gb.got == [("all", 3)]


# -- presence


def test_presenceAndEvents():
    ts = make(presence=True, presenceInfo=lambda request: {"id": request.connection.id, "user": "u"})
    a, b = ts.client(), ts.client()
    events = []
    resultOf(a.api.pubsub.subscribe("room", collector(), events=lambda kind, info: events.append(kind)))
    resultOf(b.api.pubsub.subscribe("room", collector()))
    members = resultOf(a.api.pubsub.presence("room"))
    assert len(members) == 2 and all(m["user"] == "u" for m in members)
    assert events == ["join", "join"]
    bus = []
    ts.server.events.on("pubsub.leave", lambda channel, info: bus.append(channel))
    resultOf(b.api.pubsub.unsubscribe("room"))
    assert events == ["join", "join", "leave"] and bus == ["room"]
    assert len(resultOf(ts.api.pubsub.presence("room"))) == 1


def test_presenceDisabled():
    ts = make()
    assert remote(ts.client().api.pubsub.presence("room")).kind == "disabled"


# -- history and recovery


def test_historyOffsetsAndRecovery():
    ts = make(historySize=3, historyTtl=60)
    a = ts.client()
    h = collector()
    reply = resultOf(a.api.pubsub.subscribe("c", h))
    assert reply["offset"] == 0 and reply["epoch"].startswith("e")
    epoch = reply["epoch"]
    assert resultOf(ts.api.pubsub.publish("c", "one")) == {"offset": 1, "epoch": epoch}
    sub = a.api.pubsub.subscriptions["c"]
    assert (sub.offset, sub.epoch) == (1, epoch)
    pubsub = ts.server._byName["pubsub"].service
    engine = pubsub.engine
    assert engine.recover("c", 1, epoch) == (True, [], 1, epoch)
    for n in ("two", "three"):
        resultOf(ts.api.pubsub.publish("c", n))
    assert engine.recover("c", 1, epoch) == (True, [(2, "two"), (3, "three")], 3, epoch)
    resultOf(ts.api.pubsub.publish("c", "four"))
    resultOf(ts.api.pubsub.publish("c", "five"))  # the ring keeps 3, 4, 5
    assert engine.recover("c", 1, epoch)[0] is False
    assert engine.recover("c", 2, epoch)[1] == [(3, "three"), (4, "four"), (5, "five")]
    assert engine.recover("c", 5, "eother")[0] is False
    ts.clock.advance(61)  # the history expires: a new epoch
    assert engine.recover("c", 5, epoch)[0] is False
    assert engine.position("c")[1] != epoch


def test_historyChannels():
    ts = make(historySize=3, historyChannels=["chat.*"])
    a = ts.client()
    assert "offset" in resultOf(a.api.pubsub.subscribe("chat.1", collector()))
    assert resultOf(a.api.pubsub.subscribe("news", collector())) == {}


def test_clientRecoversAfterReconnect():
    ts = make(historySize=10)
    a = ts.client(initialDelay=1, jitter=0)
    h = collector()
    resultOf(a.api.pubsub.subscribe("c", h))
    resultOf(ts.api.pubsub.publish("c", 1))
    for conn in list(ts.server.connections.values()):
        conn.close()
    resultOf(ts.api.pubsub.publish("c", 2))
    resultOf(ts.api.pubsub.publish("c", 3))
    ts.clock.advance(1.5)
    assert a.connected
    resultOf(ts.api.pubsub.publish("c", 4))
    assert [d for _, d in h.got] == [1, 2, 3, 4]


def test_clientToldWhenRecoveryImpossible():
    ts = make(historySize=2)
    a = ts.client(initialDelay=1, jitter=0)
    h = collector()
    unrecovered = []
    a.on("unrecovered", unrecovered.append)
    resultOf(a.api.pubsub.subscribe("c", h))
    for conn in list(ts.server.connections.values()):
        conn.close()
    for n in range(5):
        resultOf(ts.api.pubsub.publish("c", n))
    ts.clock.advance(1.5)
    assert a.connected and unrecovered == ["c"] and h.got == []
    resultOf(ts.api.pubsub.publish("c", "new"))
    assert h.got == [("c", "new")]


def test_patternResubscribedAfterReconnect():
    ts = make()
    a = ts.client(initialDelay=1, jitter=0)
    h = collector()
    resultOf(a.api.pubsub.subscribe("r.*", h))
    for conn in list(ts.server.connections.values()):
        conn.close()
    ts.clock.advance(1.5)
    resultOf(ts.api.pubsub.publish("r.x", 1))
    assert h.got == [("r.x", 1)]


# -- encode-once fan-out


def test_publishEncodesOnce(monkeypatch):
    import prism.services.pubsub as module

    ts = make(historySize=5)
    clients = [ts.client() for _ in range(20)]
    handlers = [collector() for _ in clients]
    for c, h in zip(clients, handlers):
        resultOf(c.api.pubsub.subscribe("fan", h))
    calls = []
    real = module._encode
    monkeypatch.setattr(module, "_encode", lambda v: calls.append(v) or real(v))
    prepared = []
    realSend = type(next(iter(ts.server.connections.values()))).sendPrepared
    monkeypatch.setattr(
        type(next(iter(ts.server.connections.values()))),
        "sendPrepared",
        lambda self, p: prepared.append(p) or realSend(self, p),
    )
    resultOf(ts.api.pubsub.publish("fan", {"x": "y" * 64}))
    assert len(calls) == 1
    assert len(prepared) == 20 and len(set(map(id, prepared))) == 1
    assert all(h.got == [("fan", {"x": "y" * 64})] for h in handlers)


def test_websocketLinkPreparesOnce():
    """The WebSocket link builds one Autobahn PreparedMessage per PreparedFrame."""
    from prism.transports.websocket import PrismWebSocketProtocol

    made = []
    sent = []

    class Factory:
        def prepareMessage(self, payload, isBinary):
            made.append(payload)
            return ("pm", payload)

    protos = []
    for _ in range(3):
        p = PrismWebSocketProtocol.__new__(PrismWebSocketProtocol)
        p.factory = Factory()
        p.sendPreparedMessage = sent.append
        p.state = 3  # open
        protos.append(p)
    prepared = PreparedFrame('1|["m","c",1]')
    for p in protos:
        p._prismWritePrepared(prepared)
    assert made == [b'1|["m","c",1]'] and sent == [("pm", b'1|["m","c",1]')] * 3


# -- configuration


def test_badOptions():
    for options in (
        {"engine": "nope"},
        {"maxSubscriptions": -1},
        {"historySize": "3"},
        {"historyTtl": 0},
        {"historyChannels": "x"},
        {"authorize": "no.such.module.f"},
        {"authorize": 3},
        {"redisPrefix": "bad prefix"},
    ):
        with pytest.raises(PrismConfigError):
            PubSubService(**options)


def test_badRedisUrl():
    from prism.pubsub.redis import parseRedisUrl

    assert parseRedisUrl("redis://127.0.0.1:7000/2") == ("127.0.0.1", 7000, 2)
    for bad in ("http://x", "redis://", "redis://h:1/x"):
        with pytest.raises(PrismConfigError):
            parseRedisUrl(bad)


def test_configTable(tmp_path):
    from prism.config import configFromDict

    config = configFromDict(
        {
            "services": [
                {"name": "pubsub", "history_size": 10, "presence": True, "authorize": "test_pubsub.allowAll"}
            ]
        }
    )
    service = config.services[0].build()
    assert isinstance(service, PubSubService) and service.historySize == 10 and service.presence
    assert service._authorize is allowAll
    with pytest.raises(Exception) as e:
        configFromDict({"services": [{"name": "pubsub", "engine": "mongo"}]})
    assert "engine" in str(e.value)


def test_noRedisImportForMemory():
    import subprocess
    import sys

    code = (
        "import sys; from prism.server import Server; from prism.services.pubsub import PubSubService;"
        "from prism.transports.loopback import LoopbackTransport;"
        "s = Server(transport=LoopbackTransport(), reactor=object()); s.service('pubsub', PubSubService());"
        "assert 'txredisapi' not in sys.modules and 'twisted.internet.reactor' not in sys.modules; print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "ok", out.stderr
