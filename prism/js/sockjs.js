// The client half of the "sockjs" transport: (url, options, onFrame, onClose)
// => Promise of a link {send(frame), close(code, reason)}, over the official
// SockJS client: the global SockJS in browsers (the browser asset
// Server.browser_assets() lists), the "sockjs-client" package under Node.js
// (loaded on first use), or options.SockJS. options.sockjs is passed to the
// SockJS constructor (e.g. {transports: ["xhr-polling"]}). ws:/wss: URLs are
// taken as http:/https: (SockJS negotiates its own transport).
(url, o, onFrame, onClose) => {
  const node = typeof process == "object" && !!(process.versions || {}).node;
  const ctor = o.SockJS
    ? Promise.resolve(o.SockJS)
    : node
      ? import(/* webpackIgnore: true */ /* @vite-ignore */ "sockjs-client").then((m) => m.default || m)
      : Promise.resolve(typeof SockJS == "function" ? SockJS : null);
  return ctor.then((S) => new Promise((resolve, reject) => {
    if (!S) throw Error("the sockjs transport needs sockjs-client (load its browser asset, or pass options.SockJS)");
    const sock = new S(url.replace(/^ws/, "http"), null, o.sockjs || {});
    let up = 0;
    sock.onopen = () => {
      up = 1;
      resolve({ send: (f) => sock.send(f), close: (code, reason) => sock.close(code, reason) });
    };
    sock.onmessage = (e) => onFrame(e.data);
    sock.onclose = (e) => (up ? onClose(e.code, e.reason) : reject(Error("cannot connect to " + url + " (" + e.code + ")")));
  }));
}
