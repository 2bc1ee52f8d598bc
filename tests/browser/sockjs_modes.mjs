// The npm sockjs-client (1.6, loaded from the page's own server) in headless
// Chromium, forced onto one transport at a time with
// new SockJS(url, null, {transports: [name]}) against a SockJS mount with
// the echo handler: each mode opens, sends unicode, a ~50 KB string and ten
// short messages, receives every echo in order, reports sock.transport and
// closes.
//
//   node tests/browser/sockjs_modes.mjs http://127.0.0.1:PORT/ http://127.0.0.1:PORT/sockjs MODE...
//
// Prints one JSON object on stdout (the last line): {"ok", "modes": {name:
// {...}}, ...}; exits 0 when the page ran every mode (the Python test
// asserts the per-mode details), 1 with {"ok": false, "error": ...}
// otherwise. Bounded by PRISM_BROWSER_DEADLINE_MS.
import { launchChromium, runner, watchPage } from "./launch.mjs";

const [url, mount, ...modes] = process.argv.slice(2);
const DEADLINE_MS = Number(process.env.PRISM_BROWSER_DEADLINE_MS || 15000);

const result = { ok: false, url, modes: {}, steps: [], console: [], pageErrors: [], requests: [] };
let browser;

const done = runner(result, DEADLINE_MS);

// Runs in the page: one forced transport, echo round trip, close.
async function runMode([mount, name]) {
  const messages = ["héllo wörld ☃ 𝄞 😀 \u2028 ‮ \ufeff", "x".repeat(50000) + "é"];
  for (let i = 0; i < 10; i++) messages.push("short " + i);
  const out = { name, got: 0 };
  const sock = new SockJS(mount, null, { transports: [name] });
  return await new Promise((resolve) => {
    const timer = setTimeout(() => {
      out.error = "timeout";
      out.transport = sock.transport || null;
      try { sock.close(); } catch (e) {}
      resolve(out);
    }, 4000);
    const got = [];
    sock.onopen = () => {
      out.opened = true;
      out.transport = sock.transport;
      for (const m of messages) sock.send(m);
    };
    sock.onmessage = (e) => {
      got.push(e.data);
      out.got = got.length;
      if (got.length == messages.length) {
        out.inOrder = got.every((m, i) => m === messages[i]);
        out.transport = sock.transport;
        sock.close();
      }
    };
    sock.onclose = (e) => {
      clearTimeout(timer);
      out.close = { code: e.code, reason: e.reason, wasClean: e.wasClean };
      if (out.transport === undefined) out.transport = sock.transport || null;
      resolve(out);
    };
  });
}

try {
  if (!url || !mount || modes.length == 0) throw new Error("usage: node sockjs_modes.mjs URL MOUNT MODE...");
  browser = await launchChromium();
  result.browser = browser.version();
  const context = await browser.newContext();
  const page = await context.newPage();
  page.setDefaultTimeout(5000);
  watchPage(page, result);
  // Every request of the page and its iframes: all must stay on 127.0.0.1.
  page.on("request", (req) => result.requests.push(`${req.method()} ${req.url()}`));
  await page.goto(url);
  await page.waitForFunction(() => typeof window.SockJS == "function");
  result.steps.push("loaded");
  for (const name of modes) {
    result.modes[name] = await page.evaluate(runMode, [mount, name]);
    result.steps.push(name);
  }
  result.ok = true;
} catch (err) {
  result.error = String((err && err.stack) || err);
} finally {
  if (browser) await browser.close().catch(() => {});
}
done(result.ok ? 0 : 1);
