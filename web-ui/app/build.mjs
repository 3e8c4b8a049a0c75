// Builds the browser app into ../assets/ (committed, and embedded in the
// quire binary, so running the server never needs npm).
//   npm ci && npm run build
import { build } from "esbuild";
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";

const out = new URL("../assets/", import.meta.url).pathname;

// The host API's signatures for the editor's completion, read from the
// module blocks really import (host-api/src/glue.js), so they cannot
// drift from it.
const glue = readFileSync(new URL("../../host-api/src/glue.js", import.meta.url), "utf8");
const hostApi = {};
for (const [, ns, body] of glue.matchAll(/export const (\w+) = freeze\(\{([\s\S]*?)\}\);/g)) {
  hostApi[ns] = [...body.matchAll(/^\s*(\w+): \(([^)]*)\) => call\("([\w.]+)"/gm)].map(([, name, args, op]) => ({ name, args, op }));
}
for (const ns of ["doc", "db", "kv", "secrets"]) {
  if (!hostApi[ns]?.length) throw new Error(`host-api/src/glue.js: no functions found for ${ns}; update build.mjs`);
}
writeFileSync(new URL("src/hostapi.gen.json", import.meta.url), JSON.stringify(hostApi, null, 1) + "\n");
mkdirSync(out, { recursive: true });
await build({
  entryPoints: { app: "src/main.js" },
  bundle: true,
  minify: true,
  format: "esm",
  target: "es2022",
  legalComments: "none",
  outdir: out,
  logLevel: "info",
});
// The chart frame (Vega-Lite through vega-embed), its own bundle: only a
// sandboxed chart iframe loads it.
await build({
  entryPoints: { chart: "src/chart/chart.js" },
  bundle: true,
  minify: true,
  // A classic script: the sandboxed frame has an opaque origin, and a
  // module script would be fetched with CORS.
  format: "iife",
  target: "es2022",
  legalComments: "none",
  outdir: out,
  logLevel: "info",
});
await build({ entryPoints: { chart: "src/chart/chart.css" }, bundle: true, minify: true, outdir: out, logLevel: "info" });
copyFileSync("src/chart/chart.html", `${out}chart.html`);
await build({ entryPoints: { app: "src/style.css" }, bundle: true, minify: true, outdir: out, logLevel: "info" });
copyFileSync("src/index.html", `${out}index.html`);
