// Arrays of records (a result or a display() value such as rows from
// db.query) shown as a table, as notebooks do: one column per key, sorted
// by a column on click, 100 rows a page. Everything is text nodes; a
// nested value in a cell is the collapsed JSON tree.
import { h, clear } from "./dom.js";

// Rows shown per page.
export const PAGE_ROWS = 100;
// Tables wider than this stay a tree (not records a person reads as rows).
const MAX_COLUMNS = 40;

const isRecord = (v) => v !== null && typeof v === "object" && !Array.isArray(v);

// The columns of `value` when it is a non-empty array of records, in the
// order keys first appear; otherwise null.
export function recordColumns(value) {
  if (!Array.isArray(value) || value.length === 0 || !value.every(isRecord)) return null;
  const cols = [];
  const seen = new Set();
  for (const row of value) {
    for (const k of Object.keys(row)) {
      if (!seen.has(k)) {
        seen.add(k);
        cols.push(k);
        if (cols.length > MAX_COLUMNS) return null;
      }
    }
  }
  return cols.length ? cols : null;
}

// Sort order of two cell values: missing last, numbers as numbers, the
// rest as text.
function compare(a, b) {
  if (a === undefined || b === undefined) return (a === undefined) - (b === undefined);
  if (typeof a === "number" && typeof b === "number") return a - b;
  const sa = typeof a === "string" ? a : JSON.stringify(a);
  const sb = typeof b === "string" ? b : JSON.stringify(b);
  return sa.localeCompare(sb, undefined, { numeric: true });
}

// `tree(value)` renders a nested cell (output.js's jsonTree, passed in so
// the two files do not import each other).
export function recordsTable(rows, cols, tree) {
  let sortBy = null;
  let dir = 1;
  let page = 0;
  const order = rows.map((_, i) => i);
  const body = h("tbody", {});
  const status = h("span", { class: "table-status", "aria-live": "polite" });
  const prev = h("button", { type: "button", onclick: () => show(page - 1) }, "Previous");
  const next = h("button", { type: "button", onclick: () => show(page + 1) }, "Next");
  const heads = cols.map((c) => {
    const b = h("button", { type: "button", class: "sort", onclick: () => sort(c) }, c);
    return h("th", { scope: "col", "aria-sort": "none" }, b);
  });
  const pages = () => Math.ceil(rows.length / PAGE_ROWS);
  const cell = (v) => {
    if (v === undefined) return h("td", { class: "missing" });
    if (v !== null && typeof v === "object") return h("td", {}, tree(v));
    return h("td", { class: `json-${v === null ? "null" : typeof v}` }, typeof v === "string" ? v : JSON.stringify(v));
  };
  function show(p) {
    page = Math.max(0, Math.min(p, pages() - 1));
    const from = page * PAGE_ROWS;
    const to = Math.min(rows.length, from + PAGE_ROWS);
    clear(body).append(...order.slice(from, to).map((i) => h("tr", {}, cols.map((c) => cell(rows[i][c])))));
    status.textContent = pages() > 1 ? `Rows ${from + 1}–${to} of ${rows.length}` : `${rows.length} row${rows.length === 1 ? "" : "s"}`;
    prev.disabled = page === 0;
    next.disabled = page >= pages() - 1;
  }
  function sort(c) {
    dir = sortBy === c ? -dir : 1;
    sortBy = c;
    order.sort((a, b) => dir * compare(rows[a][c], rows[b][c]) || a - b);
    heads.forEach((th, i) => th.setAttribute("aria-sort", cols[i] === c ? (dir > 0 ? "ascending" : "descending") : "none"));
    show(0);
  }
  show(0);
  const pager = pages() > 1 ? h("div", { class: "pager" }, prev, " ", status, " ", next) : h("div", { class: "pager" }, status);
  return h("div", { class: "records" },
    h("div", { class: "table-wrap" }, h("table", {}, h("thead", {}, h("tr", {}, heads)), body)),
    pager);
}
