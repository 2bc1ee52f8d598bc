// Drive a page served with the livereload service in real headless Chromium
// (tests/test_livereload.py writes the page and serves it): edit its
// stylesheet, then its script, then its HTML, the way an editor would, and
// record what the page does each time.
//
//   node tests/browser/livereload.mjs http://127.0.0.1:PORT/ /path/to/static
//
// The page (index.html) links css/app.css and other.css, and its module
// script (app.js) connects the generated client, then sets
// body[data-status="open"] and body[data-version]. Expected: the stylesheet
// edit restyles the page in place (a window marker survives, only the
// matching <link> gets a new href); the script and HTML edits reload it
// (the marker is gone, the new content shows).
//
// Prints one JSON object on stdout (the last line) and exits 0 when every
// step ran (the Python test asserts the details), 1 with {"ok": false,
// "error": ...} otherwise. Bounded by DEADLINE_MS.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

import { launchChromium, runner, watchPage } from "./launch.mjs";

const [url, staticDir] = process.argv.slice(2);
const DEADLINE_MS = Number(process.env.PRISM_BROWSER_DEADLINE_MS || 15000);
const STEP_MS = 5000;

const result = { ok: false, url, steps: [], console: [], pageErrors: [], loads: 0 };
let browser;

const done = runner(result, DEADLINE_MS);

// What the page shows: the marker set by this script (gone after a reload),
// the body's computed colour, the stylesheet hrefs, the script's version,
// the title.
const state = (page) =>
  page.evaluate(() => ({
    marker: window.marker === undefined ? null : window.marker,
    color: getComputedStyle(document.body).color,
    hrefs: [...document.querySelectorAll("link[rel=stylesheet]")].map((l) => l.getAttribute("href")),
    version: document.body.dataset.version || null,
    title: document.querySelector("#title").textContent,
  }));

const edit = (name, change) => {
  const path = join(staticDir, name);
  writeFileSync(path, change(readFileSync(path, "utf8")));
};

try {
  if (!url || !staticDir) throw new Error("usage: node livereload.mjs URL STATIC_DIR");
  browser = await launchChromium();
  result.browser = browser.version();
  const page = await browser.newPage();
  page.setDefaultTimeout(STEP_MS);
  watchPage(page, result);
  page.on("load", () => result.loads++);

  await page.goto(url);
  await page.waitForSelector('body[data-status="open"]');
  await page.evaluate(() => (window.marker = "kept"));
  result.before = await state(page);
  result.steps.push("opened");

  // 1. The stylesheet: restyled in place, no reload.
  edit("css/app.css", (css) => css.replace("rgb(1, 2, 3)", "rgb(4, 5, 6)"));
  await page.waitForFunction(() => getComputedStyle(document.body).color === "rgb(4, 5, 6)");
  result.afterCss = await state(page);
  result.loadsAfterCss = result.loads;
  result.steps.push("css");

  // 2. The script: the page reloads and runs the new one.
  let loaded = page.waitForEvent("load");
  edit("app.js", (js) => js.replace('VERSION = "1"', 'VERSION = "2"'));
  await loaded;
  await page.waitForSelector('body[data-status="open"][data-version="2"]');
  result.afterJs = await state(page);
  result.steps.push("js");

  // 3. The HTML: the page reloads and shows the new content.
  loaded = page.waitForEvent("load");
  edit("index.html", (html) => html.replace('<h1 id="title">one</h1>', '<h1 id="title">two</h1>'));
  await loaded;
  await page.waitForSelector('body[data-status="open"]');
  await page.waitForFunction(() => document.querySelector("#title").textContent === "two");
  result.afterHtml = await state(page);
  result.steps.push("html");
  result.ok = true;
} catch (err) {
  result.error = String((err && err.stack) || err);
} finally {
  if (browser) await browser.close().catch(() => {});
}
done(result.ok ? 0 : 1);
