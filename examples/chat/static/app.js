// The Prism chat page. No framework: the generated client (prism-client.js,
// built by Server.build_client for this server's transport and services)
// and the DOM.
//
//   app.api.rpc.call("chat.join")         -> {nick, history}: on open and on every reconnect
//   app.api.rpc.call("chat.nick", name)   -> stores the nickname in the session
//   app.api.rpc.call("chat.post", text)   -> rejects with err.kind "invalid" for an empty text
//   app.api.chat.on(["message", msg])     -> a push for every message posted by anyone
import { createClient } from "./prism-client.js";

const $ = (id) => document.getElementById(id);
const list = $("messages");
const statusEl = $("status");
const errorEl = $("error");
const nickInput = $("nick");
const textInput = $("text");

const wsUrl = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws";
const app = createClient({ url: wsUrl });
window.chatApp = app; // for the console (and the browser test)

const shown = new Set(); // message ids already in the list
const mine = new Set(); // ids of messages this page posted
let myNick = "anonymous";

function setStatus(status, text) {
  document.body.dataset.status = status;
  statusEl.textContent = text;
}

function showError(err) {
  // A rejected RPC Promise: an Error with .kind (e.g. "invalid") and .message.
  const kind = err && err.kind ? err.kind : "error";
  errorEl.dataset.kind = kind;
  errorEl.replaceChildren();
  const k = document.createElement("span");
  k.className = "kind";
  k.textContent = kind;
  errorEl.append(k, (err && err.message) || String(err));
  errorEl.hidden = false;
}

function clearError() {
  errorEl.hidden = true;
  delete errorEl.dataset.kind;
  errorEl.textContent = "";
}

function time(at) {
  return new Date(at * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function render(message) {
  if (shown.has(message.id)) return;
  shown.add(message.id);
  const placeholder = list.querySelector("li.empty");
  if (placeholder) placeholder.remove();
  const li = document.createElement("li");
  li.dataset.id = message.id;
  li.dataset.nick = message.nick;
  if (message.notice) {
    li.className = "notice";
    li.textContent = message.text;
  } else {
    if (mine.has(message.id)) li.className = "mine";
    const when = document.createElement("span");
    when.className = "time";
    when.textContent = time(message.at);
    const nick = document.createElement("span");
    nick.className = "nick";
    nick.textContent = message.nick;
    const text = document.createElement("span");
    text.className = "text";
    text.textContent = message.text;
    li.append(when, nick, text);
  }
  const atBottom = list.scrollTop + list.clientHeight >= list.scrollHeight - 8;
  list.append(li);
  if (atBottom) list.scrollTop = list.scrollHeight;
}

function renderHistory(history) {
  list.replaceChildren();
  shown.clear();
  if (!history.length) {
    const li = document.createElement("li");
    li.className = "empty";
    li.textContent = "No messages yet. Say hello!";
    list.append(li);
  }
  history.forEach(render);
  list.scrollTop = list.scrollHeight;
}

async function join() {
  // On the first connection and after every reconnect: the nickname from the
  // session (it survives reloads) and the messages missed meanwhile.
  try {
    const { nick, history } = await app.api.rpc.call("chat.join");
    myNick = nick;
    if (document.activeElement !== nickInput) nickInput.value = nick === "anonymous" ? "" : nick;
    renderHistory(history);
  } catch (err) {
    showError(err);
  }
}

app.api.chat.on(([event, message]) => {
  if (event === "message") render(message);
});

app.on("open", () => {
  setStatus("open", "connected");
  join();
});
app.on("reconnect", () => {
  setStatus("open", "reconnected");
  join();
});
app.on("close", () => {
  setStatus("reconnecting", "disconnected, reconnecting…");
});

$("nick-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    myNick = await app.api.rpc.call("chat.nick", nickInput.value);
    nickInput.value = myNick;
    clearError();
  } catch (err) {
    showError(err);
  }
});

$("post-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = textInput.value;
  try {
    const id = await app.api.rpc.call("chat.post", text);
    mine.add(id);
    const li = list.querySelector(`li[data-id="${id}"]`);
    if (li) li.classList.add("mine"); // the push may arrive before the reply
    textInput.value = "";
    clearError();
  } catch (err) {
    showError(err); // e.g. kind "invalid": "cannot post an empty message"
  }
  textInput.focus();
});

app.on("error", showError); // e.g. a client built for other services than the server has

// The client reconnects by itself once connected; until the first connection
// succeeds (the server is not up yet), keep trying here.
function start() {
  setStatus("connecting", "connecting…");
  app.connect().catch(() => {
    setStatus("closed", "cannot connect, retrying…");
    setTimeout(start, 2000);
  });
}
start();
