// quire's V8 runner: one deno process, started with no permissions at all,
// runs exactly one block in its own V8 isolate and exits.
//
// It speaks the runner protocol of `engine/src/runner/protocol.rs` on
// stdin/stdout: frames of a 4-byte big-endian length, a version byte (1)
// and a JSON message. It installs quire's own prelude (the same
// `prelude.js` / `prelude_extras.js` the QuickJS engine runs, sent by the
// server in a `prelude` message) over deno's globals, removes deno's own
// namespace and capabilities from the global object, then waits for its
// one `start`.
//
// The server trusts nothing said here: it numbers and counts events,
// measures CPU and memory from /proc, enforces the deadlines by killing
// this process, and runs every host call with the run's own grants. The
// block shares this isolate with the runner code, so a block that
// subverts it gains what a compromised runner has: nothing beyond its own
// run.

// ------------------------------------------------------------ intrinsics
// Captured before any block code runs.
const D = (globalThis as any).Deno;
// deno's own ops for the pipes (stdin is resource 0, stdout 1): the
// `Deno.stdin` wrappers call methods a block could replace (e.g.
// Function.prototype.call); the ops are native.
const core = D[D.internal].core;
const coreRead: (rid: number, buf: Uint8Array) => Promise<number> = core.read;
const opWriteSync: (rid: number, buf: Uint8Array) => number = core.writeSync;
const pid: number = D.pid;
// deno's timers straight from its core: reading the `setTimeout` global
// costs ~10 ms (a lazy getter that loads deno's Node-compatible timers),
// a tenth of a runner's start. The global is the fallback.
const createTimer = core.createTimer;
const cancelTimer = core.cancelTimer;
const coreTimers = typeof createTimer === "function" && typeof cancelTimer === "function";
const realSetTimeout: (f: () => void, ms: number) => unknown = coreTimers
  ? (f, ms) => createTimer(f, ms, undefined, false, true)
  : globalThis.setTimeout;
const realClearTimeout: (t: any) => void = coreTimers ? (t) => cancelTimer(t) : globalThis.clearTimeout;
const indirectEval = globalThis.eval;
const RealURL = URL;
const realImport = (u: string) => import(u);
const jsonStringify = JSON.stringify;
const jsonParse = JSON.parse;
const U8 = Uint8Array;
const enc = new TextEncoder();
const dec = new TextDecoder();
const decFatal = new TextDecoder("utf-8", { fatal: true });
const decodeFatal = decFatal.decode.bind(decFatal);
const dec8 = (b: Uint8Array, fatal: boolean) => (fatal ? decodeFatal(b) : decodeUtf8(b));
const encodeInto = enc.encode.bind(enc);
const decodeUtf8 = dec.decode.bind(dec);
const randomFill = crypto.getRandomValues.bind(crypto);
const randomUUID = crypto.randomUUID.bind(crypto);
const realAtob = atob;
const realBtoa = btoa;
const perfNow = performance.now.bind(performance);
const createObjectURL = URL.createObjectURL;
const BlobCtor = Blob;
const ObjectProto = Object.prototype;
const ArrayProto = Array.prototype;
const { getPrototypeOf, keys: objectKeys, defineProperty, getOwnPropertyDescriptor } = Object;
const isArray = Array.isArray;
const MapCtor = Map;
const PromiseCtor = Promise;
const ErrorCtor = Error;
const RangeErrorCtor = RangeError;
const TypeErrorCtor = TypeError;
const captureStackTrace = (Error as any).captureStackTrace;
const reflectApply = Reflect.apply;
const reflectConstruct = Reflect.construct;
const hasOwn = Object.hasOwn;
const ProxyCtor = Proxy;
const strReplaceAll = String.prototype.replaceAll;
const strToWellFormed = String.prototype.toWellFormed;
const stringReplaceAll = (s: string, a: string, b: string) => reflectApply(strReplaceAll, s, [a, b]) as string;
const wellFormed = (s: string) => reflectApply(strToWellFormed, s, []) as string;
const arrayIncludes = Array.prototype.includes;
const arrayPush = Array.prototype.push;
const arrayPop = Array.prototype.pop;
const promiseThen = Promise.prototype.then;
const eventTargetListen = EventTarget.prototype.addEventListener;
const own = (o: any, k: string) => (o !== null && typeof o === "object" && hasOwn(o, k) ? o[k] : undefined);
const addEventListener = globalThis.addEventListener.bind(globalThis);

const sandbox = safeParse(D.args[0] ?? "{}") ?? {};

function safeParse(s: string): any {
  try {
    return jsonParse(s);
  } catch {
    return undefined;
  }
}

// ------------------------------------------------------------ framing

function writeAll(bytes: Uint8Array) {
  let off = 0;
  while (off < bytes.length) {
    const n = opWriteSync(1, bytes.subarray(off));
    if (!(n > 0)) throw new ErrorCtor("stdout closed");
    off += n;
  }
}

// JSON for the wire, written by hand: JSON.stringify would consult
// `toJSON` on (possibly polluted) prototypes, and lone surrogates would be
// escaped into JSON the server's parser refuses. Strings are made
// well-formed (lone surrogates become U+FFFD, as in QuickJS).
function wire(v: unknown): string {
  switch (typeof v) {
    case "string":
      return jsonStringify(wellFormed(v));
    case "number":
      return Number.isFinite(v) ? "" + v : "null";
    case "boolean":
      return v ? "true" : "false";
    case "object": {
      if (v === null) return "null";
      if (isArray(v)) {
        let out = "[";
        for (let i = 0; i < v.length; i++) out += (i ? "," : "") + wire(v[i]);
        return out + "]";
      }
      let out = "{";
      let first = true;
      for (const k of objectKeys(v)) {
        const x = (v as any)[k];
        if (x === undefined) continue;
        out += (first ? "" : ",") + jsonStringify(wellFormed(k)) + ":" + wire(x);
        first = false;
      }
      return out + "}";
    }
    default:
      return "null";
  }
}

function send(msg: unknown) {
  const body = encodeInto(wire(msg));
  const frame = new U8(body.length + 5);
  const n = body.length + 1;
  frame[0] = n >>> 24;
  frame[1] = (n >>> 16) & 255;
  frame[2] = (n >>> 8) & 255;
  frame[3] = n & 255;
  frame[4] = 1;
  frame.set(body, 5);
  writeAll(frame);
}

// deno's stub for the async read op calls `originalOp.call(...)`: a
// block that replaced `Function.prototype.call` would stop the runner
// hearing the server. The real `call` is put back for the (synchronous)
// moment of starting a read, then the block's own is restored.
const FunctionProto = Function.prototype;
const realCall = FunctionProto.call;
function opRead(rid: number, buf: Uint8Array): Promise<number> {
  const mine = getOwnPropertyDescriptor(FunctionProto, "call");
  if (mine !== undefined && mine.value === realCall) return coreRead(rid, buf);
  try {
    defineProperty(FunctionProto, "call", { value: realCall, writable: true, configurable: true, enumerable: false });
  } catch {
    return coreRead(rid, buf); // made unconfigurable: the block broke its own run
  }
  try {
    return coreRead(rid, buf);
  } finally {
    if (mine === undefined) delete (FunctionProto as any).call;
    else defineProperty(FunctionProto, "call", mine);
  }
}

let inbuf = new U8(0);
async function readExact(n: number): Promise<Uint8Array | null> {
  while (inbuf.length < n) {
    const chunk = new U8(Math.max(65536, n - inbuf.length));
    const got = await opRead(0, chunk);
    if (!(got > 0)) return null;
    const next = new U8(inbuf.length + got);
    next.set(inbuf, 0);
    next.set(chunk.subarray(0, got), inbuf.length);
    inbuf = next;
  }
  const out = inbuf.slice(0, n);
  inbuf = inbuf.slice(n);
  return out;
}

async function readFrame(): Promise<any> {
  const head = await readExact(4);
  if (head === null) return null;
  const n = ((head[0] << 24) | (head[1] << 16) | (head[2] << 8) | head[3]) >>> 0;
  if (n === 0 || n > 64 * 1024 * 1024) throw new Error("bad frame length " + n);
  const body = await readExact(n);
  if (body === null) return null;
  if (body[0] !== 1) throw new Error("protocol version " + body[0]);
  return jsonParse(decodeUtf8(body.subarray(1)));
}

// ------------------------------------------------------------ the run

type Limits = { output_bytes: number; output_events: number; max_pending_timers: number; host_calls: number; host_value_bytes: number };

let runId = "";
let limits: Limits = { output_bytes: 1 << 20, output_events: 100000, max_pending_timers: 1000, host_calls: 1000, host_value_bytes: 1 << 20 };
let runStart = 0;
let outputUsed = 0;
let outputEvents = 0;
let ended = false;
let blockUrl = "";
let filename = "block.js";
let hostNs: unknown = undefined;
let hostAttached = false;

function event(body: Record<string, unknown>) {
  if (ended) return;
  send({ t: "event", run: runId, body });
}

class OutputLimit extends ErrorCtor {}

// Counts output the way the server does; past the limit the run is over
// (the server, which counts too, ends it with `output_limit`).
function charge(bytes: number) {
  outputUsed += bytes;
  outputEvents += 1;
  if (outputUsed > limits.output_bytes || outputEvents > limits.output_events) {
    // Over: the run ends now, whatever the block would catch.
    abort({ kind: "output_limit", message: outputUsed <= limits.output_bytes ? "events" : "bytes" });
  }
}

function utf8Len(s: string): number {
  return encodeInto(s).length;
}

// ------------------------------------------------------------ serializer
// A port of `engine/src/serialize.rs`: JSON semantics, with what JSON
// cannot hold replaced by a readable description, and values nested past
// the depth limit (`MAX_VALUE_DEPTH` in engine/src/depth.rs) refused.

const MAX_VALUE_DEPTH = 64;
class Budget extends ErrorCtor {}
class TooDeep extends ErrorCtor {}

function tooDeep(what: string): string {
  return what + " is nested deeper than the limit of " + MAX_VALUE_DEPTH + " levels of arrays and objects";
}

// `wrap`: levels the caller wraps around the values that count (a host
// call's argument list); `describing`: describe too deep a value instead.
function serialize(v: unknown, budget: number, wrap = 0, describing = false): { json: unknown; bytes: number } {
  const maxDepth = MAX_VALUE_DEPTH + wrap;
  let used = 0;
  const path: object[] = [];
  const charge = (n: number) => {
    used += n;
    if (used > budget) throw new Budget("budget");
  };
  const text = (s: string) => {
    charge(utf8Len(s) + 2);
    return s;
  };
  const mayHaveToJSON = (o: object) => {
    const p = getPrototypeOf(o);
    if (p === null) return false;
    if (p !== ObjectProto && p !== ArrayProto) return true;
    if (isArray(o)) return false;
    return hasOwn(o, "toJSON");
  };
  const value = (x: any, key: string, depth: number): unknown => {
    if (x !== null && (typeof x === "object") && mayHaveToJSON(x)) {
      const f = x.toJSON;
      if (typeof f === "function") x = reflectApply(f, x, [key]);
    }
    switch (typeof x) {
      case "undefined":
        return undefined;
      case "boolean":
        charge(5);
        return x;
      case "number":
        if (Number.isFinite(x)) {
          charge(Number.isInteger(x) ? 17 : 24);
          return x;
        }
        return text(Number.isNaN(x) ? "NaN" : x > 0 ? "Infinity" : "-Infinity");
      case "string":
        return text(x);
      case "bigint":
        return text(x.toString() + "n");
      case "symbol":
        return text("[Symbol(" + (x.description ?? "") + ")]");
      case "function": {
        const d = getOwnPropertyDescriptor(x, "name");
        const n = d && typeof d.value === "string" ? d.value : "";
        return text(n ? "[Function: " + n + "]" : "[Function (anonymous)]");
      }
    }
    if (x === null) {
      charge(4);
      return null;
    }
    if (x instanceof PromiseCtor) return text("[Promise]");
    if (reflectApply(arrayIncludes, path, [x])) return text("[Circular]");
    if (depth >= maxDepth) {
      if (!describing) throw new TooDeep("too deep");
      return text("[Too deep: nesting over " + MAX_VALUE_DEPTH + " levels]");
    }
    reflectApply(arrayPush, path, [x]);
    try {
      if (isArray(x)) {
        charge(2);
        const len = Number(x.length);
        const out: unknown[] = [];
        for (let i = 0; i < (Number.isFinite(len) && len > 0 ? len : 0); i++) {
          charge(1);
          const item = value(x[i], String(i), depth + 1);
          out[i] = item === undefined ? null : item;
        }
        return out;
      }
      charge(2);
      const out: Record<string, unknown> = {};
      for (const k of objectKeys(x)) {
        charge(utf8Len(k) + 4);
        const item = value(x[k], k, depth + 1);
        if (item !== undefined) defineProperty(out, k, { value: item, enumerable: true, writable: true, configurable: true });
      }
      return out;
    } finally {
      reflectApply(arrayPop, path, []);
    }
  };
  const json = value(v, "", 0);
  return { json: json === undefined ? null : json, bytes: used };
}

function describeValue(v: unknown): string {
  try {
    const { json } = serialize(v, 4096, 0, true);
    return typeof json === "string" ? jsonStringify(json) : jsonStringify(json);
  } catch (e) {
    return e instanceof Budget ? "[a value too large to describe]" : "[a value that threw while being described]";
  }
}

// ------------------------------------------------------------ errors

function stackOf(e: any): string | undefined {
  try {
    const s = e.stack;
    if (typeof s !== "string") return undefined;
    return rename(s);
  } catch {
    return "[stack getter threw]";
  }
}

function describeThrown(e: any): Record<string, unknown> {
  if (e === null || (typeof e !== "object" && typeof e !== "function") || !(e instanceof ErrorCtor)) {
    return { kind: "exception", message: "Uncaught " + describeValue(e) };
  }
  let name = "Error";
  let message = "";
  try {
    name = typeof e.name === "string" ? e.name : "Error";
  } catch {
    name = "[name getter threw]";
  }
  try {
    message = typeof e.message === "string" ? e.message : "";
  } catch {
    message = "[message getter threw]";
  }
  const kind = name === "RangeError" && message === "Maximum call stack size exceeded"
    ? "stack_overflow"
    : name === "RangeError" && isAllocationFailure(message)
    ? "memory_limit"
    : name === "SyntaxError"
    ? "syntax"
    : name === "CapabilityDenied"
    ? "capability_denied"
    : name === "QuotaExceeded"
    ? "quota_exceeded"
    : "exception";
  const full = message ? name + ": " + message : name;
  return { kind, message: full.length > 16384 ? full.slice(0, 16384) + "…" : full, stack: stackOf(e) };
}

function isAllocationFailure(message: string): boolean {
  return message.startsWith("Array buffer allocation failed") || message.startsWith("Out of memory") || message.includes("could not allocate memory");
}

// V8 formats `stack` through Error.prepareStackTrace when it is set: frames
// then name the block's file and quire's modules instead of blob: URLs
// (as QuickJS's stacks do). A block may replace it, as in Node.
const errorToString = Error.prototype.toString;
function rename(s: string): string {
  if (blockUrl) s = stringReplaceAll(s, blockUrl, filename);
  if (blobUrlOfHost) s = stringReplaceAll(s, blobUrlOfHost, "quire");
  if (preludeUrl) s = stringReplaceAll(s, preludeUrl, "quire:prelude");
  if (extrasUrl) s = stringReplaceAll(s, extrasUrl, "quire:extras");
  return s;
}
function installStackFormat() {
  defineProperty(ErrorCtor, "prepareStackTrace", {
    value: (e: unknown, frames: unknown[]) => {
      let out: string;
      try {
        out = reflectApply(errorToString, e, []) as string;
      } catch {
        out = "Error";
      }
      for (let i = 0; i < frames.length; i++) out += "\n    at " + rename(String(frames[i]));
      return out;
    },
    writable: true,
    configurable: true,
    enumerable: false,
  });
}

// Buffer constructors, wrapped: V8 refuses an allocation past the
// process's address-space limit (set by the server per run) with a
// RangeError; through these the run ends with memory_limit at once, as
// in QuickJS, instead of letting the block catch it and go on.
const BUFFERS = ["ArrayBuffer", "SharedArrayBuffer", "Uint8Array", "Int8Array", "Uint8ClampedArray", "Uint16Array", "Int16Array", "Uint32Array", "Int32Array", "Float16Array", "Float32Array", "Float64Array", "BigInt64Array", "BigUint64Array"];
function guardBuffers() {
  for (const name of BUFFERS) {
    const real = (globalThis as any)[name];
    if (typeof real !== "function") continue;
    const guarded = new ProxyCtor(real, {
      construct(target: any, args: any[], newTarget: any) {
        try {
          return reflectConstruct(target, args, newTarget === guarded ? target : newTarget);
        } catch (e) {
          if (e instanceof RangeErrorCtor && isAllocationFailure(String((e as Error).message))) {
            abort({ kind: "memory_limit", message: "memory" });
          }
          throw e;
        }
      },
    });
    defineProperty(globalThis, name, { value: guarded, writable: true, configurable: true, enumerable: false });
    try {
      defineProperty(real.prototype, "constructor", { value: guarded, writable: true, configurable: true, enumerable: false });
    } catch {
      // left as it is
    }
  }
}

// ------------------------------------------------------ V8's own async
// Work V8 or deno does on its own that can settle a promise a block
// awaits, outside quire's timers and host calls: WebAssembly compiles (on
// V8's threads), `Atomics.waitAsync` with a timeout, `AbortSignal.timeout`.
// While any is in flight, `settle` does not call the run stuck. The first
// two also keep a finished run alive like a timer (`drain`);
// `AbortSignal.timeout` does not (deno's timer for it is unref'd, as in
// browsers: a forgotten signal keeps nothing alive).
let nativeWork = 0;
let signalTimeouts = 0;

function inFlight<T>(p: Promise<T>): Promise<T> {
  nativeWork++;
  const done = () => {
    nativeWork--;
    poke();
  };
  reflectApply(promiseThen, p, [done, done]);
  return p;
}

function setMethod(o: any, name: string, f: Function) {
  defineProperty(o, name, { value: f, writable: true, configurable: true, enumerable: false });
}

function trackNativeWork() {
  const wasm = (globalThis as any).WebAssembly;
  for (const name of ["compile", "instantiate", "compileStreaming", "instantiateStreaming"]) {
    const real = wasm?.[name];
    if (typeof real !== "function") continue;
    setMethod(wasm, name, {
      [name](...args: any[]) {
        return inFlight(reflectApply(real, wasm, args));
      },
    }[name]);
  }
  const atomics = (globalThis as any).Atomics;
  const realWait = atomics?.waitAsync;
  if (typeof realWait === "function") {
    setMethod(atomics, "waitAsync", function waitAsync(...args: any[]) {
      const r = reflectApply(realWait, atomics, args);
      // Without a timeout only a notify from the block can wake it, and
      // the block runs only when something else settles: not tracked.
      const timeout = args.length > 3 ? Number(args[3]) : Infinity;
      if (r?.async === true && timeout !== Infinity && timeout === timeout) inFlight(r.value);
      return r;
    });
  }
  const Signal = (globalThis as any).AbortSignal;
  const realTimeout = Signal?.timeout;
  if (typeof realTimeout === "function") {
    setMethod(Signal, "timeout", function timeout(ms: number) {
      const signal = reflectApply(realTimeout, Signal, [ms]);
      signalTimeouts++;
      reflectApply(eventTargetListen, signal, ["abort", () => {
        signalTimeouts--;
        poke();
      }, { once: true }]);
      return signal;
    });
  }
}

// ------------------------------------------------------------ timers

const timers = new MapCtor<number, number>();
let nextTimer = 0;
let fireTimer: (id: number) => void = () => {};

function timerArm(delayMs: number, reuse: number): number {
  if (!reuse && timers.size >= limits.max_pending_timers) {
    throw new RangeErrorCtor("too many pending timers (limit " + limits.max_pending_timers + " per run)");
  }
  const id = reuse || ++nextTimer;
  const ms = Number.isFinite(delayMs) ? Math.min(Math.max(delayMs, 0), 2147483647) : 0;
  const h = realSetTimeout(() => {
    timers.delete(id);
    if (!ended) fireTimer(id);
    poke();
  }, ms);
  timers.set(id, h);
  return id;
}

function timerClear(id: number) {
  const h = timers.get(id);
  if (h !== undefined) {
    realClearTimeout(h);
    timers.delete(id);
  }
}

// ------------------------------------------------------------ host calls

const calls = new MapCtor<number, { resolve: (v: unknown) => void; reject: (e: unknown) => void; site: Error }>();
let nextCall = 0;

// A failed call's error, made when the block makes the call: V8 then
// gives it the block's frames (formatted lazily, so the name and message
// set when it fails are in its first line). Its `stack` is made
// non-configurable so the prelude keeps V8's own (deno turns an error
// whose `stack` is a plain string into a generic `Error` when it ends a
// module's evaluation).
function siteError(): Error {
  const e = new ErrorCtor("");
  captureStackTrace(e, hostCall);
  try {
    defineProperty(e, "stack", { configurable: false });
  } catch {
    // keep it as it is
  }
  return e;
}

function failWith(e: Error, name: string, message: string): Error {
  defineProperty(e, "message", { value: message, writable: true, configurable: true, enumerable: false });
  defineProperty(e, "name", { value: name, writable: true, configurable: true, enumerable: false });
  return e;
}

function hostCall(op: string, args: unknown): Promise<unknown> {
  const site = siteError();
  return new PromiseCtor((resolve, reject) => {
    op = String(op);
    // No local refusals: the server refuses calls without a host or past
    // the call limit, and records them (only recorded refusals may end a
    // run as capability_denied or quota_exceeded).
    let json;
    try {
      json = serialize(args === undefined ? null : args, limits.host_value_bytes, 1).json;
    } catch (e) {
      if (e instanceof TooDeep) {
        return reject(failWith(site, "RangeError", tooDeep("an argument of `" + op + "`")));
      }
      if (e instanceof Budget) {
        return reject(failWith(site, "RangeError", "the arguments of `" + op + "` exceed the host value limit of " + limits.host_value_bytes + " bytes"));
      }
      return reject(e);
    }
    const id = ++nextCall;
    calls.set(id, { resolve, reject, site });
    send({ t: "call", run: runId, call: id, op, args: json });
  });
}

function reply(id: number, result: any) {
  const c = calls.get(id);
  if (c === undefined) return;
  calls.delete(id);
  if (result !== null && typeof result === "object" && hasOwn(result, "Ok")) {
    c.resolve(own(result, "Ok"));
  } else {
    const err = own(result, "Err");
    c.reject(failWith(c.site, String(own(err, "name") ?? "Error"), String(own(err, "message") ?? "malformed reply")));
  }
  poke();
}

// ------------------------------------------------------------ natives
// What `prelude.js` and `prelude_extras.js` expect on __quire_native (see
// `engine/src/natives.rs`, whose behaviour these follow).

// The fields in `natives.rs` order: href, protocol, username, password,
// host, hostname, port, pathname, search, hash, origin.
function urlFields(u: URL) {
  return [u.href, u.protocol, u.username, u.password, u.host, u.hostname, u.port, u.pathname, u.search, u.hash, u.origin];
}

let extrasInit: unknown = undefined;

const N = {
  log(level: string, text: string) {
    text = String(text);
    charge(utf8Len(text));
    event({ type: "log", level: ["log", "info", "warn", "error", "debug"].includes(level) ? level : "log", text });
  },
  displayText(mime: string, text: string) {
    text = String(text);
    charge(utf8Len(text) + mime.length);
    event({ type: "display", mime, data: text });
  },
  displayJson(value: unknown) {
    let out;
    try {
      out = serialize(value, Math.max(0, limits.output_bytes - outputUsed));
    } catch (e) {
      if (e instanceof Budget) abort({ kind: "output_limit", message: "bytes" });
      if (e instanceof TooDeep) throw new RangeErrorCtor(tooDeep("the display() value"));
      throw e;
    }
    charge(out.bytes);
    event({ type: "display", mime: "application/json", data: out.json });
  },
  timerArm,
  timerClear,
  registerHooks(fire: (id: number) => void) {
    fireTimer = fire;
  },
  now: () => perfNow() - runStart,
  urlParse(input: string, base?: string) {
    try {
      return urlFields(base === undefined ? new RealURL(input) : new RealURL(input, base));
    } catch {
      return null;
    }
  },
  urlSet(href: string, field: string, value: string) {
    try {
      const u = new RealURL(href);
      (u as any)[field] = value;
      return urlFields(u);
    } catch {
      return null;
    }
  },
  utf8Encode: (s: string) => encodeInto(String(s)),
  utf8Decode(bytes: Uint8Array, fatal: boolean) {
    try {
      return dec8(bytes, !!fatal);
    } catch {
      throw new TypeErrorCtor("TextDecoder: invalid UTF-8");
    }
  },
  btoa: (s: string) => realBtoa(s),
  atob(s: string) {
    try {
      return realAtob(s);
    } catch {
      const e = new ErrorCtor("atob: the string is not valid base64");
      e.name = "InvalidCharacterError";
      throw e;
    }
  },
  bytesToBase64(bytes: Uint8Array) {
    let s = "";
    for (let i = 0; i < bytes.length; i += 8192) s += String.fromCharCode(...bytes.subarray(i, i + 8192));
    return realBtoa(s);
  },
  base64ToBytes(s: string) {
    const bin = realAtob(s);
    const out = new U8(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  },
  randomBytes: (n: number) => randomFill(new U8(Math.min(Math.max(0, n | 0), 65536))),
  randomUUID: () => randomUUID(),
  hostCall,
  loadExtras: () => extrasInit,
};

// `//# sourceURL=` names a module in V8's stack traces, so frames read
// `block.js:3:7` and `quire:prelude:12:1`, as in QuickJS (a last line:
// positions do not move).
function named(src: string, name: string): string {
  return src + "\n//# sourceURL=" + name;
}

function blobUrl(src: string): string {
  return createObjectURL(new BlobCtor([src], { type: "text/javascript" }));
}

// Everything deno adds to the global object that QuickJS blocks do not
// have, and that reaches outside the isolate or the run: removed before
// the block runs (fetch comes back as quire's, through the host).
const REMOVE = ["Deno", "Blob", "FormData", "CompressionStream", "DecompressionStream", "ImageData", "fetch", "Request", "Response", "Headers", "WebSocket", "WebSocketStream", "EventSource", "Worker", "BroadcastChannel", "caches", "CacheStorage", "Cache", "localStorage", "sessionStorage", "Storage", "navigator", "Navigator", "prompt", "alert", "confirm", "close", "closed", "onload", "onunload", "onbeforeunload", "onunhandledrejection", "onerror", "reportError", "location", "Location", "FileReader", "File", "MessageChannel", "MessagePort", "GPU", "GPUBuffer", "createImageBitmap", "ImageData", "ImageBitmap", "WorkerNavigator", "Window", "window", "self", "process", "Buffer", "global", "setImmediate", "clearImmediate", "require", "__dirname", "__filename", "structuredClone", "TextEncoder", "TextDecoder", "URL", "URLSearchParams", "atob", "btoa", "crypto", "Crypto", "SubtleCrypto", "CryptoKey", "performance", "Performance", "PerformanceEntry", "PerformanceMark", "PerformanceMeasure", "PerformanceObserver", "PerformanceObserverEntryList", "PerformanceResourceTiming", "console", "setTimeout", "clearTimeout", "setInterval", "clearInterval", "queueMicrotask"];

// Whole families of browser APIs deno carries (WebGPU, geometry, canvas,
// locks): none is a quire global.
const REMOVE_PREFIXES = ["GPU", "DOMMatrix", "DOMPoint", "DOMQuad", "DOMRect", "OffscreenCanvas", "ImageBitmap", "Lock", "NavigatorUAData"];

// `src` as the body of a strict function named `name` in stack traces.
// (Its first line is a comment in both prelude files, so the wrapper on
// it moves no position a frame reports.)
function scope(src: string, name: string): () => any {
  return indirectEval('(function () { "use strict"; ' + src + "\n})\n//# sourceURL=" + name);
}

async function installPrelude(core: string, extras: string) {
  const names = Object.getOwnPropertyNames(globalThis);
  for (const name of names) {
    if (REMOVE.includes(name) || REMOVE_PREFIXES.some((p) => name.startsWith(p))) {
      try {
        delete (globalThis as any)[name];
      } catch {
        // a non-configurable global stays; the globals test lists them
      }
    }
  }
  guardBuffers();
  trackNativeWork();
  installStackFormat();
  // quire's own files run as functions, not modules: deno's module
  // loader takes ~10 ms for the 30 KB of extras, V8 compiles a function
  // lazily in ~2 ms. Same strictness, own scope, named in stack traces.
  const exportInit = "\nexport function init(";
  if (extras.indexOf(exportInit) === extras.lastIndexOf(exportInit) && extras.includes(exportInit)) {
    extrasInit = scope(stringReplaceAll(extras, exportInit, "\nreturn function init("), "quire:extras")();
  } else {
    extrasUrl = blobUrl(named(extras, "quire:extras"));
    extrasInit = (await realImport(extrasUrl)).init;
  }
  (globalThis as any).__quire_native = N;
  scope(core, "quire:prelude")();
  // Dynamic import() in a block is rewritten (by the server, in its source)
  // to this: only "quire" loads.
  defineProperty(globalThis, "__qi__", {
    value: (spec: unknown) => {
      if (spec === "quire" && hostAttached) return PromiseCtor.resolve(hostNs);
      const name = String(spec);
      const msg = name === "quire"
        ? 'the host module "quire" is not available to this run (no host API is attached)'
        : 'import of "' + name + '" is not allowed: a block can only import the host module "quire" (no files, packages or URLs)';
      return PromiseCtor.reject(new TypeErrorCtor(msg));
    },
    writable: false,
    configurable: false,
    enumerable: false,
  });
}

// ------------------------------------------------------------ settling

let wake: (() => void) | null = null;
function poke() {
  const w = wake;
  wake = null;
  if (w) w();
}

// Resolves when something that can move the run on happened (a timer
// fired, a reply came: false), or after `ms` (true: a whole macrotask
// turn passed, so every microtask that was queued has run).
function idle(ms: number): Promise<boolean> {
  return new PromiseCtor((resolve) => {
    const h = realSetTimeout(() => {
      wake = null;
      resolve(true);
    }, ms);
    wake = () => {
      realClearTimeout(h);
      resolve(false);
    };
  });
}

// Waits for `p`, ending early when nothing is left that could settle it:
// no timers, no host calls, no V8 work in flight (`trackNativeWork`),
// through three quiet 20 ms turns in a row (the turns let promise chains
// that V8 or deno settle internally, which nothing here counts, run out).
// What keeps a finished run alive (as a timer does in QuickJS), and what
// else can still settle a promise the block awaits.
const keepsAlive = () => timers.size > 0 || calls.size > 0 || nativeWork > 0;
const mayStillSettle = () => keepsAlive() || signalTimeouts > 0;

async function settle<T>(p: Promise<T>): Promise<{ ok: true; value: T } | { ok: false; error: unknown } | { stuck: true }> {
  let state: any = null;
  p.then((value) => {
    state = { ok: true, value };
    poke();
  }, (error) => {
    state = { ok: false, error };
    poke();
  });
  let quiet = 0;
  while (state === null) {
    const turned = await idle(mayStillSettle() ? 50 : 20);
    if (state !== null) break;
    if (hasUnhandled) return { ok: false, error: unhandled };
    quiet = mayStillSettle() || !turned ? 0 : quiet + 1;
    if (quiet >= 3) return { stuck: true };
  }
  return state;
}

async function drain() {
  while (keepsAlive() && !hasUnhandled) await idle(50);
}

let unhandled: unknown = undefined;
let hasUnhandled = false;
addEventListener("unhandledrejection", (e: any) => {
  e.preventDefault();
  if (!hasUnhandled) {
    hasUnhandled = true;
    unhandled = e.reason;
  }
  poke();
});
addEventListener("error", (e: any) => {
  e.preventDefault();
  if (!hasUnhandled) {
    hasUnhandled = true;
    unhandled = e.error;
  }
  poke();
});

function splice(src: string, spans: [number, number][], url: string): string {
  const sorted = [...spans].sort((a, b) => b[0] - a[0]);
  for (const [s, e] of sorted) src = src.slice(0, s) + jsonStringify(url) + src.slice(e);
  return src;
}

function finish(error: Record<string, unknown> | null) {
  if (ended) return;
  if (error && !(error as any).kind) error = { kind: "exception", message: String(error) };
  if (error) event({ type: "error", ...error });
  event({ type: "finished", status: error ? "error" : "ok", cpu_ms: 0, wall_ms: perfNow() - runStart, peak_memory_bytes: 0 });
  ended = true;
}

// End the run at once (a limit the block must not catch): its error and
// `finished` go out, then the process exits. Limits are named, not
// described: the server words them from `kind` and `message` (the same
// messages as QuickJS's).
function abort(error: Record<string, unknown>): never {
  finish(error);
  D.exit(0);
  throw new OutputLimit("unreachable");
}

function failure(e: unknown): Record<string, unknown> | null {
  return describeThrown(e);
}

async function run(msg: any) {
  const req = msg.request;
  runId = String(msg.run);
  limits = { ...limits, ...(req.limits ?? {}) };
  filename = req.filename || "block." + (req.lang === "ts" ? "ts" : "js");
  runStart = perfNow();
  event({ type: "started" });
  try {
    if (msg.host_module) {
      hostAttached = true;
      hostNs = await realImport(blobUrlOfHost);
    }
    const v8 = msg.v8 ?? {};
    const src = splice(String(req.source), v8.quire_spans ?? [], hostAttached ? blobUrlOfHost : "");
    blockUrl = blobUrl(named(src, filename));
    const loaded = await settle(realImport(blockUrl));
    if ("stuck" in loaded) return finish(neverSettles());
    if (!loaded.ok) return finish(failure(loaded.error));
    const ns: any = loaded.value;
    let result: unknown = undefined;
    let hasResult = false;
    if ("default" in ns) {
      hasResult = true;
      let d = ns.default;
      if (typeof d === "function") {
        const ctx = { input: req.input ?? null, trigger: req.trigger ?? { kind: "manual" }, block: req.block ?? null, workspace: req.workspace ?? "default" };
        d = d(ctx);
      }
      const got = await settle(PromiseCtor.resolve(d));
      if ("stuck" in got) return finish(neverSettles());
      if (!got.ok) return finish(failure(got.error));
      result = got.value;
    }
    await drain();
    if (hasUnhandled) return finish(failure(unhandled));
    if (hasResult) {
      let out;
      try {
        out = serialize(result, Math.max(0, limits.output_bytes - outputUsed));
      } catch (e) {
        return finish(
          e instanceof Budget
            ? { kind: "output_limit", message: "bytes" }
            : e instanceof TooDeep
            ? { kind: "exception", message: tooDeep("the result") }
            : failure(e),
        );
      }
      event({ type: "result", value: out.json });
    }
    finish(null);
  } catch (e) {
    finish(failure(e));
  }
}

let blobUrlOfHost = "";
let preludeUrl = "";
let extrasUrl = "";
function neverSettles() {
  return { kind: "wall_limit", message: "deadlock" };
}

// ------------------------------------------------------------ main

// The server sends quire's prelude first; `ready` means it is installed.
{
  const first = await readFrame().catch(() => null);
  if (first === null || own(first, "t") !== "prelude") D.exit(3);
  await installPrelude(String(own(first, "core")), String(own(first, "extras")));
}
send({ t: "ready", pid, sandbox });
let started = false;
for (;;) {
  let msg;
  try {
    msg = await readFrame();
  } catch {
    break;
  }
  if (msg === null) break;
  const t = own(msg, "t");
  if (t === "start" && !started) {
    started = true;
    if (own(msg, "host_module")) blobUrlOfHost = blobUrl(named(String(own(msg, "host_module")), "quire"));
    run(msg).then(() => {
      // One run per process: leave once its last event is out.
      realSetTimeout(() => D.exit(0), 0);
    });
  } else if (t === "reply") {
    reply(Number(own(msg, "call")), own(msg, "result"));
  } else if (t === "cancel") {
    D.exit(0);
  }
}
D.exit(0);
