// Measures V8 isolates from isolated-vm in this Node, to choose the V8
// route of issue 16 by numbers (a benchmark, not a test). Prints JSON.
//
//   (cd engine/runners/node && npm ci --ignore-scripts && npm run measure)
//
// What it measures, each over RUNS runs after a warm-up:
// - snapshot: a startup snapshot holding quire's real prelude
//   (engine/src/prelude.js and prelude_extras.js) already run, its natives
//   late-bound through trampolines; its size and build time.
// - fresh_from_snapshot: a new isolate from it, a context, the run's
//   natives bound, a block that calls console.log: time to first output.
// - fresh_no_snapshot: the same, compiling and running the prelude in the
//   new isolate each time.
// - node_vm_context: Node's own vm.createContext + the same prelude and
//   block, in the same process (the peer the issue names).
// - memory per idle isolate (from snapshot, with a context), the host
//   process's RSS, a CPU kernel in an isolate against Node's main
//   isolate, a timeout's overshoot, and a memory bomb under memoryLimit.

import ivm from "isolated-vm";
import vm from "node:vm";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";
import { performance } from "node:perf_hooks";

const here = dirname(fileURLToPath(import.meta.url));
const core = readFileSync(join(here, "../../src/prelude.js"), "utf8");
// As engine/src/lib.rs's PRELUDE_EXTRAS: the single-byte tables and Blob first.
const extras = "const SINGLE_BYTE = " + readFileSync(join(here, "../../src/single_byte.json"), "utf8") + ";\n" +
  readFileSync(join(here, "../../src/prelude_blob.js"), "utf8") +
  readFileSync(join(here, "../../src/prelude_extras.js"), "utf8");
// As engine/src/lib.rs's PRELUDE_STREAMS.
const streams = "// quire:streams\nexport function init() {\n  const exports = {};\n  const module = { exports };\n" +
  readFileSync(join(here, "../../src/vendor/web-streams-polyfill.js"), "utf8") + "\n  return exports;\n}\n";
const RUNS = Number(process.env.RUNS ?? 500);

// The natives the prelude calls (see engine/src/natives.rs), each a
// trampoline to a slot the run fills: the snapshot holds the prelude run
// once; a run binds its own natives.
const NATIVES = ["log", "displayText", "displayJson", "timerArm", "timerClear", "now",
  "urlParse", "urlSet", "utf8Encode", "utf8Decode", "btoa", "atob", "bytesToBase64",
  "base64ToBytes", "randomBytes", "randomUUID", "hostCall"];

const exportInit = "\nexport function init(";
const extrasFn = extras.replace(exportInit, "\nreturn function init(");
const streamsFn = streams.replace(exportInit, "\nreturn function init(");
const setup = `
const __slots = {};
let __fire = null;
globalThis.__quire_native = {
  ${NATIVES.map((n) => `${n}: (...a) => __slots.${n}(...a)`).join(",\n  ")},
  registerHooks(fire) { __fire = fire; },
  loadExtras: () => (function () { "use strict"; ${extrasFn}\n})(),
  loadStreams: () => (function () { "use strict"; ${streamsFn}\n})(),
};
(function () { "use strict"; ${core}\n})();
globalThis.__quire_bind = (bind) => { delete globalThis.__quire_bind; bind(__slots); };
`;

// Run console's formatting once while the snapshot is made, so its
// functions are compiled in the snapshot rather than on a run's first
// call (the slots are emptied again after).
const warm = `
__quire_bind((s) => {
  s.log = () => {};
  console.log("warm", { a: [1, "x"], b: null }, 1.5, [new Map([[1, 2]])]);
  for (const k of Object.keys(s)) delete s[k];
  globalThis.__quire_bind = (bind) => { delete globalThis.__quire_bind; bind(s); };
});
`;

function stats(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  return { p50_ms: +q(0.5).toFixed(3), p99_ms: +q(0.99).toFixed(3), max_ms: +s[s.length - 1].toFixed(3) };
}

// Bind a run's natives into `context`: log collects into `out`.
function bind(context, out) {
  const log = new ivm.Callback((level, text) => { out.push([level, text]); });
  const now = new ivm.Callback(() => performance.now());
  context.evalClosureSync(
    `__quire_bind((s) => { s.log = $0; s.now = $1; for (const k of ${JSON.stringify(NATIVES)}) if (!s[k]) s[k] = () => { throw new Error(k + " not bound"); }; });`,
    [log, now],
  );
}

const BLOCK = `console.log("hello", { n: 1 });`;

// Bind a run's natives into `ctx`, run BLOCK, check its one line of
// output and dispose the isolate; ms from `t` to the output.
function runBlock(iso, ctx, t) {
  const out = [];
  bind(ctx, out);
  ctx.evalSync(BLOCK);
  const first = performance.now() - t;
  if (out.length !== 1 || !String(out[0][1]).startsWith("hello")) throw new Error("no output: " + JSON.stringify(out));
  ctx.release();
  iso.dispose();
  return first;
}

function freshFromSnapshot(snapshot) {
  const t = performance.now();
  const iso = new ivm.Isolate({ snapshot, memoryLimit: 64 });
  return runBlock(iso, iso.createContextSync(), t);
}

function freshNoSnapshot() {
  const t = performance.now();
  const iso = new ivm.Isolate({ memoryLimit: 64 });
  const ctx = iso.createContextSync();
  ctx.evalSync(setup);
  return runBlock(iso, ctx, t);
}

function nodeVmContext() {
  const t = performance.now();
  const out = [];
  const ctx = vm.createContext({});
  vm.runInContext(setup, ctx);
  ctx.__quire_bind((s) => {
    s.log = (level, text) => out.push([level, text]);
    s.now = () => performance.now();
  });
  vm.runInContext(BLOCK, ctx);
  const first = performance.now() - t;
  if (out.length !== 1) throw new Error("no output");
  return first;
}

function measure(f) {
  for (let i = 0; i < 20; i++) f();
  const xs = [];
  for (let i = 0; i < RUNS; i++) xs.push(f());
  const total = xs.reduce((a, b) => a + b, 0);
  return { ...stats(xs), runs: RUNS, runs_per_s: +(RUNS / (total / 1000)).toFixed(0) };
}

// Where a fresh run's time goes, p50 of each phase.
function phases(snapshot) {
  const cols = { isolate: [], context: [], bind: [], block: [], dispose: [] };
  for (let i = 0; i < RUNS; i++) {
    let t = performance.now();
    const lap = (k) => { const n = performance.now(); cols[k].push(n - t); t = n; };
    const iso = new ivm.Isolate({ snapshot, memoryLimit: 64 });
    lap("isolate");
    const ctx = iso.createContextSync();
    lap("context");
    const out = [];
    bind(ctx, out);
    lap("bind");
    ctx.evalSync(BLOCK);
    lap("block");
    ctx.release();
    iso.dispose();
    lap("dispose");
  }
  return Object.fromEntries(Object.entries(cols).map(([k, v]) => [k + "_p50_ms", stats(v).p50_ms]));
}

// A pool keeps isolates with a context ready (made while idle): a run
// costs binding its natives and running; the isolate is then disposed
// (never reused) and the pool makes another off the run's path.
function warmPool(snapshot) {
  const ready = [];
  const refill = () => {
    while (ready.length < 4) {
      const iso = new ivm.Isolate({ snapshot, memoryLimit: 64 });
      ready.push([iso, iso.createContextSync()]);
    }
  };
  refill();
  return () => {
    const [iso, ctx] = ready.pop();
    const first = runBlock(iso, ctx, performance.now());
    refill();
    return first;
  };
}

const KERNEL = `(() => { let h = 0; for (let i = 0; i < 3e7; i++) h = (h * 31 + i) | 0; return h; })()`;

function kernels(snapshot) {
  const iso = new ivm.Isolate({ snapshot, memoryLimit: 64 });
  const ctx = iso.createContextSync();
  const t0 = performance.now();
  const a = ctx.evalSync(KERNEL);
  const inIsolate = performance.now() - t0;
  const t1 = performance.now();
  const b = vm.runInThisContext(KERNEL);
  const inNode = performance.now() - t1;
  if (a !== b) throw new Error("kernels differ");
  const cpu = Number(iso.cpuTime) / 1e6;
  iso.dispose();
  return { isolate_ms: +inIsolate.toFixed(1), node_ms: +inNode.toFixed(1), isolate_cpu_ms: +cpu.toFixed(1) };
}

function idleMemory(snapshot, n) {
  global.gc?.();
  const before = process.memoryUsage().rss;
  const isos = [];
  let heap = 0;
  for (let i = 0; i < n; i++) {
    const iso = new ivm.Isolate({ snapshot, memoryLimit: 64 });
    const ctx = iso.createContextSync();
    bind(ctx, []);
    isos.push([iso, ctx]);
  }
  for (const [iso] of isos) {
    const h = iso.getHeapStatisticsSync();
    heap += h.total_heap_size + h.externally_allocated_size;
  }
  const after = process.memoryUsage().rss;
  for (const [iso] of isos) iso.dispose();
  return {
    isolates: n,
    heap_mib_per_isolate: +(heap / n / 2 ** 20).toFixed(2),
    rss_mib_per_isolate: +((after - before) / n / 2 ** 20).toFixed(2),
    host_rss_mib: +(after / 2 ** 20).toFixed(1),
  };
}

function timeout(snapshot) {
  const iso = new ivm.Isolate({ snapshot, memoryLimit: 64 });
  const ctx = iso.createContextSync();
  const t = performance.now();
  let err = "";
  try {
    ctx.evalSync("for (;;) {}", { timeout: 100 });
  } catch (e) {
    err = String(e.message);
  }
  const took = performance.now() - t;
  const reusable = ctx.evalSync("1 + 1") === 2;
  iso.dispose();
  return { limit_ms: 100, returned_after_ms: +took.toFixed(1), error: err, isolate_reusable: reusable };
}

function bomb(snapshot) {
  const iso = new ivm.Isolate({ snapshot, memoryLimit: 32 });
  const ctx = iso.createContextSync();
  let err = "";
  try {
    ctx.evalSync("const a = []; for (;;) a.push(new Array(1e5).fill(1.5));");
  } catch (e) {
    err = String(e.message);
  }
  const disposed = iso.isDisposed;
  if (!disposed) iso.dispose();
  // The host goes on: a new isolate works.
  const ok = freshFromSnapshot(snapshot) > 0;
  return { memory_limit_mib: 32, error: err, isolate_disposed: disposed, host_survived: ok };
}

const t = performance.now();
const snapshot = ivm.Isolate.createSnapshot(process.env.NO_WARM
  ? [{ code: setup, filename: "quire:prelude" }]
  : [{ code: setup, filename: "quire:prelude" }, { code: warm, filename: "quire:warm" }]);
const snapshotMs = performance.now() - t;

const result = {
  node: process.version,
  v8: process.versions.v8,
  isolated_vm: JSON.parse(readFileSync(join(here, "node_modules/isolated-vm/package.json"), "utf8")).version,
  prelude_bytes: core.length + extras.length + streams.length,
  snapshot: { bytes: snapshot.copy().byteLength, build_ms: +snapshotMs.toFixed(1) },
  phases_from_snapshot: phases(snapshot),
  from_warm_pool: measure(warmPool(snapshot)),
  fresh_from_snapshot: measure(() => freshFromSnapshot(snapshot)),
  fresh_no_snapshot: measure(freshNoSnapshot),
  node_vm_context: measure(nodeVmContext),
  cpu_kernel: kernels(snapshot),
  idle_memory: idleMemory(snapshot, 100),
  timeout: timeout(snapshot),
  memory_bomb: bomb(snapshot),
};
console.log(JSON.stringify(result, null, 2));
