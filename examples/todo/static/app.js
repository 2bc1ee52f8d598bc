// The Prism todo page: one shared list, edited live by every page that opens
// it. No framework: the generated client (prism-client.js, built by `prism
// build-client` for this server's services) and the DOM.
//
//   const doc = await app.api.models.open("todo:shared")   -> doc.value, doc.version
//   doc.on("change", (value, ops, version) => …)        -> every change, anyone's
//   await doc.update((draft) => { … })                  -> change a copy; retried on conflict
//
// The document is {items: [{id, text, done, by}]}. Every edit finds its item
// by id inside the update function, so that when another page's change wins
// the race, the function runs again on the new value and both edits land.
// The server validates each change against the list's JSON Schema
// (examples/todo/prism.toml) and refuses what would break it; the refusal
// (kind "invalid") is shown on the page and the list stays as it was.
import { createClient } from "./prism-client.js";

const $ = (id) => document.getElementById(id);
const statusEl = $("status");
const versionEl = $("version");
const errorEl = $("error");
const list = $("items");
const countEl = $("count");
const clearButton = $("clear-done");
const addButton = $("add-button");
const newText = $("new-text");
const nickInput = $("nick");

// ?list=groceries opens the document todo:groceries.
const listName = new URLSearchParams(location.search).get("list") || "shared";
const docName = "todo:" + listName;
$("doc-name").textContent = docName;
document.title = "Prism todo: " + listName;

const wsUrl = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws";
const app = createClient({ url: wsUrl });
const models = app.api.models;

let doc = null; // the open document, once its snapshot arrived
const rows = new Map(); // item id -> {li, check, text, by, remove, shown}

// -- small helpers

function setStatus(status, text) {
  document.body.dataset.status = status;
  statusEl.textContent = text;
}

function showError(err) {
  // A rejected Promise of the client: an Error with .kind and .message.
  const kind = (err && err.kind) || "error";
  errorEl.dataset.kind = kind;
  errorEl.querySelector(".kind").textContent = kind;
  errorEl.querySelector(".message").textContent = (err && err.message) || String(err);
  errorEl.hidden = false;
}

function clearError() {
  errorEl.hidden = true;
  delete errorEl.dataset.kind;
}

errorEl.querySelector(".dismiss").addEventListener("click", clearError);

function newId() {
  // 16 random letters and digits: ids are made by the pages, not the server.
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => "abcdefghijklmnopqrstuvwxyz0123456789"[b % 36]).join("");
}

function nickname() {
  let nick = localStorage.getItem("prism-todo-nick");
  if (!nick) {
    nick = "guest-" + (1000 + Math.floor(Math.random() * 9000));
    localStorage.setItem("prism-todo-nick", nick);
  }
  return nick;
}

nickInput.value = nickname();
nickInput.addEventListener("change", () => {
  const nick = nickInput.value.trim().replace(/\s+/g, " ").slice(0, 24);
  if (nick) localStorage.setItem("prism-todo-nick", nick);
  nickInput.value = nickname();
});

// -- edits: each one is a doc.update(fn); fn may run more than once

const find = (draft, id) => draft.items.find((item) => item.id === id);

async function change(fn) {
  if (!doc) return false;
  try {
    await doc.update(fn);
    clearError();
    return true;
  } catch (err) {
    showError(err); // e.g. kind "invalid": the change would break the schema
    return false;
  } finally {
    render(); // puts back what the page shows when the change was refused or did nothing
  }
}

const todo = {
  add(text, id = newId()) {
    const by = nickname();
    return change((draft) => {
      draft.items.push({ id, text, done: false, by });
    });
  },
  setDone(id, done) {
    // The state the person saw and chose, not a flip: two pages ticking the
    // same item at once agree.
    return change((draft) => {
      const item = find(draft, id);
      if (item) item.done = done;
    });
  },
  edit(id, text) {
    return change((draft) => {
      const item = find(draft, id);
      if (item) item.text = text;
    });
  },
  remove(id) {
    return change((draft) => {
      draft.items = draft.items.filter((item) => item.id !== id);
    });
  },
  clearCompleted() {
    return change((draft) => {
      draft.items = draft.items.filter((item) => !item.done);
    });
  },
  change,
};
window.todo = todo; // for the console (and the browser test)

$("add-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  // No check here on purpose: the server's schema decides (a blank text is
  // refused there, and the page shows why).
  if (await todo.add(newText.value.trim())) newText.value = "";
  newText.focus();
});

clearButton.addEventListener("click", () => todo.clearCompleted());

// -- rendering: one row per item id, updated in place, so that a change from
// another page never takes away the focus or a half-typed edit

function makeRow(id) {
  const li = document.createElement("li");
  li.className = "item";
  li.dataset.id = id;
  const check = document.createElement("input");
  check.type = "checkbox";
  check.className = "done";
  const text = document.createElement("input");
  text.className = "text";
  text.maxLength = 200;
  const by = document.createElement("span");
  by.className = "by";
  const remove = document.createElement("button");
  remove.type = "button";
  remove.className = "remove";
  remove.textContent = "×";
  li.append(check, text, by, remove);
  const row = { li, check, text, by, remove, shown: null };

  check.addEventListener("change", () => todo.setDone(id, check.checked));
  remove.addEventListener("click", () => todo.remove(id));
  text.addEventListener("change", () => todo.edit(id, text.value.trim()));
  text.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault();
      text.blur(); // "change" fires if the text changed
    } else if (event.key === "Escape") {
      text.value = row.shown;
      text.blur();
    }
  });
  return row;
}

function updateRow(row, item) {
  const { li, check, text, by, remove } = row;
  li.classList.toggle("is-done", item.done);
  check.checked = item.done;
  // Leave a text being edited alone; otherwise show the document's.
  const editing = document.activeElement === text && text.value !== row.shown;
  if (!editing && text.value !== item.text) text.value = item.text;
  row.shown = item.text;
  check.setAttribute("aria-label", "Done: " + item.text);
  text.setAttribute("aria-label", "Text of item “" + item.text + "”");
  remove.setAttribute("aria-label", "Delete “" + item.text + "”");
  by.textContent = item.by || "";
  by.title = item.by ? "added by " + item.by : "";
}

function render() {
  if (!doc) return;
  const items = (doc.value && doc.value.items) || [];
  versionEl.textContent = String(doc.version);
  versionEl.dataset.version = String(doc.version);

  // Rows of items that are gone first, then the others in the document's order.
  const ids = new Set(items.map((item) => item.id));
  for (const [id, row] of rows) {
    if (!ids.has(id)) {
      row.li.remove();
      rows.delete(id);
    }
  }
  const placeholder = list.querySelector("li.empty");
  let previous = null;
  const seen = new Set();
  for (const item of items) {
    if (seen.has(item.id)) continue; // (two pages picking one id: show it once)
    seen.add(item.id);
    let row = rows.get(item.id);
    if (!row) rows.set(item.id, (row = makeRow(item.id)));
    updateRow(row, item);
    const wanted = previous ? previous.nextSibling : list.firstChild;
    if (wanted !== row.li) list.insertBefore(row.li, wanted);
    previous = row.li;
  }
  if (items.length && placeholder) placeholder.remove();
  if (!items.length) {
    const empty = placeholder || document.createElement("li");
    empty.className = "empty";
    empty.textContent = "Nothing to do. Add something above!";
    if (!placeholder) list.append(empty);
  }
  list.setAttribute("aria-busy", "false");

  const done = items.filter((item) => item.done).length;
  countEl.textContent = items.length ? `${done} of ${items.length} done` : "";
  clearButton.disabled = done === 0;
  clearButton.textContent = done ? `Clear completed (${done})` : "Clear completed";
}

// -- connection

let opening = false;

async function openList() {
  // Once: after that the client keeps the document subscribed, and after a
  // reconnection catches up with what it missed by itself.
  if (doc || opening) return;
  opening = true;
  try {
    doc = await models.open(docName);
    todo.doc = doc;
    doc.on("change", render);
    addButton.disabled = false;
    render();
  } catch (err) {
    showError(err); // e.g. forbidden, or invalid for a bad list name
  } finally {
    opening = false;
  }
}

app.on("open", () => {
  setStatus("open", "connected");
  openList();
});
app.on("reconnect", () => {
  setStatus("open", "reconnected");
  openList(); // only if the first connection could not open it
});
app.on("close", () => {
  setStatus("reconnecting", "disconnected, reconnecting…");
});
app.on("error", showError); // e.g. a client built for other services than the server has
todo.app = app;

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
