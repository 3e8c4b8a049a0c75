// Renders a run's events as they arrive: logs, display() outputs, the
// result and errors. Nothing a block outputs is ever inserted as HTML into
// the app: text/html goes into an iframe with an empty sandbox (no
// scripts, no same-origin access), everything else is text nodes.
import { h, clear, renderText } from "./dom.js";
import { recordColumns, recordsTable } from "./table.js";

// A value as a table when it is an array of records, else as a tree.
export function valueNode(value) {
  const cols = recordColumns(value);
  return cols ? recordsTable(value, cols, jsonTree) : jsonTree(value);
}

export function jsonTree(value, label) {
  // A text of several lines (an Error as the engines describe it, with
  // its stack) reads as text, not as one quoted line of escapes.
  if (typeof value === "string" && value.includes("\n")) {
    return h("pre", { class: "json-string json-text" }, value);
  }
  if (typeof value === "string") {
    // Quoted as a console quotes it: inner quotes are not escaped.
    return h("span", { class: "json-string" }, `"${value.replace(/[\r\t]/g, (c) => (c === "\r" ? "\\r" : "\\t"))}"`);
  }
  if (value === null || typeof value !== "object") {
    return h("span", { class: `json-${value === null ? "null" : typeof value}` }, JSON.stringify(value));
  }
  const entries = Array.isArray(value) ? value.map((v, i) => [i, v]) : Object.entries(value);
  const summary = Array.isArray(value) ? `Array(${entries.length})` : `{${entries.length} keys}`;
  const details = h("details", { class: "json", open: entries.length <= 12 ? true : undefined },
    h("summary", {}, label !== undefined ? `${label}: ${summary}` : summary));
  const list = h("ul", {});
  for (const [k, v] of entries) {
    if (v !== null && typeof v === "object") list.append(h("li", {}, jsonTree(v, k)));
    else list.append(h("li", {}, h("span", { class: "json-key" }, `${k}: `), jsonTree(v)));
  }
  details.append(list);
  return details;
}

function parseCsv(text) {
  const rows = [];
  let row = [], cell = "", quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { cell += '"'; i++; }
      else if (c === '"') quoted = false;
      else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === ",") { row.push(cell); cell = ""; }
    else if (c === "\n") { row.push(cell); rows.push(row); row = []; cell = ""; }
    else if (c !== "\r") cell += c;
  }
  if (cell !== "" || row.length) { row.push(cell); rows.push(row); }
  return rows;
}

export function csvTable(text) {
  const [head, ...rows] = parseCsv(text);
  return h("div", { class: "table-wrap" },
    h("table", {},
      h("thead", {}, h("tr", {}, (head || []).map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, rows.map((r) => h("tr", {}, r.map((c) => h("td", {}, c)))))));
}

// Tallest an HTML output grows to fit its content; past it, it scrolls.
const HTML_MAX_PX = 2000;

export function htmlFrame(html) {
  // sandbox="allow-same-origin" without allow-scripts: no script of the
  // block's runs at all (nor forms, popups or top navigation), and the
  // frame inherits the app's policy (it loads nothing from elsewhere); the
  // same origin only lets the app read the frame's height to fit it.
  const frame = h("iframe", { class: "html-output", sandbox: "allow-same-origin", srcdoc: html, title: "HTML output of the block" });
  const fit = () => {
    const doc = frame.contentDocument;
    if (!doc || !doc.documentElement) return;
    const height = Math.max(doc.documentElement.scrollHeight, doc.body ? doc.body.scrollHeight : 0);
    frame.style.height = `${Math.min(Math.max(height, 24), HTML_MAX_PX) + 2}px`;
  };
  frame.addEventListener("load", () => {
    fit();
    // Images in it change its height after load; so does the page's width.
    if (frame.contentDocument) {
      for (const img of frame.contentDocument.images) img.addEventListener("load", fit);
    }
    // Refit when the width changes (not the height: a person may drag it).
    let width = frame.clientWidth;
    if (typeof ResizeObserver === "function") {
      new ResizeObserver(() => {
        if (frame.clientWidth !== width) {
          width = frame.clientWidth;
          fit();
        }
      }).observe(frame);
    }
  });
  return frame;
}

// An image a block displayed, from data only (an <img> runs no script
// of an SVG's and loads nothing it names).
export function imageNode(mime, data) {
  const src = mime === "image/svg+xml"
    ? `data:image/svg+xml;charset=utf-8,${encodeURIComponent(String(data))}`
    : `data:${mime};base64,${String(data)}`;
  const what = { "image/svg+xml": "SVG", "image/png": "PNG", "image/jpeg": "JPEG" }[mime];
  return h("img", { class: "image-output", src, alt: `${what} image output of the block` });
}

// A Vega-Lite chart, drawn in the chart frame (src/chart/): a sandboxed
// iframe with scripts but an opaque origin, so nothing in the spec
// reaches the app. The spec goes in by postMessage once the frame says it
// is ready; the frame answers with its height or an error.
export function chartFrame(spec) {
  const frame = h("iframe", { class: "chart-output", sandbox: "allow-scripts", src: "/chart.html", title: "Chart output of the block" });
  const note = h("p", { class: "chart-error", role: "alert", hidden: true });
  const onMessage = (e) => {
    if (e.source !== frame.contentWindow || !e.data || typeof e.data !== "object") return;
    if (e.data.ready) frame.contentWindow.postMessage({ spec }, "*");
    else if (typeof e.data.height === "number") frame.style.height = `${Math.min(Math.max(e.data.height, 40), 4000)}px`;
    else if (typeof e.data.error === "string") {
      note.hidden = false;
      note.textContent = `The chart could not be drawn: ${e.data.error}`;
      frame.hidden = true;
    }
    if (!frame.isConnected) window.removeEventListener("message", onMessage);
  };
  window.addEventListener("message", onMessage);
  return h("div", { class: "chart" }, frame, note);
}

// `display.progress(fraction, label)`: a bar that updates in place.
export function progressNode(data) {
  const f = Math.min(1, Math.max(0, Number(data && data.fraction) || 0));
  const label = data && typeof data.label === "string" ? data.label : "";
  return h("div", { class: "progress-output" },
    h("progress", { max: "1", value: String(f), "aria-label": label || "Progress" }),
    h("span", { class: "progress-pct" }, `${Math.floor(f * 100)}%`),
    label ? h("span", { class: "progress-label" }, label) : null);
}

// A run's meters: its use so far against each limit. A meter at 80% of
// its limit or more is marked `near` (amber), so a kill is seen coming.
export const NEAR_LIMIT = 0.8;
const kib = (n) => (n >= 1048576 ? `${(n / 1048576).toFixed(1)} MiB` : `${(n / 1024).toFixed(n < 10240 ? 1 : 0)} KiB`);
const METERS = [
  ["cpu_ms", "CPU", (n) => `${n.toFixed(0)} ms`],
  ["wall_ms", "Wall", (n) => `${n.toFixed(0)} ms`],
  ["memory_bytes", "Memory", kib],
  ["output_bytes", "Output", kib],
  ["host_calls", "Host calls", (n) => String(n)],
];

export function metersNode(ev) {
  const limits = ev.limits || {};
  const rows = METERS.map(([key, label, fmt]) => {
    const used = Number(ev[key]) || 0;
    const max = Number(limits[key]) || 0;
    const share = max > 0 ? used / max : 0;
    const near = share >= NEAR_LIMIT;
    return h("div", { class: `meter-row${near ? " near" : ""}`, "data-meter": key },
      h("span", { class: "meter-label" }, label),
      h("meter", { min: "0", max: String(max || 1), value: String(Math.min(used, max || 1)), high: String((max || 1) * NEAR_LIMIT), optimum: "0" }),
      h("span", { class: "meter-text" }, max > 0 ? `${fmt(used)} of ${fmt(max)}` : fmt(used)));
  });
  if (typeof ev.cpu_day_left_ms === "number") {
    rows.push(h("div", { class: "meter-row day-left", "data-meter": "cpu_day_left_ms" },
      h("span", { class: "meter-label" }, "CPU left today"),
      h("span", { class: "meter-text" }, `${ev.cpu_day_left_ms.toFixed(0)} ms`)));
  }
  return h("div", { class: `meters${ev.final ? " final" : ""}`, role: "group", "aria-label": ev.final ? "What the run used" : "What the run uses so far" }, rows);
}

export function displayNode(mime, data) {
  if (mime === "application/vnd.quire.progress+json") return progressNode(data);
  if (mime === "application/json") return valueNode(data);
  if (mime === "application/vnd.vegalite.v5+json") return chartFrame(data);
  if (mime === "image/svg+xml" || mime === "image/png" || mime === "image/jpeg") return imageNode(mime, data);
  if (mime === "text/csv") return csvTable(String(data));
  if (mime === "text/html") return htmlFrame(String(data));
  if (mime === "text/markdown") return renderText(String(data));
  return h("pre", { class: "display-text" }, String(data));
}

// The frames of an engine's stack text ("    at f (block.js:3:9)" or
// "    at block.js:5:1"): { fn, file, line, column }. Frames of quire's
// own code (the "quire" module, "quire:…") are kept but have no line to
// jump to.
export function stackFrames(stack) {
  const out = [];
  for (const raw of String(stack || "").split("\n")) {
    const m = /^\s*at (?:(.*?) \()?([^()\s]+?):(\d+):(\d+)\)?\s*$/.exec(raw);
    if (!m) continue;
    const own = m[2] !== "quire" && !m[2].startsWith("quire:");
    out.push({ fn: m[1] && m[1] !== "<anonymous>" ? m[1] : "", file: m[2], line: own ? Number(m[3]) : 0, column: own ? Number(m[4]) : 0 });
  }
  return out;
}

// Lines (logs and displays) shown before the rest collapse behind
// "Show all N lines"; the result, an error and the timing stay visible.
export const COLLAPSE_AFTER = 100;

// The output area of one run. The page scrolls, not the output: while
// `follow` is on (a live run) and the output's end is in view, it stays
// in view as lines arrive.
export class Output {
  // `onFrame(line, column)`: a stack frame of the block was chosen;
  // `grantOffer(grant)`: what to offer for a grant a denial names;
  // `diff(ev)`: the view of a dry-run's staged changes (preview.js).
  constructor(el, { onFrame, grantOffer, diff } = {}) {
    this.el = el;
    this.onFrame = onFrame || (() => {});
    this.grantOffer = grantOffer || null;
    this.diff = diff || null;
    this.follow = false;
    this.reset();
  }

  // Empty the output; `note` (text, or an element) heads it.
  reset(note) {
    clear(this.el);
    this.lines = 0;
    // display id -> its element, for updates in place
    this.displays = new Map();
    this.cancelled = false;
    this.more = null;
    this.moreBtn = null;
    this.diffEl = null;
    if (typeof note === "string" && note) this.el.append(h("p", { class: "muted" }, note));
    else if (note) this.el.append(note);
    this.metersEl = h("div", { class: "run-meters", hidden: true });
    this.el.append(this.metersEl);
  }

  // A display: a new output, or (an id shown before) that one replaced.
  showDisplay(ev) {
    const el = h("div", { class: "display", "data-mime": ev.mime, "data-display-id": ev.display_id || null }, displayNode(ev.mime, ev.data));
    const old = ev.display_id ? this.displays.get(ev.display_id) : null;
    if (old) old.replaceWith(el);
    else this.lineTarget().append(el);
    if (ev.display_id) this.displays.set(ev.display_id, el);
  }

  // Where a log or display line goes: the output, or past
  // COLLAPSE_AFTER lines the collapsed rest.
  lineTarget() {
    this.lines++;
    if (this.lines <= COLLAPSE_AFTER) return this.el;
    if (!this.more) {
      this.more = h("div", { class: "more", hidden: true });
      this.moreBtn = h("button", { class: "show-all", onclick: () => this.expand() }, "");
      this.el.append(this.moreBtn, this.more);
    }
    const rest = this.lines - COLLAPSE_AFTER;
    if (this.more.hidden) this.moreBtn.textContent = `Show all ${this.lines} lines (${rest} more)`;
    return this.more;
  }

  expand() {
    if (!this.more) return;
    const open = this.more.hidden;
    this.more.hidden = !open;
    this.moreBtn.textContent = open ? `Show the first ${COLLAPSE_AFTER} lines` : `Show all ${this.lines} lines (${this.lines - COLLAPSE_AFTER} more)`;
  }

  // The output's end is on screen (or nearly).
  endInView() {
    const r = this.el.getBoundingClientRect();
    return r.bottom >= 0 && r.bottom <= window.innerHeight + 48;
  }

  // A frame as a button that shows its line in the editor.
  frameLink(f) {
    return h("button", { class: "link frame", onclick: () => this.onFrame(f.line, f.column), "aria-label": `Show line ${f.line} in the editor` }, `line ${f.line}${f.column ? `:${f.column}` : ""}`);
  }

  stackList(frames) {
    return h("details", { class: "stack", open: true }, h("summary", {}, "Stack"),
      h("ol", {}, frames.map((f) => h("li", {},
        h("code", {}, f.fn || "(top level)"), " ",
        f.line ? this.frameLink(f) : h("span", { class: "muted" }, `in quire's ${f.file}`)))));
  }

  event(ev) {
    const follow = this.follow && this.endInView();
    this.render(ev);
    if (follow && this.el.getBoundingClientRect().bottom > window.innerHeight) this.el.scrollIntoView({ block: "end" });
  }

  render(ev) {
    switch (ev.type) {
      case "started":
        break;
      case "log":
        this.lineTarget().append(h("div", { class: `log log-${ev.level}` },
          ev.level !== "log" && ev.level !== "info" ? h("span", { class: "level" }, `${ev.level} `) : null, ev.text));
        break;
      case "display":
      case "update_display":
        this.showDisplay(ev);
        break;
      case "clear_display": {
        const old = this.displays.get(ev.display_id);
        if (old) old.remove();
        this.displays.delete(ev.display_id);
        break;
      }
      case "meter":
        clear(this.metersEl).append(metersNode(ev));
        this.metersEl.hidden = false;
        break;
      case "result":
        this.el.append(h("div", { class: "result" }, h("span", { class: "label" }, "Result "), valueNode(ev.value)));
        break;
      case "error": {
        if (ev.kind === "cancelled") {
          // Someone stopped it: not a failure of the block.
          this.cancelled = true;
          this.el.append(h("div", { class: "cancelled", role: "status" }, h("strong", {}, "Cancelled"), `: ${ev.message}`));
          break;
        }
        const where = ev.line ? ` (line ${ev.line}${ev.column ? `:${ev.column}` : ""})` : "";
        const box = h("div", { class: "error", role: "alert" }, h("strong", {}, `${ev.kind}`), `: ${ev.message}${where}`);
        const frames = stackFrames(ev.stack);
        const top = frames.find((f) => f.line);
        if (!ev.line && top && (ev.kind === "cpu_limit" || ev.kind === "wall_limit")) {
          box.append(h("p", { class: "stopped-at" }, `It was running ${top.fn || "the module's top level"} when it was stopped: `, this.frameLink(top)));
        }
        if (ev.kind === "capability_denied" && typeof ev.grant === "string" && this.grantOffer) box.append(this.grantOffer(ev.grant));
        if (frames.length) box.append(this.stackList(frames));
        this.el.append(box);
        break;
      }
      case "diff": {
        // A dry-run's changes, shown below the rest of the output.
        const view = this.diff ? this.diff(ev) : null;
        if (view) {
          this.diffEl?.remove();
          this.diffEl = view;
          this.el.append(view);
        }
        break;
      }
      case "finished": {
        const how = ev.status === "ok" ? "ok" : this.cancelled ? "cancelled" : "error";
        const word = { ok: "Finished in", cancelled: "Cancelled after", error: "Failed in" }[how];
        const line = h("div", { class: `finished finished-${how}` },
          `${word} ${ev.wall_ms.toFixed(1)} ms · CPU ${ev.cpu_ms.toFixed(1)} ms · peak memory ${Math.round(ev.peak_memory_bytes / 1024)} KiB`);
        if (this.diffEl?.parentNode === this.el) this.diffEl.before(line);
        else this.el.append(line);
        break;
      }
    }
  }
}
