// The quire binary the MCP tests and the benchmark start.
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";

const repo = resolve(new URL("../..", import.meta.url).pathname);

export function binary() {
  if (process.env.QUIRE_BIN) return process.env.QUIRE_BIN;
  for (const p of ["target/release/quire", "target/debug/quire"]) {
    if (existsSync(join(repo, p))) return join(repo, p);
  }
  throw new Error("no quire binary: run `cargo build --release` first (or set QUIRE_BIN)");
}
