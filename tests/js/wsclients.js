#!/usr/bin/env node
// Many WebSocket clients for tests/test_scale.py (loopback only), using the
// `ws` package of the repository's package.json.
//
//   node tests/js/wsclients.js URL hold N          open N connections, hello each, one echo each,
//                                                 print {"held": N}, wait for a line on stdin,
//                                                 close them all (code 1000), print {"closed": N}
//   node tests/js/wsclients.js URL cycles N C      N connect/hello/close cycles, C at a time;
//                                                 print {"cycles": N}
//   node tests/js/wsclients.js URL flood SECONDS   send "1|x" (service 1, no callback) as fast as
//                                                 the socket takes it; print {"sent": count}
//
// Prism's hello is the frame 01|["hello",{"v":1}] (system service 0, callback 1); the
// welcome comes back as 01|{...}. Exit status 1 on any error.
"use strict";

const WebSocket = require("ws");

const [url, mode, a, b] = process.argv.slice(2);
if (!/^ws:\/\/127\.0\.0\.1:\d+\//.test(url || "")) {
  console.error("wsclients.js: loopback URLs only");
  process.exit(2);
}

function fail(error) {
  console.error("wsclients.js:", error && error.stack ? error.stack : error);
  process.exit(1);
}

// Open, say hello, wait for the welcome: resolves with the socket.
function open() {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    ws.once("error", reject);
    ws.once("open", () => ws.send('01|["hello",{"v":1}]'));
    ws.once("message", (data) => {
      if (!String(data).startsWith("01|")) return reject(new Error("no welcome: " + data));
      resolve(ws);
    });
  });
}

function echo(ws, text) {
  return new Promise((resolve, reject) => {
    ws.once("message", (data) => (String(data) === "12|" + text ? resolve() : reject(new Error("bad echo " + data))));
    ws.send("12|" + text);
  });
}

function close(ws) {
  return new Promise((resolve) => {
    ws.once("close", resolve);
    ws.close(1000);
  });
}

async function hold(n) {
  const sockets = [];
  const batch = 100; // the listen backlog is 1024 in tests (Twisted defaults to 50)
  for (let i = 0; i < n; i += batch) {
    const opened = await Promise.all(Array.from({ length: Math.min(batch, n - i) }, open));
    sockets.push(...opened);
  }
  await Promise.all(sockets.map((ws, i) => echo(ws, "c" + i)));
  process.stdout.write(JSON.stringify({ held: sockets.length }) + "\n");
  await new Promise((resolve) => process.stdin.once("data", resolve));
  await Promise.all(sockets.map(close));
  process.stdout.write(JSON.stringify({ closed: sockets.length }) + "\n");
}

async function cycles(n, concurrency) {
  let next = 0;
  async function worker() {
    while (next < n) {
      next++;
      await close(await open());
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker));
  process.stdout.write(JSON.stringify({ cycles: n }) + "\n");
}

async function flood(seconds) {
  const ws = await open();
  const until = Date.now() + seconds * 1000;
  let sent = 0;
  await new Promise((resolve) => {
    function pump() {
      while (Date.now() < until) {
        if (ws.bufferedAmount > 1 << 20) return setTimeout(pump, 1);
        for (let i = 0; i < 100; i++) ws.send("1|x");
        sent += 100;
      }
      resolve();
    }
    pump();
  });
  process.stdout.write(JSON.stringify({ sent }) + "\n");
  ws.terminate();
}

const modes = {
  hold: () => hold(Number(a)),
  cycles: () => cycles(Number(a), Number(b || 50)),
  flood: () => flood(Number(a)),
};
if (!modes[mode]) fail("unknown mode " + mode);
modes[mode]().then(() => process.exit(0), fail);
