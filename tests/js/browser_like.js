// Runs the "script" build of the client the way a browser page would: in a
// fresh global scope with window-like globals (document, location, the
// WHATWG WebSocket of `node --experimental-websocket`) and no `process`, so
// the client takes its browser path: the native WebSocket, the URL derived
// from location, no session token in the hello (a browser's cookie carries
// it; this WebSocket sends none, so a reconnection gets a new session).
//
//   node --experimental-websocket tests/js/browser_like.js <client.js> <http origin>
const fs = require("fs");
const vm = require("vm");

const [clientPath, origin] = process.argv.slice(2);
const watchdog = setTimeout(() => {
  console.log(JSON.stringify({ fatal: "timed out" }));
  process.exit(2);
}, 20000);
watchdog.unref();

const window = {
  WebSocket,
  setTimeout,
  clearTimeout,
  console,
  document: {},
  location: { origin },
};
window.window = window;
vm.runInNewContext(fs.readFileSync(clientPath, "utf8"), window);

(async () => {
  const seen = { hasProcess: vm.runInNewContext("typeof process", window) };
  const app = window.Prism.createClient({ initialDelay: 0.05, jitter: 0 });
  const push = new Promise((resolve) => app.api.echo.on(resolve));
  const welcome = await app.connect();
  seen.add = await app.api.rpc.call("add", 2, 3);
  app.api.echo.send("from the page");
  seen.push = await push;
  const token = welcome.session;
  const again = new Promise((resolve) => app.on("reconnect", resolve));
  await app.api.rpc.call("kick");
  await again;
  seen.newSessionAfterReconnect = app.session !== token;
  seen.addAfterReconnect = await app.api.rpc.call("add", 20, 22);
  app.close();
  console.log(JSON.stringify(seen));
})().catch((e) => {
  console.log(JSON.stringify({ fatal: String((e && e.stack) || e) }));
  process.exitCode = 1;
});
