// Drives the official engine.io-client 6 against an Engine.IO mount
// (tests/test_engineio.py) and prints one JSON object with what it saw.
//
//   node tests/engineio/exchange.js <http url> <mode: polling|websocket|upgrade> [echo|prism]
//
// In echo mode every message comes back as sent: unicode, a large text, a
// binary message and a burst, all in order.
const { Socket } = require("engine.io-client");

const [url, mode] = process.argv.slice(2);
const u = new URL(url);
const options = {
  path: u.pathname.replace(/\/$/, "") || "/engine.io",
  polling: { transports: ["polling"], upgrade: false },
  websocket: { transports: ["websocket"] },
  upgrade: { transports: ["polling", "websocket"], upgrade: true, rememberUpgrade: false },
}[mode];
const watchdog = setTimeout(() => {
  console.log(JSON.stringify({ fatal: "timed out", seen }));
  process.exit(2);
}, 20000);
const seen = { transports: [] };
const large = "x".repeat(300 * 1024) + "é";
const binary = Uint8Array.from({ length: 1000 }, (_, i) => i % 256);
const burst = Array.from({ length: 40 }, (_, i) => "burst " + i);
const sent = ["héllo wörld ✓ 😀", large, binary, ...burst];

const s = new Socket(u.origin, options);
s.binaryType = "arraybuffer";
const got = [];
s.on("open", () => {
  seen.transports.push(s.transport.name);
  const go = () => sent.forEach((m) => s.send(m));
  if (mode == "upgrade") s.once("upgrade", () => { seen.transports.push(s.transport.name); go(); });
  else go();
});
s.on("message", (d) => {
  got.push(d);
  if (got.length == sent.length) {
    seen.inOrder = got.every((m, i) => {
      const want = sent[i];
      if (want instanceof Uint8Array) return m instanceof ArrayBuffer && Buffer.from(m).equals(Buffer.from(want));
      return m === want;
    });
    seen.count = got.length;
    seen.first = got[0];
    seen.finalTransport = s.transport.name;
    s.close();
  }
});
s.on("error", (e) => { seen.error = String(e && e.message || e); });
s.on("close", (reason) => {
  seen.closeReason = reason;
  clearTimeout(watchdog);
  console.log(JSON.stringify(seen));
});
