// Drive the chat demo (examples/chat) in real headless Chromium, as two
// people would: two browser contexts (two cookie jars, so two Prism
// sessions) set nicknames, talk to each other, and one posts an empty message
// that the server rejects.
//
//   node tests/browser/chat.mjs http://127.0.0.1:PORT/ /tmp/screenshot.png
//
// Prints one JSON object on stdout (the last line) and exits 0 when every
// step ran (the Python test asserts the details), 1 with {"ok": false,
// "error": ...} otherwise. Bounded by DEADLINE_MS.
//
// Chromium is Debian's (/usr/bin/chromium, or PRISM_CHROMIUM), started with
// the flags this machine needs; Playwright gives each launch a fresh, empty
// user-data-dir of its own. `npx playwright install` is never used.
import { launchChromium, runner, watchPage } from "./launch.mjs";

const [url, screenshot] = process.argv.slice(2);
const DEADLINE_MS = Number(process.env.PRISM_BROWSER_DEADLINE_MS || 15000);
const STEP_MS = 5000;

const result = { ok: false, url, screenshot, steps: [], console: [], pageErrors: [] };
let browser;

const done = runner(result, DEADLINE_MS);

async function openPage(context, name) {
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_MS);
  watchPage(page, result, name);
  await page.goto(url);
  await page.waitForSelector('body[data-status="open"]');
  return page;
}

async function setNick(page, nick) {
  await page.fill("#nick", nick);
  await page.click('#nick-form button[type="submit"]');
  await page.waitForFunction((n) => document.querySelector("#nick").value === n && document.querySelector("#error").hidden, nick);
}

// Post through the form; a successful post clears the input once the RPC
// reply has arrived (a rejected one leaves it and shows the error).
async function post(page, text) {
  await page.fill("#text", text);
  await page.click('#post-form button[type="submit"]');
  if (text.trim()) await page.waitForFunction(() => document.querySelector("#text").value === "");
}

// Wait until `page` shows a message with this text, and return what it shows.
async function waitForMessage(page, text) {
  const handle = await page.waitForFunction(
    (t) => {
      for (const li of document.querySelectorAll("#messages li[data-id]")) {
        const body = li.querySelector(".text");
        if (body && body.textContent === t) {
          return { id: Number(li.dataset.id), nick: li.querySelector(".nick").textContent, text: t, mine: li.classList.contains("mine") };
        }
      }
      return null;
    },
    text,
  );
  return handle.jsonValue();
}

try {
  if (!url || !screenshot) throw new Error("usage: node chat.mjs URL SCREENSHOT.png");
  browser = await launchChromium();
  result.browser = browser.version();
  const contextA = await browser.newContext({ viewport: { width: 760, height: 620 } });
  const contextB = await browser.newContext({ viewport: { width: 760, height: 620 } });
  const a = await openPage(contextA, "A");
  const b = await openPage(contextB, "B");
  result.steps.push("opened");
  result.status = { a: await a.textContent("#status"), b: await b.textContent("#status") };

  await setNick(a, "alice");
  await setNick(b, "bob");
  result.steps.push("nicknames");

  await post(a, "Hello from Alice");
  result.bSaw = await waitForMessage(b, "Hello from Alice");
  result.aSawOwn = await waitForMessage(a, "Hello from Alice");
  await post(b, "Hi Alice, Bob here");
  result.aSaw = await waitForMessage(a, "Hi Alice, Bob here");
  result.steps.push("exchanged");

  // An empty post, through the form: the rejected Promise is shown in the page.
  await post(a, "   ");
  await a.waitForSelector("#error:not([hidden])");
  result.shownError = await a.evaluate(() => {
    const el = document.querySelector("#error");
    return { kind: el.dataset.kind, text: el.textContent, visible: !el.hidden };
  });
  // And the same call made directly: the Promise rejects with an Error with .kind.
  result.rejected = await b.evaluate(() =>
    window.chatApp.api.rpc.call("chat.post", "").then(
      (value) => ({ resolved: value }),
      (err) => ({ isError: err instanceof Error, kind: err.kind, message: err.message }),
    ),
  );
  result.steps.push("error");

  // The session keeps the nickname across a reload (the cookie, then chat.join).
  await b.reload();
  await b.waitForSelector('body[data-status="open"]');
  await b.waitForFunction(() => document.querySelector("#nick").value !== "");
  result.nickAfterReload = await b.inputValue("#nick");
  result.bHistory = await b.$$eval("#messages li[data-id]", (lis) => lis.map((li) => li.textContent));
  result.steps.push("reload");

  await a.screenshot({ path: screenshot });
  result.steps.push("screenshot");
  result.ok = true;
} catch (err) {
  result.error = String((err && err.stack) || err);
} finally {
  if (browser) await browser.close().catch(() => {});
}
done(result.ok ? 0 : 1);
