// Load for benchmarks/transports.py: <conns> generated Prism clients (cjs)
// each doing echo round trips back to back for <seconds>; prints one JSON
// object {roundTrips, seconds, rps, p50, p99} (latencies in ms).
//   node benchmarks/transports_load.mjs <client.cjs> <url> <mode> <conns> <seconds>
import { createRequire } from "node:module";

const [clientPath, url, mode, connsArg, secondsArg] = process.argv.slice(2);
const conns = Number(connsArg), seconds = Number(secondsArg);
const { createClient } = createRequire(import.meta.url)(clientPath);
const engineio = { polling: { transports: ["polling"] }, websocket: { transports: ["websocket"] }, upgrade: {} }[mode];
const options = (i) => ({ url, timeout: 30, sockjs: mode == "auto" ? {} : { transports: [mode] }, engineio });
const apps = [];
for (let i = 0; i < conns; i++) apps.push(createClient(options(i)));
await Promise.all(apps.map((a) => a.connect()));
for (const a of apps) await a.api.echo.request("warm");
const latencies = [];
const start = performance.now();
const end = start + seconds * 1000;
await Promise.all(apps.map(async (a) => {
  while (performance.now() < end) {
    const t = performance.now();
    await a.api.echo.request("ping");
    latencies.push(performance.now() - t);
  }
}));
const elapsed = (performance.now() - start) / 1000;
latencies.sort((x, y) => x - y);
const pct = (p) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))];
for (const a of apps) a.close();
console.log(JSON.stringify({ roundTrips: latencies.length, seconds: elapsed, rps: latencies.length / elapsed, p50: pct(0.5), p99: pct(0.99) }));
setTimeout(() => process.exit(0), 200).unref();
