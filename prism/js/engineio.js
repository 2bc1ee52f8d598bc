// The client half of the "engineio" transport: (url, options, onFrame,
// onClose) => Promise of a link {send(frame), close(code, reason)}, over the
// official engine.io-client 6. Browsers use the global `eio` (the
// engine.io.min.js asset of browser_assets()); Node.js imports the
// "engine.io-client" package on first use; options.eio overrides both.
// The URL (http(s) or ws(s)) names the server and the mount path (default
// /engine.io/); options.engineio is passed to engine.io-client (e.g.
// {transports: ["polling"]} or {upgrade: false}); options.headers (Node.js)
// go with every request, e.g. a Cookie.
(url, o, onFrame, onClose) => {
  const node = typeof process == "object" && !!(process.versions || {}).node;
  const ctor = o.eio
    ? Promise.resolve(o.eio)
    : node
      ? import(/* webpackIgnore: true */ /* @vite-ignore */ "engine.io-client").then((m) => m.Socket || m.default.Socket)
      : Promise.resolve(eio.Socket || eio);
  const u = new URL(url.replace(/^ws/, "http"));
  const path = u.pathname == "/" ? "/engine.io" : u.pathname.replace(/\/$/, "");
  return ctor.then((S) => new Promise((resolve, reject) => {
    const s = new S(u.origin, Object.assign({ path, withCredentials: true, extraHeaders: o.headers }, o.engineio));
    s.binaryType = "arraybuffer";
    let up = 0, mine = 0;
    s.on("open", () => {
      up = 1;
      resolve({
        send: (f) => s.send(f),
        close: (code, reason) => { mine = code || 1000; s.close(); },
      });
    });
    s.on("message", (d) => onFrame(d));
    s.on("error", (e) => up || reject(Error("cannot connect to " + url + " (" + (e && e.message || e) + ")")));
    s.on("close", (reason) => up && onClose(mine || (reason == "forced close" ? 1000 : 1006), reason));
  }));
}
