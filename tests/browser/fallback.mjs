// A page served by a Prism server on the "engineio" or "sockjs" transport,
// in headless Chromium with WebSocket removed before any script runs: the
// official client (engine.io-client or sockjs-client, loaded from the page's
// own server) must fall back to HTTP and the generated Prism client must
// still make RPC calls and receive a server-side pubsub publication.
//
//   node tests/browser/fallback.mjs http://127.0.0.1:PORT/ engineio|sockjs
//
// Prints one JSON object on stdout (the last line) and exits 0 when every
// step ran (the Python test asserts the details), 1 with {"ok": false,
// "error": ...} otherwise. Bounded by PRISM_BROWSER_DEADLINE_MS.
import { launchChromium, runner, watchPage } from "./launch.mjs";

const [url, transport] = process.argv.slice(2);
const DEADLINE_MS = Number(process.env.PRISM_BROWSER_DEADLINE_MS || 15000);

const result = { ok: false, url, transport, steps: [], console: [], pageErrors: [], requests: [], websockets: [] };
let browser;

const done = runner(result, DEADLINE_MS);

// Runs in the page: the generated client (window.Prism) over the official
// client library, whose instances are recorded to read the transport used.
async function scenario(transport) {
  const out = { webSocketType: typeof WebSocket };
  const made = [];
  const options = { reconnect: false, timeout: 5 };
  if (transport == "engineio") {
    const Base = eio.Socket || eio;
    options.eio = class extends Base {
      constructor(...args) {
        super(...args);
        made.push(this);
      }
    };
  } else {
    options.SockJS = function (...args) {
      const sock = new SockJS(...args);
      made.push(sock);
      return sock;
    };
  }
  const app = Prism.createClient(options);
  await app.connect();
  out.add = await app.api.rpc.call("add", 2, 3);
  out.rejected = await app.api.rpc.call("fail").then(
    (value) => ({ resolved: value }),
    (err) => ({ isError: err instanceof Error, kind: err.kind, message: err.message }),
  );
  let received;
  const message = new Promise((resolve) => (received = resolve));
  out.subscribed = await app.api.pubsub.subscribe("news", (data, channel) => received({ data, channel }));
  out.announced = await app.api.rpc.call("announce", "héllo wörld ✓ 😀");
  out.message = await message;
  // Give an upgrade (which must not happen) time to be attempted.
  await new Promise((resolve) => setTimeout(resolve, 300));
  out.add2 = await app.api.rpc.call("add", 20, 22);
  out.instances = made.length;
  out.finalTransport = transport == "engineio" ? made[0].transport.name : made[0].transport;
  app.close();
  return out;
}

try {
  if (!url || !["engineio", "sockjs"].includes(transport)) throw new Error("usage: node fallback.mjs URL engineio|sockjs");
  browser = await launchChromium();
  result.browser = browser.version();
  const context = await browser.newContext();
  // Before any of the page's scripts: no WebSocket in this page.
  await context.addInitScript(() => {
    delete window.WebSocket;
    window.WebSocket = undefined;
  });
  const page = await context.newPage();
  page.setDefaultTimeout(5000);
  watchPage(page, result);
  page.on("websocket", (ws) => result.websockets.push(ws.url()));
  page.on("request", (req) => result.requests.push(`${req.method()} ${new URL(req.url()).pathname}`));
  await page.goto(url);
  await page.waitForFunction(() => typeof window.Prism == "object");
  result.steps.push("loaded");
  result.page = await page.evaluate(scenario, transport);
  result.steps.push("scenario");
  result.ok = true;
} catch (err) {
  result.error = String((err && err.stack) || err);
} finally {
  if (browser) await browser.close().catch(() => {});
}
done(result.ok ? 0 : 1);
