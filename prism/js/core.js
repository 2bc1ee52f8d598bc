// The Prism client core: framing, codecs, callback ids, the hello/welcome
// handshake, pushes, events and reconnection (docs/protocol.md and
// docs/javascript-client.md). The builder defines, before this code:
//   TRANSPORT   (url, options, onFrame, onClose) => Promise of a link
//   HALVES      {serviceName: (handle) => extra members of app.api.<name>}
//   TABLE       the service table the client was built for
//   DEFAULT_URL the URL given at build time, or null

const ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

// An Error as the Python client's RemoteError: .kind, .message, .traceback.
const prismError = (kind, message, traceback) =>
  Object.assign(Error(message), { kind, traceback });

// codec name => [encode, decode]; msgpack is not supported in JavaScript yet.
const CODECS = { raw: [String, (p) => p], json: [JSON.stringify, JSON.parse] };

function createClient(options) {
  const o = options || {};
  const opt = (name, value) => (name in o ? o[name] : value);
  const url =
    o.url || DEFAULT_URL || (typeof location == "object" && location.origin.replace(/^http/, "ws") + "/");
  if (!url) throw prismError("connect", "createClient needs a url outside browsers");
  const timeout = opt("timeout", 10);
  // Browsers present their session with the cookie; other clients in the hello.
  const present = o.session || typeof document == "undefined";
  const listeners = {};
  const records = {}; // service name => {id, codec, pushes}
  const system = { id: 0, codec: "json" };
  let byId = {};
  let pending = {}; // callback id => [resolve, reject, timer, decode]
  let link = null;
  let generation = 0; // of the current link: events of older ones are ignored
  let lastCallback = 0;
  let attempt = 0; // reconnection attempts since the last welcome
  let closing = false;
  let retry = null;
  let opening = null; // the Promise of the connection being opened

  const app = {
    api: {},
    session: o.session || null,
    connected: false,
    welcome: null,
    on: (event, handler) => ((listeners[event] = listeners[event] || []).push(handler), handler),
    off: (event, handler) => remove(listeners[event], handler),
    connect() {
      closing = false;
      clearTimeout(retry);
      return app.connected ? Promise.resolve(app.welcome) : opening || open();
    },
    close(code, reason) {
      closing = true;
      clearTimeout(retry);
      if (link) link.close(code || 1000, reason || "");
    },
    nextDelay: () =>
      Math.max(0, Math.min(opt("maxDelay", 30), opt("initialDelay", 0.5) * opt("factor", 2) ** attempt) *
        (1 + opt("jitter", 0.5) * (2 * Math.random() - 1))),
  };

  function remove(list, handler) {
    const i = list ? list.indexOf(handler) : -1;
    if (i >= 0) list.splice(i, 1);
  }

  function call(handlers, a, b) {
    for (const h of (handlers || []).slice()) {
      try {
        h(a, b);
      } catch (e) {
        console.error(e); // a failing handler never disturbs the others
      }
    }
  }

  const emit = (event, a, b) => call(listeners[event], a, b);

  // app.api.<name>: send/request/on/off, plus what the service's half adds.
  function service(name) {
    if (records[name]) return records[name];
    const r = (records[name] = { id: -1, codec: "json", pushes: [] });
    const handle = {
      name,
      send(value) {
        const f = frame(r, value, ""); // throws when not connected
        link.send(f);
      },
      request: (value, t) => request(r, value, t === undefined ? timeout : t),
      on: (handler) => (r.pushes.push(handler), handler),
      off: (handler) => remove(r.pushes, handler),
    };
    app.api[name] = Object.assign({}, handle, HALVES[name] ? HALVES[name](handle, app) : {});
    return r;
  }

  function frame(r, value, cb) {
    if (!(r.id ? app.connected : link)) throw prismError("disconnected", "not connected");
    if (r.id < 0) throw prismError("unknown_service", "the server has no such service");
    if (!CODECS[r.codec]) throw prismError("codec", "unsupported codec " + r.codec);
    return ALPHABET[r.id] + cb + "|" + CODECS[r.codec][0](value);
  }

  function request(r, value, t) {
    return new Promise((resolve, reject) => {
      let cb = lastCallback;
      do cb = cb < 999999999 ? cb + 1 : 1;
      while (pending[cb]);
      const f = frame(r, value, cb); // may throw: the Promise rejects
      lastCallback = cb;
      const timer =
        t != null &&
        setTimeout(() => {
          delete pending[cb];
          reject(prismError("timeout", "no reply within " + t + " seconds"));
        }, t * 1000);
      pending[cb] = [resolve, reject, timer, CODECS[r.codec][1]];
      link.send(f);
    });
  }

  function frameReceived(f) {
    const m = typeof f == "string" && /^(.)(\d*)([|!])/.exec(f);
    if (!m) return; // binary frames (msgpack) are not supported
    const payload = f.slice(m[0].length);
    let value, error;
    if (m[3] == "!") {
      try {
        value = JSON.parse(payload);
        error = prismError(value.error, value.message, value.traceback);
      } catch (e) {
        error = prismError("malformed", payload);
      }
    }
    const p = m[2] && pending[m[2]];
    if (m[2]) {
      if (!p) return; // a reply after its timeout
      delete pending[m[2]];
      clearTimeout(p[2]);
      if (error) return p[1](error);
      try {
        value = p[3](payload);
      } catch (e) {
        return p[1](prismError("decode", "cannot decode the reply: " + e.message));
      }
      return p[0](value);
    }
    if (error) return emit("error", error);
    const r = byId[ALPHABET.indexOf(m[1])]; // a service, or the system service's pushes:
    try {
      value = r ? CODECS[r.codec][1](payload) : m[1] == "0" && JSON.parse(payload);
    } catch (e) {
      return emit("error", prismError("decode", "cannot decode a push: " + e.message));
    }
    if (r) return call(r.pushes, value);
    if (value[0] == "session") emit("session", (app.session = value[1]));
    if (value[0] == "going_away") emit("going_away", value[1]);
  }

  function closed(code, reason) {
    const was = app.connected;
    const lost = pending;
    link = null;
    app.connected = false;
    pending = {};
    for (const cb in lost) {
      clearTimeout(lost[cb][2]);
      lost[cb][1](prismError("disconnected", "connection closed (" + code + ") before the reply"));
    }
    emit("close", code, reason);
    // Only a connection that completed its handshake starts reconnecting.
    if (was && !closing && opt("reconnect", true)) schedule();
  }

  function schedule() {
    retry = setTimeout(
      () => !closing && open().catch(() => !closing && schedule()),
      app.nextDelay() * 1000
    );
    attempt++;
  }

  function open() {
    const g = ++generation;
    const p = (opening = TRANSPORT(url, o, (f) => g == generation && frameReceived(f), (c, r) => g == generation && closed(c, r))
      .catch((e) => {
        throw prismError("connect", e.message || "cannot connect to " + url);
      })
      .then((l) => {
        if (closing) {
          l.close(1000, "");
          throw prismError("disconnected", "closed while connecting");
        }
        link = l;
        const hello = { v: 1 };
        if (present && app.session) hello.session = app.session;
        return request(system, ["hello", hello], timeout).then(welcomed, (e) => {
          if (g == generation) {
            generation++; // ignore this link's close event
            link = null;
            l.close(1000, "");
          }
          throw e;
        });
      }));
    p.catch(() => {}).then(() => opening == p && (opening = null));
    return p;
  }

  function welcomed(w) {
    const table = {};
    byId = {};
    app.welcome = w;
    app.session = w.session;
    for (const [name, id, codec] of w.services) {
      const r = service(name);
      byId[(r.id = id)] = r;
      r.codec = table[name] = codec;
    }
    // Verify the table the client was built for against the server's.
    for (const [name, , codec] of TABLE) {
      if (table[name] != codec) {
        if (!table[name]) records[name].id = -1;
        emit("error", prismError("mismatch", "built for service " + name + " (" + codec + "), the server has " + (table[name] || "none")));
      }
    }
    app.connected = true;
    emit(attempt ? "reconnect" : "open", w);
    attempt = 0;
    return w;
  }

  for (const [name] of TABLE) service(name);
  return app;
}

// Create a client and connect it: a Promise of the connected client.
const connect = (options) => {
  const app = createClient(options);
  return app.connect().then(() => app);
};
