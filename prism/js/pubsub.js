// The client half of the "pubsub" service (docs/pubsub.md):
//   subscribe(channelOrPattern, handler(data, channel), {events(kind, info)}) => Promise of the reply
//   unsubscribe(name, handler?), publish(channel, data, {exclude}), presence(channel),
//   onMessage(handler(data, channel)) for messages on channels not subscribed to.
// After a reconnection every subscription is made again; channels with history
// recover what was missed (in order, duplicates dropped by offset), or the app
// gets an "unrecovered" event (channel) and should resync.
(s, app) => {
  const subs = {}; // name => {h: handlers, e: events handlers, o: offset, p: epoch, b: buffer}
  const direct = [];
  const listeners = {};
  const each = (hs, a, b) => hs.slice().forEach((h) => {
    try {
      h(a, b);
    } catch (e) {
      console.error(e);
    }
  });
  const deliver = (x, d, ch, o, p, force) => {
    if (o != null) {
      if (!force && p == x.p && o <= x.o) return;
      x.o = p == x.p ? Math.max(x.o, o) : o;
      x.p = p;
    }
    each(x.h, d, ch);
  };
  const sub = (name, x, recover) => {
    const opts = {};
    if (x.e.length) opts.events = true;
    if (recover && x.p) opts.recover = { offset: x.o, epoch: x.p };
    x.b = x.b || [];
    return s.request(["sub", name, opts]).then((r) => {
      const b = x.b || [];
      let force;
      x.b = null;
      if (r.recovered) for (const [o, d] of r.publications) deliver(x, d, name, o, r.epoch);
      else if (r.epoch) {
        if (r.publications) each(listeners.u || [], name);
        x.p = r.epoch;
        x.o = r.offset;
        force = 1;
      }
      for (const m of b) deliver(x, ...m, force);
      return r;
    }, (e) => {
      x.b = null;
      throw e;
    });
  };
  s.on((m) => {
    const k = m[0], x = subs[m[1]];
    if (k == "join" || k == "leave") return x && each(x.e, k, m[2]);
    const [ch, d, o, p] = k == "p" ? m.slice(2) : m.slice(1);
    if (!x) return each(direct, d, ch);
    if (x.b) x.b.push([d, ch, o, p]);
    else deliver(x, d, ch, o, p);
  });
  app.on("reconnect", () => {
    for (const n in subs) sub(n, subs[n], 1).catch(() => {});
  });
  return {
    subscribe(name, handler, o) {
      const x = (subs[name] = subs[name] || { h: [], e: [], o: 0, p: null, b: null });
      x.h.push(handler);
      if (o && o.events) x.e.push(o.events);
      return sub(name, x);
    },
    unsubscribe(name, handler) {
      const x = subs[name];
      if (x && handler && x.h.indexOf(handler) >= 0) x.h.splice(x.h.indexOf(handler), 1);
      if (!x || (handler && x.h.length)) return Promise.resolve();
      delete subs[name];
      return app.connected ? s.request(["unsub", name]) : Promise.resolve();
    },
    publish: (channel, data, o) => s.request(["pub", channel, data, o || {}]),
    presence: (channel) => s.request(["presence", channel]),
    onMessage: (h) => (direct.push(h), h),
    // "unrecovered" (channel): the history could not fill the gap; resync.
    onUnrecovered: (h) => ((listeners.u = listeners.u || []).push(h), h),
  };
}
