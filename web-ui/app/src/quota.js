// The workspace's quota and usage page (admins): live usage against each
// quota, the quota itself (editable within the server's ceilings), and
// usage per day.
import { h, clear } from "./dom.js";
import { paths } from "./api.js";

const MIB = 1024 * 1024;
const FIELDS = [
  ["max_concurrent_runs", "Runs at once", "runs"],
  ["max_queued_runs", "Runs waiting for a slot", "runs"],
  ["cpu_ms_per_run", "CPU time per run", "ms"],
  ["wall_ms_per_run", "Wall-clock time per run", "ms"],
  ["memory_bytes_per_run", "Memory per run", "bytes"],
  ["output_bytes_per_run", "Output per run", "bytes"],
  ["runs_per_minute", "Runs per minute", "runs"],
  ["cpu_ms_per_day", "CPU time per day (UTC)", "ms"],
  ["storage_bytes", "Stored data", "bytes"],
  ["history_bytes", "Run history kept", "bytes"],
  ["history_days", "Run history kept for", "days"],
];

const num = (n) => Number(n).toLocaleString("en-US", { maximumFractionDigits: 1 });
const GIB = 1024 * MIB;
const bytes = (n) => (n >= GIB ? `${num(n / GIB)} GiB` : n >= MIB ? `${num(n / MIB)} MiB` : n >= 1024 ? `${num(n / 1024)} KiB` : `${num(n)} bytes`);
// Byte fields are edited in MiB; the API takes bytes.
const shown = (unit, n) => (unit === "bytes" ? String(+(n / MIB).toFixed(3)) : String(n));
const ceiling = (unit, n) => (unit === "bytes" ? bytes(n) : num(n));

function meter(id, label, value, max, text) {
  return h("div", { class: "usage-row" },
    h("label", { for: id }, label),
    h("meter", { id, min: 0, max: Math.max(max, 1), value: Math.min(value, max), high: max * 0.8, optimum: 0 }),
    h("span", { class: "usage-text" }, text));
}

// A form of the FIELDS (`values`), saving only what changed; a refusal
// names and focuses the field. `key` keeps ids apart between forms.
function limitsForm({ key, title, intro, values, note, button, save, saved, reload }) {
  const inputs = {};
  const err = h("p", { class: "error", role: "alert", hidden: true });
  const ok = h("p", { class: "saved", role: "status" });
  const rows = FIELDS.map(([f, label, unit]) => {
    const step = unit === "bytes" ? "any" : 1;
    inputs[f] = h("input", { id: `${key}-${f}`, type: "number", min: 0, step, value: shown(unit, values[f]), "aria-describedby": `${key}-${f}-max` });
    return h("tr", {},
      h("th", { scope: "row" }, h("label", { for: `${key}-${f}` }, label)),
      h("td", {}, inputs[f], ` ${unit === "bytes" ? "MiB" : unit}`),
      h("td", { id: `${key}-${f}-max`, class: "muted" }, note(f, unit)));
  });
  const form = h("form", { class: `quota-form ${key}-form`, onsubmit: async (e) => {
    e.preventDefault();
    err.hidden = true;
    ok.textContent = "";
    const change = {};
    for (const [f, , unit] of FIELDS) {
      inputs[f].removeAttribute("aria-invalid");
      if (inputs[f].value === shown(unit, values[f])) continue;
      const n = Number(inputs[f].value);
      change[f] = unit === "bytes" ? Math.round(n * MIB) : n;
    }
    try {
      await save(change);
      await reload();
      document.querySelector(`.${key}-form .saved`).textContent = saved;
    } catch (e2) {
      err.hidden = false;
      err.textContent = e2.message;
      const bad = inputs[e2.body?.field];
      if (bad) {
        bad.setAttribute("aria-invalid", "true");
        bad.focus();
      }
    }
  } },
  h("h2", { id: `${key}-h` }, title),
  h("p", { class: "muted" }, intro),
  h("div", { class: "table-wrap" }, h("table", { "aria-labelledby": `${key}-h` }, h("tbody", {}, rows))),
  h("button", { type: "submit", class: "primary" }, button), ok, err);
  return form;
}

export async function showQuota(app, main) {
  clear(main).append(h("p", { class: "muted" }, "Loading…"));
  const [v, { days }, w] = await Promise.all([app.api.get(paths.quota(app.ws)), app.api.get(paths.usage(app.ws, 30)), app.api.get(paths.workspace(app.ws))]);
  const q = v.quota;
  const u = v.usage;
  const resets = new Date(u.cpu_day_resets_at_ms).toLocaleString();
  const usage = h("section", { "aria-labelledby": "usage-h" },
    h("h2", { id: "usage-h" }, "Usage now"),
    meter("u-cpu", "CPU today", u.today.cpu_ms, q.cpu_ms_per_day, `${num(u.today.cpu_ms)} of ${num(q.cpu_ms_per_day)} ms (resets ${resets})`),
    meter("u-minute", "Runs in the last minute", u.runs_last_minute, q.runs_per_minute, `${u.runs_last_minute} of ${q.runs_per_minute}`),
    meter("u-running", "Running now", u.running, q.max_concurrent_runs, `${u.running} of ${q.max_concurrent_runs}, ${u.queued} waiting`),
    meter("u-storage", "Stored data", u.storage_bytes, q.storage_bytes, `${bytes(u.storage_bytes)} of ${bytes(q.storage_bytes)}`),
    meter("u-history", "Run history", u.history_bytes, q.history_bytes, `${bytes(u.history_bytes)} of ${bytes(q.history_bytes)} (oldest runs are deleted past it, and after ${q.history_days} days)`),
    h("p", { class: "muted" }, `${u.today.runs} runs today.`));

  const form = limitsForm({
    key: "q",
    title: "Quota",
    intro: "Limits for this workspace. Each is capped by the server admin's ceiling.",
    values: q,
    note: (f, unit) => `server ceiling ${ceiling(unit, v.ceilings[f])}`,
    button: "Save quota",
    save: (change) => app.api.put(paths.quota(app.ws), change),
    saved: "Quota saved.",
    reload: () => showQuota(app, main),
  });
  // A server admin also sets the ceilings every workspace's quota is
  // held to.
  const ceilings = app.me.server_admin ? limitsForm({
    key: "c",
    title: "Server ceilings (every workspace)",
    intro: "The most any workspace admin may set. Lowering one does not change quotas already above it until they are saved again.",
    values: v.ceilings,
    note: () => "",
    button: "Save ceilings",
    save: (change) => app.api.put("/quota/ceilings", change),
    saved: "Ceilings saved.",
    reload: () => showQuota(app, main),
  }) : "";

  const history = h("section", { "aria-labelledby": "days-h" },
    h("h2", { id: "days-h" }, "Last 30 days"),
    days.length ? h("div", { class: "table-wrap" }, h("table", {},
      h("thead", {}, h("tr", {}, ["Day (UTC)", "Runs", "CPU", "Wall clock"].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, days.slice().reverse().map((d) => h("tr", {},
        h("td", {}, d.date), h("td", {}, num(d.runs)), h("td", {}, `${num(d.cpu_ms)} ms`), h("td", {}, `${num(d.wall_ms)} ms`))))))
      : h("p", { class: "muted" }, "No runs yet."));
  // The engine of the workspace's blocks that do not choose one.
  const engineStatus = h("span", { class: "saved", role: "status" });
  const engine = h("select", { id: "ws-engine" },
    ...[["quickjs", "QuickJS (fastest to start)"], ["v8", "V8 (fastest on heavy computation)"]].map(([value, label]) => {
      const o = h("option", { value }, label);
      if (w.default_engine === value) o.selected = true;
      return o;
    }));
  engine.addEventListener("change", async () => {
    try {
      const r = await app.api.put(paths.settings(app.ws), { default_engine: engine.value });
      engineStatus.textContent = `Default engine: ${r.default_engine === "v8" ? "V8" : "QuickJS"}.`;
    } catch (e) {
      engine.value = w.default_engine;
      engineStatus.textContent = `Not changed: ${e.message}`;
    }
  });
  const settings = h("section", { "aria-labelledby": "engine-h" },
    h("h2", { id: "engine-h" }, "Default engine"),
    h("p", { class: "muted" }, "Blocks that do not choose an engine run on this one."),
    h("label", { for: "ws-engine" }, "Engine "), engine, " ", engineStatus);
  clear(main).append(h("header", { class: "doc-head" }, h("h1", {}, `Quota and usage: ${app.ws}`)), usage, settings, form, ceilings, history);
}
