// The core end-to-end scenario of tests/test_transports_e2e.py, the same
// for every transport: a generated Prism client (cjs) connects, calls RPC
// (a result and an error with its kind), gets an echo push and a pubsub
// message (published by the server and by a client), sends unicode and a
// 200 KB message that come back in order, and keeps its session across a
// reconnection (the token in the hello) and as a cookie (a second client).
//
//   node tests/js/transports_e2e.mjs <client.cjs> <url> <transport>
//
// Prints one JSON object on stdout; exits by itself once its clients close.
import http from "node:http";
import { createRequire } from "node:module";

const [clientPath, url, transport] = process.argv.slice(2);
const seen = {};
const watchdog = setTimeout(() => {
  console.log(JSON.stringify({ fatal: "scenario timed out", seen }));
  process.exit(2);
}, 12000);
watchdog.unref();

// sockjs-client has no headers option under Node.js: its HTTP requests go
// through http.request, which here carries a browser-like cookie jar.
let jar = null;
const request = http.request;
http.request = (options, ...rest) => {
  if (jar && typeof options == "object") options.headers = Object.assign({}, options.headers, { Cookie: jar });
  return request(options, ...rest);
};

const caught = (p) => p.then(
  (value) => ({ value }),
  (e) => ({ kind: e.kind, message: e.message, isError: e instanceof Error }),
);
const next = (app, event) => new Promise((resolve) => {
  const h = app.on(event, (a) => {
    app.off(event, h);
    resolve(a);
  });
});

async function main() {
  const { createClient } = createRequire(import.meta.url)(clientPath);
  const app = createClient({ url, initialDelay: 0.05, jitter: 0, timeout: 5 });
  const welcome = await app.connect();
  seen.services = welcome.services.map(([name]) => name);
  seen.hasSession = typeof app.session == "string" && app.session.length > 0;

  // RPC: a result, and an error with its kind.
  seen.add = await app.api.rpc.call("add", 2, 3);
  seen.fail = await caught(app.api.rpc.call("fail", "x"));

  // Echo: a push.
  const echoed = [];
  let wanted = 1, arrived;
  let done = new Promise((resolve) => (arrived = resolve));
  app.api.echo.on((m) => {
    echoed.push(m);
    if (echoed.length == wanted) arrived();
  });
  app.api.echo.send("hi there");
  await done;
  seen.push = echoed[0];

  // Pubsub: a server-side publish, then one from this client.
  const messages = [];
  let got;
  let message = new Promise((resolve) => (got = resolve));
  await app.api.pubsub.subscribe("news", (data, channel) => {
    messages.push([channel, data]);
    got();
  });
  seen.announced = await app.api.rpc.call("announce", "from the server ✓");
  await message;
  message = new Promise((resolve) => (got = resolve));
  await app.api.pubsub.publish("news", { from: "client" });
  await message;
  seen.messages = messages;

  // Unicode and a large message, in order.
  const values = ["héllo ☃ 😀 \u2028 \u0000", "y".repeat(200 * 1024), ...Array.from({ length: 20 }, (_, i) => "m" + i + "é")];
  echoed.length = 0;
  wanted = values.length;
  done = new Promise((resolve) => (arrived = resolve));
  for (const v of values) app.api.echo.send(v);
  await done;
  seen.inOrder = echoed.length == values.length && echoed.every((m, i) => m === values[i]);
  seen.largeLength = echoed[1].length;

  // Sessions: the server drops the connection; the client reconnects with its session.
  seen.login = await app.api.rpc.call("login", "ada");
  const token = app.session;
  const reconnected = next(app, "reconnect");
  await app.api.rpc.call("kick");
  await reconnected;
  seen.sameSessionOnReconnect = app.session === token;
  seen.whoamiAfterReconnect = await app.api.rpc.call("whoami");

  // A second client presenting the session as a cookie (as a browser does).
  jar = "prism.sid=" + token;
  // (SockJS: over xhr-streaming, whose requests carry the jar.)
  const other = createClient({ url, reconnect: false, timeout: 5, headers: { Cookie: jar }, sockjs: { transports: ["xhr-streaming"] } });
  await other.connect();
  seen.cookieWhoami = await other.api.rpc.call("whoami");
  seen.cookieSameSession = other.session === token;
  other.close();
  jar = null;

  const closed = next(app, "close");
  app.close();
  seen.closeCode = await closed;
}

main().then(
  () => console.log(JSON.stringify(seen)),
  (e) => {
    console.log(JSON.stringify({ fatal: String((e && e.stack) || e), seen }));
    process.exitCode = 1;
  },
);
