// Grants without syntax: an admin picks a block's grants from what the
// workspace has (its collections, its secrets and the hosts they are
// bound to), each in plain words, plus free entry for anything else.
import { h } from "./dom.js";
import { paths } from "./api.js";

export function describeGrant(g) {
  const [kind, a, ...rest] = g.split(":");
  const b = rest.join(":");
  if (g === "doc:read") return "Read every document in this workspace.";
  if (g === "doc:write") return "Change documents in this workspace.";
  if (g === "kv:read") return "Read this workspace's key-value store.";
  if (g === "kv:write") return "Write and delete keys in this workspace's key-value store.";
  if (kind === "db" && a === "read") return b === "*" ? "Read rows of every database collection." : `Read rows of the "${b}" collection.`;
  if (kind === "db" && a === "write") return b === "*" ? "Insert, change and delete rows of every collection." : `Insert, change and delete rows of the "${b}" collection.`;
  if (kind === "secret") return `Use the secret ${a}, sent only to the hosts it is bound to; the block never sees it in fetch headers.`;
  if (kind === "net") return `Fetch from ${[a, b].filter(Boolean).join(":")}.`;
  return "Unknown grant.";
}

// The grants an admin can pick for a block in `ws`, in groups.
export async function grantChoices(api, ws) {
  const [db, secrets] = await Promise.all([
    api.get(`${paths.ws(ws)}/db`).catch(() => ({ collections: [] })),
    api.get(`${paths.ws(ws)}/secrets`).catch(() => ({ secrets: [] })),
  ]);
  const colls = db.collections || [];
  const hosts = [...new Set((secrets.secrets || []).flatMap((s) => s.hosts || []))].sort();
  return [
    ["Documents", ["doc:read", "doc:write"]],
    ["Database", [...colls.flatMap((c) => [`db:read:${c}`, `db:write:${c}`]), "db:read:*", "db:write:*"]],
    ["Key-value store", ["kv:read", "kv:write"]],
    ["Secrets", (secrets.secrets || []).map((s) => `secret:${s.name}`)],
    ["Network", hosts.map((x) => `net:${x}`)],
  ].filter(([, list]) => list.length);
}

// The picker: a checkbox per known grant, free entry for the rest.
// `onSave(grants)` stores them (it throws with the server's reason);
// `onCancel()` closes it.
export function grantPicker({ id, current, choices, onSave, onCancel }) {
  const known = new Set(choices.flatMap(([, list]) => list));
  const boxes = [];
  const groups = choices.map(([title, list]) => h("fieldset", { class: "grant-group" }, h("legend", {}, title),
    list.map((g) => {
      const box = h("input", { type: "checkbox", value: g, id: `${id}-${g.replace(/[^A-Za-z0-9_-]/g, "_")}` });
      box.checked = current.includes(g);
      boxes.push(box);
      return h("div", { class: "grant-choice" }, box, h("label", { for: box.id }, h("code", {}, g), " — ", describeGrant(g)));
    })));
  const other = h("input", { type: "text", id: `${id}-other`, value: current.filter((g) => !known.has(g)).join(" "), "aria-describedby": `${id}-help` });
  const err = h("p", { class: "error", role: "alert", hidden: true });
  const form = h("form", { class: "grant-form", onsubmit: async (e) => {
    e.preventDefault();
    const grants = [...boxes.filter((b) => b.checked).map((b) => b.value), ...other.value.split(/[\s,]+/).filter(Boolean)];
    try {
      await onSave([...new Set(grants)]);
    } catch (ex) {
      err.hidden = false;
      err.textContent = ex.message;
      other.setAttribute("aria-invalid", "true");
    }
  } },
    ...groups,
    h("label", { for: other.id }, "Other grants (space separated)"), other,
    h("p", { id: `${id}-help`, class: "muted" }, "For example: net:api.example.com secret:NAME db:read:orders"),
    h("button", { type: "submit", class: "primary" }, "Save grants"),
    h("button", { type: "button", onclick: onCancel }, "Cancel"), err);
  return { form, first: boxes[0] || other };
}
