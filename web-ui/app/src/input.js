// A code block's input panel: what its next run gets as `ctx.input`.
// A block that declares a JSON Schema (`export const input = {…}`, read by
// the server without running the block) gets a form built from it; any
// other block gets a JSON box. Either way the input is checked before a
// run, and a bad field is named and marked, never sent.
import { h, clear } from "./dom.js";

let nextId = 1;

// The properties the form can build a control for; anything else is a
// JSON field.
function kindOf(prop) {
  if (Array.isArray(prop?.enum) && prop.enum.every((v) => typeof v === "string")) return "enum";
  if (prop?.type === "string") return "string";
  if (prop?.type === "integer" || prop?.type === "number") return prop.type;
  if (prop?.type === "boolean") return "boolean";
  return "json";
}

// A schema the form can show: an object schema with properties.
function formSchema(schema) {
  return schema && typeof schema === "object" && schema.type === "object" && schema.properties
    && typeof schema.properties === "object" && Object.keys(schema.properties).length > 0 ? schema : null;
}

export class InputPanel {
  constructor(name) {
    this.name = name;
    this.id = `input-${nextId++}`;
    this.el = h("details", { class: "input-panel" });
    this.schema = null;
    this.fields = [];
    this.render(null);
  }

  // Show `schema` (the block's declared input schema, or null), keeping
  // what was typed into fields that are still there.
  render(schema) {
    const form = formSchema(schema);
    const before = this.typed();
    this.schema = form;
    this.fields = [];
    this.err = h("p", { class: "error", role: "alert", hidden: true });
    const body = [];
    if (form) {
      const required = new Set(Array.isArray(form.required) ? form.required : []);
      // Required fields first (the server's JSON keeps no key order).
      const keys = Object.keys(form.properties);
      keys.sort((a, b) => Number(required.has(b)) - Number(required.has(a)));
      for (const key of keys) {
        const prop = form.properties[key];
        body.push(this.field(key, prop || {}, required.has(key), before[key]));
      }
      if (required.size) this.el.open = true;
    } else {
      const id = `${this.id}-json`;
      const area = h("textarea", { id, class: "input-json", rows: "3", spellcheck: "false", placeholder: "null", "aria-describedby": `${id}-help` });
      area.value = before.$json ?? "";
      this.fields.push({ key: "$json", kind: "raw", el: area });
      body.push(h("label", { for: id }, "Input as JSON"), area,
        h("p", { id: `${id}-help`, class: "muted" }, "The block reads it as ctx.input. Empty means null. Declare export const input = { type: \"object\", properties: {…} } in the block for a form."));
    }
    clear(this.el).append(h("summary", {}, form ? "Input (form from the block's schema)" : "Input (ctx.input)"), ...body, this.err);
  }

  field(key, prop, required, typed) {
    const id = `${this.id}-${key.replace(/[^A-Za-z0-9_-]/g, "_")}`;
    const kind = kindOf(prop);
    const title = typeof prop.title === "string" ? prop.title : key;
    const hint = typeof prop.description === "string" ? prop.description : "";
    const attrs = { id, "aria-describedby": hint ? `${id}-help` : undefined, "aria-required": required ? "true" : undefined };
    let el;
    if (kind === "enum") {
      el = h("select", attrs, required ? null : h("option", { value: "" }, "(none)"), prop.enum.map((v) => h("option", { value: v }, v)));
    } else if (kind === "boolean") {
      el = h("input", { ...attrs, type: "checkbox" });
    } else if (kind === "integer" || kind === "number") {
      el = h("input", { ...attrs, type: "number", step: kind === "integer" ? "1" : "any", min: prop.minimum, max: prop.maximum });
    } else if (kind === "string") {
      el = h("input", { ...attrs, type: "text" });
    } else {
      el = h("textarea", { ...attrs, rows: "2", spellcheck: "false", placeholder: "JSON" });
    }
    const start = typed !== undefined ? typed : prop.default !== undefined ? prop.default : undefined;
    if (start !== undefined) {
      if (kind === "boolean") el.checked = Boolean(start);
      else if (kind === "json") el.value = typeof start === "string" && typed !== undefined ? start : JSON.stringify(start);
      else el.value = String(start);
    }
    this.fields.push({ key, kind, el, prop, required, title });
    return h("div", { class: "input-field" },
      kind === "boolean" ? h("label", { for: id, class: "check" }, el, title) : h("label", { for: id }, title, required ? " (required)" : ""),
      kind === "boolean" ? null : el,
      hint ? h("p", { id: `${id}-help`, class: "muted" }, hint) : null);
  }

  // What the fields hold now, as typed (to keep across a re-render).
  typed() {
    const out = {};
    for (const f of this.fields || []) out[f.key] = f.kind === "boolean" ? f.el.checked : f.el.value;
    return out;
  }

  fail(f, message) {
    for (const g of this.fields) g.el.removeAttribute("aria-invalid");
    if (f) f.el.setAttribute("aria-invalid", "true");
    this.err.hidden = false;
    this.err.textContent = message;
    this.el.open = true;
    f?.el.focus();
    return { ok: false, message };
  }

  // The input for a run: { ok: true, value } or { ok: false, message }
  // (the bad field is marked and focused).
  value() {
    this.err.hidden = true;
    for (const g of this.fields) g.el.removeAttribute("aria-invalid");
    if (!this.schema) {
      const f = this.fields[0];
      const text = f.el.value.trim();
      if (text === "") return { ok: true, value: null };
      try {
        return { ok: true, value: JSON.parse(text) };
      } catch (e) {
        return this.fail(f, `The input is not valid JSON: ${e.message}`);
      }
    }
    const value = {};
    for (const f of this.fields) {
      const raw = f.kind === "boolean" ? f.el.checked : f.el.value.trim();
      if (f.kind === "boolean") {
        value[f.key] = raw;
        continue;
      }
      if (raw === "") {
        if (f.required) return this.fail(f, `"${f.title}" is required.`);
        continue;
      }
      if (f.kind === "integer" || f.kind === "number") {
        const n = Number(raw);
        if (!Number.isFinite(n)) return this.fail(f, `"${f.title}" must be a number.`);
        if (f.kind === "integer" && !Number.isInteger(n)) return this.fail(f, `"${f.title}" must be a whole number.`);
        if (typeof f.prop.minimum === "number" && n < f.prop.minimum) return this.fail(f, `"${f.title}" must be at least ${f.prop.minimum}.`);
        if (typeof f.prop.maximum === "number" && n > f.prop.maximum) return this.fail(f, `"${f.title}" must be at most ${f.prop.maximum}.`);
        value[f.key] = n;
      } else if (f.kind === "json") {
        try {
          value[f.key] = JSON.parse(raw);
        } catch (e) {
          return this.fail(f, `"${f.title}" is not valid JSON: ${e.message}`);
        }
      } else {
        if (f.kind === "enum" && !f.prop.enum.includes(raw)) return this.fail(f, `"${f.title}" must be one of ${f.prop.enum.join(", ")}.`);
        value[f.key] = raw;
      }
    }
    return { ok: true, value };
  }
}

// In plain words, what a block with `grants` changes or reaches beyond
// computing: shown beside Run, before anyone runs it.
export function effects(grants) {
  const out = [];
  for (const g of grants || []) {
    const [kind, a, ...rest] = g.split(":");
    const b = rest.join(":");
    if (g === "doc:write") out.push("changes documents");
    else if (g === "kv:write") out.push("writes the key-value store");
    else if (kind === "db" && a === "write") out.push(b === "*" ? "writes rows of every collection" : `writes rows of ${b}`);
    else if (kind === "net") out.push(`calls ${[a, b].filter(Boolean).join(":")}`);
  }
  return out;
}
