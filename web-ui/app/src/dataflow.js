// Blocks that build on each other: the document's dependency graph from
// the server (GET …/docs/{doc}/graph), shown on each code cell as what it
// reads and what reads it, with its output marked stale when its code,
// its grants or a result it read changed since; and a run's provenance as
// a readable line (shown on hover over its output).
import { h, clear } from "./dom.js";
import { paths } from "./api.js";

export async function loadGraph(app) {
  if (!app.doc) return null;
  try {
    app.graph = await app.api.get(paths.graph(app.ws, app.doc.id));
  } catch {
    app.graph = null;
  }
  for (const cell of app.cells || []) showDataflow(cell, app.graph);
  return app.graph;
}

const label = (graph, id) => {
  const n = graph.nodes.find((x) => x.block === id);
  return n && n.name ? n.name : id;
};

// What `cell` reads and what reads it, and why its output is stale.
export function showDataflow(cell, graph) {
  const el = cell.dataflowEl;
  if (!el) return;
  clear(el);
  const node = graph && graph.nodes.find((n) => n.block === cell.blockId);
  cell.el.classList.toggle("stale", !!(node && node.stale.length));
  if (!node) return;
  const readers = graph.nodes.filter((n) => n.reads.includes(node.block)).map((n) => label(graph, n.block));
  const chips = (names) => h("ul", { class: "chips" }, names.map((n) => h("li", { class: "chip" }, n)));
  if (node.reads.length) el.append(h("span", { class: "reads" }, "Reads ", chips(node.reads.map((r) => label(graph, r)))));
  if (readers.length) el.append(h("span", { class: "read-by" }, "Read by ", chips(readers)));
  for (const o of node.outside) el.append(h("p", { class: "warn" }, `Reads “${o}”, which is no block of this document: that read is denied.`));
  for (const u of node.unknown) el.append(h("p", { class: "warn" }, `Line ${u.line}: ${u.why} (not in the graph).`));
  if (graph.cycle && graph.cycle.some((c) => c === (node.name || node.block))) {
    el.append(h("p", { class: "warn", role: "alert" }, `In a cycle: ${graph.cycle.join(" → ")}.`));
  }
  if (node.stale.length) {
    el.append(h("p", { class: "stale-note", role: "status" }, `Output out of date: ${node.stale.join("; ")}.`));
  }
}

// A run's provenance as one line for a person.
export function provenanceText(p, graph) {
  if (!p || typeof p !== "object") return "";
  const parts = [];
  if (p.block_version) parts.push(`code ${String(p.block_version).slice(0, 12)}`);
  if (p.engine) parts.push(`engine ${p.engine}`);
  const grants = Array.isArray(p.grants) && p.grants.length ? p.grants.join(", ") : "none";
  parts.push(`grants ${grants}`);
  if (p.input_hash) parts.push(`input #${String(p.input_hash).slice(0, 12)}`);
  if (Array.isArray(p.upstream) && p.upstream.length) {
    parts.push(`read ${p.upstream.map((u) => `${graph ? label(graph, u.block) : u.block} (run ${String(u.run).slice(-8)})`).join(", ")}`);
  }
  return `Made from: ${parts.join(" · ")}`;
}

// The order "Run all" follows: every block after the blocks it reads,
// otherwise document order; `null` and the cycle when there is none.
export function runOrder(cells, graph) {
  const byDoc = [...cells].sort((a, b) => a.index - b.index);
  if (!graph) return { order: byDoc };
  if (graph.cycle) return { order: null, cycle: graph.cycle };
  const pos = new Map(graph.order.map((id, i) => [id, i]));
  // Blocks in the graph take the graph's order among themselves, in the
  // slots the graph's blocks hold in the document.
  const inGraph = byDoc.filter((c) => pos.has(c.blockId)).sort((a, b) => pos.get(a.blockId) - pos.get(b.blockId));
  let k = 0;
  return { order: byDoc.map((c) => (pos.has(c.blockId) ? inGraph[k++] : c)) };
}
