// Starts `quire serve` on a fresh data dir and a headless Debian Chromium
// driven by playwright-core (never a downloaded browser).
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, existsSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { chromium } from "playwright-core";

const repo = resolve(new URL("../../..", import.meta.url).pathname);
export const shots = join(repo, "docs", "screenshots");

function binary() {
  if (process.env.QUIRE_BIN) return process.env.QUIRE_BIN;
  for (const p of ["target/release/quire", "target/debug/quire"]) {
    if (existsSync(join(repo, p))) return join(repo, p);
  }
  throw new Error("no quire binary: run `cargo build --release` first (or set QUIRE_BIN)");
}

export async function startServer() {
  const data = mkdtempSync(join(tmpdir(), "quire-e2e-"));
  const token = "e2e-admin-token-" + Math.random().toString(36).slice(2);
  const proc = spawn(binary(), ["serve", "--addr", "127.0.0.1:0", "--data", data, "--shutdown-grace-s", "1"], {
    env: { ...process.env, QUIRE_ADMIN_TOKEN: token },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let log = "";
  const url = await new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`serve did not start:\n${log}`)), 30000);
    proc.stderr.on("data", (d) => {
      log += d;
      const m = /serving on (http:\/\/[0-9.:]+\/)/.exec(log);
      if (m) { clearTimeout(timer); ok(m[1]); }
    });
    proc.on("exit", (c) => fail(new Error(`serve exited with ${c}:\n${log}`)));
  });
  return {
    url, token, data,
    async stop() {
      proc.kill("SIGTERM");
      await new Promise((r) => proc.once("exit", r));
      rmSync(data, { recursive: true, force: true });
    },
  };
}

export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
  });
}

export async function signIn(page, srv) {
  await page.goto(srv.url);
  await page.getByLabel("Access token").fill(srv.token);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("navigation").waitFor();
}

export function shot(page, name) {
  mkdirSync(shots, { recursive: true });
  return page.screenshot({ path: join(shots, `${name}.png`), fullPage: false });
}
