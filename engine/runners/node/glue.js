// quire's glue inside every V8 isolate of the isolate runner (issue 16).
//
// This file runs once, while `runner.mjs` makes the startup snapshot: it
// is one function expression, which the runner calls with the prelude's
// sources (so it leaves no global of its own). It installs quire's prelude (the same
// `prelude.js` / `prelude_extras.js` QuickJS runs) over the natives below,
// then leaves one function, `__quire_bind`, which the runner calls once
// per isolate (and deletes) to hand in the host's callbacks. Nothing a
// block can reach holds an isolated-vm object: the callbacks are plain
// functions kept in this closure.
//
// What crosses to the host is strings and numbers only: events and host
// calls as JSON text this file writes by hand (no `toJSON` on polluted
// prototypes, no getters run outside this isolate). The host trusts none
// of it: the server numbers, counts and checks every event and runs each
// host call with the run's grants; the limits (CPU, wall, memory) are
// enforced by the runner from outside the isolate.
//
// One isolate serves one run and is then disposed.

"use strict";
(function glue(coreSrc, extrasSrc, streamsSrc) {
  // ------------------------------------------------------------ intrinsics
  const G = globalThis;
  const indirectEval = G.eval;
  const StringCtor = String;
  const NumberCtor = Number;
  const { isFinite: numIsFinite, isInteger: numIsInteger, isNaN: numIsNaN } = Number;
  const { min: mathMin, max: mathMax } = Math;
  const bigintToString = BigInt.prototype.toString;
  const symbolDescription = Object.getOwnPropertyDescriptor(Symbol.prototype, "description").get;
  const strStartsWith = String.prototype.startsWith;
  const strIndexOf = String.prototype.indexOf;
  const jsonStringify = JSON.stringify;
  const jsonParse = JSON.parse;
  const U8 = Uint8Array;
  const ObjectProto = Object.prototype;
  const ArrayProto = Array.prototype;
  const { getPrototypeOf, keys: objectKeys, defineProperty, getOwnPropertyDescriptor, freeze } = Object;
  const isArray = Array.isArray;
  const MapCtor = Map;
  const SetCtor = Set;
  const PromiseCtor = Promise;
  const ErrorCtor = Error;
  const RangeErrorCtor = RangeError;
  const TypeErrorCtor = TypeError;
  const captureStackTrace = Error.captureStackTrace;
  const reflectApply = Reflect.apply;
  const reflectConstruct = Reflect.construct;
  const hasOwn = Object.hasOwn;
  const ProxyCtor = Proxy;
  const strToWellFormed = String.prototype.toWellFormed;
  const strCharCodeAt = String.prototype.charCodeAt;
  const strSlice = String.prototype.slice;
  const wellFormed = (s) => reflectApply(strToWellFormed, s, []);
  const arrayIncludes = ArrayProto.includes;
  const arrayPush = ArrayProto.push;
  const arrayPop = ArrayProto.pop;
  const promiseThen = PromiseCtor.prototype.then;
  const promiseResolve = PromiseCtor.resolve.bind(PromiseCtor);
  const promiseReject = PromiseCtor.reject.bind(PromiseCtor);
  const mapGet = MapCtor.prototype.get;
  const mapSet = MapCtor.prototype.set;
  const mapDelete = MapCtor.prototype.delete;
  const setAdd = SetCtor.prototype.add;
  const setDelete = SetCtor.prototype.delete;
  const setHas = SetCtor.prototype.has;
  // Longest array of characters `split("")` may make (V8's own limit on
  // array length is 2^27 - 1 elements here).
  const MAX_SPLIT = 2 ** 26;
  const setMethodOf = (o, name, f) => defineProperty(o, name, { value: f, writable: true, configurable: true, enumerable: false });
  const mapSize = getOwnPropertyDescriptor(MapCtor.prototype, "size").get;
  const setSize = getOwnPropertyDescriptor(SetCtor.prototype, "size").get;
  const regexpSource = getOwnPropertyDescriptor(RegExp.prototype, "source").get;
  const regexpFlags = getOwnPropertyDescriptor(RegExp.prototype, "flags").get;
  const strSplit = String.prototype.split;
  const strTrim = String.prototype.trim;
  const arrayJoin = ArrayProto.join;
  const errorIs = ErrorCtor.isError;
  const objectToString = ObjectProto.toString;
  const own = (o, k) => (o !== null && typeof o === "object" && hasOwn(o, k) ? o[k] : undefined);

  // ------------------------------------------------------------ the host
  // Set once by `__quire_bind`: emit(json), done(json), arm(id, ms),
  // clear(id), call(id, op, json) are fire-and-forget; now,
  // url, urlSet, utf8Encode, utf8Decode, btoa, atob, bytesToBase64,
  // base64ToBytes, randomBytes, randomUUID answer synchronously.
  let S = null;

  // ------------------------------------------------------------ the run
  let limits = { output_bytes: 1 << 20, output_events: 100000, max_pending_timers: 1000, host_calls: 1000, host_value_bytes: 1 << 20, memory_bytes: 64 << 20 };
  let outputUsed = 0;
  let outputEvents = 0;
  let ended = false;
  let runCtx = null;
  let hostNs = undefined;
  let hostAttached = false;

  // JSON for the wire, written by hand: JSON.stringify would consult
  // `toJSON` on (possibly polluted) prototypes. Strings are made
  // well-formed (lone surrogates become U+FFFD, as in QuickJS).
  function wire(v) {
    switch (typeof v) {
      case "string":
        return jsonStringify(wellFormed(v));
      case "number":
        return numIsFinite(v) ? "" + v : "null";
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
          const x = v[k];
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

  function event(body) {
    if (!ended) S.emit(wire(body));
  }

  class Ended extends ErrorCtor {}

  // The run is over at once (a limit the block must not get past): its
  // error goes to the host, which disposes this isolate; until then
  // nothing more is sent.
  function abort(error) {
    finish(error);
    throw new Ended("the run has ended");
  }

  function finish(error) {
    if (ended) return;
    ended = true;
    S.done(wire(error ? { error } : {}));
  }

  // Counts output the way the server does; past the limit the run ends
  // (the server, which counts too, words it).
  function charge(bytes) {
    outputUsed += bytes;
    outputEvents += 1;
    if (outputUsed > limits.output_bytes || outputEvents > limits.output_events) {
      abort({ kind: "output_limit", message: outputUsed <= limits.output_bytes ? "events" : "bytes" });
    }
  }

  function utf8Len(s) {
    let n = 0;
    for (let i = 0; i < s.length; i++) {
      const c = reflectApply(strCharCodeAt, s, [i]);
      if (c < 0x80) n += 1;
      else if (c < 0x800) n += 2;
      else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
        const d = reflectApply(strCharCodeAt, s, [i + 1]);
        if (d >= 0xdc00 && d <= 0xdfff) {
          n += 4;
          i++;
        } else n += 3;
      } else n += 3;
    }
    return n;
  }

  // ------------------------------------------------------------ serializer
  // A port of `engine/src/serialize.rs`: JSON semantics, with what JSON
  // cannot hold replaced by a readable description, and values nested past
  // the depth limit (`MAX_VALUE_DEPTH` in engine/src/depth.rs) refused.
  const MAX_VALUE_DEPTH = 64;
  class Budget extends ErrorCtor {}
  class TooDeep extends ErrorCtor {}

  function tooDeep(what) {
    return what + " is nested deeper than the limit of " + MAX_VALUE_DEPTH + " levels of arrays and objects";
  }

  // `wrap`: levels the caller wraps around the values that count (a host
  // call's argument list); `describing`: describe too deep a value instead.
  function serialize(v, budget, wrap = 0, describing = false) {
    const maxDepth = MAX_VALUE_DEPTH + wrap;
    let used = 0;
    const path = [];
    const spend = (n) => {
      used += n;
      if (used > budget) throw new Budget("budget");
    };
    const text = (s) => {
      spend(utf8Len(s) + 2);
      return s;
    };
    const mayHaveToJSON = (o) => {
      const p = getPrototypeOf(o);
      if (p === null) return false;
      if (p !== ObjectProto && p !== ArrayProto) return true;
      if (isArray(o)) return false;
      return hasOwn(o, "toJSON");
    };
    const value = (x, key, depth) => {
      if (x !== null && typeof x === "object" && mayHaveToJSON(x)) {
        const f = x.toJSON;
        if (typeof f === "function") x = reflectApply(f, x, [key]);
      }
      switch (typeof x) {
        case "undefined":
          return undefined;
        case "boolean":
          spend(5);
          return x;
        case "number":
          if (numIsFinite(x)) {
            spend(numIsInteger(x) ? 17 : 24);
            return x;
          }
          return text(numIsNaN(x) ? "NaN" : x > 0 ? "Infinity" : "-Infinity");
        case "string":
          return text(x);
        case "bigint":
          return text(reflectApply(bigintToString, x, []) + "n");
        case "symbol":
          return text("[Symbol(" + (reflectApply(symbolDescription, x, []) ?? "") + ")]");
        case "function": {
          const d = getOwnPropertyDescriptor(x, "name");
          const n = d && typeof d.value === "string" ? d.value : "";
          return text(n ? "[Function: " + n + "]" : "[Function (anonymous)]");
        }
      }
      if (x === null) {
        spend(4);
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
        const described = describeBuiltin(x, depth);
        if (described !== undefined) return text(described);
        if (isArray(x)) {
          spend(2);
          const len = NumberCtor(x.length);
          const out = [];
          for (let i = 0; i < (numIsFinite(len) && len > 0 ? len : 0); i++) {
            spend(1);
            const item = value(x[i], StringCtor(i), depth + 1);
            out[i] = item === undefined ? null : item;
          }
          return out;
        }
        spend(2);
        const out = {};
        for (const k of objectKeys(x)) {
          spend(utf8Len(k) + 4);
          const item = value(x[k], k, depth + 1);
          if (item !== undefined) defineProperty(out, k, { value: item, enumerable: true, writable: true, configurable: true });
        }
        return out;
      } finally {
        reflectApply(arrayPop, path, []);
      }
    };
    // Maps, Sets, Errors and RegExps as a console shows them (JSON has no
    // form for them), as `engine/src/serialize.rs` writes them.
    const inline = (j) => (j === undefined ? "undefined" : jsonStringify(j));
    const describeBuiltin = (x, depth) => {
      const proto = getPrototypeOf(x);
      if (proto === ObjectProto || proto === ArrayProto || proto === null) return undefined;
      let size = -1;
      let isMap = true;
      try {
        size = reflectApply(mapSize, x, []);
      } catch {
        isMap = false;
        try {
          size = reflectApply(setSize, x, []);
        } catch {}
      }
      if (size >= 0) {
        // Iterated through its own methods, which the block may have
        // replaced (guest code under the run's limits, as `toJSON` is,
        // and as QuickJS's serializer does it); bounded by the item cap.
        const it = isMap ? x.entries() : x.values();
        const parts = [];
        for (let r = it.next(); r.done === false; r = it.next()) {
          if (parts.length >= MAX_DESCRIBED_ITEMS) {
            reflectApply(arrayPush, parts, ["…"]);
            break;
          }
          const part = isMap
            ? inline(value(r.value[0], "", depth + 1)) + " => " + inline(value(r.value[1], "", depth + 1))
            : inline(value(r.value, "", depth + 1));
          reflectApply(arrayPush, parts, [part]);
        }
        return (isMap ? "Map(" : "Set(") + size + ") {" + reflectApply(arrayJoin, parts, [", "]) + "}";
      }
      if (errorIs ? errorIs(x) : reflectApply(objectToString, x, []) === "[object Error]") {
        const str = (k) => {
          try {
            const s = x[k];
            return typeof s === "string" ? s : undefined;
          } catch {
            return "[" + k + " getter threw]";
          }
        };
        return errorText(str("name") ?? "Error", str("message") ?? "", stackOf(x) ?? "");
      }
      try {
        return "/" + reflectApply(regexpSource, x, []) + "/" + reflectApply(regexpFlags, x, []);
      } catch {}
      return undefined;
    };
    const json = value(v, "", 0);
    return { json: json === undefined ? null : json, bytes: used };
  }

  // Most entries of a Map or Set written into its description.
  const MAX_DESCRIBED_ITEMS = 100;

  // An error's description: its head and the `    at …` frames of its
  // stack (V8's stack repeats the head; only the frames are kept).
  function errorText(name, message, stack) {
    let out = name === "" ? message : message === "" ? name : name + ": " + message;
    const lines = reflectApply(strSplit, stack, ["\n"]);
    for (let i = 0; i < lines.length; i++) {
      const l = reflectApply(strTrim, lines[i], []);
      if (reflectApply(strStartsWith, l, ["at "])) out += "\n    " + l;
    }
    return out;
  }

  function describeValue(v) {
    try {
      return jsonStringify(serialize(v, 4096, 0, true).json);
    } catch (e) {
      return e instanceof Budget ? "[a value too large to describe]" : "[a value that threw while being described]";
    }
  }

  // ------------------------------------------------------------ errors
  // Frames past isolated-vm's boundary are the runner's, not the block's
  // (a rejection nothing handled comes back as a copy that has them).
  const BOUNDARY = "\n    at (<isolated-vm boundary>)";
  function stackOf(e) {
    try {
      const s = e.stack;
      if (typeof s !== "string") return undefined;
      const i = s.indexOf(BOUNDARY);
      return i >= 0 ? reflectApply(strSlice, s, [0, i]) : s;
    } catch {
      return "[stack getter threw]";
    }
  }

  // A real allocation failure of a buffer constructor (checked only on
  // what the guarded constructors below caught, never on a thrown value).
  function isAllocationFailure(message) {
    return reflectApply(strStartsWith, message, ["Array buffer allocation failed"]) || reflectApply(strStartsWith, message, ["Out of memory"]) || reflectApply(strIndexOf, message, ["could not allocate memory"]) >= 0;
  }

  // Text a run's error carries, cut to a size a frame can hold.
  const MAX_ERROR_TEXT = 16384;
  const clip = (t) => (t.length > MAX_ERROR_TEXT ? reflectApply(strSlice, t, [0, MAX_ERROR_TEXT]) + "…" : t);

  function describeThrown(e) {
    if (e instanceof Ended) return null;
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
    // (memory_limit is never read from a message: only the guarded buffer
    // constructors and the runner decide it.)
    const kind = name === "RangeError" && message === "Maximum call stack size exceeded"
      ? "stack_overflow"
      : name === "SyntaxError"
      ? "syntax"
      : name === "CapabilityDenied"
      ? "capability_denied"
      : name === "QuotaExceeded"
      ? "quota_exceeded"
      : "exception";
    const full = message ? name + ": " + message : name;
    const stack = stackOf(e);
    return { kind, message: clip(full), stack: stack === undefined ? undefined : clip(stack) };
  }

  // V8 formats `stack` through Error.prepareStackTrace when it is set, as
  // Node does; a block may replace it.
  const errorToString = ErrorCtor.prototype.toString;
  defineProperty(ErrorCtor, "prepareStackTrace", {
    value: (e, frames) => {
      let out;
      try {
        out = reflectApply(errorToString, e, []);
      } catch {
        out = "Error";
      }
      for (let i = 0; i < frames.length; i++) out += "\n    at " + StringCtor(frames[i]);
      return out;
    },
    writable: true,
    configurable: true,
    enumerable: false,
  });

  // Buffer constructors, wrapped: an allocation V8 refuses ends the run
  // with memory_limit at once, as in QuickJS, instead of letting the block
  // catch it and go on.
  // A resizable buffer's pages are committed as it grows, outside the
  // isolate's counted allocations: what all of a run's resizable buffers
  // may grow to is counted against its memory limit when they are made.
  let reserved = 0;
  function reserve(options) {
    if (options === null || typeof options !== "object") return;
    const max = NumberCtor(options.maxByteLength);
    if (!(max > 0)) return;
    reserved += max;
    if (reserved > limits.memory_bytes) abort({ kind: "memory_limit", message: "memory" });
  }
  // Sizes of what goes to the host to be encoded or decoded: past the
  // memory limit, the run is out of memory (as it would be in QuickJS).
  function hostSized(n) {
    if (n > limits.memory_bytes) abort({ kind: "memory_limit", message: "memory" });
  }

  const BUFFERS = ["ArrayBuffer", "SharedArrayBuffer", "Uint8Array", "Int8Array", "Uint8ClampedArray", "Uint16Array", "Int16Array", "Uint32Array", "Int32Array", "Float16Array", "Float32Array", "Float64Array", "BigInt64Array", "BigUint64Array"];
  const guardedCtors = new SetCtor();
  function guardBuffers() {
    for (const name of BUFFERS) {
      const real = G[name];
      if (typeof real !== "function" || reflectApply(setHas, guardedCtors, [real])) continue;
      const guarded = new ProxyCtor(real, {
        construct(target, args, newTarget) {
          reserve(args[1]);
          try {
            return reflectConstruct(target, args, newTarget === guarded ? target : newTarget);
          } catch (e) {
            if (e instanceof RangeErrorCtor && isAllocationFailure(StringCtor(e.message))) {
              abort({ kind: "memory_limit", message: "memory" });
            }
            throw e;
          }
        },
      });
      reflectApply(setAdd, guardedCtors, [guarded]);
      defineProperty(G, name, { value: guarded, writable: true, configurable: true, enumerable: false });
      try {
        defineProperty(real.prototype, "constructor", { value: guarded, writable: true, configurable: true, enumerable: false });
      } catch {
        // left as it is
      }
    }
  }
  // Now, and again when an isolate is bound: V8 installs
  // `SharedArrayBuffer` afresh in each new context.
  guardBuffers();

  // `"x".repeat(2 ** 28).split("")` makes V8 fail a size check and abort
  // the whole process (crbug.com/1201626): a split into single characters
  // of a string longer than V8's array limit throws instead.
  const realSplit = String.prototype.split;
  setMethodOf(String.prototype, "split", function split(sep, limit) {
    if (sep === "" && limit === undefined && StringCtor(this).length > MAX_SPLIT) {
      throw new RangeErrorCtor("Invalid array length");
    }
    return reflectApply(realSplit, this, [sep, limit]);
  });

  // ------------------------------------------------------ V8's own async
  // WebAssembly is removed when an isolate is bound (V8 installs it afresh
  // in each context, so not here): its memories are reserved by V8 itself,
  // outside the isolate's counted allocations, and `memory.grow` runs
  // inside wasm where no wrapper sees it, so no memory limit would hold.

  // `Atomics.waitAsync` settles through V8 platform tasks that
  // isolated-vm does not run for an idle isolate (a wait would never end):
  // it is removed, as QuickJS has none.
  if (G.Atomics) delete G.Atomics.waitAsync;

  // DOMException, which QuickJS-ng has and bare V8 does not, in the shape
  // WebIDL gives it: `name`, `message` and `code` are accessors of the
  // prototype that refuse anything not made by the constructor.
  const DOM_CONSTANTS = ["INDEX_SIZE_ERR", "DOMSTRING_SIZE_ERR", "HIERARCHY_REQUEST_ERR", "WRONG_DOCUMENT_ERR", "INVALID_CHARACTER_ERR", "NO_DATA_ALLOWED_ERR", "NO_MODIFICATION_ALLOWED_ERR", "NOT_FOUND_ERR", "NOT_SUPPORTED_ERR", "INUSE_ATTRIBUTE_ERR", "INVALID_STATE_ERR", "SYNTAX_ERR", "INVALID_MODIFICATION_ERR", "NAMESPACE_ERR", "INVALID_ACCESS_ERR", "VALIDATION_ERR", "TYPE_MISMATCH_ERR", "SECURITY_ERR", "NETWORK_ERR", "ABORT_ERR", "URL_MISMATCH_ERR", "QUOTA_EXCEEDED_ERR", "TIMEOUT_ERR", "INVALID_NODE_TYPE_ERR", "DATA_CLONE_ERR"];
  const DOM_CODES = { IndexSizeError: 1, HierarchyRequestError: 3, WrongDocumentError: 4, InvalidCharacterError: 5, NoModificationAllowedError: 7, NotFoundError: 8, NotSupportedError: 9, InvalidStateError: 11, SyntaxError: 12, InvalidModificationError: 13, NamespaceError: 14, InvalidAccessError: 15, TypeMismatchError: 17, SecurityError: 18, NetworkError: 19, AbortError: 20, URLMismatchError: 21, QuotaExceededError: 22, TimeoutError: 23, InvalidNodeTypeError: 24, DataCloneError: 25 };
  const domState = new WeakMap();
  const domOf = (e) => {
    const st = domState.get(e);
    if (st === undefined) throw new TypeErrorCtor("Illegal invocation: not a DOMException");
    return st;
  };
  class DOMException extends ErrorCtor {
    constructor(message = undefined, name = undefined) {
      const st = { message: message === undefined ? "" : StringCtor(message), name: name === undefined ? "Error" : StringCtor(name) };
      super(st.message);
      domState.set(this, st);
      delete this.message;
    }
    get name() {
      return domOf(this).name;
    }
    get message() {
      return domOf(this).message;
    }
    get code() {
      const name = domOf(this).name;
      return hasOwn(DOM_CODES, name) ? DOM_CODES[name] : 0;
    }
  }
  for (const k of ["name", "message", "code"]) {
    defineProperty(DOMException.prototype, k, { ...getOwnPropertyDescriptor(DOMException.prototype, k), enumerable: true });
  }
  // The legacy code constants (INDEX_SIZE_ERR…), enumerable on both, as a
  // run binds (`__quire_bind`).
  const defineDomConstants = () => {
    for (let i = 0; i < DOM_CONSTANTS.length; i++) {
      const c = { value: i + 1, writable: false, enumerable: true, configurable: false };
      defineProperty(DOMException, DOM_CONSTANTS[i], c);
      defineProperty(DOMException.prototype, DOM_CONSTANTS[i], c);
    }
  };
  defineProperty(G, "DOMException", { value: DOMException, writable: true, configurable: true, enumerable: false });

  // ------------------------------------------------------------ timers
  const timers = new SetCtor();
  let nextTimer = 0;
  let fireTimer = () => {};

  function timerArm(delayMs, reuse) {
    if (!reuse && reflectApply(setSize, timers, []) >= limits.max_pending_timers) {
      throw new RangeErrorCtor("too many pending timers (limit " + limits.max_pending_timers + " per run)");
    }
    const id = reuse || ++nextTimer;
    const ms = numIsFinite(delayMs) ? mathMin(mathMax(delayMs, 0), 2147483647) : 0;
    reflectApply(setAdd, timers, [id]);
    S.arm(id, ms);
    return id;
  }

  function timerClear(id) {
    if (reflectApply(setDelete, timers, [id])) S.clear(id);
  }

  // ------------------------------------------------------------ host calls
  const calls = new MapCtor();
  let nextCall = 0;

  // A failed call's error, made when the block makes the call, so V8 gives
  // it the block's frames.
  function siteError() {
    const e = new ErrorCtor("");
    captureStackTrace(e, hostCall);
    return e;
  }

  function failWith(e, name, message) {
    defineProperty(e, "message", { value: message, writable: true, configurable: true, enumerable: false });
    defineProperty(e, "name", { value: name, writable: true, configurable: true, enumerable: false });
    return e;
  }

  function hostCall(op, args) {
    const site = siteError();
    return new PromiseCtor((resolve, reject) => {
      op = StringCtor(op);
      // No local refusals: the server refuses calls without a host or past
      // the call limit, and records them.
      let json;
      try {
        json = serialize(args === undefined ? null : args, limits.host_value_bytes, 1).json;
      } catch (e) {
        if (e instanceof TooDeep) return reject(failWith(site, "RangeError", tooDeep("an argument of `" + op + "`")));
        if (e instanceof Budget) {
          return reject(failWith(site, "RangeError", "the arguments of `" + op + "` exceed the host value limit of " + limits.host_value_bytes + " bytes"));
        }
        return reject(e);
      }
      const id = ++nextCall;
      reflectApply(mapSet, calls, [id, { resolve, reject, site }]);
      S.call(id, op, wire(json));
    });
  }

  function reply(id, text) {
    const c = reflectApply(mapGet, calls, [id]);
    if (c === undefined) return;
    reflectApply(mapDelete, calls, [id]);
    let result = null;
    try {
      result = jsonParse(text);
    } catch {
      // answered as malformed below
    }
    if (result !== null && typeof result === "object" && hasOwn(result, "Ok")) {
      c.resolve(own(result, "Ok"));
    } else {
      const err = own(result, "Err");
      c.reject(failWith(c.site, StringCtor(own(err, "name") ?? "Error"), StringCtor(own(err, "message") ?? "malformed reply")));
    }
  }

  // ------------------------------------------------------------ natives
  // What `prelude.js` and `prelude_extras.js` expect on __quire_native
  // (see `engine/src/natives.rs`, whose behaviour these follow).
  let extrasInit = undefined;
  let streamsInit = undefined;
  const LEVELS = ["log", "info", "warn", "error", "debug"];
  const JSON_MIMES = ["application/json", "application/vnd.vegalite.v5+json", "application/vnd.quire.progress+json"];
  // The prelude checks display ids; this refuses a bad one all the same.
  const displayIdChecked = (id) => {
    id = StringCtor(id);
    let ok = id.length > 0 && id.length <= 64;
    for (let i = 0; ok && i < id.length; i++) {
      const c = reflectApply(strCharCodeAt, id, [i]);
      ok = (c >= 48 && c <= 58) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95 || c === 45 || c === 46;
    }
    if (!ok) throw new TypeErrorCtor("display: a display id must be 1 to 64 letters, digits, '_', '-', '.' or ':'");
    return id;
  };
  const N = {
    log(level, text) {
      text = StringCtor(text);
      charge(utf8Len(text));
      event({ type: "log", level: reflectApply(arrayIncludes, LEVELS, [level]) ? level : "log", text });
    },
    displayText(update, id, mime, text) {
      id = displayIdChecked(id);
      text = StringCtor(text);
      charge(utf8Len(text) + mime.length + id.length);
      event({ type: update ? "update_display" : "display", display_id: id, mime, data: text });
    },
    displayJson(update, id, value, mime) {
      id = displayIdChecked(id);
      let out;
      try {
        out = serialize(value, mathMax(0, limits.output_bytes - outputUsed));
      } catch (e) {
        if (e instanceof Budget) abort({ kind: "output_limit", message: "bytes" });
        if (e instanceof TooDeep) throw new RangeErrorCtor(tooDeep("the display() value"));
        throw e;
      }
      charge(out.bytes + id.length);
      mime = reflectApply(arrayIncludes, JSON_MIMES, [mime]) ? mime : "application/json";
      event({ type: update ? "update_display" : "display", display_id: id, mime, data: out.json });
    },
    clearDisplay(id) {
      id = displayIdChecked(id);
      charge(id.length);
      event({ type: "clear_display", display_id: id });
    },
    timerArm,
    timerClear,
    registerHooks(fire) {
      fireTimer = fire;
    },
    now: () => S.now(),
    urlParse(input, base) {
      input = StringCtor(input);
      base = base === undefined ? undefined : StringCtor(base);
      hostSized(input.length + (base === undefined ? 0 : base.length));
      return S.url(input, base);
    },
    urlSet(href, field, value) {
      href = StringCtor(href);
      value = StringCtor(value);
      hostSized(href.length + value.length);
      return S.urlSet(href, StringCtor(field), value);
    },
    utf8Encode(s) {
      s = StringCtor(s);
      hostSized(s.length * 3);
      return S.utf8Encode(s);
    },
    utf8Decode(bytes, fatal) {
      hostSized(bytes.byteLength * 2);
      const s = S.utf8Decode(bytes, !!fatal);
      if (s === null) throw new TypeErrorCtor("TextDecoder: invalid UTF-8");
      return s;
    },
    btoa(s) {
      s = StringCtor(s);
      hostSized(s.length * 2);
      const out = S.btoa(s);
      if (out === null) throw new DOMException("btoa: the string contains characters outside of the Latin1 range", "InvalidCharacterError");
      return out;
    },
    atob(s) {
      s = StringCtor(s);
      hostSized(s.length);
      const out = S.atob(s);
      if (out === null) throw new DOMException("atob: the string is not valid base64", "InvalidCharacterError");
      return out;
    },
    bytesToBase64(bytes) {
      hostSized(bytes.byteLength * 2);
      return S.bytesToBase64(bytes);
    },
    base64ToBytes(s) {
      s = StringCtor(s);
      hostSized(s.length);
      return S.base64ToBytes(s);
    },
    randomBytes: (n) => S.randomBytes(mathMin(mathMax(0, n | 0), 65536)),
    randomUUID: () => S.randomUUID(),
    hostCall,
    loadExtras: () => extrasInit,
    loadStreams: () => streamsInit,
  };

  // `src` as the body of a strict function named `name` in stack traces.
  function scope(src, name) {
    return indirectEval('(function () { "use strict"; ' + src + "\n})\n//# sourceURL=" + name);
  }
  const exportInit = "\nexport function init(";
  extrasInit = scope(extrasSrc.replace(exportInit, "\nreturn function init("), "quire:extras")();
  streamsInit = scope(streamsSrc.replace(exportInit, "\nreturn function init("), "quire:streams")();
  G.__quire_native = N;
  scope(coreSrc, "quire:prelude")();

  // Dynamic import() in a block is rewritten (by the server) to this: only
  // "quire" loads.
  defineProperty(G, "__qi__", {
    value: (spec) => {
      if (spec === "quire" && hostAttached) return promiseResolve(hostNs);
      const name = StringCtor(spec);
      const msg = name === "quire"
        ? 'the host module "quire" is not available to this run (no host API is attached)'
        : 'import of "' + name + '" is not allowed: a block can only import the host module "quire" (no files, packages or URLs)';
      return promiseReject(new TypeErrorCtor(msg));
    },
    writable: false,
    configurable: false,
    enumerable: false,
  });

  // ------------------------------------------------------------ settling
  // The block's module (wrapped by the server) reports here when its body
  // has run or thrown; then the default export is taken and awaited, and
  // the run ends once no timer, host call or V8 work is left (`drain`).
  let drainWaiter = null;
  const busy = () => reflectApply(setSize, timers, []) > 0 || reflectApply(mapSize, calls, []) > 0;
  function settled() {
    if (drainWaiter !== null && !busy()) {
      const w = drainWaiter;
      drainWaiter = null;
      w();
    }
  }
  const drain = () => new PromiseCtor((resolve) => {
    drainWaiter = resolve;
    settled();
  });

  async function complete(ns) {
    let result;
    let hasResult = false;
    if (ns !== null && typeof ns === "object" && hasOwn(ns, "default")) {
      hasResult = true;
      let d = ns.default;
      if (typeof d === "function") d = d(runCtx);
      result = await d;
    }
    await drain();
    if (ended) return;
    if (hasResult) {
      let out;
      try {
        out = serialize(result, mathMax(0, limits.output_bytes - outputUsed));
      } catch (e) {
        if (e instanceof Budget) return finish({ kind: "output_limit", message: "bytes" });
        if (e instanceof TooDeep) return finish({ kind: "exception", message: tooDeep("the result") });
        throw e;
      }
      event({ type: "result", value: out.json });
    }
    finish(null);
  }

  const failed = (e) => {
    const d = describeThrown(e);
    if (d) finish(d);
  };

  // What the wrapped module calls: once, when its body ran or threw.
  let moduleReported = false;
  const moduleHooks = freeze({
    done(ns) {
      if (moduleReported) return;
      moduleReported = true;
      reflectApply(promiseThen, complete(ns), [undefined, failed]);
    },
    fail(e) {
      if (moduleReported) return;
      moduleReported = true;
      failed(e);
    },
  });

  // What the runner calls on this isolate.
  const api = freeze({
    // The run's request (JSON): limits and the default export's `ctx`.
    start(text, ns) {
      const req = jsonParse(text);
      const l = own(req, "limits");
      if (l !== undefined) limits = { ...limits, ...l };
      runCtx = freeze({
        input: own(req, "input") ?? null,
        trigger: own(req, "trigger") ?? { kind: "manual" },
        block: own(req, "block") ?? null,
        workspace: own(req, "workspace") ?? "default",
      });
      if (ns !== undefined) {
        hostAttached = true;
        hostNs = ns;
      }
      defineProperty(G, "__quire_module", { value: moduleHooks, writable: false, configurable: false, enumerable: false });
    },
    fire(id) {
      if (!reflectApply(setDelete, timers, [id])) return;
      if (!ended) fireTimer(id);
      settled();
    },
    reply(id, text) {
      reply(id, text);
      settled();
    },
    // A rejection nothing handled (isolated-vm reports the first one of a
    // task to the runner, which passes a copy back here). It fails the
    // run even if the run had just reported success: the runner holds a
    // success until the task it came in has ended.
    unhandled(e) {
      ended = true;
      const d = describeThrown(e);
      S.done(wire({ error: d ?? { kind: "exception", message: "Uncaught rejection" } }));
    },
  });

  // Run once while the snapshot is made: console's formatting, so its
  // functions are compiled in the snapshot rather than on a run's first
  // call. Nothing it touches outlives it.
  defineProperty(G, "__quire_warm", {
    value: () => {
      delete G.__quire_warm;
      const noop = () => {};
      S = { emit: noop, done: noop };
      G.console.log("warm", { a: [1, "x"], b: null }, 1.5, [new MapCtor([[1, 2]])], "%s", 2);
      S = null;
      outputUsed = 0;
      outputEvents = 0;
    },
    writable: false,
    configurable: true,
    enumerable: false,
  });

  defineProperty(G, "__quire_bind", {
    value: (slots) => {
      delete G.__quire_bind;
      S = slots;
      delete G.WebAssembly;
      defineDomConstants();
      guardBuffers();
      return api;
    },
    writable: false,
    configurable: true,
    enumerable: false,
  });
})
