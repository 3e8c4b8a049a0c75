// Builds the browser app into ../assets/ (committed, and embedded in the
// quire binary, so running the server never needs npm).
//   npm ci && npm run build
import { build } from "esbuild";
import { copyFileSync, mkdirSync } from "node:fs";

const out = new URL("../assets/", import.meta.url).pathname;
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
await build({ entryPoints: { app: "src/style.css" }, bundle: true, minify: true, outdir: out, logLevel: "info" });
copyFileSync("src/index.html", `${out}index.html`);
