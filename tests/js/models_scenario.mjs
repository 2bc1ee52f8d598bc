// Drives a generated Prism client's models half (tests/test_models_js.py)
// against a running server and prints one JSON object with what it saw.
//
//   node tests/js/models_scenario.mjs <client.cjs> <ws url>
//
// The server offers models (history_size 5, initial value {"items": []};
// "ro:*" read only, "secret:*" hidden) and rpc.dropAndChange(name, n), which
// closes this connection and then changes the document n times while the
// client is away.
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const [clientPath, url] = process.argv.slice(2);
const seen = {};
const watchdog = setTimeout(() => {
  console.log(JSON.stringify({ fatal: "scenario timed out", seen }));
  process.exit(2);
}, 30000);
watchdog.unref();
const until = (predicate, what) => new Promise((resolve, reject) => {
  const started = Date.now();
  const poll = () => (predicate() ? resolve() : Date.now() - started > 5000 ? reject(Error("not met: " + what)) : setTimeout(poll, 10));
  poll();
});
const kind = (p) => p.then(() => "resolved", (e) => e.kind);

(async () => {
  const { connect } = require(clientPath);
  const options = { url, initialDelay: 0.05, maxDelay: 0.2 };
  const app = await connect(options);
  const m = app.api.models;
  const doc = await m.open("todo:js");
  seen.open = [doc.name, doc.version, doc.value];
  const events = [];
  doc.on("change", (value, ops, v) => events.push([v, ops ? ops.length : null, value === doc.value]));

  seen.update = await doc.update((d) => {
    d.items.push({ text: "milk", done: false });
  });
  seen.patch = await doc.patch([{ op: "add", path: "/items/-", value: { text: "eggs", done: false } }]);
  seen.afterPatch = [doc.version, doc.value];
  seen.get = await m.get("todo:js");
  seen.events = events.splice(0);

  // two more clients on the same document
  const apps = [app, await connect(options), await connect(options)];
  const docs = [doc, await apps[1].api.models.open("todo:js"), await apps[2].api.models.open("todo:js")];
  seen.othersOpen = docs.map((d) => d.version);
  // two writers at the same version: one wins, the other gets a conflict (and catches up)
  const race = await Promise.allSettled([
    docs[1].patch([{ op: "add", path: "/who", value: 1 }]),
    docs[2].patch([{ op: "add", path: "/who", value: 2 }]),
  ]);
  seen.race = race.map((r) => (r.status == "fulfilled" ? r.value : [r.reason.kind, r.reason.version]));
  seen.raceCopies = docs.slice(1).map((d) => [d.version, d.value.who]);
  // 3 clients x 6 concurrent increments: each conflict means another one won, so 21 tries are enough
  const updates = [];
  let runs = 0;
  for (const d of docs)
    for (let i = 0; i < 6; i++)
      updates.push(d.update((x) => {
        runs++;
        x.n = (x.n || 0) + 1;
      }));
  seen.updates = (await Promise.all(updates)).map((r) => [r.v, r.value.n]).sort((a, b) => a[0] - b[0]);
  seen.runs = runs;
  await until(() => docs.every((d) => d.version == 21), "the copies converge");
  seen.converged = docs.map((d) => [d.version, d.value.n, JSON.stringify(d.value) == JSON.stringify(doc.value)]);

  // refused changes leave the copy as it was
  const before = JSON.stringify([doc.version, doc.value]);
  seen.invalidPatch = await kind(doc.patch([{ op: "remove", path: "/nope" }]));
  seen.invalidUpdate = await kind(doc.update((d) => ({ items: "not a list" })));
  seen.unchanged = JSON.stringify([doc.version, doc.value]) == before;
  const ro = await m.open("ro:1");
  seen.readOnly = await kind(ro.patch([{ op: "add", path: "/x", value: 1 }]));
  seen.readOnlyUpdate = await kind(ro.update((d) => void (d.x = 1)));
  seen.secret = await kind(m.open("secret:1"));
  seen.secretGet = await kind(m.get("secret:1"));
  seen.badName = await kind(m.open("bad name"));

  // catching up after a reconnection: with patches (3 < history_size), then a snapshot (8)
  for (const n of [3, 8]) {
    const start = doc.version;
    const reconnected = new Promise((resolve) => {
      const h = app.on("reconnect", () => (app.off("reconnect", h), resolve()));
    });
    events.length = 0;
    await app.api.rpc.call("dropAndChange", "todo:js", n);
    await reconnected;
    await until(() => doc.version == start + n, "caught up after " + n);
    seen["resync" + n] = { events: events.splice(0), version: doc.version, k: doc.value.k };
  }
  await until(() => docs.every((d) => d.version == 32), "the others followed");
  seen.final = await m.get("todo:js");
  seen.finalSame = docs.every((d) => JSON.stringify(d.value) == JSON.stringify(seen.final.value));
  // after catching up the copy follows again
  seen.after = await doc.update((d) => void d.items.pop());
  await until(() => docs.every((d) => d.version == 33), "the others followed again");
  await doc.close();
  for (const a of apps) a.close();
  console.log(JSON.stringify(seen));
})().catch((e) => {
  console.log(JSON.stringify({ fatal: String(e.stack || e), seen }));
  process.exitCode = 1;
  setTimeout(() => process.exit(1), 100);
});
