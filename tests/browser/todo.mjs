// Drive the todo demo (examples/todo) in real headless Chromium: two browser
// contexts (two people) edit one shared list at the same time, and both
// pages must converge on the same list at the same version.
//
//   node tests/browser/todo.mjs http://127.0.0.1:PORT/ /tmp/screenshot.png
//
// Prints one JSON object on stdout (the last line) and exits 0 when every
// step ran (the Python test asserts the details), 1 with {"ok": false,
// "error": ...} otherwise. Bounded by DEADLINE_MS.
//
// The steps:
//   1. each page adds 10 items at once (20 concurrent doc.update calls);
//   2. at once, page A ticks B's 10 items and page B ticks 5 of A's, by
//      clicking their checkboxes;
//   3. at once, A edits an item's text (typing in it) and B deletes another;
//      then A clears the completed items;
//   4. A submits a blank item and then 50 items in one change: the server's
//      schema refuses both, the page shows the error, nothing changes;
//   5. B reloads: it opens the list again at the same version, and ticks an item.
// After each of 1-3 the lists and versions of both pages are recorded.
import { launchChromium, runner, watchPage } from "./launch.mjs";

const [url, screenshot] = process.argv.slice(2);
const DEADLINE_MS = Number(process.env.PRISM_BROWSER_DEADLINE_MS || 30000);
const STEP_MS = 8000;

const result = { ok: false, url, screenshot, steps: [], console: [], pageErrors: [] };
let browser;

const done = runner(result, DEADLINE_MS);

async function openPage(context, name) {
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_MS);
  watchPage(page, result, name);
  await page.goto(url);
  await page.waitForSelector('body[data-status="open"]');
  await page.waitForSelector("#version[data-version]:not([data-version=''])");
  return page;
}

// What a page shows: its version, the rows in order, and what its copy of the
// document holds (they must agree).
function shown(page) {
  return page.evaluate(() => ({
    status: document.querySelector("#status").textContent,
    nick: document.querySelector("#nick").value,
    version: Number(document.querySelector("#version").dataset.version),
    docVersion: window.todo.doc.version,
    items: Array.from(document.querySelectorAll("#items li.item"), (li) => ({
      id: li.dataset.id,
      text: li.querySelector(".text").value,
      done: li.querySelector(".done").checked,
      by: li.querySelector(".by").textContent,
    })),
    doc: window.todo.doc.value.items,
    count: document.querySelector("#count").textContent,
    error: document.querySelector("#error").hidden ? null : {
      kind: document.querySelector("#error").dataset.kind,
      text: document.querySelector("#error .message").textContent,
    },
  }));
}

// Wait until the page is at `version` (and has rendered it).
async function atVersion(page, version) {
  await page.waitForFunction(
    (v) => Number(document.querySelector("#version").dataset.version) === v && window.todo.doc.version === v,
    version,
  );
  return shown(page);
}

const itemSelector = (text) => `#items li.item:has(input.text[aria-label="Text of item “${text}”"])`;

async function setNick(page, nick) {
  await page.fill("#nick", nick);
  await page.press("#nick", "Tab");
}

try {
  if (!url || !screenshot) throw new Error("usage: node todo.mjs URL SCREENSHOT.png");
  browser = await launchChromium();
  result.browser = browser.version();
  const contextA = await browser.newContext({ viewport: { width: 720, height: 640 } });
  const contextB = await browser.newContext({ viewport: { width: 720, height: 640 } });
  const a = await openPage(contextA, "A");
  const b = await openPage(contextB, "B");
  await setNick(a, "alice");
  await setNick(b, "bob");
  result.opened = { a: await shown(a), b: await shown(b) };
  result.steps.push("opened");

  // 1. Twenty concurrent adds: every doc.update starts before any is answered.
  const addTen = (prefix) =>
    Promise.all(Array.from({ length: 10 }, (_, i) => window.todo.add(`${prefix} ${i + 1}`)));
  result.added = await Promise.all([a.evaluate(addTen, "Alice"), b.evaluate(addTen, "Bob")]);
  result.afterAdds = { a: await atVersion(a, 20), b: await atVersion(b, 20) };
  result.steps.push("added");

  // 2. Concurrent ticks, through the checkboxes.
  const tick = async (page, texts) => {
    for (const text of texts) await page.click(`${itemSelector(text)} input.done`);
  };
  const bobs = Array.from({ length: 10 }, (_, i) => `Bob ${i + 1}`);
  const oddAlices = [1, 3, 5, 7, 9].map((i) => `Alice ${i}`);
  await Promise.all([tick(a, bobs), tick(b, oddAlices)]);
  result.afterTicks = { a: await atVersion(a, 35), b: await atVersion(b, 35) };
  result.steps.push("ticked");

  // 3. An edit (typed into the item) and a delete at once, then clear completed.
  const edit = async () => {
    const input = `${itemSelector("Alice 2")} input.text`;
    await a.click(input);
    await a.fill(input, "Alice 2, edited");
    await a.press(input, "Enter");
  };
  await Promise.all([edit(), b.click(`${itemSelector("Alice 4")} button.remove`)]);
  await atVersion(a, 37);
  await atVersion(b, 37);
  await a.click("#clear-done");
  result.afterClear = { a: await atVersion(a, 38), b: await atVersion(b, 38) };
  result.steps.push("edited");

  // 4. Schema violations: a blank item through the form, then too many items.
  await a.fill("#new-text", "   ");
  await a.click('#add-form button[type="submit"]');
  await a.waitForSelector("#error:not([hidden])");
  result.blank = await shown(a);
  await a.click("#error .dismiss");
  result.tooMany = await a.evaluate(async () => {
    const accepted = await window.todo.change((draft) => {
      for (let i = 0; i < 50; i++) draft.items.push({ id: "many" + i, text: "more " + i, done: false });
    });
    return { accepted };
  });
  await a.waitForSelector("#error:not([hidden])");
  Object.assign(result.tooMany, await shown(a));
  result.afterErrorsB = await shown(b);
  result.steps.push("refused");

  // 5. A new page load opens the list at the same version, and edits it.
  await b.reload();
  await b.waitForSelector('body[data-status="open"]');
  result.afterReload = await atVersion(b, 38);
  await b.click(`${itemSelector("Alice 6")} input.done`);
  result.afterLastTick = { a: await atVersion(a, 39), b: await atVersion(b, 39) };
  result.steps.push("reloaded");

  await a.screenshot({ path: screenshot, fullPage: true });
  result.steps.push("screenshot");
  result.ok = true;
} catch (err) {
  result.error = String((err && err.stack) || err);
} finally {
  if (browser) await browser.close().catch(() => {});
}
done(result.ok ? 0 : 1);
