#!/usr/bin/env node
// Fan-out load generator (benchmarks/fanout.py): SUBSCRIBERS WebSocket
// subscribers spread over the given URLs, one publisher, MESSAGES messages of
// PAYLOAD characters with at most WINDOW messages not yet delivered to every
// subscriber. Prints one JSON line: deliveries/s and p50/p99 latency (from
// the publisher's send to each subscriber's receipt, in this process).
//
//   node benchmarks/fanout_load.js prism|socketio PUB_URL SUB_URLS SUBSCRIBERS MESSAGES MAX_SECONDS [PAYLOAD [WINDOW]]
//
// prism: subscribers and publisher speak the Prism protocol on ws
//   (hello, ["sub","bench",{}], then ["pub","bench",data] without callback id).
// socketio: subscribers speak Engine.IO 4 / Socket.IO 5 directly on ws (so that
//   both systems' subscribers cost this process the same); the publisher is a
//   socket.io-client socket. Loopback addresses only. The first 10% of the
//   messages are a warm-up. Exit 0 on success, 1 on error, 2 on timeout.
"use strict";
const WebSocket = require("ws");

const [mode, pubUrl, subUrls, subsArg, msgsArg, maxArg, payloadArg, windowArg] = process.argv.slice(2);
const N = Number(subsArg), M = Number(msgsArg), maxSeconds = Number(maxArg);
const PAYLOAD = Number(payloadArg || 64), WINDOW = Number(windowArg || 20);
const urls = subUrls.split(",");
for (const u of urls.concat([pubUrl])) {
  if (!/^(ws|http):\/\/127\.0\.0\.1:\d+/.test(u)) {
    console.error("loopback URLs only: " + u);
    process.exit(1);
  }
}
const warm = Math.floor(M / 10);
const sent = new Float64Array(M);
const counts = new Int32Array(M);
const latencies = new Float64Array((M - warm) * N);
let nLat = 0, outstanding = 0, next = 0, done = 0, ready = 0, tStart = 0, tEnd = 0, publish = null;
const now = () => Number(process.hrtime.bigint()) / 1e6;
const data = (seq) => (String(seq).padStart(8, "0") + "-").padEnd(PAYLOAD, "x");
const fail = (why) => {
  console.log(JSON.stringify({ mode, error: String(why) }));
  process.exit(1);
};
setTimeout(() => {
  console.log(JSON.stringify({ mode, error: "timed out", done, ready, timed_out: true }));
  process.exit(2);
}, maxSeconds * 1000).unref();

function received(seq) {
  const t = now();
  if (seq >= warm) latencies[nLat++] = t - sent[seq];
  if (++counts[seq] === N) {
    outstanding--;
    done++;
    if (seq === warm - 1 || (warm === 0 && tStart === 0)) tStart = t;
    if (done === M) return finish(t);
    pump();
  }
}

function pump() {
  while (publish && outstanding < WINDOW && next < M) {
    const seq = next++;
    outstanding++;
    sent[seq] = now();
    publish(data(seq));
  }
}

function finish(t) {
  tEnd = t;
  const lat = latencies.subarray(0, nLat).sort();
  const q = (p) => lat[Math.min(nLat - 1, Math.floor(p * nLat))];
  const seconds = (tEnd - tStart) / 1000;
  console.log(JSON.stringify({
    mode, subscribers: N, messages: M, payload: PAYLOAD, window: WINDOW,
    deliveries: nLat, seconds, rate: nLat / seconds, p50_ms: q(0.5), p99_ms: q(0.99),
  }));
  process.exit(0);
}

function subscriberReady() {
  if (++ready === N) startPublisher();
}

const SEQ = (f, marker) => {
  const i = f.indexOf(marker);
  return i < 0 ? -1 : parseInt(f.substr(i + marker.length, 8), 10);
};

function prismSubscriber(url) {
  const ws = new WebSocket(url, { perMessageDeflate: false });
  let sid = null;
  ws.on("open", () => ws.send('01|["hello",{"v":1}]'));
  ws.on("message", (buf) => {
    const f = buf.toString();
    if (sid === null) {
      const w = JSON.parse(f.slice(3));
      sid = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"[w.services.find((s) => s[0] === "pubsub")[1]];
      ws.send(sid + '2|["sub","bench",{}]');
    } else if (f.startsWith(sid + "2|")) subscriberReady();
    else if (f.startsWith(sid + "2!")) fail("subscribe failed: " + f);
    else {
      const seq = SEQ(f, '"m","bench","');
      if (seq >= 0) received(seq);
    }
  });
  ws.on("error", fail);
}

function socketioSubscriber(url) {
  const ws = new WebSocket(url.replace(/^http/, "ws") + "socket.io/?EIO=4&transport=websocket", { perMessageDeflate: false });
  ws.on("message", (buf) => {
    const f = buf.toString();
    if (f[0] === "0") ws.send("40");
    else if (f.startsWith("40")) subscriberReady();
    else if (f === "2") ws.send("3");
    else {
      const seq = SEQ(f, '42["m","');
      if (seq >= 0) received(seq);
    }
  });
  ws.on("error", fail);
}

function startPublisher() {
  if (mode === "prism") {
    const ws = new WebSocket(pubUrl, { perMessageDeflate: false });
    let sid = null;
    ws.on("open", () => ws.send('01|["hello",{"v":1}]'));
    ws.on("message", (buf) => {
      if (sid !== null) return;
      const w = JSON.parse(buf.toString().slice(3));
      sid = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"[w.services.find((s) => s[0] === "pubsub")[1]];
      publish = (d) => ws.send(sid + '|["pub","bench","' + d + '"]');
      pump();
    });
    ws.on("error", fail);
  } else {
    const { io } = require("socket.io-client");
    const socket = io(pubUrl, { transports: ["websocket"], query: { role: "pub" }, reconnection: false });
    socket.on("connect", () => {
      publish = (d) => socket.emit("pub", d);
      pump();
    });
    socket.on("connect_error", fail);
  }
}

// Open the subscribers a batch at a time (a burst of 1000 handshakes is not what is measured).
let opened = 0;
(function openBatch() {
  for (let i = 0; i < 50 && opened < N; i++, opened++) {
    const url = urls[opened % urls.length];
    (mode === "prism" ? prismSubscriber : socketioSubscriber)(url);
  }
  if (opened < N) setTimeout(openBatch, 5);
})();
