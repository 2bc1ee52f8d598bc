#!/usr/bin/env node
// Load generator of the models benchmark (benchmarks/models.py), on ws,
// speaking the Prism protocol. Prints one JSON line.
//
//   node benchmarks/models_load.js writers URL WRITERS PATCHES MAX_SECONDS DOC
//     WRITERS connections open DOC (["sub", DOC]) and each increments its
//     counter with read-modify-write: a patch against the version it holds,
//     [{"op":"test","path":"/n","value":n},{"op":"replace","path":"/n","value":n+1}];
//     on a conflict it catches up from the reply (patches or snapshot) and
//     tries again. One patch in flight per writer. Stops after PATCHES
//     accepted patches; reports accepted/s, attempts, conflicts, and checks
//     that the document's version and counter equal the accepted count.
//   node benchmarks/models_load.js rpc URL CLIENTS CALLS MAX_SECONDS
//     The anchor of "writers": CLIENTS connections, one call in flight each,
//     ["echo", OPS] with OPS the same patch as above; calls/s.
//   node benchmarks/models_load.js fanout URL SUBSCRIBERS MESSAGES MAX_SECONDS models|pubsub DOC
//     SUBSCRIBERS connections subscribe to DOC (models) or to the pubsub
//     channel "bench"; one more connection changes the document with
//     [{"op":"add","path":"/p","value":PAYLOAD}] (models, waiting for the
//     reply), or publishes the same array (pubsub), one message at a time:
//     the next goes once every subscriber received the last. Latency from
//     the send to each subscriber's receipt (p50/p99, this process's clock).
//
// Loopback addresses only; the first 10% of the work is a warm-up. Exit 0
// on success, 1 on error, 2 on timeout.
"use strict";
const WebSocket = require("ws");

const ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
const [mode, url, countArg, totalArg, maxArg, ...rest] = process.argv.slice(2);
const COUNT = Number(countArg), TOTAL = Number(totalArg), MAX_SECONDS = Number(maxArg);
if (!/^ws:\/\/127\.0\.0\.1:\d+\/?$/.test(url || "")) {
  console.error("loopback ws:// URLs only: " + url);
  process.exit(1);
}
const now = () => Number(process.hrtime.bigint()) / 1e6;
const fail = (why) => {
  console.log(JSON.stringify({ mode, error: String(why) }));
  process.exit(1);
};
setTimeout(() => {
  console.log(JSON.stringify({ mode, error: "timed out", timed_out: true }));
  process.exit(2);
}, MAX_SECONDS * 1000).unref();

// A Prism connection: hello, then onReady(ids) with the service ids by name.
function connect(onReady, onFrame) {
  const ws = new WebSocket(url, { perMessageDeflate: false });
  let ids = null;
  ws.on("open", () => ws.send('01|["hello",{"v":1}]'));
  ws.on("message", (buf) => {
    const f = buf.toString();
    if (ids === null) {
      if (!f.startsWith("01|")) return fail("bad welcome: " + f);
      ids = {};
      for (const s of JSON.parse(f.slice(3)).services) ids[s[0]] = ALPHABET[s[1]];
      onReady(ids);
    } else onFrame(f);
  });
  ws.on("error", fail);
  ws.on("close", (code) => { if (!finished) fail("connection closed " + code); });
  return ws;
}

// A frame "<sid><cb>|payload" / "<sid><cb>!error" / "<sid>|push": [cb or null, ok, payload].
function parse(sid, f) {
  if (f[0] !== sid) return null;
  let i = 1;
  while (f.charCodeAt(i) >= 48 && f.charCodeAt(i) <= 57) i++;
  return [i > 1 ? Number(f.slice(1, i)) : null, f[i] === "|", f.slice(i + 1)];
}

const quantile = (lat, n, p) => lat[Math.min(n - 1, Math.floor(p * n))];
let finished = false;
function finish(result) {
  finished = true;
  console.log(JSON.stringify(Object.assign({ mode }, result)));
  process.exit(0);
}

// -- writers: read-modify-write with retry on conflict

function writers(doc) {
  const warm = Math.floor(TOTAL / 10);
  let accepted = 0, attempts = 0, conflicts = 0, timedAttempts = 0, timedConflicts = 0, tStart = 0, ready = 0;
  let inflight = 0, stopping = false, seconds = 0;
  const clients = [];
  for (let w = 0; w < COUNT; w++) {
    const c = { version: 0, n: 0, cb: 1, ws: null, sid: null };
    const catchUp = (reply) => {
      if (reply.patches) {
        for (const [v, ops] of reply.patches) apply(c, v, ops);
      } else if (reply.v >= c.version) {
        c.version = reply.v;
        c.n = reply.value ? reply.value.n : 0;
      }
    };
    const send = () => {
      if (stopping) return inflight === 0 && check();
      attempts++;
      inflight++;
      if (tStart) timedAttempts++;
      const ops = [{ op: "test", path: "/n", value: c.n }, { op: "replace", path: "/n", value: c.n + 1 }];
      c.ws.send(c.sid + ++c.cb + '|["patch",' + JSON.stringify(doc) + "," + c.version + "," + JSON.stringify(ops) + "]");
    };
    c.ws = connect((ids) => {
      c.sid = ids.models;
      c.ws.send(c.sid + "1|" + JSON.stringify(["sub", doc]));
    }, (f) => {
      const m = parse(c.sid, f);
      if (m === null) return;
      const [cb, ok, payload] = m;
      if (!ok) return fail("error: " + f);
      const value = JSON.parse(payload);
      if (cb === null) {  // a push
        if (value[0] === "c") apply(c, value[2], value[3]);
        else if (value[0] === "s" && value[2] >= c.version) { c.version = value[2]; c.n = value[3].n; }
        return;
      }
      if (cb === 1) {  // subscribed
        catchUp(value);
        if (++ready === COUNT) for (const x of clients) x.go();
        return;
      }
      inflight--;
      if (value.conflict) {
        conflicts++;
        if (tStart) timedConflicts++;
        catchUp(value);
      } else {
        apply(c, value.v, [{ op: "replace", path: "/n", value: c.n + 1 }]);  // ours (unless its push came first)
        accepted++;
        if (accepted === warm) tStart = now();
        if (accepted === TOTAL) {
          seconds = (now() - tStart) / 1000;
          stopping = true;  // then wait for the patches in flight before checking
        }
      }
      send();
    });
    c.go = send;
    clients.push(c);
  }

  function apply(c, v, ops) {
    if (v !== c.version + 1) return;  // already have it (or a gap: the next conflict reply brings it)
    for (const op of ops) if (op.op === "replace" && op.path === "/n") c.n = op.value;
    c.version = v;
  }

  function check() {
    // the document holds every accepted increment (no patch is in flight now)
    const c = clients[0];
    c.ws.removeAllListeners("message");
    c.ws.on("message", (buf) => {
      const f = buf.toString();
      if (!f.startsWith(c.sid + "999999|")) return;
      const snap = JSON.parse(f.slice(c.sid.length + 7));
      const ok = snap.v === accepted && snap.value.n === accepted;
      if (!ok) return fail("lost updates: " + accepted + " accepted, document " + JSON.stringify(snap));
      finish({
        writers: COUNT, accepted, attempts, conflicts, seconds, rate: (TOTAL - warm) / seconds,
        attempt_rate: timedAttempts / seconds, conflict_rate: timedConflicts / timedAttempts, final_version: snap.v,
      });
    });
    c.ws.send(c.sid + '999999|["get",' + JSON.stringify(doc) + "]");
  }
}

// -- rpc: the anchor of writers

function rpc() {
  const warm = Math.floor(TOTAL / 10);
  let done = 0, ready = 0, tStart = 0;
  const clients = [];
  for (let i = 0; i < COUNT; i++) {
    const c = { cb: 1, n: 0 };
    const send = () => {
      const ops = [{ op: "test", path: "/n", value: c.n }, { op: "replace", path: "/n", value: c.n + 1 }];
      c.ws.send(c.sid + ++c.cb + '|["echo",' + JSON.stringify(ops) + "]");
    };
    c.ws = connect((ids) => {
      c.sid = ids.rpc;
      c.go = send;
      if (++ready === COUNT) for (const x of clients) x.go();
    }, (f) => {
      const m = parse(c.sid, f);
      if (m === null || !m[1]) return fail("bad reply: " + f);
      c.n++;
      done++;
      if (done === warm) tStart = now();
      if (done >= TOTAL) {
        const seconds = (now() - tStart) / 1000;
        return finish({ clients: COUNT, calls: done, seconds, rate: (done - warm) / seconds });
      }
      send();
    });
    clients.push(c);
  }
}

// -- fanout: propagation latency to SUBSCRIBERS

function fanout(kind, doc) {
  const warm = Math.floor(TOTAL / 10);
  const latencies = new Float64Array((TOTAL - warm) * COUNT);
  const payload = (seq) => (String(seq).padStart(8, "0") + "-").padEnd(64, "x");
  let nLat = 0, ready = 0, seq = -1, got = 0, sentAt = 0, version = 0, writer = null, tStart = 0;
  let replied = true;  // models: the writer's reply too must arrive before the next change (no conflicts)
  const marker = '"path":"/p","value":"';

  function received(f) {
    const i = f.indexOf(marker);
    if (i < 0) return;
    if (parseInt(f.substr(i + marker.length, 8), 10) !== seq) return fail("out of order: " + f.slice(0, 120));
    const t = now();
    if (seq >= warm) latencies[nLat++] = t - sentAt;
    if (++got === COUNT && replied) next();
  }

  function next() {
    seq++;
    got = 0;
    if (seq === warm) tStart = now();
    if (seq === TOTAL) {
      const lat = latencies.subarray(0, nLat).sort();
      const seconds = (now() - tStart) / 1000;
      return finish({
        kind, subscribers: COUNT, messages: TOTAL, deliveries: nLat, seconds, rate: nLat / seconds,
        p50_ms: quantile(lat, nLat, 0.5), p99_ms: quantile(lat, nLat, 0.99),
      });
    }
    const ops = [{ op: "add", path: "/p", value: payload(seq) }];  // add replaces an existing member
    sentAt = now();
    replied = kind !== "models";
    if (kind === "models") writer.ws.send(writer.sid + "2|" + JSON.stringify(["patch", doc, version, ops]));
    else writer.ws.send(writer.sid + "|" + JSON.stringify(["pub", "bench", ops]));
  }

  function startWriter() {
    writer = {};
    writer.ws = connect((ids) => {
      writer.sid = kind === "models" ? ids.models : ids.pubsub;
      next();
    }, (f) => {
      const m = parse(writer.sid, f);
      if (m === null || m[0] === null) return;
      if (!m[1]) return fail("write failed: " + f);
      const reply = JSON.parse(m[2]);
      if (reply.conflict) return fail("a lone writer conflicted: " + f);
      version = reply.v;
      replied = true;
      if (got === COUNT) next();
    });
  }

  let opened = 0;
  (function openBatch() {
    for (let b = 0; b < 50 && opened < COUNT; b++, opened++) {
      const c = {};
      c.ws = connect((ids) => {
        c.sid = kind === "models" ? ids.models : ids.pubsub;
        c.ws.send(c.sid + "1|" + JSON.stringify(kind === "models" ? ["sub", doc] : ["sub", "bench", {}]));
      }, (f) => {
        const m = parse(c.sid, f);
        if (m === null) return;
        if (m[0] === 1) {
          if (!m[1]) return fail("subscribe failed: " + f);
          if (kind === "models") version = Math.max(version, JSON.parse(m[2]).v);
          if (++ready === COUNT) startWriter();
        } else if (m[0] === null) received(f);
      });
    }
    if (opened < COUNT) setTimeout(openBatch, 5);
  })();
}

if (mode === "writers") writers(rest[0]);
else if (mode === "rpc") rpc();
else if (mode === "fanout") fanout(rest[0], rest[1]);
else fail("unknown mode " + mode);
