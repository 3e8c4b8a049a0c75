// Runs WPT testharness.js tests (`.any.js`) in a plain JavaScript global,
// the way they run in a shell: WPT's own `resources/testharness.js`, the
// test's `// META: script=` files, then the test, as one classic script.
// The same program runs in a quire block (both engines, through indirect
// eval: a block is a module) and in Node, the reference, so the counts
// compare like for like (tests/suite/wpt.rs).
//
//   node anyjs.mjs compose FILE   prints the program (a classic script)
//   node anyjs.mjs run FILE       runs it here and prints its results
//
// The program sets `globalThis.__wpt_result` (see reporter.js). `fetch` of a
// vendored JSON resource (atob's base64.json, fetch's data.json) is answered
// from the files here, as a Response; nothing goes to the network.
import { readFileSync } from "node:fs";
import { dirname, join, normalize, relative } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = dirname(fileURLToPath(import.meta.url));
const read = (p) => readFileSync(join(ROOT, p), "utf8");

// `// META: script=` paths: absolute from the WPT root, or relative to the test.
function scripts(file, source) {
  const out = [];
  for (const m of source.matchAll(/^\/\/ META: script=(\S+)\s*$/gm)) {
    const p = m[1].startsWith("/") ? m[1].slice(1) : join(dirname(file), m[1]);
    out.push(normalize(p));
  }
  return out;
}

// The JSON files a test fetches (relative paths in `fetch("...")`).
function resources(file, source) {
  const out = {};
  for (const m of source.matchAll(/fetch\("([^"]+\.json)"\)/g)) {
    out[m[1]] = JSON.parse(read(relative(ROOT, join(ROOT, dirname(file), m[1]))));
  }
  return out;
}

export function compose(file) {
  const source = read(file);
  const parts = [
    "globalThis.self = globalThis;",
    // No `?variant`: a test split into variants runs all of its subtests.
    "globalThis.location = { search: '', href: 'about:blank' };",
    "globalThis.GLOBAL = { isWindow: () => false, isWorker: () => false, isShadowRealm: () => false };",
    `globalThis.__wpt_resources = ${JSON.stringify(Object.assign({}, ...[file, ...scripts(file, source)].map((f) => resources(f, read(f)))))};`,
    // A vendored JSON resource comes back as a Response (the engine's own).
    "globalThis.fetch = (path) => path in globalThis.__wpt_resources ? Promise.resolve(new Response(JSON.stringify(globalThis.__wpt_resources[path]), { headers: { 'content-type': 'application/json' } })) : Promise.reject(new TypeError('not a vendored resource: ' + path));",
    read("resources/testharness.js"),
    read("reporter.js"),
    ...scripts(file, source).map(read),
    source,
  ];
  return parts.join("\n;\n");
}

if (process.argv[2] === "compose") {
  process.stdout.write(compose(process.argv[3]), () => process.exit(0));
} else if (process.argv[2] === "run") {
  (0, eval)(compose(process.argv[3]));
  // Written in full before exiting (a pipe takes 64 KiB at a time).
  const print = (r) => process.stdout.write(JSON.stringify(r) + "\n", () => process.exit(0));
  const timer = setTimeout(() => print({ status: -1, message: "timed out", results: [] }), 60000);
  globalThis.__wpt_result.then((r) => {
    clearTimeout(timer);
    print(r);
  });
}
