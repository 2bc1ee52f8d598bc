// Drives a generated Prism client (tests/test_jsclient.py) against a running
// server and prints one JSON object with what it saw.
//
//   node tests/js/scenario.mjs <client.cjs|client.mjs> <ws url>
//
// The server offers rpc (tests/test_jsclient.py: add, fail, crash, never,
// kick, login, whoami; sessions on) and echo. The process must end by
// itself once the clients are closed: a timer or socket left behind would
// keep it alive, and the test's timeout would catch that.
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";

const [clientPath, url] = process.argv.slice(2);
const watchdog = setTimeout(() => {
  console.log(JSON.stringify({ fatal: "scenario timed out", seen }));
  process.exit(2);
}, 20000);
watchdog.unref();

const seen = {};
const events = [];
const caught = (p) => p.then(
  (value) => ({ value }),
  (e) => ({ kind: e.kind, message: e.message, traceback: e.traceback || null, isError: e instanceof Error })
);
const next = (app, event) => new Promise((resolve) => {
  const h = app.on(event, (a, b) => {
    app.off(event, h);
    resolve([a, b]);
  });
});

async function main() {
  const mod = clientPath.endsWith(".cjs")
    ? createRequire(import.meta.url)(clientPath)
    : await import(pathToFileURL(clientPath).href);
  const createClient = mod.createClient;
  seen.exports = Object.keys(mod).sort();
  seen.defaultIsCreateClient = mod.default === createClient;

  const app = createClient({ url, initialDelay: 0.05, jitter: 0, timeout: 5 });
  for (const event of ["open", "close", "reconnect", "session", "going_away", "error"]) {
    app.on(event, (a, b) => events.push(event === "close" ? [event, a] : [event]));
  }
  seen.firstDelay = app.nextDelay(); // initialDelay * factor ** 0, no jitter
  seen.apiBeforeConnect = Object.keys(app.api).sort();
  seen.callBeforeConnect = await caught(app.api.rpc.call("add", 1, 1));
  const welcome = await app.connect();
  seen.services = welcome.services;
  seen.connected = app.connected;

  // RPC
  seen.add = await app.api.rpc.call("add", 2, 3);
  seen.fail = await caught(app.api.rpc.call("fail", "x"));
  seen.crash = await caught(app.api.rpc.call("crash"));
  seen.unknown = await caught(app.api.rpc.call("nope"));
  seen.timeout = await caught(app.api.rpc.request(["never"], 0.2));

  // echo: a push, and a request
  const pushed = new Promise((resolve) => app.api.echo.on(resolve));
  app.api.echo.send("hi there");
  seen.push = await pushed;
  seen.echoRequest = await app.api.echo.request("ping");

  // sessions, and a reconnection after the server closes the connection
  seen.login = await app.api.rpc.call("login", "ada");
  const token = app.session;
  const pending = caught(app.api.rpc.call("never")); // rejects when the connection drops
  const reconnected = next(app, "reconnect");
  await app.api.rpc.call("kick");
  seen.pendingOnDisconnect = await pending;
  seen.sendWhileDown = (() => {
    try {
      app.api.echo.send("lost");
      return "sent";
    } catch (e) {
      return e.kind;
    }
  })();
  await reconnected;
  seen.sameSession = app.session === token;
  seen.whoamiAfterReconnect = await app.api.rpc.call("whoami");

  // A second Node client presenting the session as a cookie (like a browser).
  const other = createClient({ url, reconnect: false, headers: { Cookie: "prism.sid=" + token } });
  await other.connect();
  seen.cookieWhoami = await other.api.rpc.call("whoami");
  seen.cookieSameSession = other.session === token;
  other.close();

  // A client whose default timeout is short.
  const quick = createClient({ url, reconnect: false, timeout: 0.2 });
  await quick.connect();
  seen.defaultTimeout = await caught(quick.api.rpc.call("never"));
  quick.close();

  // close() ends the connection for good: no reconnection.
  const closed = next(app, "close");
  app.close();
  seen.closeCode = (await closed)[0];
  seen.events = events;
  seen.connectedAfterClose = app.connected;

  // Outside browsers the URL is required (unless baked in at build time).
  try {
    createClient({});
    seen.noUrl = "created";
  } catch (e) {
    seen.noUrl = e.kind + ": " + e.message;
  }

  // Connecting to nothing fails, without retrying.
  const dead = createClient({ url: "ws://127.0.0.1:1/", reconnect: true });
  seen.refused = await caught(dead.connect());
}

main().then(
  () => console.log(JSON.stringify(seen)),
  (e) => {
    console.log(JSON.stringify({ fatal: String((e && e.stack) || e), seen }));
    process.exitCode = 1;
  }
);
