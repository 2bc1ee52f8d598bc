// Headless Chromium for the browser tests: Debian's /usr/bin/chromium (or
// $PRISM_CHROMIUM), with the flags this machine's closed network needs
// (no background networking, no component updates, no sync).
import { chromium } from "playwright-core";

export const executablePath = process.env.PRISM_CHROMIUM || "/usr/bin/chromium";

export function launchChromium() {
  return chromium.launch({
    executablePath,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

// The outcome protocol of every browser script: `result` (with its `steps`)
// is printed as JSON on the last line of stdout and the process exits with
// `code`; a run still going after `deadlineMs` fails with what it reached.
export function runner(result, deadlineMs) {
  const done = (code) => {
    process.stdout.write("\n" + JSON.stringify(result) + "\n");
    process.exit(code);
  };
  setTimeout(() => {
    result.error = `deadline of ${deadlineMs} ms exceeded after steps: ${result.steps.join(", ")}`;
    done(1);
  }, deadlineMs);
  return done;
}

// Record a page's console errors and warnings (result.console) and its
// uncaught errors (result.pageErrors), each prefixed with `name` if given.
export function watchPage(page, result, name) {
  const tag = name ? `${name}: ` : "";
  page.on("console", (msg) => {
    if (msg.type() === "error" || msg.type() === "warning") result.console.push(`${tag}${msg.type()}: ${msg.text()}`);
  });
  page.on("pageerror", (err) => result.pageErrors.push(`${tag}${err.message}`));
}
