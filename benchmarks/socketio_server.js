#!/usr/bin/env node
// The Socket.IO side of the fan-out benchmark (benchmarks/fanout.py): every
// socket joins the room "bench" unless it connects with ?role=pub; a "pub"
// event from any socket is broadcast to the room as "m" (a Socket.IO room
// broadcast: the packet is encoded once by the adapter and written to every
// member).
//
//   node benchmarks/socketio_server.js [--port PORT] [--max-seconds SECONDS]
//
// Listens on 127.0.0.1 only; prints "LISTENING <port>"; exits after MAX_SECONDS.
"use strict";
const http = require("http");
const { Server } = require("socket.io");

const arg = (name, dflt) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const port = arg("--port", 0);
const maxSeconds = arg("--max-seconds", 600);
const httpServer = http.createServer();
const io = new Server(httpServer, { transports: ["websocket"], perMessageDeflate: false, serveClient: false });
io.on("connection", (socket) => {
  if (socket.handshake.query.role !== "pub") socket.join("bench");
  socket.on("pub", (data) => io.to("bench").emit("m", data));
});
httpServer.listen(port, "127.0.0.1", () => {
  console.log("LISTENING " + httpServer.address().port);
});
setTimeout(() => process.exit(0), maxSeconds * 1000).unref();
