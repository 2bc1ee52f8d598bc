// An Express app with express-session and connect-redis, for
// tests/test_session_interop.py: it shares its sessions with Prism.
//
//   PORT=0 REDIS_URL=redis://127.0.0.1:6379 SECRET=... PREFIX=sess: node express_app.js
//
// Prints "listening <port>" once it accepts connections.
//   POST /login  (user=<name>)   logs in: session.user = name
//   GET  /value                  {"user": session.user, "value": session.value}
//   POST /value  (value=<text>)  session.value = text
import express from "express";
import session from "express-session";
import { RedisStore } from "connect-redis";
import { createClient } from "redis";

const client = createClient({ url: process.env.REDIS_URL });
client.on("error", (err) => console.error("redis:", err.message));
await client.connect();

const app = express();
app.use(express.urlencoded({ extended: false }));
app.use(
  session({
    store: new RedisStore({ client, prefix: process.env.PREFIX || "sess:" }),
    secret: process.env.SECRET,
    resave: false,
    saveUninitialized: false,
  }),
);

app.post("/login", (req, res) => {
  req.session.user = req.body.user;
  res.json({ ok: true, user: req.session.user });
});
app.get("/value", (req, res) => {
  res.json({ user: req.session.user ?? null, value: req.session.value ?? null });
});
app.post("/value", (req, res) => {
  req.session.value = req.body.value;
  res.json({ ok: true });
});

const server = app.listen(Number(process.env.PORT || 0), "127.0.0.1", () => {
  console.log("listening " + server.address().port);
});
process.on("SIGTERM", () => {
  server.close();
  client.quit().finally(() => process.exit(0));
});
