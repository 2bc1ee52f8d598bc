#!/usr/bin/env node
// Prism over-the-wire load generator (issue 2).
//
// Usage:
//   node benchmarks/loadgen.js URL MODE [CONNECTIONS [INFLIGHT [CALLS [MAX_SECONDS [PAYLOAD]]]]]
//
//   URL          ws://127.0.0.1:PORT/ (loopback only: any other host is refused)
//   MODE         "prism": hello/welcome handshake, then RPC calls to rpc.echo
//                "raw":   no handshake; the very same frame bytes, echoed back
//                         unchanged by a bare WebSocket echo server
//   CONNECTIONS  concurrent WebSocket connections            (default 10)
//   INFLIGHT     calls kept outstanding on each connection    (default 10)
//   CALLS        total calls over all connections, a bound   (default 50000)
//   MAX_SECONDS  hard time bound for the whole run           (default 60)
//   PAYLOAD      length of the echoed string, in characters  (default 64)
//
// Every call is the frame  <sid><cb>|["echo","<PAYLOAD chars>"]  where <sid> is
// the service id of "rpc" (from the welcome in prism mode, "1" in raw mode) and
// <cb> a callback id, per connection, starting at 2 (1 is the hello) and
// wrapping before 1e9. Prism replies <sid><cb>|"<PAYLOAD chars>"; the bare
// server echoes the frame itself. Each reply's callback id and body are
// checked against an outstanding call.
//
// The first 10% of the calls are a warm-up and not timed. The run stops when
// CALLS replies arrived or MAX_SECONDS passed, whichever comes first, and prints
// one JSON line:
//   {mode, calls, seconds, rate, p50_ms, p99_ms, bytes_per_call_out,
//    bytes_per_call_in, ..., loadgen_cpu}
// loadgen_cpu is this process's CPU time over the timed window divided by its
// length (1.0 = one core busy): close to 1 means the load generator itself may
// be what limits the rate.
// bytes_per_call_* are WebSocket message payload bytes (frame headers and
// masking keys excluded). Exit status: 0 on success, 1 on any protocol or
// connection error, 2 when MAX_SECONDS ran out first (the JSON line is still
// printed, with "timed_out": true).
"use strict";

const path = require("path");
let WebSocket;
try {
  WebSocket = require("ws");
} catch (e) {
  process.stderr.write(
    "loadgen: the npm package 'ws' is missing; run: npm install --prefix " +
      path.relative(process.cwd(), __dirname || ".") + "\n"
  );
  process.exit(1);
}

const ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
const CB_WRAP = 999999999; // the largest callback id the protocol allows
const HELLO = '01|["hello",{"v":1}]';

function usage(msg) {
  process.stderr.write("loadgen: " + msg + "\n" +
    "usage: node loadgen.js URL prism|raw [CONNECTIONS [INFLIGHT [CALLS [MAX_SECONDS [PAYLOAD]]]]]\n");
  process.exit(1);
}

function intArg(value, dflt, name, min) {
  if (value === undefined) return dflt;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) usage(name + " must be an integer >= " + min + ", got " + value);
  return n;
}

const argv = process.argv.slice(2);
if (argv.length < 2) usage("URL and MODE are required");
const url = argv[0];
const mode = argv[1];
if (mode !== "prism" && mode !== "raw") usage("MODE must be 'prism' or 'raw'");
const connections = intArg(argv[2], 10, "CONNECTIONS", 1);
const inflight = intArg(argv[3], 10, "INFLIGHT", 1);
const totalCalls = intArg(argv[4], 50000, "CALLS", 1);
const maxSeconds = Number(argv[5] === undefined ? 60 : argv[5]);
if (!(maxSeconds > 0 && maxSeconds <= 3600)) usage("MAX_SECONDS must be in (0, 3600]");
const payloadSize = intArg(argv[6], 64, "PAYLOAD", 0);

// Loopback only: this tool must never load anything but this machine.
let parsed;
try {
  parsed = new URL(url);
} catch (e) {
  usage("bad URL " + url);
}
if (parsed.protocol !== "ws:") usage("only ws:// URLs are supported");
const host = parsed.hostname.replace(/^\[|\]$/g, "");
if (!(host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host))) {
  usage("refusing non-loopback host " + parsed.hostname);
}

// A JSON-safe payload (no escapes), so request and reply sizes are exact.
let payload = "";
for (let i = 0; i < payloadSize; i++) payload += ALPHABET[i % ALPHABET.length];

const warmupCalls = Math.floor(totalCalls / 10);
const measuredMax = totalCalls - warmupCalls;
const latencies = new Float64Array(Math.max(measuredMax, 1));

let sid = mode === "raw" ? "1" : null; // rpc's service id char
let reqTail;   // after "<sid><cb>"
let replyTail; // expected after "<sid><cb>" in a reply

let issued = 0;     // calls sent (bounded by totalCalls)
let completed = 0;  // replies received and verified
let nLat = 0;
let bytesOut = 0;   // over measured calls
let bytesIn = 0;
let measuredOut = 0;
let t0 = 0n;        // hrtime when the warm-up ended
let cpu0 = null;    // process.cpuUsage() then
let tEnd = 0n;
let errors = 0;
let firstError = null;
let finished = false;
let ready = 0;
const conns = [];

function fail(msg) {
  errors++;
  if (firstError === null) firstError = msg;
  finish(1);
}

function quantile(sorted, q) {
  if (sorted.length === 0) return null;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i];
}

function round(x, digits) {
  if (x === null || !Number.isFinite(x)) return null;
  const f = Math.pow(10, digits);
  return Math.round(x * f) / f;
}

function finish(code) {
  if (finished) return;
  finished = true;
  if (tEnd === 0n) tEnd = process.hrtime.bigint();
  const measured = t0 === 0n ? 0 : completed - warmupCalls;
  const seconds = t0 === 0n ? 0 : Number(tEnd - t0) / 1e9;
  const lat = latencies.subarray(0, nLat).sort();
  const timedOut = code === 2;
  // The load generator's own CPU use over the timed window, as a share of one
  // core: near 1.0 means it, not the server, may be the bottleneck.
  let loadgenCpu = null;
  if (cpu0 !== null && seconds > 0) {
    const used = process.cpuUsage(cpu0);
    loadgenCpu = round((used.user + used.system) / 1e6 / seconds, 3);
  }
  const out = {
    mode: mode,
    calls: measured,
    seconds: round(seconds, 4),
    rate: seconds > 0 ? round(measured / seconds, 1) : null,
    p50_ms: round(quantile(lat, 0.5), 3),
    p99_ms: round(quantile(lat, 0.99), 3),
    bytes_per_call_out: measuredOut ? round(bytesOut / measuredOut, 2) : null,
    bytes_per_call_in: measured ? round(bytesIn / measured, 2) : null,
    connections: connections,
    inflight: inflight,
    payload: payloadSize,
    warmup_calls: warmupCalls,
    total_calls: totalCalls,
    completed: completed,
    sid: sid,
    timed_out: timedOut,
    errors: errors,
    loadgen_cpu: loadgenCpu,
  };
  if (firstError !== null) out.error = firstError;
  if (code === 1 && firstError === null) out.error = "failed";
  for (const c of conns) {
    try { c.ws.terminate(); } catch (e) { /* already gone */ }
  }
  process.stdout.write(JSON.stringify(out) + "\n", () => process.exit(code));
}

// The hard time bound, from the very start (connecting included).
const deadline = setTimeout(() => {
  if (firstError === null) firstError = "max seconds (" + maxSeconds + ") reached after " + completed + " replies";
  finish(2);
}, Math.round(maxSeconds * 1000));

function Conn(index) {
  this.index = index;
  this.nextCb = 2; // 1 was the hello
  this.pending = new Map(); // cb -> hrtime (bigint) of the send
  this.ws = new WebSocket(url, {
    perMessageDeflate: false, // Prism runs without compression; so does the anchor
    maxPayload: 1 << 20,
    handshakeTimeout: Math.round(maxSeconds * 1000),
  });
  this.welcomed = false;
  this.corked = false;
  const self = this;
  this.ws.on("open", () => self.onOpen());
  this.ws.on("message", (data, isBinary) => self.onMessage(data, isBinary));
  this.ws.on("error", (err) => fail("connection " + index + ": " + err.message));
  this.ws.on("close", (code, reason) => {
    if (!finished) fail("connection " + index + " closed (" + code + " " + reason + ")");
  });
}

Conn.prototype.onOpen = function () {
  if (mode === "prism") {
    this.ws.send(HELLO);
  } else {
    this.welcomed = true;
    connReady();
  }
};

Conn.prototype.sendOne = function () {
  const cb = this.nextCb;
  this.nextCb = cb >= CB_WRAP ? 1 : cb + 1;
  const frame = sid + cb + reqTail;
  this.pending.set(cb, process.hrtime.bigint());
  issued++;
  if (t0 !== 0n) {
    bytesOut += frame.length; // ASCII: characters == bytes
    measuredOut++;
  }
  this.ws.send(frame);
};

// Frames sent while handling one incoming TCP chunk leave in one write: the
// socket is corked on the first send and uncorked on the next tick. This keeps
// the load generator's own syscall cost low (it must not be the bottleneck),
// and is the same for both servers.
Conn.prototype.fill = function () {
  if (this.pending.size >= inflight || issued >= totalCalls) return;
  const sock = this.ws._socket;
  if (!this.corked && sock) {
    this.corked = true;
    sock.cork();
    process.nextTick(uncork, this, sock);
  }
  while (this.pending.size < inflight && issued < totalCalls) this.sendOne();
};

function uncork(conn, sock) {
  conn.corked = false;
  sock.uncork();
}

Conn.prototype.onMessage = function (data, isBinary) {
  if (finished) return;
  if (isBinary) return fail("unexpected binary message");
  const text = data.toString();
  if (!this.welcomed) {
    // prism mode: wait for the welcome (01|{...})
    if (!text.startsWith("01|")) return fail("expected the welcome, got " + text.slice(0, 200));
    let welcome;
    try {
      welcome = JSON.parse(text.slice(3));
    } catch (e) {
      return fail("welcome is not JSON: " + text.slice(0, 200));
    }
    let found = null;
    for (const s of welcome.services || []) {
      if (s[0] === "rpc") found = s[1];
    }
    if (found === null) return fail("the server offers no 'rpc' service: " + text.slice(0, 200));
    const c = typeof found === "number" ? ALPHABET[found] : String(found);
    if (sid !== null && sid !== c) return fail("rpc service id differs between connections");
    sid = c;
    this.welcomed = true;
    return connReady();
  }
  // <sid><cb>|<body>
  if (text[0] !== sid) return fail("reply on an unexpected service: " + text.slice(0, 200));
  let i = 1;
  let cb = 0;
  while (i < text.length) {
    const d = text.charCodeAt(i) - 48;
    if (d < 0 || d > 9) break;
    cb = cb * 10 + d;
    i++;
  }
  if (text[i] !== "|") return fail("error or malformed reply: " + text.slice(0, 300));
  const sent = this.pending.get(cb);
  if (sent === undefined) return fail("reply with unknown callback id " + cb);
  if (text.length - i !== replyTail.length || !text.endsWith(replyTail)) {
    return fail("wrong reply body: " + text.slice(0, 300));
  }
  this.pending.delete(cb);
  completed++;
  if (t0 !== 0n) {
    latencies[nLat++] = Number(process.hrtime.bigint() - sent) / 1e6;
    bytesIn += data.length;
  } else if (completed === warmupCalls) {
    t0 = process.hrtime.bigint();
    cpu0 = process.cpuUsage();
  }
  if (completed >= totalCalls) {
    tEnd = process.hrtime.bigint();
    clearTimeout(deadline);
    return finish(0);
  }
  this.fill();
};

function connReady() {
  ready++;
  if (ready < connections) return;
  // Everybody is connected (and welcomed): start the load on all at once.
  reqTail = '|["echo","' + payload + '"]';
  replyTail = mode === "prism" ? '|"' + payload + '"' : reqTail;
  if (warmupCalls === 0) {
    t0 = process.hrtime.bigint();
    cpu0 = process.cpuUsage();
  }
  for (const c of conns) c.fill();
}

for (let i = 0; i < connections; i++) conns.push(new Conn(i));
