// "Preview changes": a dry-run stages every write of the block instead of
// making it, and its `diff` event lists them. Shown here record by record
// (documents, rows per collection, kv keys), field by field, with Apply
// (commits exactly these changes, if none of their records changed since)
// and Discard. Every value is text nodes (jsonTree), never HTML.
import { h, clear } from "./dom.js";
import { paths } from "./api.js";
import { jsonTree } from "./output.js";

const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);

// Equal as JSON, whatever the order of object keys.
export function sameValue(a, b) {
  if (a === b) return true;
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((x, i) => sameValue(x, b[i]));
  }
  if (!isObject(a) || !isObject(b)) return false;
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => Object.hasOwn(b, k) && sameValue(a[k], b[k]));
}

// The lines of a change's table: [{field, state, before, after}], state
// "added", "removed", "changed" or "same". Two objects compare field by
// field (before's fields first); anything else is one line, `value`.
export function fieldChanges(change) {
  const { op, before, after } = change;
  const b = op === "insert" ? undefined : before;
  const a = op === "delete" ? undefined : after;
  if ((b === undefined || isObject(b)) && (a === undefined || isObject(a)) && (b !== undefined || a !== undefined)) {
    const keys = [...new Set([...Object.keys(b || {}), ...Object.keys(a || {})])];
    return keys.map((field) => {
      const inB = b !== undefined && Object.hasOwn(b, field);
      const inA = a !== undefined && Object.hasOwn(a, field);
      const state = !inB ? "added" : !inA ? "removed" : sameValue(b[field], a[field]) ? "same" : "changed";
      return { field, state, before: inB ? b[field] : undefined, after: inA ? a[field] : undefined };
    });
  }
  const state = b === undefined ? "added" : a === undefined ? "removed" : sameValue(b, a) ? "same" : "changed";
  return [{ field: "value", state, before: b, after: a }];
}

// The record a change (or a conflict) names, in words.
export function recordWords(c) {
  if (c.kind === "doc") return `document ${c.id}`;
  if (c.kind === "row") return `row ${c.id} of ${c.collection}`;
  if (c.kind === "kv") return `kv key ${c.key}`;
  return String(c.kind);
}

const recordKey = (c) => JSON.stringify([c.kind, c.collection ?? "", c.id ?? c.key ?? ""]);
const OPS = { insert: "added", update: "changed", delete: "removed" };

// The changes in groups, in the order met: documents, then the rows of
// each collection, then kv keys.
export function groupChanges(changes) {
  const groups = new Map();
  const order = (c) => (c.kind === "doc" ? 0 : c.kind === "row" ? 1 : 2);
  for (const c of [...changes].sort((x, y) => order(x) - order(y))) {
    const title = c.kind === "doc" ? "Documents" : c.kind === "row" ? `Rows of ${c.collection}` : "Key-value store";
    if (!groups.has(title)) groups.set(title, []);
    groups.get(title).push(c);
  }
  return [...groups].map(([title, list]) => ({ title, changes: list }));
}

function valueCell(cls, present, value) {
  return present
    ? h("td", { class: cls }, jsonTree(value))
    : h("td", { class: `${cls} absent` }, h("span", { "aria-hidden": "true" }, "—"), h("span", { class: "sr-only" }, "not set"));
}

// One record's table: Field | Before | After (an insert has no Before,
// a delete no After). A `before` the block may not read (it has the write
// grant only) is not sent: the table says so instead of showing it.
function recordTable(c) {
  const hidden = c.before_hidden === true;
  const cols = c.op === "insert" || hidden ? (c.op === "delete" ? [] : ["after"]) : c.op === "delete" ? ["before"] : ["before", "after"];
  const lines = hidden ? (c.op === "delete" ? [] : fieldChanges({ ...c, op: "insert" })) : fieldChanges(c);
  const rows = lines.map((f) => h("tr", { class: `field-${f.state}`, "data-field": f.field },
    h("th", { scope: "row" }, f.field, f.state !== "same" ? h("span", { class: "sr-only" }, ` (${f.state})`) : null),
    cols.map((col) => valueCell(col, f[col] !== undefined, f[col]))));
  return h("div", { class: "table-wrap" }, h("table", { class: `diff-record op-${c.op}`, "data-record": recordKey(c) },
    h("caption", {}, recordWords(c), h("span", { class: `diff-op op-${c.op}` }, ` ${OPS[c.op] || c.op}`),
      hidden ? h("span", { class: "muted" }, " (what it replaces is not shown: the block may not read it)") : null),
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Field"), cols.map((col) => h("th", { scope: "col" }, col === "before" ? "Before" : "After")))),
    h("tbody", {}, rows)));
}

const PAGE = 200;
const plural = (n, one) => `${n} ${one}${n === 1 ? "" : "s"}`;
const clock = (ms) => new Date(ms).toLocaleTimeString();

// The diff view of a dry-run's `diff` event. `ctx`: {api, ws, run,
// status ("pending", "applied", "discarded", "expired"), canEdit,
// onSettled()}; Apply and Discard are offered only while it is pending.
export function diffView(ev, ctx) {
  const changes = Array.isArray(ev.changes) ? ev.changes : [];
  const el = h("section", { class: "preview", "aria-label": "Preview of the changes" });
  const state = h("div", { class: "preview-state", role: "status" });
  const note = h("div", { class: "preview-note" });
  const head = h("h4", {}, changes.length
    ? `Preview: ${plural(changes.length, "change")}, not written yet`
    : "No changes");
  el.append(head);
  if (!changes.length) {
    el.append(h("p", { class: "muted" }, "This run would not change any document, row or key."));
    return el;
  }
  // A big diff is shown a page of records at a time (a tab must not
  // build tens of thousands of tables at once).
  const list = h("div", { class: "preview-records" });
  const grouped = groupChanges(changes).flatMap((g) => g.changes.map((c, i) => ({ c, title: i === 0 ? g.title : null })));
  let shown = 0;
  const more = h("button", { class: "preview-more", onclick: () => showMore() });
  function showMore() {
    const next = grouped.slice(shown, shown + PAGE);
    for (const { c, title } of next) list.append(...(title ? [h("h5", {}, title)] : []), recordTable(c));
    shown += next.length;
    more.hidden = shown >= grouped.length;
    more.textContent = `Show ${Math.min(PAGE, grouped.length - shown)} more of ${grouped.length - shown} records`;
  }
  showMore();
  el.append(list, more, state, note);
  if (ev.applicable === false && (!ctx.status || ctx.status === "pending")) {
    state.textContent = "These changes cannot be applied: the run failed (or its preview could not be kept). They are shown, nothing was written.";
    return el;
  }
  // (Whether it expired is the server's to say: the browser's clock may differ.)
  if (ctx.status && ctx.status !== "pending") return settled(el, state, ctx.status, changes.length);
  if (!ctx.canEdit || !ctx.run) {
    state.textContent = "Not written yet: an editor can apply or discard these changes.";
    return el;
  }
  const apply = h("button", { class: "primary", onclick: () => act("apply") }, "Apply");
  const discard = h("button", { onclick: () => act("discard") }, "Discard");
  const until = Number(ev.expires_ms) > 0 ? ` before ${clock(ev.expires_ms)}` : "";
  clear(state).append(h("span", { class: "muted" }, `Apply writes exactly these changes${until}; Discard drops them. `), apply, " ", discard);
  async function act(what) {
    apply.disabled = discard.disabled = true;
    clear(note);
    try {
      const path = what === "apply" ? paths.applyRun(ctx.ws, ctx.run) : paths.discardRun(ctx.ws, ctx.run);
      const r = await ctx.api.post(path, what === "apply" ? { digest: ev.digest } : {});
      settled(el, state, what === "apply" ? "applied" : "discarded", r?.applied ?? changes.length);
      ctx.onSettled?.();
    } catch (e) {
      refused(e, what);
    }
  }
  function refused(e, what) {
    const body = e.body || {};
    if (e.status === 410 || body.error === "expired") {
      settled(el, state, "expired");
      return;
    }
    const conflicts = Array.isArray(body.conflicts) ? body.conflicts : [];
    if (e.status === 409 && conflicts.length) {
      // The records changed since the preview: these changes can no longer
      // be applied as they are; a new preview shows them against today's.
      clear(state).append(discard);
      discard.disabled = false;
      const named = new Set(conflicts.map(recordKey));
      for (const t of el.querySelectorAll("table.diff-record")) {
        t.classList.toggle("conflict", named.has(t.dataset.record));
      }
      note.append(h("div", { class: "error", role: "alert" },
        h("p", {}, `Not applied: ${e.message}`),
        h("p", {}, "Changed since the preview:"),
        h("ul", { class: "conflicts" }, conflicts.map((c) => h("li", {}, recordWords(c)))),
        h("p", {}, "Preview again to see the changes against the data as it is now.")));
      return;
    }
    if (e.status === 409) {
      // Applied or discarded already (another tab, another editor).
      clear(state);
      note.append(h("p", { class: "error", role: "alert" }, `Not ${what === "apply" ? "applied" : "discarded"}: ${e.message}`));
      ctx.onSettled?.();
      return;
    }
    apply.disabled = discard.disabled = false;
    note.append(h("p", { class: "error", role: "alert" }, `Not ${what === "apply" ? "applied" : "discarded"}: ${e.message}`));
  }
  return el;
}

// The view once the preview is settled: what became of it, no buttons.
function settled(el, state, status, count) {
  el.classList.add(`preview-${status}`);
  const words = {
    applied: count !== undefined ? `Applied (${plural(count, "change")})` : "Applied",
    discarded: "Discarded",
    expired: "Expired: this preview is no longer kept, so it cannot be applied. Preview again.",
  }[status] || status;
  clear(state).append(h("strong", {}, words));
  return el;
}

// A run's preview marker for the history: "preview · applied".
export function previewMark(run) {
  if (run.mode !== "dry_run" && !run.preview) return null;
  return `preview · ${run.preview?.status || "pending"}`;
}
