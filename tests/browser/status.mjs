// Open Prism's status dashboard (/status on the admin listener) in real
// headless Chromium while the Python test puts load on the server, and check
// that its charts fill up from the prism.status pubsub channel.
//
//   node tests/browser/status.mjs 'http://127.0.0.1:PORT/status?token=…' SCREENSHOT.png
//
// Page A opens first and waits until the charts show connections, messages
// per second and RPC latency; page B opens later and must get the last
// samples from the channel's history at once. Then A is saved as
// SCREENSHOT.png. Prints one JSON object on stdout (the last line) and exits
// 0 when every step ran (the Python test asserts the details), 1 with
// {"ok": false, "error": ...} otherwise. Bounded by DEADLINE_MS.
import { launchChromium, runner, watchPage } from "./launch.mjs";

const [url, screenshot] = process.argv.slice(2);
const DEADLINE_MS = Number(process.env.PRISM_BROWSER_DEADLINE_MS || 25000);
const STEP_MS = 8000;
// Samples page A waits for before the screenshot (a fuller picture).
const SCREENSHOT_SAMPLES = Number(process.env.PRISM_STATUS_SAMPLES || 24);

const result = { ok: false, steps: [], console: [], pageErrors: [], failedRequests: [] };
let browser;

const done = runner(result, DEADLINE_MS);

// What the page reports about itself (see the comment at the top of status.html).
function report(page) {
  return page.evaluate(() => {
    const charts = {};
    for (const el of document.querySelectorAll("section.chart")) charts[el.id.replace(/^chart-/, "")] = { ...el.dataset };
    const body = document.body.dataset;
    return {
      status: body.status,
      samples: Number(body.samples),
      history: Number(body.history),
      charts,
      state: document.querySelector("#state").dataset.state,
      title: document.title,
      canvases: [...document.querySelectorAll("canvas")].map((c) => [c.width, c.height]),
    };
  });
}

async function openPage(context, name) {
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_MS);
  watchPage(page, result, name);
  page.on("requestfailed", (req) => result.failedRequests.push(`${name}: ${req.url()} ${req.failure() && req.failure().errorText}`));
  page.on("response", (res) => {
    if (res.status() >= 400) result.failedRequests.push(`${name}: ${res.url()} HTTP ${res.status()}`);
  });
  const response = await page.goto(url);
  result[name + "Http"] = response.status();
  await page.waitForSelector('body[data-status="open"]');
  return page;
}

try {
  if (!url || !screenshot) throw new Error("usage: node status.mjs URL SCREENSHOT.png");
  browser = await launchChromium();
  result.browser = browser.version();
  const context = await browser.newContext({ viewport: { width: 1280, height: 680 } });

  const a = await openPage(context, "a");
  result.steps.push("opened");
  // The charts fill up as samples arrive under load.
  await a.waitForFunction(() => {
    const c = (id) => document.querySelector("#chart-" + id).dataset;
    return (
      Number(document.body.dataset.samples) >= 4 &&
      Number(c("connections").latestConnections) > 0 &&
      Number(c("messages").latestIn) > 0 &&
      Number(c("messages").latestOut) > 0 &&
      Number(c("latency").latestP99) > 0
    );
  });
  result.steps.push("charts");

  // A page opened later draws the recent past at once, from the history.
  const b = await openPage(context, "b");
  await b.waitForFunction(() => Number(document.body.dataset.history) > 0, null, { timeout: 3000 });
  result.b = await report(b);
  result.steps.push("history");
  await b.close();

  // More samples for the picture (at least 4 more), then the screenshot.
  const seen = Number(await a.evaluate(() => document.body.dataset.samples));
  const enough = Math.max(seen + 4, SCREENSHOT_SAMPLES);
  await a.waitForFunction((n) => Number(document.body.dataset.samples) >= n, enough, { timeout: 2 * STEP_MS });
  result.a = await report(a);
  await a.screenshot({ path: screenshot });
  result.steps.push("screenshot");
  result.ok = true;
} catch (err) {
  result.error = String((err && err.stack) || err);
} finally {
  if (browser) await browser.close().catch(() => {});
}
done(result.ok ? 0 : 1);
