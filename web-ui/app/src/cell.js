// One code block of a document: its editor, grants, run controls, live
// output and run history. Source edits save to the stored block on their
// own (debounced); a save based on an old version is refused by the server
// (409) and shown as a conflict, with the user's text kept in the editor.
import { h, clear } from "./dom.js";
import { paths } from "./api.js";
import { createEditor } from "./editor.js";
import { Output } from "./output.js";
import { Triggers } from "./triggers.js";
import { InputPanel, effects } from "./input.js";
import { describeGrant, grantChoices, grantPicker } from "./grants.js";
import { loadGraph, provenanceText } from "./dataflow.js";
import { diffView, previewMark } from "./preview.js";

export { describeGrant };

const fmtTime = (ms) => new Date(ms).toLocaleString();

// "just now", "5 min ago", "3 h ago", else the date.
export function ago(ms, now = Date.now()) {
  const s = Math.max(0, (now - ms) / 1000);
  if (s < 45) return "just now";
  if (s < 3600) return `${Math.max(1, Math.round(s / 60))} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `on ${fmtTime(ms)}`;
}

// Who started a run, in words.
export function startedBy(trigger) {
  const kind = trigger?.kind;
  if (kind === "schedule") return "by schedule";
  if (kind === "webhook") return "by webhook";
  if (kind === "manual") return trigger.via === "http" ? "by API" : "manually";
  if (kind === "dataflow") return "after a block it reads";
  return kind ? `by ${kind}` : "manually";
}

export class CodeCell {
  constructor(app, { index, blockId, inline, onMove, onDelete }) {
    this.app = app;
    this.index = index;
    this.blockId = blockId;
    this.inline = inline; // {source, lang} for a cell not backed by a block
    this.onMove = onMove;
    this.onDelete = onDelete;
    this.runId = null;
    // The run whose output is shown, and its preview's status when it is a
    // dry-run: {run, status}. Apply and Discard act on it.
    this.shown = null;
    this.epoch = 0; // bumped whenever something new takes the output
    this.saving = null;
    this.dirty = false;
    this.el = h("section", { class: "cell code", "data-block": blockId || "", "aria-label": "Code block" });
  }

  get canEdit() { return this.app.role !== "viewer"; }
  get isAdmin() { return this.app.role === "admin"; }

  async load() {
    if (this.blockId) {
      this.block = await this.app.api.get(paths.block(this.app.ws, this.blockId));
      this.app.live?.subscribe(this.blockId, (m) => this.startedElsewhere(m));
    } else {
      this.block = { id: "", name: "Inline code", source: this.inline.source, lang: this.inline.lang, grants: [], updated_ms: 0 };
    }
    this.base = this.block.updated_ms;
    this.render();
    if (this.blockId) this.showLast().catch(() => {});
    return this;
  }

  // Reopening a document shows each block's latest run from history,
  // headed "ran 5 min ago · by schedule · 3.2 ms", unless a run started
  // here first.
  async showLast() {
    const epoch = this.epoch;
    const { runs } = await this.app.api.get(paths.lastRun(this.app.ws, this.blockId));
    const r = runs[0];
    if (!r || r.status === "queued" || epoch !== this.epoch) return;
    const view = h("button", { class: "link", onclick: () => this.openRun(r.run), "aria-label": "Show this run in the history" }, "View run");
    const parts = [`ran ${ago(r.started_ms)}`, startedBy(r.trigger)];
    if (r.status !== "running") parts.push(`${r.wall_ms.toFixed(1)} ms`);
    else parts.push("still running");
    if (previewMark(r)) parts.push(previewMark(r));
    const head = h("p", { class: "last-run muted", title: fmtTime(r.started_ms) }, `Last run: ${parts.join(" · ")} · `, view);
    await this.replay(r.run, head, epoch);
  }

  // Show run `run`'s stored events, page by page, under `head`; stops if
  // another run takes the output meanwhile.
  async replay(run, head, epoch = this.epoch) {
    let from = 0;
    let first = true;
    for (;;) {
      const r = await this.app.api.get(paths.run(this.app.ws, run, from));
      if (epoch !== this.epoch) return;
      if (first) {
        this.shown = { run, status: r.preview?.status || "pending" };
        this.output.reset(typeof head === "function" ? head(r) : head);
        this.output.el.title = provenanceText(r.provenance, this.app.graph);
      }
      first = false;
      for (const ev of r.events) this.output.event(ev);
      if (r.next_seq == null) return;
      from = r.next_seq;
    }
  }

  openRun(run) {
    if (this.historyEl.hidden) this.toggleHistory();
    this.show(run);
  }

  render() {
    const b = this.block;
    const name = b.name || b.id;
    this.el.setAttribute("aria-label", `Code block: ${name}`);
    this.status = h("span", { class: "save-status", role: "status" }, "");
    this.runBtn = h("button", { class: "primary", onclick: () => this.run(), title: "Run (Ctrl+Enter)", disabled: !this.canEdit }, "Run");
    this.previewBtn = h("button", { onclick: () => this.run("dry_run"), title: "Run without writing anything: see what it would change, then apply or discard it", disabled: !this.canEdit }, "Preview changes");
    this.cancelBtn = h("button", { onclick: () => this.cancel(), disabled: true, "aria-label": "Cancel the run" }, "Cancel");
    this.histBtn = h("button", { onclick: () => this.toggleHistory(), "aria-expanded": "false", disabled: !this.blockId }, "History");
    this.clearBtn = h("button", { onclick: () => this.clearOutput(), "aria-label": `Clear the output of ${name}` }, "Clear");
    const moves = this.canEdit ? [
      h("button", { onclick: () => this.onMove(-1), "aria-label": `Move ${name} up` }, "↑"),
      h("button", { onclick: () => this.onMove(1), "aria-label": `Move ${name} down` }, "↓"),
      h("button", { class: "danger", onclick: () => this.onDelete(), "aria-label": `Delete ${name} from the document` }, "Delete"),
    ] : [];
    this.writesEl = h("span", { class: "writes" });
    this.grantsEl = h("div", { class: "grants" });
    this.renderGrants();
    this.inputPanel = new InputPanel(name);
    this.inputPanel.render(b.input_schema || null);
    const editorEl = h("div", { class: "editor" });
    this.runStatus = h("div", { class: "run-status", role: "status", "aria-live": "polite" });
    this.dataflowEl = h("div", { class: "dataflow" });
    const outEl = h("div", { class: "output", "aria-label": `Output of ${name}`, tabindex: "0" });
    this.historyEl = h("div", { class: "history", hidden: true });
    this.triggers = this.blockId ? new Triggers(this.app, this.blockId) : null;
    const triggers = this.triggers ? this.triggers.el : "";
    const title = h("h3", {}, name);
    const rename = this.canEdit && this.blockId
      ? h("button", { class: "link", "aria-label": `Rename ${name}`, onclick: () => this.rename(title) }, "Rename")
      : null;
    clear(this.el).append(
      h("header", { class: "cell-head" },
        title, rename,
        h("span", { class: "lang", title: "Language" }, b.lang === "ts" ? "TypeScript" : "JavaScript"),
        this.engineControl(b),
        this.status,
        h("div", { class: "actions" }, this.writesEl, this.runBtn, this.previewBtn, this.cancelBtn, this.clearBtn, this.histBtn, ...moves)),
      this.grantsEl, editorEl, this.inputPanel.el, this.dataflowEl, this.runStatus, outEl, this.historyEl, triggers);
    this.output = new Output(outEl, {
      onFrame: (line, column) => this.editor.reveal(line, column),
      grantOffer: (grant) => this.grantOffer(grant),
      diff: (ev) => diffView(ev, {
        api: this.app.api, ws: this.app.ws, run: this.shown?.run || ev.run, status: this.shown?.status, canEdit: this.canEdit,
        onSettled: () => { if (!this.historyEl.hidden) this.loadHistory(); },
      }),
    });
    this.editor = createEditor(editorEl, {
      doc: b.source,
      lang: b.lang,
      readOnly: !this.canEdit,
      label: `Source of ${name} (${b.lang === "ts" ? "TypeScript" : "JavaScript"}); Ctrl+Enter runs it, Shift+Enter runs it and moves to the next block`,
      onRun: () => this.run(),
      onRunNext: () => this.runAndNext(),
      onChange: () => this.changed(),
    });
  }

  // Rename the stored block (every document showing it shows the name).
  rename(title) {
    const id = `name-${this.blockId}`;
    const input = h("input", { id, type: "text", value: this.block.name || "" });
    const err = h("span", { class: "error", role: "alert" });
    const form = h("form", { class: "rename", onsubmit: async (e) => {
      e.preventDefault();
      const name = input.value.trim();
      if (!name) {
        err.textContent = "A block needs a name.";
        return;
      }
      try {
        await this.save();
        const r = await this.app.api.put(paths.block(this.app.ws, this.blockId), { name, base_updated_ms: this.base });
        this.base = r.updated_ms;
        const old = this.block.name || this.block.id;
        this.block.name = name;
        title.textContent = name;
        // Every control named after the block says its new name.
        for (const el of [this.el, ...this.el.querySelectorAll("[aria-label]")]) {
          el.setAttribute("aria-label", el.getAttribute("aria-label").split(old).join(name));
        }
        form.replaceWith(title);
        title.nextElementSibling?.focus();
      } catch (ex) {
        err.textContent = `Not renamed: ${ex.message}`;
      }
    } },
      h("label", { for: id, class: "sr-only" }, "Name of the block"), input,
      h("button", { type: "submit", class: "primary" }, "Save name"),
      h("button", { type: "button", onclick: () => form.replaceWith(title) }, "Cancel"), err);
    title.replaceWith(form);
    input.focus();
    input.select();
  }

  // The block's engine: QuickJS (fast to start) or V8 (fast on heavy
  // computation). Editors change it; the block's runs use it. A block that
  // never chose follows the workspace's default.
  engineControl(b) {
    const label = (e) => (e === "v8" ? "V8" : e === "quickjs" ? "QuickJS" : "Default engine");
    if (!this.canEdit || !this.blockId) {
      return h("span", { class: "lang engine", title: "Engine" }, label(b.engine || ""));
    }
    const select = h("select", { class: "engine", "aria-label": `Engine of ${b.name || "this block"}`, title: "Engine: QuickJS starts fastest; V8 runs heavy computation fastest" },
      ...["", "quickjs", "v8"].map((e) => {
        const o = h("option", { value: e }, e === "" ? "Default engine" : label(e));
        if ((b.engine || "") === e) o.selected = true;
        return o;
      }));
    select.addEventListener("change", async () => {
      const engine = select.value;
      try {
        const r = await this.app.api.put(paths.block(this.app.ws, this.blockId), { engine, base_updated_ms: this.base });
        this.base = r.updated_ms;
        this.block.engine = engine;
        this.status.textContent = `Engine: ${label(engine)}`;
      } catch (e) {
        select.value = this.block.engine || "";
        this.status.textContent = `Engine not changed: ${e.message}`;
      }
    });
    return select;
  }

  renderGrants() {
    const grants = this.block.grants || [];
    const does = this.block.grants_pending ? [] : effects(grants);
    this.writesEl.textContent = does.length ? `This block ${does.join(", ")}` : "";
    this.writesEl.hidden = does.length === 0;
    const list = grants.length
      ? h("ul", { class: "chips", "aria-label": "Grants" }, grants.map((g) => h("li", { class: "chip", title: describeGrant(g) }, h("code", {}, g), h("span", { class: "sr-only" }, `: ${describeGrant(g)}`))))
      : h("span", { class: "muted" }, "No grants: pure computation only.");
    const details = h("details", { class: "grant-help" }, h("summary", {}, "What can this block do?"),
      grants.length ? h("ul", {}, grants.map((g) => h("li", {}, h("code", {}, g), " — ", describeGrant(g)))) : h("p", {}, "It can compute and print, but cannot read or change documents, data, secrets or the network."));
    const edit = this.isAdmin && this.blockId ? h("button", { class: "link", onclick: () => this.editGrants() }, "Edit grants") : null;
    clear(this.grantsEl).append(h("span", { class: "label" }, "Grants: "), list, edit || "", details);
    if (this.block.grants_pending && grants.length) {
      const approve = this.isAdmin
        ? h("button", { class: "primary", onclick: () => this.approveGrants() }, "Approve for this source")
        : null;
      this.grantsEl.append(h("p", { class: "grants-pending", role: "status" },
        "Suspended: the code changed after an admin approved these grants, so runs get none until an admin approves them again. ",
        approve || ""));
    }
  }

  async approveGrants() {
    try {
      await this.storeGrants(this.block.grants || []);
    } catch (ex) {
      this.setStatus(`Not approved: ${ex.message}`, "failed");
    }
  }

  async editGrants() {
    const choices = await grantChoices(this.app.api, this.app.ws);
    const { form, first } = grantPicker({
      id: `grants-${this.blockId}`,
      current: this.block.grants || [],
      choices,
      onSave: (grants) => this.storeGrants(grants),
      onCancel: () => this.renderGrants(),
    });
    clear(this.grantsEl).append(form);
    first.focus();
  }

  // Store `grants` as the block's (approved for its source as it is).
  async storeGrants(grants) {
    await this.save();
    const r = await this.app.api.put(paths.grants(this.app.ws, this.blockId), { grants, base_updated_ms: this.base });
    this.block.grants = r.grants;
    this.base = r.updated_ms;
    this.block.updated_ms = r.updated_ms;
    this.block.grants_pending = r.grants_pending;
    this.renderGrants();
  }

  // What a capability_denied error offers for `grant`: to an admin, the
  // grant in one click; to others, whom to ask.
  grantOffer(grant) {
    const words = describeGrant(grant);
    if (!this.isAdmin || !this.blockId) {
      return h("p", { class: "grant-offer" }, `It needs ${grant} (${words}) Ask an admin of this workspace to grant it.`);
    }
    const note = h("span", { role: "status" });
    const btn = h("button", { class: "primary", onclick: async () => {
      btn.disabled = true;
      try {
        await this.storeGrants([...new Set([...(this.block.grants || []), grant])]);
        btn.remove();
        note.textContent = `Granted ${grant}. Run the block again.`;
      } catch (ex) {
        btn.disabled = false;
        note.textContent = `Not granted: ${ex.message}`;
      }
    } }, `Grant ${grant}`);
    return h("p", { class: "grant-offer" }, `It needs ${grant}: ${words} `, btn, note);
  }


  changed() {
    this.editor.markError(null);
    this.dirty = true;
    this.setStatus("Unsaved changes", "unsaved");
    clearTimeout(this.saveTimer);
    this.saveTimer = setTimeout(() => this.save(), 700);
  }

  setStatus(text, cls) {
    this.status.textContent = text;
    this.status.className = `save-status ${cls || ""}`;
  }

  async save(force) {
    if (!this.canEdit || (!this.dirty && !force)) return;
    if (this.saving) {
      this.saveAgain = true;
      return;
    }
    const source = this.editor.text();
    this.dirty = false;
    this.setStatus("Saving…", "saving");
    this.saving = (async () => {
      try {
        if (this.blockId) {
          const r = await this.app.api.put(paths.block(this.app.ws, this.blockId), { source, base_updated_ms: this.base });
          this.base = r.updated_ms;
          if (JSON.stringify(r.input_schema ?? null) !== JSON.stringify(this.block.input_schema ?? null)) {
            this.block.input_schema = r.input_schema ?? null;
            this.inputPanel.render(this.block.input_schema);
          }
          if (Boolean(r.grants_pending) !== Boolean(this.block.grants_pending)) {
            this.block.grants_pending = r.grants_pending;
            this.renderGrants();
          }
        } else {
          await this.app.saveInline(this.index, source);
        }
        this.block.source = source;
        this.setStatus(this.dirty ? "Unsaved changes" : "Saved", this.dirty ? "unsaved" : "saved");
        // What it reads, and whether outputs are stale, may have changed.
        if (this.blockId) loadGraph(this.app);
      } catch (e) {
        this.dirty = true;
        if (e.status === 409) this.conflict();
        else this.setStatus(`Not saved: ${e.message}`, "failed");
      }
    })();
    await this.saving;
    this.saving = null;
    if (this.saveAgain) {
      this.saveAgain = false;
      this.save();
    }
  }

  conflict() {
    clear(this.status).append(
      "Conflict: this block was changed in another tab or by someone else. Your text is kept here. ",
      h("button", { class: "link", onclick: () => this.takeTheirs() }, "Load theirs"), " ",
      h("button", { class: "link", onclick: () => this.keepMine() }, "Keep mine"));
    this.status.className = "save-status conflict";
  }

  async takeTheirs() {
    const b = await this.app.api.get(paths.block(this.app.ws, this.blockId));
    this.block = b;
    this.base = b.updated_ms;
    this.editor.setText(b.source);
    this.dirty = false;
    this.setStatus("Loaded the other version", "saved");
  }

  async keepMine() {
    const b = await this.app.api.get(paths.block(this.app.ws, this.blockId));
    this.base = b.updated_ms;
    this.save(true);
  }

  // Empty the output (what is on screen only: history keeps the run).
  clearOutput() {
    this.epoch++;
    this.output.reset();
  }

  setRunning(on) {
    this.runBtn.disabled = on || !this.canEdit;
    this.previewBtn.disabled = on || !this.canEdit;
    this.output.follow = on;
    this.cancelBtn.disabled = !on;
    this.el.classList.toggle("running", on);
  }

  // Run the block; `mode` "dry_run" previews it: its writes are staged,
  // shown as a diff to apply or discard (preview.js).
  async run(mode = "run") {
    if (!this.canEdit || this.runId) return;
    const source = this.editor.text();
    const input = this.inputPanel.value();
    if (!input.ok) {
      this.runStatus.textContent = `Not started: ${input.message}`;
      return;
    }
    this.editor.markError(null);
    this.epoch++;
    this.shown = null;
    this.output.reset();
    // While the live connection is down the run waits in the queue and
    // goes out when it is back (Live reconnects on its own).
    this.runStatus.textContent = this.app.live.connected ? "Starting…" : "Waiting for the server: the live connection is down; the run starts when it is back…";
    this.setRunning(true);
    const msg = { op: "run_source", source, lang: this.block.lang, input: input.value };
    if (this.app.doc) msg.doc = this.app.doc.id;
    if (this.blockId) msg.block = this.blockId;
    if (mode === "dry_run") msg.mode = "dry_run";
    this.dryRun = mode === "dry_run";
    try {
      this.runId = await this.app.live.run(msg, (ev) => this.onEvent(ev));
      this.shown = { run: this.runId, status: "pending" };
      this.runStatus.textContent = this.dryRun ? "Previewing: nothing is written…" : "Running…";
    } catch (e) {
      this.runStatus.textContent = `Not started: ${e.message}`;
      this.setRunning(false);
    }
  }

  // A run of this block started by a schedule, a webhook or another tab:
  // show it live, unless this cell is busy with its own run.
  startedElsewhere(m) {
    // A scheduled run moved the schedule's next run on.
    if (m.trigger?.kind === "schedule") this.triggers?.refresh();
    if (this.runId) return null;
    const by = m.trigger?.kind || "another client";
    this.epoch++;
    this.shown = { run: m.run, status: "pending" };
    const who = by === "manual" ? "another client" : by === "dataflow" ? "a block it reads finishing" : `a ${by}`;
    this.output.reset(`Run started by ${who} at ${new Date().toLocaleTimeString()}`);
    this.runStatus.textContent = `Running (started by ${by})…`;
    this.el.classList.add("running");
    this.output.follow = true;
    return (ev) => {
      this.output.event(ev);
      if (ev.type === "error") this.runStatus.textContent = ev.kind === "cancelled" ? "Cancelled" : `Failed: ${ev.kind}`;
      if (ev.type === "finished") {
        if (ev.status === "ok") this.runStatus.textContent = `Finished (started by ${by})`;
        this.el.classList.remove("running");
        this.output.follow = false;
        if (!this.historyEl.hidden) this.loadHistory();
        this.showProvenance(m.run);
        loadGraph(this.app);
      }
    };
  }

  onEvent(ev) {
    this.output.event(ev);
    if (ev.type === "error" && ev.kind === "cancelled") {
      this.runStatus.textContent = "Cancelled";
    } else if (ev.type === "error") {
      this.editor.markError(ev.line, ev.column, `${ev.kind}: ${ev.message}`);
      this.runStatus.textContent = `Failed: ${ev.kind}`;
    }
    if (ev.type === "error" && !this.lastKind) this.lastKind = ev.kind;
    if (ev.type === "finished") {
      if (ev.status === "ok") this.runStatus.textContent = this.dryRun ? "Preview finished: nothing was written" : "Finished";
      const done = this.onDone;
      this.onDone = null;
      done?.({ status: ev.status, kind: this.lastKind });
      const run = this.runId;
      this.runId = null;
      this.setRunning(false);
      if (!this.historyEl.hidden) this.loadHistory();
      if (run) this.showProvenance(run);
      loadGraph(this.app);
    }
  }

  // Where the output came from, on hover.
  async showProvenance(run) {
    try {
      const r = await this.app.api.get(paths.run(this.app.ws, run, 1e9));
      this.output.el.title = provenanceText(r.provenance, this.app.graph);
    } catch {
      // history not written yet, or gone: no hover text
    }
  }

  // Run and wait for the end: resolves with {status, kind} (kind of the
  // first error, if any); a run that did not start resolves at once.
  runToEnd() {
    return new Promise((resolve) => {
      this.onDone = resolve;
      this.lastKind = null;
      this.run().then(() => {
        if (this.onDone === resolve && !this.runId) {
          this.onDone = null;
          resolve({ status: "error", kind: "not_started", message: this.runStatus.textContent });
        }
      });
    });
  }

  // Shift+Enter: run this block and move to the next code block (as in
  // Jupyter); the last block keeps the focus.
  runAndNext() {
    this.run();
    const cells = this.app.cells || [];
    const next = cells.find((c) => c.index > this.index && c.editor);
    if (next) {
      next.el.scrollIntoView({ block: "nearest" });
      next.editor.focus();
    }
  }

  async cancel() {
    if (!this.runId) return;
    this.runStatus.textContent = "Cancelling…";
    try {
      await this.app.live.cancel(this.runId);
    } catch (e) {
      this.runStatus.textContent = e.message;
    }
  }

  toggleHistory() {
    const open = this.historyEl.hidden;
    this.historyEl.hidden = !open;
    this.histBtn.setAttribute("aria-expanded", String(open));
    if (open) this.loadHistory();
  }

  async loadHistory() {
    const { runs } = await this.app.api.get(paths.runs(this.app.ws, this.blockId));
    const rows = runs.map((r) => h("tr", {},
      h("td", {}, fmtTime(r.started_ms)),
      r.error?.kind === "cancelled"
        ? h("td", { class: "status-cancelled" }, "cancelled")
        : h("td", { class: `status-${r.status}` }, r.status + (r.error ? ` (${r.error.kind})` : ""),
          previewMark(r) ? h("span", { class: `preview-mark preview-${r.preview?.status || "pending"}` }, ` · ${previewMark(r)}`) : null),
      h("td", {}, startedBy(r.trigger)),
      h("td", {}, `${r.wall_ms.toFixed(1)} ms`),
      h("td", {}, `${r.cpu_ms.toFixed(1)} ms`),
      h("td", {}, h("button", { class: "link", onclick: () => this.show(r.run), "aria-label": `Show the run of ${fmtTime(r.started_ms)}` }, "Show"))));
    clear(this.historyEl).append(
      h("h4", {}, "Run history"),
      runs.length ? h("div", { class: "table-wrap" }, h("table", {},
        h("thead", {}, h("tr", {}, ["Started", "Status", "Started by", "Duration", "CPU", ""].map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, rows))) : h("p", { class: "muted" }, "No runs yet."));
  }

  async show(run) {
    const epoch = ++this.epoch;
    await this.replay(run, (r) => `Run of ${fmtTime(r.started_ms)} (${r.status})`, epoch);
  }
}
