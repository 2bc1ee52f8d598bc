// The client half of the "websocket" transport: (url, options, onFrame,
// onClose) => Promise of a link {send(frame), close(code, reason)}. Browsers
// use their WebSocket (the session cookie goes with the handshake); Node.js
// loads the "ws" package on first use (options.headers, e.g. a Cookie, are
// sent with the handshake); options.WebSocket overrides both.
(url, o, onFrame, onClose) => {
  const node = typeof process == "object" && !!(process.versions || {}).node;
  const ctor = o.WebSocket
    ? Promise.resolve(o.WebSocket)
    : node
      ? import(/* webpackIgnore: true */ /* @vite-ignore */ "ws").then((m) => m.default || m)
      : Promise.resolve(WebSocket);
  return ctor.then((W) => new Promise((resolve, reject) => {
    const ws = node ? new W(url, { headers: o.headers }) : new W(url);
    let up = 0;
    ws.onopen = () => {
      up = 1;
      resolve({ send: (f) => ws.send(f), close: (code, reason) => ws.close(code, reason) });
    };
    ws.onmessage = (e) => onFrame(e.data);
    ws.onerror = () => {}; // a close event follows
    ws.onclose = (e) => (up ? onClose(e.code, e.reason) : reject(Error("cannot connect to " + url + " (" + e.code + ")")));
  }));
}
