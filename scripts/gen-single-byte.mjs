// Generates engine/src/single_byte.json: the Encoding Standard's
// single-byte encodings (their labels, and the code point of each byte
// 0x80-0xFF, 0 where the index has none) for TextDecoder in the prelude.
// Labels come from the WHATWG's encodings.json (vendored by WPT in
// tests/wpt/encoding/resources/encodings.js); the indexes from the
// WHATWG's index files as the `text-encoding` npm package (0.7.0, the
// Encoding Standard's polyfill, Unlicense/Apache-2.0) ships them:
//   (cd /tmp && npm pack text-encoding@0.7.0 && tar -xzf text-encoding-0.7.0.tgz)
//   node scripts/gen-single-byte.mjs /tmp/package/lib/encoding-indexes.js > engine/src/single_byte.json
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const src = readFileSync(join(root, "tests/wpt/encoding/resources/encodings.js"), "utf8");
const table = new Function(src + "\nreturn encodings_table;")();
// The file sets module.exports to the object holding "encoding-indexes".
const mod = { exports: {} };
new Function("module", readFileSync(process.argv[2], "utf8"))(mod);
const indexes = mod.exports["encoding-indexes"];
const section = table.find((s) => s.heading === "Legacy single-byte encodings");
const out = { labels: {}, indexes: {} };
for (const { name, labels } of section.encodings) {
  const key = name.toLowerCase();
  // ISO-8859-8-I decodes with ISO-8859-8's index (the standard says so).
  const index = indexes[key === "iso-8859-8-i" ? "iso-8859-8" : key];
  if (!Array.isArray(index) || index.length !== 128) throw new Error(`no index for ${name}`);
  out.indexes[key] = index.map((cp) => cp ?? 0);
  for (const l of labels) out.labels[l] = key;
}
process.stdout.write(JSON.stringify(out) + "\n");
