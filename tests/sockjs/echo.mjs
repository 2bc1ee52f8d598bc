// Drives the official sockjs-client (npm, 1.6) against a SockJS mount with
// the echo handler: node echo.mjs <url> <transport|auto> <count>
// Sends unicode, large and binary-ish messages in order, prints a JSON report.
import SockJS from "sockjs-client";

const [url, mode, countArg] = process.argv.slice(2);
const count = Number(countArg || 20);
const messages = [];
for (let i = 0; i < count; i++) {
  const kind = i % 4;
  if (kind == 0) messages.push("héllo ☃ 𝄞 😀 ‮ \u2028 " + i);
  else if (kind == 1) messages.push("x".repeat(50000 + i));
  else if (kind == 2) {
    let s = "";
    for (let c = 0; c < 256; c++) s += String.fromCharCode(c);
    messages.push(s + "\ufeff\uffff\u200c" + i);
  } else messages.push(JSON.stringify({ n: i, s: "\"quoted\" \\ back" }));
}
const options = mode == "auto" ? {} : { transports: [mode] };
const sock = new SockJS(url, null, options);
const got = [];
const timer = setTimeout(() => { console.log(JSON.stringify({ error: "timeout", got: got.length, transport: sock.transport })); process.exit(1); }, 15000);
sock.onopen = () => { for (const m of messages) sock.send(m); };
sock.onmessage = (e) => {
  got.push(e.data);
  if (got.length == messages.length) {
    const ok = got.every((m, i) => m === messages[i]);
    clearTimeout(timer);
    const transport = sock.transport;
    sock.close();
    console.log(JSON.stringify({ ok, transport, count: got.length, firstBad: got.findIndex((m, i) => m !== messages[i]) }));
  }
};
sock.onclose = (e) => { if (got.length < messages.length) { clearTimeout(timer); console.log(JSON.stringify({ error: "closed", code: e.code, reason: e.reason, got: got.length })); process.exit(1); } };
