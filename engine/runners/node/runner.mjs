// quire's V8 isolate runner (issue 16): one Node process, sandboxed by
// `quire __v8-runner` before Node starts, serving many runs of one
// workspace, each in a fresh V8 isolate (isolated-vm) made from a startup
// snapshot that already holds quire's prelude (`glue.js`). An isolate
// serves one run and is disposed; a few ready ones are kept so a run
// never waits for one to be made.
//
// It speaks the runner protocol of `engine/src/runner/protocol.rs` on
// stdin/stdout: frames of a 4-byte big-endian length, a version byte (1)
// and a JSON message. The server sends the prelude first; `ready` follows
// once the snapshot and the pool exist.
//
// Limits are enforced here, from outside the isolate, each ending only
// its own run: CPU time (the isolate's own clock, `cpuTime`, polled every
// 5 ms; the isolate is then disposed, which terminates it), wall time,
// memory (isolated-vm's `memoryLimit`: heap plus external buffers; at the
// limit the isolate is disposed and the process goes on), and "can never
// settle" (nothing pending for three quiet 20 ms turns). The server checks
// output, events and host calls again, and words every limit.

import ivm from "isolated-vm";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";
import { performance } from "node:perf_hooks";
import { randomFillSync, randomUUID } from "node:crypto";

const here = dirname(fileURLToPath(import.meta.url));
const GLUE = readFileSync(join(here, "glue.js"), "utf8");
const MIB = 1024 * 1024;
const WARM = 2; // ready isolates kept
const POLL_MS = 5;
// The shortest gap between two live meters of a run (the server's
// `METER_INTERVAL_MS`).
const METER_MS = 100;
const QUIET_MS = 20;
const SYNC_COST_MS = 0.05;
const HEAP_WAIT_MS = 5;
// A run that ended well left its isolate idle, so its heap is read for
// sure (the end-of-run memory check needs it), only bounded in case.
const HEAP_WAIT_OK_MS = 1000;
// Largest frame this runner sends; the server refuses frames over 8 MiB.
const MAX_FRAME_BYTES = 7 * MIB;
const LEVELS = ["log", "info", "warn", "error", "debug"];
const MIMES = ["application/json", "text/plain", "text/html", "text/csv", "text/markdown", "image/svg+xml", "image/png", "image/jpeg", "application/vnd.vegalite.v5+json", "application/vnd.quire.progress+json"];

// ------------------------------------------------------------ framing
function send(json) {
  const body = Buffer.from(json, "utf8");
  const head = Buffer.alloc(5);
  head.writeUInt32BE(body.length + 1, 0);
  head[4] = 1;
  process.stdout.write(Buffer.concat([head, body]));
}
const q = (s) => JSON.stringify(String(s));

let inbuf = Buffer.alloc(0);
function onData(chunk) {
  inbuf = inbuf.length ? Buffer.concat([inbuf, chunk]) : chunk;
  for (;;) {
    if (inbuf.length < 4) return;
    const n = inbuf.readUInt32BE(0);
    if (n === 0 || n > 64 * MIB) die("bad frame length " + n);
    if (inbuf.length < 4 + n) return;
    const body = inbuf.subarray(4, 4 + n);
    inbuf = inbuf.subarray(4 + n);
    if (body[0] !== 1) die("protocol version " + body[0]);
    let msg;
    try {
      msg = JSON.parse(body.subarray(1).toString("utf8"));
    } catch (e) {
      die("malformed frame: " + e.message);
    }
    handle(msg);
  }
}

function die(why) {
  process.stderr.write("quire isolate runner: " + why + "\n");
  process.exit(70);
}

// ------------------------------------------------------------ isolates
let snapshot = null;
const ready = []; // { iso, ctx, api, memMb }

function makeSnapshot(core, extras, streams) {
  const code = GLUE + "(" + JSON.stringify(core) + ", " + JSON.stringify(extras) + ", " + JSON.stringify(streams) + ");\n";
  return ivm.Isolate.createSnapshot([
    { code, filename: "quire:glue" },
    { code: "__quire_warm();", filename: "quire:warm" },
  ]);
}

// The glue's entry points a run calls (see `__quire_bind` in glue.js).
const ENTRIES = ["start", "fire", "reply", "unhandled"];

// An isolate from the snapshot with a context and the host's callbacks
// bound, made on this thread (a run that found no ready one waits).
function makeIsolate(memMb) {
  const e = newIsolate(memMb);
  e.ctx = e.iso.createContextSync();
  const api = e.ctx.evalClosureSync(e.bind, e.slots, { result: { reference: true } });
  for (const k of ENTRIES) e[k] = api.getSync(k, { reference: true });
  return e;
}

// The same with the context made and bound on isolated-vm's threads:
// only the isolate itself is made on this one (isolated-vm has no other
// way), so refilling the pool leaves this thread to the runs.
async function makeIsolateAsync(memMb) {
  const e = newIsolate(memMb);
  e.ctx = await e.iso.createContext();
  const api = await e.ctx.evalClosure(e.bind, e.slots, { result: { reference: true } });
  for (const k of ENTRIES) e[k] = await api.get(k, { reference: true });
  return e;
}

// An isolate from the snapshot, and the host's callbacks for its glue
// (`bind`, a closure over `slots`). The callbacks act on whichever run
// holds the isolate (`e.run`).
function newIsolate(memMb) {
  const e = { iso: null, ctx: null, memMb, run: null, bind: "", slots: [] };
  // V8 lost control of this isolate (an out-of-memory V8 could not turn
  // into a termination, e.g. one huge string flattened at once):
  // isolated-vm parks its thread for good. The run that did it ends with
  // memory_limit; the other isolates, each on its own thread, go on, so
  // this process's other runs end as they would have. It makes no more
  // isolates, and the server sends it no more runs and retires it once
  // they have ended.
  const lost = () => {
    failing = true;
    send(JSON.stringify({ t: "failing", why: "V8 lost control of an isolate (out of its heap)" }));
    const r = e.run;
    if (r !== null && !r.over) {
      // Not `end`: this isolate cannot be asked for its heap or disposed.
      detach(r);
      send('{"t":"event","run":' + q(r.id) + ',"body":{"type":"error","kind":"memory_limit","message":"memory"}}');
      finished(r, { kind: "memory_limit" }, r.lastCpuMs, performance.now() - r.t0, 0);
    }
    process.stderr.write("quire isolate runner: V8 lost control of an isolate; no more runs\n");
  };
  e.iso = new ivm.Isolate({ snapshot, memoryLimit: memMb, onCatastrophicError: lost });
  const on = (f) => new ivm.Callback((...a) => {
    const r = e.run;
    if (r !== null && !r.over) f(r, ...a);
  }, { ignored: true });
  // A call the isolate waits on, run on this thread: its time (at least
  // SYNC_COST_MS a call) is the run's CPU time too, so a block cannot
  // spend this thread's time, or loop on cheap calls, past its CPU limit.
  const sync = (f) => new ivm.Callback((...a) => {
    const t = performance.now();
    try {
      return f(...a);
    } finally {
      const r = e.run;
      if (r !== null) r.syncNs += Math.max(performance.now() - t, SYNC_COST_MS) * 1e6;
    }
  });
  const slots = {
    emit: on(emit),
    done: on(done),
    arm: on(arm),
    clear: on(clearTimer),
    call: on(hostCall),
    now: sync(() => (e.run ? performance.now() - e.run.t0 : 0)),
    url: sync(urlFields),
    urlSet: sync((href, field, value) => {
      try {
        const u = new URL(href);
        u[field] = value;
        return fields(u);
      } catch {
        return null;
      }
    }),
    utf8Encode: sync((s) => new Uint8Array(Buffer.from(s, "utf8"))),
    utf8Decode: sync((bytes, fatal) => {
      try {
        // The prelude takes a BOM off (or keeps it, with ignoreBOM).
        return new TextDecoder("utf-8", { fatal, ignoreBOM: true }).decode(bytes);
      } catch {
        return null;
      }
    }),
    btoa: sync((s) => {
      try {
        return btoa(s);
      } catch {
        return null;
      }
    }),
    atob: sync((s) => {
      try {
        return atob(s);
      } catch {
        return null;
      }
    }),
    bytesToBase64: sync((b) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("base64")),
    base64ToBytes: sync((s) => new Uint8Array(Buffer.from(s, "base64"))),
    randomBytes: sync((n) => randomFillSync(new Uint8Array(n))),
    randomUUID: sync(() => randomUUID()),
  };
  const names = Object.keys(slots);
  e.bind = `return __quire_bind({ ${names.map((n, i) => `${n}: $${i}`).join(", ")} });`;
  e.slots = names.map((n) => slots[n]);
  return e;
}

function fields(u) {
  return [u.href, u.protocol, u.username, u.password, u.host, u.hostname, u.port, u.pathname, u.search, u.hash, u.origin];
}
function urlFields(input, base) {
  try {
    return fields(base === undefined ? new URL(input) : new URL(input, base));
  } catch {
    return null;
  }
}

function memOf(limits) {
  const bytes = Number(limits?.memory_bytes);
  return Number.isFinite(bytes) && bytes > 0 ? Math.max(8, Math.ceil(bytes / MIB)) : 64;
}

let defaultMem = 64;
function takeIsolate(memMb) {
  const i = ready.findIndex((x) => x.memMb === memMb);
  return i >= 0 ? ready.splice(i, 1)[0] : makeIsolate(memMb);
}
// Ready isolates are made when no run is starting or ending (making one
// blocks this thread ~1.5 ms, its context more on another), one at a time.
let refilling = false;
let failing = false;
function refill() {
  if (failing || refilling || ready.length >= WARM || snapshot === null) return;
  refilling = true;
  setTimeout(() => {
    makeIsolateAsync(defaultMem).then(
      (e) => {
        refilling = false;
        if (failing) e.iso.dispose();
        else ready.push(e);
        refill();
      },
      (err) => {
        // Tried again when a run ends.
        refilling = false;
        process.stderr.write("quire isolate runner: could not make an isolate: " + String(err?.message ?? err) + "\n");
      },
    );
  }, 1);
}

// ------------------------------------------------------------ runs
const runs = new Map();
let poller = null;

function emit(r, json) {
  let body;
  try {
    body = JSON.parse(json);
  } catch {
    return end(r, { kind: "internal", message: "the run's glue sent malformed output" });
  }
  const t = body?.type;
  const fits = t === "log"
    ? LEVELS.includes(body.level) && typeof body.text === "string"
    : t === "display" || t === "update_display"
    ? MIMES.includes(body.mime) && "data" in body && typeof body.display_id === "string"
    : t === "clear_display"
    ? typeof body.display_id === "string"
    : t === "result" && "value" in body;
  if (!fits) return end(r, { kind: "internal", message: "the run's glue sent a malformed event" });
  if (Buffer.byteLength(json) > MAX_FRAME_BYTES) return end(r, { kind: "output_limit", message: "bytes" });
  // The result waits for the end: a rejection nothing handled, found
  // when the task that sent it ends, fails the run instead.
  if (t === "result") r.result = json;
  else send('{"t":"event","run":' + q(r.id) + ',"body":' + json + "}");
}

function done(r, json) {
  let v = null;
  try {
    v = JSON.parse(json);
  } catch {
    // reported as internal below
  }
  const error = v?.error;
  if (v === null || (error !== undefined && (typeof error !== "object" || error === null || typeof error.kind !== "string"))) {
    return end(r, { kind: "internal", message: "the run's glue ended it with a malformed report" });
  }
  // A success waits for the task it came in to end (see `task`).
  if (!error && r.tasks > 0) r.ok = true;
  else end(r, error ?? null);
}

function arm(r, id, ms) {
  const old = r.timers.get(id);
  if (old !== undefined) clearTimeout(old);
  r.timers.set(id, setTimeout(() => {
    r.timers.delete(id);
    task(r, r.e.fire.apply(undefined, [id]));
  }, Math.max(0, Math.min(Number(ms) || 0, 2147483647))));
}

function clearTimer(r, id) {
  const h = r.timers.get(id);
  if (h !== undefined) {
    clearTimeout(h);
    r.timers.delete(id);
    poke(r);
  }
}

function hostCall(r, id, op, json) {
  try {
    JSON.parse(json);
  } catch {
    return end(r, { kind: "internal", message: "the run's glue sent a malformed host call" });
  }
  if (typeof op !== "string" || Buffer.byteLength(json) + op.length > MAX_FRAME_BYTES) {
    return end(r, { kind: "internal", message: "the run's glue sent a malformed host call" });
  }
  r.calls++;
  send('{"t":"call","run":' + q(r.id) + ',"call":' + (id >>> 0) + ',"op":' + q(op) + ',"args":' + json + "}");
}

// Each call into the isolate: while one is in flight the run is not idle;
// one that fails with a rejection nothing handled fails the run.
function task(r, p) {
  r.tasks++;
  p.then(
    () => {
      r.tasks--;
      if (r.ok && r.tasks === 0) end(r, null);
      else poke(r);
    },
    (err) => {
      r.tasks--;
      if (r.over) return;
      // The runner disposes an isolate only after ending its run, so one
      // disposed under a live run was disposed by isolated-vm: its memory
      // limit. (What the rejection says is the block's, and never read.)
      if (r.e.iso.isDisposed) return end(r, { kind: "memory_limit", message: "memory" });
      r.ok = false;
      r.result = null;
      // Described by the glue, once (a copy that fails to go back in ends
      // the run without its description).
      if (r.unhandledSent) return end(r, { kind: "exception", message: "Uncaught (in promise): a value that could not be described" });
      r.unhandledSent = true;
      task(r, r.e.unhandled.apply(undefined, [err], { arguments: { copy: true } }));
    },
  );
}

// Something happened: a run with nothing pending is checked again after
// three quiet turns, and ended as stuck if still nothing is.
function poke(r) {
  r.quiet = 0;
  if (r.over || r.checking) return;
  r.checking = true;
  setTimeout(() => check(r), QUIET_MS);
}
function check(r) {
  r.checking = false;
  if (r.over) return;
  const idle = r.tasks === 0 && r.timers.size === 0 && r.calls === 0;
  if (!idle) return;
  r.quiet++;
  if (r.quiet >= 3) return end(r, { kind: "wall_limit", message: "deadlock" });
  r.checking = true;
  setTimeout(() => check(r), QUIET_MS);
}

function limitsPoll() {
  const now = performance.now();
  for (const r of runs.values()) {
    if (r.over) continue;
    let cpuNs;
    try {
      cpuNs = Number(r.e.iso.cpuTime);
    } catch {
      // isolated-vm disposed it: the memory limit
      end(r, { kind: "memory_limit", message: "memory" });
      continue;
    }
    cpuNs += r.syncNs;
    r.lastCpuMs = cpuNs / 1e6;
    if (cpuNs >= r.cpuLimitNs) end(r, { kind: "cpu_limit", message: "cpu" });
    else if (now >= r.deadline) end(r, { kind: "wall_limit", message: "wall" });
    else if (now - r.meterAt >= METER_MS) meter(r, now);
  }
  if (runs.size === 0) {
    clearInterval(poller);
    poller = null;
  }
}

// A live meter: this runner knows the run's CPU time and heap; the server
// adds what it counts itself (output, host calls, the wall clock), rate
// limits them, and drops those that say nothing new. The heap is read
// without waiting: the reading lands for the next meter.
function meter(r, now) {
  r.meterAt = now;
  send('{"t":"event","run":' + q(r.id) + ',"body":{"type":"meter","cpu_ms":' + r.lastCpuMs + ',"memory_bytes":' + r.heapBytes + "}}");
  r.e.iso.getHeapStatistics().then(
    (h) => {
      r.heapBytes = Math.max(0, Math.round(h.used_heap_size + h.externally_allocated_size)) || 0;
    },
    () => {},
  );
}

// The run is over: its timers stop and its isolate serves it no more.
function detach(r) {
  r.over = true;
  for (const h of r.timers.values()) clearTimeout(h);
  r.timers.clear();
  runs.delete(r.id);
  r.e.run = null;
}

function end(r, error) {
  if (r.over) return;
  const iso = r.e.iso;
  let cpuMs = 0;
  try {
    cpuMs = (Number(iso.cpuTime) + r.syncNs) / 1e6;
  } catch {
    // disposed by isolated-vm (memory): counted up to the last poll
    cpuMs = r.lastCpuMs;
  }
  detach(r);
  refill();
  const wall = performance.now() - r.t0;
  // The heap it ends with (V8 keeps no peak), if the isolate answers at
  // once; it may still be running (a limit, a cancel, or a block that
  // threw while a microtask of its own spins), so it is disposed within
  // HEAP_WAIT_MS whatever it does.
  let done = false;
  const close = (h) => {
    if (done) return;
    done = true;
    // Past its heap limit at the end: V8 grants a heap at its limit room
    // for one more allocation (isolated-vm's near-heap-limit callback)
    // and checks the limit again only at the next full collection, which
    // a run may end before. Such a run ended out of memory, whatever it
    // returned.
    if (h && over(h, r.e.memMb) && (!error || error.kind === "exception")) error = { kind: "memory_limit", message: "memory" };
    if (error) send('{"t":"event","run":' + q(r.id) + ',"body":' + JSON.stringify({ type: "error", ...error }) + "}");
    else if (r.result !== null) send('{"t":"event","run":' + q(r.id) + ',"body":' + r.result + "}");
    finished(r, error, cpuMs, wall, h ? h.total_heap_size + h.externally_allocated_size : 0);
    if (!iso.isDisposed) iso.dispose();
  };
  if (error && !["exception", "syntax", "capability_denied", "quota_exceeded", "stack_overflow"].includes(error.kind)) close(null);
  else {
    iso.getHeapStatistics().then(close, () => close(null));
    setTimeout(() => close(null), error ? HEAP_WAIT_MS : HEAP_WAIT_OK_MS);
  }
}

// An isolate's heap statistics show more held than its limit of `memMb`
// MiB (heap in use plus external buffers, as isolated-vm counts them).
function over(h, memMb) {
  return h.used_heap_size + h.externally_allocated_size > memMb * MIB;
}

function finished(r, error, cpuMs, wall, peak) {
  send(JSON.stringify({
    t: "event",
    run: r.id,
    body: {
      type: "finished",
      status: error ? "error" : "ok",
      cpu_ms: cpuMs,
      wall_ms: wall,
      peak_memory_bytes: peak,
    },
  }));
}

async function start(msg) {
  const id = String(msg.run);
  if (runs.has(id)) return;
  const req = msg.request ?? {};
  const limits = req.limits ?? {};
  const e = takeIsolate(memOf(limits));
  const t0 = performance.now();
  const r = {
    id, e, t0,
    timers: new Map(),
    calls: 0, tasks: 0, syncNs: 0,
    quiet: 0, checking: false, over: false,
    cpuLimitNs: (Number(limits.cpu_time_ms) || 5000) * 1e6,
    deadline: t0 + (Number(limits.wall_time_ms) || 30000),
    lastCpuMs: 0, ok: false, result: null,
    meterAt: t0, heapBytes: 0,
  };
  e.run = r;
  runs.set(id, r);
  poller ??= setInterval(limitsPoll, POLL_MS);
  send('{"t":"event","run":' + q(id) + ',"body":{"type":"started"}}');
  const filename = String(req.filename || "block." + (req.lang === "ts" ? "ts" : "js"));
  try {
    // A fresh isolate is idle: compiling and linking are done here
    // synchronously (no thread hops); the glue's start and the block's
    // evaluation are queued, in that order, to isolated-vm's threads.
    let host = null;
    if (typeof msg.host_module === "string") {
      host = e.iso.compileModuleSync(msg.host_module, { filename: "quire" });
      host.instantiateSync(e.ctx, () => {
        throw new Error("the host module imports nothing");
      });
      host.evaluateSync();
    }
    const mod = e.iso.compileModuleSync(String(req.source), { filename, lineOffset: -1 });
    mod.instantiateSync(e.ctx, (spec) => {
      if (spec === "quire" && host) return host;
      throw new Error("import of " + q(spec) + " is not allowed");
    });
    const info = JSON.stringify({ limits, input: req.input ?? null, trigger: req.trigger, block: req.block, workspace: req.workspace });
    task(r, e.start.apply(undefined, host ? [info, host.namespace.derefInto()] : [info]));
    task(r, mod.evaluate());
  } catch (err) {
    if (r.over) return;
    const m = String(err?.message ?? err);
    const syntax = err?.name === "SyntaxError";
    end(r, { kind: syntax ? "syntax" : "exception", message: (syntax ? "SyntaxError: " : "") + m, stack: typeof err?.stack === "string" ? err.stack : undefined });
  }
}

function handle(msg) {
  switch (msg?.t) {
    case "prelude":
      if (snapshot !== null) die("a second prelude");
      snapshot = makeSnapshot(String(msg.core), String(msg.extras), String(msg.streams));
      while (ready.length < WARM) ready.push(makeIsolate(defaultMem));
      send(JSON.stringify({ t: "ready", pid: process.pid, sandbox }));
      return;
    case "start":
      if (snapshot === null) die("a run before the prelude");
      start(msg);
      return;
    case "reply": {
      const r = runs.get(String(msg.run));
      if (!r || r.over) return;
      r.calls = Math.max(0, r.calls - 1);
      task(r, r.e.reply.apply(undefined, [Number(msg.call), JSON.stringify(msg.result ?? null)]));
      return;
    }
    case "cancel": {
      const r = runs.get(String(msg.run));
      if (r) end(r, { kind: "cancelled", message: "cancelled" });
      return;
    }
    default:
      die("unknown message " + q(msg?.t));
  }
}

let sandbox = {};
try {
  sandbox = JSON.parse(process.argv[2] ?? "{}") ?? {};
} catch {
  sandbox = {};
}
process.on("uncaughtException", (e) => die("uncaught: " + (e?.stack ?? e)));
process.stdin.on("data", onData);
process.stdin.on("end", () => process.exit(0));
