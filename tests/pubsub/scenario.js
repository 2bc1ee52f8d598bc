// Drives a generated Prism client's pubsub half (tests/test_pubsub_js.py)
// against a running server and prints one JSON object with what it saw.
//
//   node tests/pubsub/scenario.js <client.cjs> <ws url>
//
// The server offers pubsub (history, presence; publishing allowed on
// "chat" and "room.*") and rpc.dropAndPublish(), which closes this
// connection and publishes "m1", "m2" on "chat" while the client is away.
"use strict";
const [clientPath, url] = process.argv.slice(2);
const watchdog = setTimeout(() => {
  console.log(JSON.stringify({ fatal: "scenario timed out", seen }));
  process.exit(2);
}, 20000);
watchdog.unref();
const seen = {};
const until = (predicate) => new Promise((resolve, reject) => {
  const started = Date.now();
  const poll = () => (predicate() ? resolve() : Date.now() - started > 5000 ? reject(Error("condition not met")) : setTimeout(poll, 10));
  poll();
});

(async () => {
  const { connect } = require(clientPath);
  const app = await connect({ url, initialDelay: 0.05, maxDelay: 0.2 });
  const p = app.api.pubsub;
  const got = [], pat = [], events = [];
  const sub = await p.subscribe("chat", (d, ch) => got.push([ch, d]), { events: (k, info) => events.push(k) });
  seen.subOffset = sub.offset;
  seen.hasEpoch = typeof sub.epoch == "string";
  await p.subscribe("room.*", (d, ch) => pat.push([ch, d]));
  seen.pub = (await p.publish("chat", "hello")).offset;
  await p.publish("room.7", "r7");
  seen.presence = (await p.presence("chat")).length;
  seen.forbidden = await p.publish("secret", 1).then(() => "allowed", (e) => e.kind);
  const reconnected = new Promise((resolve) => app.on("reconnect", resolve));
  await app.api.rpc.call("dropAndPublish");
  await reconnected;
  await until(() => got.length >= 3);
  await p.publish("chat", "after");
  await p.publish("room.8", "r8");
  await until(() => got.length >= 4 && pat.length >= 2);
  await p.unsubscribe("room.*");
  await p.publish("room.9", "r9");
  seen.got = got;
  seen.pat = pat;
  seen.events = events;
  app.close();
  console.log(JSON.stringify(seen));
})().catch((e) => {
  console.log(JSON.stringify({ fatal: String(e.stack || e), seen }));
  process.exitCode = 1;
  setTimeout(() => process.exit(1), 100);
});
