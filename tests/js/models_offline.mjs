// The generated client's models half (prism/js/models.js) without a server, run
// by tests/test_models_js.py: the half gets a fake service handle and app.
//
// 1. Its protocol: the order of pushes and replies (pushes held while a
//    subscribe is in flight, gaps, snapshots, our own change confirmed before its
//    push, conflicts, update() retries, reconnection, open twice, close).
// 2. Its JSON Patch code, through its own API: a document is opened from a
//    snapshot, a change is pushed, and the document either takes it (version + 1)
//    or keeps its copy intact and resubscribes. Checked against
//    - the examples of RFC 6902, appendix A, and further edge cases (a table);
//    - fast-json-patch (the oracle) on seeded random documents and patches;
//    - update()'s diff: applying it (with fast-json-patch and with the half) gives the new value.
//    It also writes random cases with the half's outcome to a JSON file, which the
//    Python test replays with the jsonpatch library the server uses.
//
//   node tests/js/models_offline.mjs <prism/js/models.js> <cases-out.json> [seed] [count]
import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const fjp = require("fast-json-patch");
const [source, casesOut, seedArg, countArg] = process.argv.slice(2);
const half = new Function("return (\n" + readFileSync(source, "utf8") + "\n)")();
const COUNT = Math.min(+countArg || 3000, 20000);
const watchdog = setTimeout(() => {
  console.log(JSON.stringify({ fatal: "timed out" }));
  process.exit(2);
}, 50000);
watchdog.unref();

// -- a models half on a fake service handle
const sent = [];
let push = null;
let nextReply = null; // (message) => reply
const api = half(
  {
    request: (m) => (sent.push(m), Promise.resolve(nextReply(m))),
    on: (h) => (push = h),
  },
  { on() {}, connected: true }
);
let serial = 0;
const clone = (v) => JSON.parse(JSON.stringify(v));
const same = (a, b) => fjp._areEquals(a, b);

// Apply ops to doc with the half: {value} or {error}; checks that a failure
// leaves the copy intact and resubscribes for a snapshot.
async function halfApply(doc, ops) {
  const name = "doc" + ++serial;
  nextReply = () => ({ v: 0, value: clone(doc) });
  const d = await api.open(name);
  const before = clone(d.value);
  sent.length = 0;
  nextReply = () => new Promise(() => {}); // the resubscription stays pending: the copy stays as it was
  push(["c", name, 1, clone(ops)]);
  if (d.version == 1) return { value: d.value };
  if (!same(d.value, before) || d.version != 0) throw Error("a failed patch changed the copy: " + JSON.stringify(ops));
  if (!sent.some((m) => m[0] == "sub" && m[1] == name && m.length == 2)) throw Error("no resubscription after a failed patch");
  return { error: true };
}

// -- RFC 6902 appendix A, and more edge cases
const TABLE = [
  ["A.1 add an object member", { foo: "bar" }, [{ op: "add", path: "/baz", value: "qux" }], { baz: "qux", foo: "bar" }],
  ["A.2 add an array element", { foo: ["bar", "baz"] }, [{ op: "add", path: "/foo/1", value: "qux" }], { foo: ["bar", "qux", "baz"] }],
  ["A.3 remove an object member", { baz: "qux", foo: "bar" }, [{ op: "remove", path: "/baz" }], { foo: "bar" }],
  ["A.4 remove an array element", { foo: ["bar", "qux", "baz"] }, [{ op: "remove", path: "/foo/1" }], { foo: ["bar", "baz"] }],
  ["A.5 replace a value", { baz: "qux", foo: "bar" }, [{ op: "replace", path: "/baz", value: "boo" }], { baz: "boo", foo: "bar" }],
  ["A.6 move a value", { foo: { bar: "baz", waldo: "fred" }, qux: { corge: "grault" } },
    [{ op: "move", from: "/foo/waldo", path: "/qux/thud" }], { foo: { bar: "baz" }, qux: { corge: "grault", thud: "fred" } }],
  ["A.7 move an array element", { foo: ["all", "grass", "cows", "eat"] }, [{ op: "move", from: "/foo/1", path: "/foo/3" }],
    { foo: ["all", "cows", "eat", "grass"] }],
  ["A.8 test a value: success", { baz: "qux", foo: ["a", 2, "c"] },
    [{ op: "test", path: "/baz", value: "qux" }, { op: "test", path: "/foo/1", value: 2 }], { baz: "qux", foo: ["a", 2, "c"] }],
  ["A.9 test a value: error", { baz: "qux" }, [{ op: "test", path: "/baz", value: "bar" }], null],
  ["A.10 add a nested member object", { foo: "bar" }, [{ op: "add", path: "/child", value: { grandchild: {} } }],
    { foo: "bar", child: { grandchild: {} } }],
  ["A.11 ignore unrecognized elements", { foo: "bar" }, [{ op: "add", path: "/baz", value: "qux", xyz: 123 }], { foo: "bar", baz: "qux" }],
  ["A.12 add to a nonexistent target", { foo: "bar" }, [{ op: "add", path: "/baz/bat", value: "qux" }], null],
  // A.13 (an operation with two "op" members) cannot be written as a JavaScript value.
  ["A.14 ~ escape ordering", { "/": 9, "~1": 10 }, [{ op: "test", path: "/~01", value: 10 }], { "/": 9, "~1": 10 }],
  ["A.15 compare strings and numbers", { "/": 9, "~1": 10 }, [{ op: "test", path: "/~01", value: "10" }], null],
  ["A.16 add an array value", { foo: ["bar"] }, [{ op: "add", path: "/foo/-", value: ["abc", "def"] }], { foo: ["bar", ["abc", "def"]] }],
  ["replace the root", { a: 1 }, [{ op: "replace", path: "", value: [1, 2] }], [1, 2]],
  ["add at the root", { a: 1 }, [{ op: "add", path: "", value: "x" }], "x"],
  ["test the root", { a: [1, { b: null }] }, [{ op: "test", path: "", value: { a: [1, { b: null }] } }], { a: [1, { b: null }] }],
  ["the empty key", { "": 1 }, [{ op: "replace", path: "/", value: 2 }], { "": 2 }],
  ["~1 is a slash", { "a/b": 1 }, [{ op: "remove", path: "/a~1b" }], {}],
  ["~0 is a tilde", { "m~n": 1 }, [{ op: "copy", from: "/m~0n", path: "/x" }], { "m~n": 1, x: 1 }],
  ["- appends", [1, 2], [{ op: "add", path: "/-", value: 3 }], [1, 2, 3]],
  ["add at the length", [1, 2], [{ op: "add", path: "/2", value: 3 }], [1, 2, 3]],
  ["add beyond the length", [1, 2], [{ op: "add", path: "/3", value: 3 }], null],
  ["leading zero", [1, 2], [{ op: "replace", path: "/01", value: 3 }], null],
  ["- does not exist", [1, 2], [{ op: "remove", path: "/-" }], null],
  ["- in the middle", { a: [{ b: 1 }] }, [{ op: "add", path: "/a/-/b", value: 2 }], null],
  ["an array's length is no index", { a: [1] }, [{ op: "replace", path: "/a/length", value: 3 }], null],
  ["replace a missing member", { a: 1 }, [{ op: "replace", path: "/b", value: 3 }], null],
  ["remove a missing member", { a: 1 }, [{ op: "remove", path: "/b" }], null],
  ["a path without a slash", { a: 1 }, [{ op: "replace", path: "a", value: 3 }], null],
  ["through a scalar", { a: 1 }, [{ op: "add", path: "/a/b", value: 3 }], null],
  ["through null", { a: null }, [{ op: "add", path: "/a/b", value: 3 }], null],
  ["an unknown op", { a: 1 }, [{ op: "frob", path: "/a" }], null],
  ["add without a value", { a: 1 }, [{ op: "add", path: "/b" }], null],
  ["move into its own child", { a: { b: 1 } }, [{ op: "move", from: "/a", path: "/a/c" }], null],
  ["move onto itself", { a: { b: 1 } }, [{ op: "move", from: "/a", path: "/a" }], { a: { b: 1 } }],
  ["move from a missing member", { a: 1 }, [{ op: "move", from: "/b", path: "/c" }], null],
  ["copy is deep", { a: { b: [1] } }, [{ op: "copy", from: "/a", path: "/c" }, { op: "add", path: "/c/b/-", value: 2 }],
    { a: { b: [1] }, c: { b: [1, 2] } }],
  ["test: objects in any key order", { a: { x: 1, y: [true, null] } }, [{ op: "test", path: "/a", value: { y: [true, null], x: 1 } }],
    { a: { x: 1, y: [true, null] } }],
  ["test: true is not 1", { a: true }, [{ op: "test", path: "/a", value: 1 }], null],
  ["test: [] is not {}", { a: [] }, [{ op: "test", path: "/a", value: {} }], null],
  ["test a missing member", { a: 1 }, [{ op: "test", path: "/b", value: null }], null],
  ["a failure undoes the whole patch", { a: 1 }, [{ op: "add", path: "/b", value: 2 }, { op: "remove", path: "/c" }], null],
  ["__proto__ is an ordinary member", { a: 1 }, [{ op: "add", path: "/__proto__", value: { polluted: 1 } }],
    JSON.parse('{"a":1,"__proto__":{"polluted":1}}')],
  ["constructor is not inherited", { a: 1 }, [{ op: "remove", path: "/constructor" }], null],
  ["toString is not inherited", { a: {} }, [{ op: "add", path: "/a/toString/x", value: 1 }], null],
];

function equalJSON(a, b) {
  return JSON.stringify(sortKeys(a)) === JSON.stringify(sortKeys(b));
}
function sortKeys(v) {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v && typeof v == "object") {
    const out = {};
    for (const k of Object.keys(v).sort()) Object.defineProperty(out, k, { value: sortKeys(v[k]), enumerable: true });
    return out;
  }
  return v;
}

// -- seeded random documents and patches
let seed = (+seedArg || 1) >>> 0;
const rnd = () => {
  seed = (seed + 0x6d2b79f5) >>> 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
const pick = (a) => a[Math.floor(rnd() * a.length)];
const KEYS = ["a", "b", "c", "", "~", "/", "a/b", "m~n", "~1", "-", "0", "1", "x y"];
const TRICKY = ["__proto__", "constructor", "toString"]; // only for the jsonpatch replay (fast-json-patch bans or inherits them)
const SCALARS = [2, 3.5, -7, 0.25, "s", "", "2", true, false, null]; // no 0/1: Python's True == 1
const esc = (k) => String(k).replace(/~/g, "~0").replace(/\//g, "~1");

function randomValue(depth, keys) {
  const r = rnd();
  if (depth > 2 || r < 0.4) return pick(SCALARS);
  if (r < 0.7) {
    const o = {};
    for (let n = Math.floor(rnd() * 4); n > 0; n--) Object.defineProperty(o, pick(keys), {
      value: randomValue(depth + 1, keys), enumerable: true, writable: true, configurable: true });
    return o;
  }
  return Array.from({ length: Math.floor(rnd() * 4) }, () => randomValue(depth + 1, keys));
}

function paths(v, p, out) {
  out.push([p, v]);
  if (Array.isArray(v)) v.forEach((x, i) => paths(x, p + "/" + i, out));
  else if (v && typeof v == "object") for (const k of Object.keys(v)) paths(v[k], p + "/" + esc(k), out);
  return out;
}

function randomPath(doc, keys, forAdd) {
  const all = paths(doc, "", []);
  const r = rnd();
  if (r < 0.1) return pick(["/nope", "/a/b/c", "/0/0", "/-", "/a/-/b", "x", "/1e0"]);
  if (forAdd || r < 0.3) {
    const containers = all.filter(([, v]) => v && typeof v == "object");
    if (!containers.length) return "";
    const [p, c] = pick(containers);
    if (Array.isArray(c)) return p + "/" + pick(["-", String(c.length), String(Math.floor(rnd() * (c.length + 2)))]);
    return p + "/" + esc(pick(keys));
  }
  return pick(all)[0];
}

function randomPatch(doc, keys, noMoveIntoChild) {
  const ops = [];
  for (let n = 1 + Math.floor(rnd() * 3); n > 0; n--) {
    const op = pick(["add", "add", "remove", "replace", "move", "copy", "test", "test"]);
    const o = { op };
    if (op == "add") o.path = randomPath(doc, keys, true);
    else if (op == "remove") o.path = randomPath(doc, keys).replace(/^$/, "/a"); // never the root
    else o.path = randomPath(doc, keys, op != "replace" && op != "test" && rnd() < 0.5);
    if (op == "move" || op == "copy") {
      o.from = randomPath(doc, keys);
      if (op == "move" && noMoveIntoChild && o.path.startsWith(o.from + "/")) o.from = o.path;
    }
    if (op == "add" || op == "replace") o.value = randomValue(1, keys);
    if (op == "test") {
      const found = paths(doc, "", []).find(([p]) => p == o.path);
      o.value = found && rnd() < 0.85 ? clone(found[1]) : randomValue(1, keys);
    }
    ops.push(o);
  }
  return ops;
}

// fast-json-patch checks neither the target of a move or copy nor, at the root,
// its "from": the oracle runs them as RFC 6902 defines them, a get (the value
// must exist), a remove for a move, then an add.
// Where it departs from RFC 6902 otherwise ("" and "01" are array indexes to it),
// differences are counted, not failed: the jsonpatch replay covers those paths.
const fjpQuirk = (ops) =>
  ops.some((o) => [o.path, o.from].some((p) => typeof p == "string" && p.split("/").slice(1).includes("")));
const oracle = (doc, ops) => {
  try {
    let d = clone(doc);
    for (const o of clone(ops)) {
      // nor does it fail a pointer into a scalar document
      if ((!d || typeof d != "object") && [o.path, o.from].some((p) => p)) throw Error("into a scalar");
      if (o.op == "move" || o.op == "copy") {
        const get = { op: "_get", path: o.from };
        fjp.applyOperation(d, get, true, true);
        if (o.op == "move") d = fjp.applyOperation(d, { op: "remove", path: o.from }, true, true).newDocument;
        d = fjp.applyOperation(d, { op: "add", path: o.path, value: clone(get.value) }, true, true).newDocument;
      } else d = fjp.applyOperation(d, o, true, true).newDocument;
    }
    return { value: d };
  } catch (e) {
    return { error: true };
  }
};


// -- 1. the protocol, with replies under the test's control
async function protocol() {
  const pending = []; // {m, resolve, reject}
  const handlers = {};
  let onPush = null;
  const api = half(
    { request: (m) => new Promise((resolve, reject) => pending.push({ m, resolve, reject })), on: (h) => (onPush = h) },
    { on: (e, h) => (handlers[e] = h), connected: true }
  );
  const tick = () => new Promise((r) => setTimeout(r, 0));
  const reply = async (value) => {
    const p = pending.shift();
    p.resolve(value);
    await tick();
    return p.m;
  };
  const check = (ok, what) => {
    if (!ok) throw Error("protocol: " + what + "; pending " + JSON.stringify(pending.map((p) => p.m)));
  };
  const set = (path, value) => [{ op: "replace", path, value }];

  const opening = api.open("doc");
  check(same(pending[0].m, ["sub", "doc"]), "open subscribes");
  onPush(["c", "doc", 3, [{ op: "add", path: "/x", value: 0 }]]); // before the reply: held
  onPush(["c", "doc", 4, [{ op: "add", path: "/y", value: 0 }]]);
  await reply({ v: 3, value: { x: 0 } });
  const d = await opening;
  check(d.name == "doc" && d.version == 4 && same(d.value, { x: 0, y: 0 }), "held pushes are replayed after the reply");
  const events = [];
  const handler = d.on("change", (value, ops, v) => events.push([v, ops && ops.length, value]));
  d.on("other", () => check(false, "only change events"));

  onPush(["c", "doc", 4, set("/x", 9)]);
  onPush(["c", "other", 5, set("/x", 9)]);
  check(d.version == 4 && d.value.x == 0 && !events.length, "a version held already is ignored");

  onPush(["c", "doc", 6, set("/x", 6)]);
  check(d.version == 4 && pending.length == 1 && same(pending[0].m, ["sub", "doc", 4]), "a gap resubscribes with the version held");
  onPush(["c", "doc", 7, set("/x", 7)]);
  await reply({ v: 6, patches: [[5, set("/x", 5)], [6, set("/x", 6)]] });
  check(d.version == 7 && d.value.x == 7 && events.map((e) => e[0]).join() == "5,6,7", "caught up after a gap");
  check(events[0][2] !== events[1][2] && events[0][2].x == 5, "each change makes a new value; the old ones stay as they were");

  onPush(["s", "doc", 9, { s: 9 }]);
  check(d.version == 9 && same(d.value, { s: 9 }) && events[events.length - 1][1] === null, "a snapshot push replaces the copy");
  onPush(["s", "doc", 8, { s: 8 }]);
  check(d.version == 8 && d.value.s == 8, "a snapshot is the current state, even when its version went back");
  onPush(["s", "doc", 9, { s: 9 }]);

  onPush(["c", "doc", 10, [{ op: "remove", path: "/nope" }]]);
  check(d.version == 9 && same(d.value, { s: 9 }) && same(pending[0].m, ["sub", "doc"]), "a change that does not apply fetches a snapshot");
  await reply({ v: 10, value: { s: 10 } });
  check(d.version == 10 && d.value.s == 10, "the snapshot replaced the copy");

  let w = d.patch(set("/s", 11));
  check(same(pending[0].m, ["patch", "doc", 10, set("/s", 11)]), "patch sends against the version held");
  await reply({ v: 11 });
  check((await w) == 11 && d.version == 11 && d.value.s == 11, "our change applies when confirmed before its push");
  let n = events.length;
  onPush(["c", "doc", 11, set("/s", 11)]);
  check(events.length == n, "and its push is ignored");

  w = d.patch(set("/s", 0)).catch((e) => e);
  await reply({ conflict: true, v: 12, patches: [[12, set("/s", 12)]] });
  const e = await w;
  check(e.kind == "conflict" && e.version == 12 && /at version 12, not 11/.test(e.message), "a conflict rejects patch()");
  check(d.version == 12 && d.value.s == 12, "and the copy caught up");

  const calls = [];
  const u = d.update((x) => {
    calls.push(x.s);
    x.s += 100;
  });
  await tick();
  check(same(pending[0].m, ["patch", "doc", 12, set("/s", 112)]), "update sends the difference");
  await reply({ conflict: true, v: 13, value: { s: 13 } });
  check(same(pending[0].m, ["patch", "doc", 13, set("/s", 113)]), "update runs again on the new value");
  onPush(["c", "doc", 14, set("/s", 113)]); // the push first (memory store), then the reply
  await reply({ v: 14 });
  const r = await u;
  check(r.v == 14 && r.value === d.value && d.value.s == 113 && calls.join() == "12,13", "update resolves with the new state");

  const giving = d.update((x) => void x.s++, 1).catch((e) => e);
  await tick();
  await reply({ conflict: true, v: 15, value: { s: 15 } });
  await reply({ conflict: true, v: 16, value: { s: 16 } });
  const ge = await giving;
  check(ge.kind == "conflict" && ge.version == 16 && !pending.length, "update gives up after its retries");
  const same16 = await d.update(() => {});
  check(same16.v == 16 && same16.value === d.value && !pending.length, "an update that changes nothing sends nothing");
  const undef = await d.update((x) => void (x.u = undefined));
  check(undef.v == 16 && !pending.length, "update sees the value as JSON: an undefined member is no member");
  const failing = await d.update(() => {
    throw Error("boom");
  }).catch((e) => e.message);
  check(failing == "boom" && !pending.length, "update rejects with fn's error");
  const replaced = d.update(() => [1, 2]);
  await tick();
  check(same(pending[0].m, ["patch", "doc", 16, [{ op: "replace", path: "", value: [1, 2] }]]), "update with a new value");
  await reply({ v: 17 });
  check(same((await replaced).value, [1, 2]) && same(d.value, [1, 2]), "the new value");

  handlers.reconnect();
  check(same(pending.map((p) => p.m), [["sub", "doc", 17]]), "a reconnection resubscribes with the version held");
  await reply({ v: 17, patches: [] });

  check((await api.open("doc")) === d && !pending.length, "open twice: the same document");
  await d.close();
  check(!pending.length, "open once more: closing does not unsubscribe yet");
  const closing = d.close();
  check(same(pending[0].m, ["unsub", "doc"]), "the last close unsubscribes");
  await reply(true);
  await closing;
  await d.close();
  n = events.length;
  onPush(["c", "doc", 18, set("/0", 3)]);
  check(d.version == 17 && events.length == n && !pending.length, "a closed document no longer follows");
  d.off("change", handler);

  const f1 = api.open("secret").catch((e) => e.kind), f2 = api.open("secret").catch((e) => e.kind);
  pending.shift().reject(Object.assign(Error("no"), { kind: "forbidden" }));
  check((await f1) == "forbidden" && (await f2) == "forbidden", "a failed open rejects");
  const f3 = api.open("secret");
  check(pending.length == 1, "a failed open is forgotten");
  await reply({ v: 0, value: {} });
  await f3;

  const got = api.get("x");
  check(same(await reply({ v: 1, value: 2 }), ["get", "x"]) && (await got).v == 1, "get");
  return true;
}

(async () => {
  const seen = { protocol: await protocol(), table: 0, oracle: 0, oracleErrors: 0, quirks: 0, diff: 0, diffOps: {} };
  for (const [what, doc, ops, expected] of TABLE) {
    const got = await halfApply(doc, ops);
    if (expected === null ? !got.error : got.error || !equalJSON(got.value, expected))
      throw Error(what + ": got " + JSON.stringify(got) + ", expected " + JSON.stringify(expected));
    if (!got.error && what.startsWith("__proto__") && !Object.keys(got.value).includes("__proto__"))
      throw Error("__proto__ did not become a member");
    seen.table++;
  }
  if ({}.polluted !== undefined) throw Error("Object.prototype was polluted");

  for (let i = 0; i < COUNT; i++) {
    const r = rnd(), doc = r < 0.4 ? { a: randomValue(0, KEYS), b: randomValue(1, KEYS) } : r < 0.6 ? [randomValue(1, KEYS), randomValue(1, KEYS)] : randomValue(0, KEYS);
    const ops = randomPatch(doc, KEYS, true);
    const want = oracle(doc, ops), got = await halfApply(doc, ops);
    if (!!want.error != !!got.error || (!got.error && !equalJSON(got.value, want.value))) {
      if (fjpQuirk(ops)) {
        seen.quirks++;
        continue;
      }
      throw Error("differs from fast-json-patch: " + JSON.stringify({ doc, ops, want, got }));
    }
    seen.oracle++;
    if (got.error) seen.oracleErrors++;
  }

  // update(): diff, submit, apply our own ops on success
  for (let i = 0; i < COUNT; i++) {
    const a = randomValue(0, KEYS);
    let b;
    if (rnd() < 0.5) b = randomValue(0, KEYS);
    else {
      const r = oracle(a, randomPatch(a, KEYS, true));
      b = r.error ? clone(a) : r.value;
    }
    const name = "diff" + ++serial;
    nextReply = () => ({ v: 3, value: clone(a) });
    const d = await api.open(name);
    let ops = null;
    nextReply = (m) => ((ops = m[3]), { v: 4 });
    const result = await d.update(() => clone(b));
    if (!equalJSON(result.value, b) || !equalJSON(d.value, b)) throw Error("update did not reach the value: " + JSON.stringify({ a, b, result }));
    if (ops === null ? !equalJSON(a, b) || result.v != 3 : result.v != 4 || d.version != 4)
      throw Error("update's version: " + JSON.stringify({ a, b, ops, result }));
    if (ops !== null && !equalJSON(fjp.applyPatch(clone(a), clone(ops), true, false).newDocument, b))
      throw Error("the diff does not give the value under fast-json-patch: " + JSON.stringify({ a, b, ops }));
    for (const o of ops || []) seen.diffOps[o.op] = (seen.diffOps[o.op] || 0) + 1;
    seen.diff++;
  }

  // cases for the jsonpatch replay, with keys fast-json-patch cannot take
  const cases = [];
  const keys = KEYS.concat(TRICKY);
  for (let i = 0; i < COUNT; i++) {
    const doc = { a: randomValue(0, keys), b: randomValue(1, keys) };
    const ops = randomPatch(doc, keys, false);
    const got = await halfApply(doc, ops);
    cases.push(got.error ? [doc, ops, null, true] : [doc, ops, got.value, false]);
  }
  for (const [, doc, ops, expected] of TABLE) if (ops[0].op != "frob") cases.push([doc, ops, expected, expected === null]);
  writeFileSync(casesOut, JSON.stringify(cases));
  seen.cases = cases.length;
  console.log(JSON.stringify(seen));
})().catch((e) => {
  console.log(JSON.stringify({ fatal: String(e.stack || e) }));
  process.exitCode = 1;
});
