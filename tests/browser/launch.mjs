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
