// quire's browser app: sign in with a token, pick a workspace and a
// document, edit and run its code blocks with live output.
import { h, clear, renderText } from "./dom.js";
import { Api, Live, paths } from "./api.js";
import { CodeCell } from "./cell.js";
import { loadGraph, runOrder } from "./dataflow.js";
import { showQuota } from "./quota.js";
import { showAdmin } from "./admin.js";

const root = document.getElementById("app");
const TOKEN_KEY = "quire.token";
// The workspace last opened, to land in it next time (this device).
const LAST_WS_KEY = "quire.lastWorkspace";

const app = {
  api: null,
  live: null,
  me: null,
  ws: null, // the workspace name
  role: "viewer",
  doc: null,
  cells: [],
};
window.quireApp = app; // for the end-to-end tests

function banner(text, actions = []) {
  const el = document.getElementById("banner");
  clear(el).append(text, ...actions);
  el.hidden = !text;
}

function signInView(message) {
  const input = h("input", { id: "token", type: "password", autocomplete: "off", required: true, "aria-describedby": "token-help" });
  const remember = h("input", { id: "remember", type: "checkbox" });
  const form = h("form", { class: "signin", onsubmit: async (e) => {
    e.preventDefault();
    await signIn(input.value.trim(), remember.checked);
  } },
    h("h1", {}, "quire"),
    h("p", {}, "Code blocks that run, inside your documents."),
    h("label", { for: "token" }, "Access token"), input,
    h("p", { id: "token-help", class: "muted" }, "The token `quire serve` printed, or one an admin gave you (qt_…)."),
    h("div", { class: "check" }, remember, h("label", { for: "remember" }, "Remember me on this device")),
    h("p", { class: "muted" }, "Unticked, the token is forgotten when this tab closes; ticked, every tab of this browser stays signed in until you sign out."),
    message ? h("p", { class: "error", role: "alert" }, message) : null,
    h("button", { type: "submit", class: "primary" }, "Sign in"));
  clear(root).append(h("main", { id: "main", class: "signin-page" }, form));
  input.focus();
}

// `remember`: keep the token in localStorage (every tab, until sign-out)
// rather than sessionStorage (this tab only).
async function signIn(token, remember = false) {
  const api = new Api(token);
  try {
    app.me = await api.get("/me");
  } catch (e) {
    if (e.status === 401) {
      // A kept token that no longer works is forgotten.
      sessionStorage.removeItem(TOKEN_KEY);
      localStorage.removeItem(TOKEN_KEY);
    }
    signInView(e.status === 401 ? "That token is not valid." : `Could not sign in: ${e.message}`);
    return;
  }
  (remember ? localStorage : sessionStorage).setItem(TOKEN_KEY, token);
  app.api = api;
  app.token = token;
  await route();
}

function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  localStorage.removeItem(TOKEN_KEY);
  app.live?.close();
  app.live = null;
  // Before the hash changes: a route must not run with the old token.
  app.api = null;
  app.token = null;
  app.ws = null;
  location.hash = "";
  signInView();
}

async function shell() {
  const { workspaces } = await app.api.get("/workspaces");
  const select = h("select", { id: "ws-select", onchange: () => { location.hash = `#/w/${select.value}`; } },
    workspaces.map((w) => h("option", { value: w.name, selected: w.name === app.ws ? true : undefined }, w.name)));
  // At phone width the sidebar's body folds behind a menu button; it
  // folds again when a link in it is followed.
  const body = h("div", { id: "sidebar-body", class: "sidebar-body" },
    h("label", { for: "ws-select" }, "Workspace"), select,
    h("h2", { id: "docs-heading" }, "Documents"),
    h("ul", { id: "doc-list", "aria-labelledby": "docs-heading" }),
    app.role !== "viewer" ? h("button", { onclick: newDoc }, "New document") : null,
    app.role === "admin" ? h("a", { id: "quota-link", href: `#/w/${encodeURIComponent(app.ws)}/quota` }, "Quota and usage") : null,
    app.role === "admin" ? h("a", { id: "admin-link", href: `#/w/${encodeURIComponent(app.ws)}/admin` }, "Tokens, secrets and workspaces") : null,
    h("p", { class: "muted who" }, `Signed in as ${app.role}${app.me.server_admin ? " (server admin)" : ""}`),
    h("button", { class: "link", onclick: signOut }, "Sign out"));
  const menu = h("button", { class: "menu-button", "aria-expanded": "false", "aria-controls": "sidebar-body", onclick: () => setMenu(menu.getAttribute("aria-expanded") !== "true") }, "Menu");
  const nav = h("nav", { class: "sidebar", "aria-label": "Workspace and documents" },
    h("div", { class: "sidebar-top" }, h("div", { class: "brand" }, "quire"), menu), body);
  function setMenu(open) {
    menu.setAttribute("aria-expanded", String(open));
    nav.classList.toggle("open", open);
  }
  body.addEventListener("click", (e) => { if (e.target.closest("a")) setMenu(false); });
  const main = h("main", { id: "main", tabindex: "-1" });
  clear(root).append(
    h("a", { class: "skip", href: "#main" }, "Skip to the document"),
    h("div", { class: "layout" }, nav, h("div", { class: "content" },
      h("div", { id: "banner", class: "banner", role: "alert", hidden: true }),
      h("div", { id: "conn", class: "conn", role: "status" }), main)));
  return workspaces;
}

async function loadDocList() {
  const { docs } = await app.api.get(paths.docs(app.ws));
  const list = clear(document.getElementById("doc-list"));
  for (const d of docs) {
    const current = app.doc?.id === d.id;
    list.append(h("li", {}, h("a", { href: `#/w/${encodeURIComponent(app.ws)}/d/${encodeURIComponent(d.id)}`, "aria-current": current ? "page" : undefined }, d.title || d.id)));
  }
  return docs;
}

async function newDoc() {
  const title = prompt("Title of the new document");
  if (!title) return;
  const d = await app.api.post(paths.docs(app.ws), { title, blocks: [{ type: "text", text: "New document." }] });
  location.hash = `#/w/${encodeURIComponent(app.ws)}/d/${encodeURIComponent(d.id)}`;
}

// Save the document's body (and title), refusing to overwrite a newer
// version.
async function saveDoc(blocks, title = app.doc.title) {
  try {
    const d = await app.api.put(paths.doc(app.ws, app.doc.id), {
      title, properties: app.doc.properties, blocks, base_updated_ms: app.doc.updated_ms,
    });
    app.doc = d;
    return true;
  } catch (e) {
    if (e.status === 409) {
      banner("This document was changed in another tab or by someone else, so your change was not saved. ",
        [h("button", { onclick: () => openDoc(app.doc.id) }, "Reload the document")]);
    } else {
      banner(`Could not save the document: ${e.message}`);
    }
    return false;
  }
}

app.saveInline = async (index, source) => {
  const blocks = structuredClone(app.doc.blocks);
  blocks[index].source = source;
  if (!(await saveDoc(blocks))) throw new Error("document not saved");
};

// Opening a document twice at once (a click and a hash change) must not
// render it twice: only the latest call renders, and everything it adds
// lives in the elements it made.
let opening = 0;

async function openDoc(id) {
  const mine = ++opening;
  banner("");
  const main = clear(document.getElementById("main"));
  main.append(h("p", { class: "muted" }, "Loading…"));
  const doc = await app.api.get(paths.doc(app.ws, id));
  if (mine !== opening) return;
  app.doc = doc;
  await loadDocList();
  if (mine !== opening) return;
  const d = app.doc;
  document.title = `${d.title} · quire`;
  const body = h("div", { class: "cells", "data-doc": d.id });
  const add = app.role !== "viewer" ? h("div", { class: "add" },
    h("button", { onclick: () => addBlock("text") }, "+ Text"),
    h("button", { onclick: () => addBlock("code", "js") }, "+ JavaScript block"),
    h("button", { onclick: () => addBlock("code", "ts") }, "+ TypeScript block")) : "";
  const runAllStatus = h("span", { class: "run-all-status", role: "status" });
  const runAll = app.role !== "viewer"
    ? h("div", { class: "run-all" }, h("button", { onclick: () => runAllBlocks(runAllStatus) }, "Run all"), " ", runAllStatus)
    : "";
  const title = h("h1", {}, d.title);
  const rerun = app.role !== "viewer" ? rerunToggle(d) : "";
  const docActions = app.role !== "viewer" ? h("div", { class: "doc-actions" },
    h("button", { onclick: () => renameDoc(title) }, "Rename"),
    h("button", { class: "danger", onclick: deleteDoc }, "Delete document")) : "";
  clear(main).append(
    h("header", { class: "doc-head" }, title, docActions, runAll, rerun,
      h("dl", { class: "props" }, Object.entries(d.properties || {}).flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, String(v))]))),
    body, add);
  app.cells = [];
  app.live?.unsubscribeAll();
  for (const [i, b] of d.blocks.entries()) {
    const el = await cellFor(b, i);
    if (mine !== opening) return;
    if (app.role !== "viewer") dragToMove(el, i);
    body.append(el);
  }
  main.focus({ preventScroll: true });
  window.scrollTo(0, 0);
  await loadGraph(app);
}

// The document's opt-in to re-running, on the server, the blocks that
// read a block's result whenever that block finishes (whatever started
// it: a person, a schedule, a webhook).
function rerunToggle(d) {
  const box = h("input", { type: "checkbox", id: "rerun-dependents" });
  box.checked = d.properties?.rerun_dependents === true;
  const note = h("span", { class: "muted", role: "status" });
  box.addEventListener("change", async () => {
    try {
      const doc = await app.api.patch(paths.doc(app.ws, d.id), { properties: { rerun_dependents: box.checked } });
      app.doc.properties = doc.properties;
      note.textContent = box.checked ? "Dependents re-run after each block." : "";
    } catch (e) {
      box.checked = !box.checked;
      note.textContent = `Not changed: ${e.message}`;
    }
  });
  return h("div", { class: "rerun" }, box, " ", h("label", { for: "rerun-dependents" }, "Re-run the blocks that read a block's result when it changes"), " ", note);
}

// "Run all": the document's code blocks in order, each after the one
// before it ends; the first that fails (or is cancelled) stops the rest,
// and the status says which and why.
async function runAllBlocks(status) {
  const { order, cycle } = runOrder(app.cells, await loadGraph(app));
  if (!order) {
    status.textContent = `Cannot run all: the blocks ${cycle.join(" → ")} read each other's results in a cycle, so no order runs them.`;
    return;
  }
  const cells = order;
  let ran = 0;
  for (const cell of cells) {
    status.textContent = `Running ${ran + 1} of ${cells.length}: ${cell.block.name || cell.block.id}…`;
    const r = await cell.runToEnd();
    if (r.status !== "ok") {
      const why = r.kind === "cancelled" ? "it was cancelled" : r.kind === "not_started" ? `it did not start (${r.message})` : `it failed (${r.kind})`;
      const left = cells.length - ran - 1;
      status.textContent = `Stopped at “${cell.block.name || cell.block.id}”: ${why}; ${left} later block${left === 1 ? "" : "s"} did not run.`;
      cell.el.scrollIntoView({ block: "nearest" });
      return;
    }
    ran++;
  }
  status.textContent = `Ran all ${ran} block${ran === 1 ? "" : "s"}.`;
}

async function cellFor(b, i) {
  const move = (dir) => moveBlock(i, dir);
  const del = () => deleteBlock(i);
  if (b.type === "code") {
    const cell = new CodeCell(app, { index: i, blockId: b.block, inline: { source: b.source, lang: b.lang }, onMove: move, onDelete: del });
    try {
      await cell.load();
    } catch (e) {
      return h("section", { class: "cell error" }, `Block ${b.block}: ${e.message}`);
    }
    app.cells.push(cell);
    return cell.el;
  }
  return textCell(b, i, move, del);
}

function textCell(b, i, move, del) {
  const el = h("section", { class: "cell text", "aria-label": "Text" });
  const show = () => {
    const actions = app.role !== "viewer" ? h("div", { class: "actions" },
      h("button", { onclick: edit, "aria-label": "Edit this text" }, "Edit"),
      h("button", { onclick: () => move(-1), "aria-label": "Move this text up" }, "↑"),
      h("button", { onclick: () => move(1), "aria-label": "Move this text down" }, "↓"),
      h("button", { class: "danger", onclick: del, "aria-label": "Delete this text" }, "Delete")) : null;
    clear(el).append(renderText(b.text), actions || "");
  };
  const edit = () => {
    const id = `text-${i}`;
    const area = h("textarea", { id, rows: Math.max(3, b.text.split("\n").length + 1) });
    area.value = b.text;
    clear(el).append(h("label", { for: id, class: "sr-only" }, "Text (Markdown)"), area,
      h("div", { class: "actions" },
        h("button", { class: "primary", onclick: async () => {
          const blocks = structuredClone(app.doc.blocks);
          blocks[i].text = area.value;
          if (await saveDoc(blocks)) { b.text = area.value; show(); }
        } }, "Save"),
        h("button", { onclick: show }, "Cancel")));
    area.focus();
  };
  show();
  return el;
}

async function moveBlock(i, dir) {
  const j = i + dir;
  const blocks = structuredClone(app.doc.blocks);
  if (j < 0 || j >= blocks.length) return;
  [blocks[i], blocks[j]] = [blocks[j], blocks[i]];
  if (!(await saveDoc(blocks))) return;
  await openDoc(app.doc.id);
  // Focus stays on the block that moved: its same move button.
  const moved = document.querySelectorAll(".cells > .cell")[j];
  const again = moved?.querySelector(`button[aria-label^="Move"][aria-label$="${dir < 0 ? "up" : "down"}"]`);
  (again || moved?.querySelector("button"))?.focus();
}

// Drag a block by its handle (⠿) onto another to move it there; ↑ and ↓
// do the same from the keyboard. Only a drag that started on the handle
// moves a block, so selecting text in it still works.
function dragToMove(el, i) {
  const handle = h("span", { class: "drag-handle", title: "Drag to move this block", "aria-hidden": "true" }, "⠿");
  el.prepend(handle);
  handle.addEventListener("mousedown", () => { el.draggable = true; });
  el.addEventListener("dragstart", (e) => {
    if (!el.draggable) return;
    e.dataTransfer.setData("application/x-quire-block", String(i));
    e.dataTransfer.effectAllowed = "move";
    el.classList.add("dragging");
  });
  el.addEventListener("dragend", () => {
    el.draggable = false;
    el.classList.remove("dragging");
  });
  el.addEventListener("dragover", (e) => {
    if (!e.dataTransfer.types.includes("application/x-quire-block")) return;
    e.preventDefault();
    el.classList.add("drop-target");
  });
  el.addEventListener("dragleave", () => el.classList.remove("drop-target"));
  el.addEventListener("drop", async (e) => {
    e.preventDefault();
    el.classList.remove("drop-target");
    const from = Number(e.dataTransfer.getData("application/x-quire-block"));
    if (!Number.isInteger(from) || from === i) return;
    const blocks = structuredClone(app.doc.blocks);
    const [moved] = blocks.splice(from, 1);
    blocks.splice(i, 0, moved);
    if (!(await saveDoc(blocks))) return;
    await openDoc(app.doc.id);
    document.querySelectorAll(".cells > .cell")[i]?.querySelector("button")?.focus();
  });
}

// Delete a block from the document, with an Undo that puts it back
// where it was (the stored block and its history are never deleted).
async function deleteBlock(i) {
  const before = structuredClone(app.doc.blocks);
  const blocks = structuredClone(before);
  const [gone] = blocks.splice(i, 1);
  if (!(await saveDoc(blocks))) return;
  await openDoc(app.doc.id);
  const what = gone.type === "code" ? "a code block" : "a text block";
  const undo = h("button", { onclick: async () => {
    const now = structuredClone(app.doc.blocks);
    now.splice(Math.min(i, now.length), 0, gone);
    if (await saveDoc(now)) {
      await openDoc(app.doc.id);
      document.querySelectorAll(".cells > .cell")[i]?.querySelector("button")?.focus();
    }
  } }, "Undo");
  banner(`Deleted ${what} from this document. `, [undo]);
}

function renameDoc(titleEl) {
  const input = h("input", { id: "doc-title", type: "text", value: app.doc.title });
  const save = async () => {
    const t = input.value.trim();
    if (!t) return banner("A document needs a title.");
    if (await saveDoc(app.doc.blocks, t)) openDoc(app.doc.id);
  };
  const form = h("form", { class: "rename", onsubmit: (e) => { e.preventDefault(); save(); } },
    h("label", { for: "doc-title", class: "sr-only" }, "Title of the document"), input,
    h("button", { type: "submit", class: "primary" }, "Save title"),
    h("button", { type: "button", onclick: () => form.replaceWith(titleEl) }, "Cancel"));
  titleEl.replaceWith(form);
  input.focus();
  input.select();
}

async function deleteDoc() {
  if (!confirm(`Delete the document “${app.doc.title}”? Its blocks and their run history are kept.`)) return;
  try {
    await app.api.del(paths.doc(app.ws, app.doc.id));
  } catch (e) {
    banner(`Could not delete the document: ${e.message}`);
    return;
  }
  app.doc = null;
  location.hash = `#/w/${encodeURIComponent(app.ws)}`;
}

async function addBlock(type, lang) {
  const blocks = structuredClone(app.doc.blocks);
  if (type === "text") {
    blocks.push({ type: "text", text: "New text." });
  } else {
    const source = lang === "ts"
      ? "export default function (ctx: { input: unknown }) {\n  console.log(\"hello\");\n  return 42;\n}\n"
      : "console.log(\"hello\");\nexport default 42;\n";
    const b = await app.api.post(paths.blocks(app.ws), { source, lang, name: `Block ${blocks.length + 1}` });
    blocks.push({ type: "code", lang, block: b.id, source: "" });
  }
  if (await saveDoc(blocks)) await openDoc(app.doc.id);
}

// A route that a later hash change overtook stops at its next step, so a
// slow first route (sign-in opening the first document) never replaces
// the document a later link opened.
let routing = 0;

async function route() {
  const mine = ++routing;
  const stale = () => mine !== routing;
  const m = /^#\/w\/([^/]+)(?:\/d\/(.+)|\/(quota|admin))?$/.exec(location.hash);
  let wsName = m ? decodeURIComponent(m[1]) : null;
  if (!wsName) {
    const { workspaces: list } = await app.api.get("/workspaces");
    if (stale()) return;
    if (!list.length) {
      clear(root).append(h("main", { id: "main" }, h("p", {}, "No workspaces yet.")));
      return;
    }
    const last = localStorage.getItem(LAST_WS_KEY);
    const land = list.find((w) => w.name === last) || list[0];
    location.hash = `#/w/${encodeURIComponent(land.name)}`;
    return;
  }
  if (wsName !== app.ws || !app.live) {
    app.live?.close();
    app.ws = wsName;
    const w = await app.api.get(paths.ws(wsName));
    if (stale()) return;
    app.role = w.role;
    localStorage.setItem(LAST_WS_KEY, wsName);
    await shell();
    if (stale()) return;
    app.live = new Live(app.token, wsName, (s) => {
      const el = document.getElementById("conn");
      if (el) el.textContent = s === "connected" ? "" : "Live connection lost; reconnecting…";
    });
  }
  const docs = await loadDocList();
  if (stale()) return;
  if (m[3]) {
    app.doc = null;
    app.cells = [];
    app.live?.unsubscribeAll();
    if (m[3] === "admin") await showAdmin(app, document.getElementById("main"));
    else await showQuota(app, document.getElementById("main"));
    return;
  }
  const docId = m[2] ? decodeURIComponent(m[2]) : docs[0]?.id;
  if (docId) await openDoc(docId);
  else emptyWorkspace(document.getElementById("main"));
}

// What to do first in a workspace with no documents, by role.
function emptyWorkspace(main) {
  document.title = `${app.ws} · quire`;
  const steps = [];
  if (app.role !== "viewer") steps.push(h("li", {}, h("button", { class: "primary", onclick: newDoc }, "New document"), " — then add text and code blocks to it, and run them."));
  if (app.role === "admin") steps.push(h("li", {}, h("a", { href: `#/w/${encodeURIComponent(app.ws)}/admin` }, "Make tokens"), " for the people who will work here, and keep the secrets blocks may use."));
  if (app.role === "admin") steps.push(h("li", {}, h("a", { href: `#/w/${encodeURIComponent(app.ws)}/quota` }, "Set the quota"), " this workspace's runs get."));
  clear(main).append(h("h1", {}, `${app.ws} is empty`),
    steps.length ? h("ol", { class: "first-steps" }, steps) : h("p", {}, "No documents yet; an editor of this workspace can add one."));
}

window.addEventListener("hashchange", () => app.api && route().catch(fail));
// Unsaved edits are saved within a second; warn before leaving earlier.
window.addEventListener("beforeunload", (e) => {
  if (app.cells.some((c) => c.dirty || c.saving)) e.preventDefault();
});

function fail(e) {
  if (e.status === 401) signInView("Your token is no longer valid.");
  else banner(`Something went wrong: ${e.message}`);
}

const kept = localStorage.getItem(TOKEN_KEY);
const saved = sessionStorage.getItem(TOKEN_KEY) || kept;
if (saved) signIn(saved, Boolean(kept) && saved === kept).catch(fail);
else signInView();
