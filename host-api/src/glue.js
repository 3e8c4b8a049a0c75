// The module blocks import as "quire": doc, db, kv, secrets. Each function
// sends one host call (op name + JSON arguments) and returns its promise;
// every check happens in Rust. `__quire_host` is captured at import time,
// before any block code runs.
const call = globalThis.__quire_host;
const freeze = Object.freeze;

export const doc = freeze({
  list: () => call("doc.list", []),
  get: (id) => call("doc.get", [id]),
  update: (id, patch) => call("doc.update", [id, patch]),
});

export const db = freeze({
  query: (collection, options) => call("db.query", [collection, options === undefined ? {} : options]),
  insert: (collection, row) => call("db.insert", [collection, row]),
  update: (collection, id, patch) => call("db.update", [collection, id, patch]),
  delete: (collection, id) => call("db.delete", [collection, id]),
});

export const kv = freeze({
  get: (key) => call("kv.get", [key]),
  set: (key, value) => call("kv.set", [key, value]),
  delete: (key) => call("kv.delete", [key]),
});

export const secrets = freeze({
  get: (name) => call("secrets.get", [name]),
});

export const results = freeze({
  get: (block) => call("results.get", [block]),
});

export default freeze({ doc, db, kv, secrets, results });
