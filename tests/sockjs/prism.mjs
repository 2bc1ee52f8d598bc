// A generated Prism client (cjs) over the sockjs transport, forced onto one
// SockJS transport (or negotiating: "auto"): RPC, and echo requests of
// unicode, large and binary-ish values in order. Prints one JSON object.
//   node tests/sockjs/prism.mjs <client.cjs> <url> <mode>
import { createRequire } from "node:module";

const [clientPath, url, mode] = process.argv.slice(2);
const watchdog = setTimeout(() => { console.log(JSON.stringify({ fatal: "timed out" })); process.exit(2); }, 20000);
watchdog.unref();
const { createClient } = createRequire(import.meta.url)(clientPath);
const app = createClient({ url, timeout: 10, sockjs: mode == "auto" ? {} : { transports: [mode] } });
const seen = {};
try {
  await app.connect();
  seen.add = await app.api.rpc.call("add", 2, 3);
  let binary = "";
  for (let c = 0; c < 256; c++) binary += String.fromCharCode(c);
  const values = ["héllo ☃ 😀 \u2028", "y".repeat(200000), binary + "\ufeff"];
  const replies = await Promise.all(values.map((v) => app.api.echo.request(v)));
  seen.echoed = replies.every((r, i) => r === values[i]);
  const many = Array.from({ length: 50 }, (_, i) => "m" + i);
  const got = [];
  const all = new Promise((resolve) => app.api.echo.on((m) => { got.push(m); if (got.length == many.length) resolve(); }));
  for (const m of many) app.api.echo.send(m);
  await all;
  seen.inOrder = got.join() === many.join();
} catch (e) {
  seen.error = String(e && (e.message || e));
}
app.close();
console.log(JSON.stringify(seen));
