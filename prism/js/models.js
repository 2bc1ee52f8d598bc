// The client half of the "models" service (docs/models.md): shared JSON
// documents kept in sync with JSON Patch (RFC 6902).
//   open(name) => Promise of a document: {name, value, version,
//     on("change", h(value, ops, version)) (ops null for a snapshot), off("change", h),
//     update(fn, retries = 20) => Promise of {v, value}, patch(ops) => Promise of the
//     new version (rejects with kind "conflict" and .version), close()}
//   get(name) => Promise of {v, value}, without subscribing.
// A document's copy is always the server's value at some version: a change
// applies when it is the next version, older ones are ignored, and a gap (or
// a change that does not apply) resubscribes; after a reconnection every
// open document resubscribes with the version it holds.
(s, app) => {
  const docs = {}; // name => document; d.n: opens, d.h: handlers, d.b: pushes held while a sub is in flight
  const own = (o, k) => ({}).hasOwnProperty.call(o, k);
  const copy = (v) => JSON.parse(JSON.stringify(v)); // throws for undefined (a missing "value")
  const isA = Array.isArray;
  const obj = (v) => v && typeof v == "object";
  const fail = (p) => {
    throw Error("cannot apply " + p);
  };
  // a member, "__proto__" too (an assignment would set the prototype)
  const set = (o, k, value) => Object.defineProperty(o, k, { value, writable: 1, enumerable: 1, configurable: 1 });
  const eq = (a, b, k) =>
    a === b ||
    (obj(a) && obj(b) && isA(a) == isA(b) &&
      (k = Object.keys(a)).length == Object.keys(b).length && k.every((x) => own(b, x) && eq(a[x], b[x])));
  // RFC 6902 on a copy of value: returns the new value, or throws (the copy is dropped).
  const apply = (value, ops) => {
    const root = { "": copy(value) };
    // [container, key] of a JSON Pointer; add: the key may be new (an array's length, "-")
    const at = (path, add) => {
      const keys = path.split("/");
      let c = root, i = 0, k;
      if (keys[0]) fail(path);
      for (;;) {
        k = keys[i].replace(/~1/g, "/").replace(/~0/g, "~");
        const last = ++i == keys.length, grow = add && last;
        if (isA(c))
          k = k == "-" && grow ? c.length : /^(0|[1-9]\d*)$/.test(k) && k <= c.length - !grow ? +k : fail(path);
        else if (!grow && !own(c, k)) fail(path);
        if (last) return [c, k];
        if (!obj((c = c[k]))) fail(path);
      }
    };
    const get = (p, [c, k] = at(p)) => c[k];
    const put = (p, v, [c, k] = at(p, 1)) => (isA(c) ? c.splice(k, 0, v) : set(c, k, v));
    const del = (p, [c, k] = at(p)) => ((p = c[k]), isA(c) ? c.splice(k, 1) : delete c[k], p);
    for (const { op, path, from, value } of ops) {
      if (op == "add") put(path, copy(value));
      else if (op == "remove") del(path);
      else if (op == "replace") set(...at(path), copy(value));
      else if (op == "copy") put(path, copy(get(from)));
      else if (op == "move") put(path, path.startsWith(from + "/") ? fail(path) : del(from));
      else if (op != "test" || !eq(get(path), value)) fail(path);
    }
    return root[""];
  };
  const esc = (k) => k.replace(/~/g, "~0").replace(/\//g, "~1");
  // update()'s patch from a to b: objects key by key; arrays element-wise when
  // the length is the same, "/-" appends when only the tail grew; else replace.
  const diff = (a, b, p, out) => {
    const l = isA(a) && a.length;
    if (obj(a) && obj(b) && isA(a) == isA(b) &&
        (l === false || (l <= b.length && (l == b.length || a.every((x, i) => eq(x, b[i])))))) {
      if (l === false) {
        for (const k in a) if (!own(b, k)) out.push({ op: "remove", path: p + "/" + esc(k) });
        for (const k in b)
          if (own(a, k)) diff(a[k], b[k], p + "/" + esc(k), out);
          else out.push({ op: "add", path: p + "/" + esc(k), value: b[k] });
      } else
        b.forEach((x, i) => (i < l ? diff(a[i], x, p + "/" + i, out) : out.push({ op: "add", path: p + "/-", value: x })));
    } else if (!eq(a, b)) out.push({ op: "replace", path: p, value: b });
    return out;
  };
  const emit = (d, ops) => {
    for (const h of d.h.slice())
      try {
        h(d.value, ops, d.version);
      } catch (e) {
        console.error(e);
      }
  };
  const reset = (d, v, value) => ((d.value = value), (d.version = v), emit(d, null));
  const change = (d, v, ops) => {
    if (v == d.version + 1) {
      try {
        d.value = apply(d.value, ops);
      } catch (e) {
        return resub(d); // our copy does not take it: start again from a snapshot
      }
      d.version = v;
      emit(d, ops);
    } else if (v > d.version) resub(d, d.version); // a gap
  };
  const catchUp = (d, r) => (r.patches ? r.patches.forEach((c) => change(d, ...c)) : reset(d, r.v, r.value));
  const push = (m, d = docs[m[1]]) => {
    if (!d) return;
    if (d.b) d.b.push(m);
    else if (m[0] == "c") change(d, m[2], m[3]);
    else if (m[0] == "s") reset(d, m[2], m[3]); // the current state, even if its version went back
  };
  const sub = (d, since) => {
    d.b = d.b || [];
    return s.request(since == null ? ["sub", d.name] : ["sub", d.name, since]).then((r) => {
      const b = d.b || [];
      d.b = null;
      catchUp(d, r);
      for (const m of b) if (m[2] > r.v) push(m);
      return d;
    }, (e) => {
      d.b = null;
      throw e;
    });
  };
  const resub = (d, since) => sub(d, since).catch(() => {});
  const write = (d, ops, base = d.version) =>
    s.request(["patch", d.name, base, ops]).then((r) => {
      if (!r.conflict) return change(d, r.v, ops), r.v;
      if (r.v > d.version) catchUp(d, r);
      const e = Error(d.name + " is at version " + r.v + ", not " + base);
      throw Object.assign(e, { kind: "conflict", version: r.v });
    });
  s.on(push);
  app.on("reconnect", () => {
    for (const n in docs) resub(docs[n], docs[n].version);
  });
  return {
    open(name) {
      let d = docs[name];
      if (d) return d.n++, d.p;
      d = docs[name] = {
        name, value: null, version: 0, n: 1, h: [],
        on: (e, h) => (e == "change" && d.h.push(h), h),
        off: (e, h) => (d.h = d.h.filter((x) => x != h)),
        patch: (ops) => write(d, ops),
        // fn changes a copy (or returns a new value); on a conflict it runs again on the new value
        async update(fn, retries = 20) {
          for (;;) {
            const before = d.value, base = d.version, draft = copy(before), r = await fn(draft);
            const ops = diff(before, copy(r === undefined ? draft : r), "", []); // as JSON: undefined members go
            if (!ops.length) return { v: base, value: before };
            try {
              const v = await write(d, ops, base);
              return { v, value: d.version == v ? d.value : apply(before, ops) };
            } catch (e) {
              if (e.kind != "conflict" || retries-- < 1) throw e;
            }
          }
        },
        async close() {
          if (docs[name] == d && !--d.n) {
            delete docs[name];
            if (app.connected) await s.request(["unsub", name]);
          }
        },
      };
      return (d.p = sub(d).catch((e) => {
        if (docs[name] == d) delete docs[name];
        throw e;
      }));
    },
    get: (name) => s.request(["get", name]),
  };
}
