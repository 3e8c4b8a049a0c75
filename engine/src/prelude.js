// quire's runtime prelude: the web globals of a block (console, display,
// timers, structuredClone, TextEncoder/TextDecoder, URL/URLSearchParams,
// atob/btoa, crypto). Compiled to QuickJS bytecode once per process and
// loaded into every isolate before the block. Natives come in on
// globalThis.__quire_native and are removed before any block code runs.
//
// Intrinsics are captured up front so a block that overwrites
// Object.keys, Array.prototype.map or JSON.stringify cannot change how
// console formats values.

const N = globalThis.__quire_native;
delete globalThis.__quire_native;

const O = Object;
const { keys: objectKeys, getPrototypeOf, getOwnPropertyDescriptor,
  getOwnPropertySymbols, defineProperty, is: objectIs } = O;
const FnCall = Function.prototype.call;
const uncurry = (fn) => FnCall.bind(fn);
const arrayPush = uncurry(Array.prototype.push);
const arrayJoin = uncurry(Array.prototype.join);
const arraySlice = uncurry(Array.prototype.slice);
const isArray = Array.isArray;
const stringSlice = uncurry(String.prototype.slice);
const stringReplace = uncurry(String.prototype.replace);
const stringIndexOf = uncurry(String.prototype.indexOf);
const stringSplit = uncurry(String.prototype.split);
const stringCharCodeAt = uncurry(String.prototype.charCodeAt);
const stringToLower = uncurry(String.prototype.toLowerCase);
const regexpTest = uncurry(RegExp.prototype.test);
const jsonStringify = JSON.stringify;
const objectToString = uncurry(O.prototype.toString);
const functionToString = uncurry(Function.prototype.toString);
const errorToString = uncurry(Error.prototype.toString);
const dateToISOString = uncurry(Date.prototype.toISOString);
const dateGetTime = uncurry(Date.prototype.getTime);
const regexpToString = uncurry(RegExp.prototype.toString);
const symbolToString = uncurry(Symbol.prototype.toString);
const bigintToString = uncurry(BigInt.prototype.toString);
const mapEntries = uncurry(Map.prototype.entries);
const setValues = uncurry(Set.prototype.values);
const mapSize = uncurry(getOwnPropertyDescriptor(Map.prototype, "size").get);
const setSize = uncurry(getOwnPropertyDescriptor(Set.prototype, "size").get);
const iterNext = (it) => it.next();
const encodeURIComponent = globalThis.encodeURIComponent;
const decodeURIComponent = globalThis.decodeURIComponent;
const StringCtor = String;
const NumberCtor = Number;
const MapCtor = Map;
const SetCtor = Set;
const DateCtor = Date;
const RegExpCtor = RegExp;
const ErrorCtor = Error;
const ArrayBufferCtor = ArrayBuffer;
const ArrayBufferIsView = ArrayBuffer.isView;
const Uint8ArrayCtor = Uint8Array;
const TypeErrorCtor = TypeError;
const RangeErrorCtor = RangeError;
const PromiseCtor = Promise;
const promiseResolve = Promise.resolve.bind(Promise);
const promiseThen = uncurry(Promise.prototype.then);
const reflectApply = Reflect.apply;
const mathFloor = Math.floor;
const WeakMapCtor = WeakMap;
const typedArrayProto = getPrototypeOf(Uint8Array.prototype);
const typedArrayLength = uncurry(getOwnPropertyDescriptor(typedArrayProto, "length").get);
const typedArrayTag = uncurry(getOwnPropertyDescriptor(typedArrayProto, Symbol.toStringTag).get);
const arrayBufferByteLength = uncurry(getOwnPropertyDescriptor(ArrayBuffer.prototype, "byteLength").get);

function safe(fn, fallback) {
  try {
    return fn();
  } catch {
    return fallback;
  }
}

let extras;
function loadExtras() {
  if (extras === undefined) {
    // The intrinsics below were captured when the prelude loaded, before
    // any block code ran.
    const H = { N, getOwnPropertyDescriptor, getPrototypeOf, getOwnPropertySymbols, objectIs, regexpTest, functionToString, errorToString, dateToISOString, regexpToString, bigintToString, mapSize, setSize, typedArrayLength, arrayBufferByteLength, NumberCtor, mathFloor, safe, symbolToString, MapCtor, isArray, DateCtor, dateGetTime, RegExpCtor, mapEntries, iterNext, SetCtor, setValues, ArrayBufferCtor, ArrayBufferIsView, ErrorCtor, PromiseCtor, WeakMapCtor, objectToString, objectKeys, Uint8ArrayCtor, TypeErrorCtor, StringCtor, stringToLower, RangeErrorCtor, stringReplace, encodeURIComponent, decodeURIComponent, arrayPush, stringSlice, stringSplit, stringIndexOf, arrayJoin, reflectApply, arraySlice, defineProperty, typedArrayTag };
    extras = N.loadExtras()(H);
  }
  return extras;
}

// ---------------------------------------------------------------- formatting

// Plain strings and numbers are formatted here; anything else (objects,
// format strings) goes to `format` in the extras module, loaded on first use.
function format(args) {
  let out = "";
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const t = typeof a;
    if (t === "string" && (i > 0 || stringIndexOf(a, "%") === -1)) out += (i ? " " : "") + a;
    else if (t === "number" || t === "boolean" || t === "undefined" || a === null) out += (i ? " " : "") + (objectIs(a, -0) ? "-0" : "" + a);
    else return loadExtras().format(args);
  }
  return out;
}
function inspect(v) {
  return loadExtras().inspect(v, new SetCtor(), 0, true);
}

// ---------------------------------------------------------------- console

const LEVELS = ["log", "info", "warn", "error", "debug"];
const counts = new MapCtor();
const timers = new MapCtor();
const consoleObj = {};
for (let li = 0; li < LEVELS.length; li++) {
  const level = LEVELS[li];
  consoleObj[level] = function (...args) {
    N.log(level, format(args));
  };
}
consoleObj.trace = function (...args) {
  const stack = safe(() => new ErrorCtor().stack, "");
  N.log("debug", "Trace: " + format(args) + "\n" + stringReplace(stack, /^.*\n/, ""));
};
consoleObj.assert = function (cond, ...args) {
  if (!cond) N.log("error", "Assertion failed" + (args.length ? ": " + format(args) : ""));
};
consoleObj.table = function (data) {
  N.log("log", format([data]));
};
consoleObj.dir = function (v) {
  N.log("log", inspect(v));
};
consoleObj.count = function (label = "default") {
  const n = (counts.get(label) || 0) + 1;
  counts.set(label, n);
  N.log("info", label + ": " + n);
};
consoleObj.time = function (label = "default") {
  timers.set(label, N.now());
};
consoleObj.timeEnd = function (label = "default") {
  const t = timers.get(label);
  timers.delete(label);
  if (t !== undefined) N.log("info", label + ": " + (N.now() - t).toFixed(3) + " ms");
};
consoleObj.timeLog = function (label = "default", ...args) {
  const t = timers.get(label);
  if (t !== undefined) N.log("info", label + ": " + (N.now() - t).toFixed(3) + " ms" + (args.length ? " " + format(args) : ""));
};

// ---------------------------------------------------------------- display

const MIMES = ["application/json", "text/plain", "text/html", "text/csv", "text/markdown", "image/svg+xml", "image/png", "image/jpeg", "application/vnd.vegalite.v5+json"];
const VEGA_LITE = "application/vnd.vegalite.v5+json";
// PNG and JPEG data as canonical base64: from bytes, or from base64 text
// (whitespace and missing padding forgiven, as atob does).
function imageBase64(mime, value) {
  if (value instanceof ArrayBufferCtor) return N.bytesToBase64(new Uint8ArrayCtor(value));
  if (ArrayBufferIsView(value)) return N.bytesToBase64(new Uint8ArrayCtor(value.buffer, value.byteOffset, value.byteLength));
  if (typeof value === "string") {
    let bin = null;
    try {
      bin = N.atob(value);
    } catch (_) {
      bin = null;
    }
    if (bin !== null && (bin.length > 0 || value.length === 0)) return N.btoa(bin);
  }
  throw new TypeErrorCtor("display: " + mime + " data must be base64 text or bytes (an ArrayBuffer or a typed array)");
}
function display(value, options) {
  let mime = options && options.mime;
  if (mime === undefined) mime = typeof value === "string" ? "text/plain" : "application/json";
  mime = StringCtor(mime);
  let ok = false;
  for (let i = 0; i < MIMES.length; i++) if (MIMES[i] === mime) ok = true;
  if (!ok) throw new TypeErrorCtor("display: unsupported mime '" + mime + "' (use one of " + arrayJoin(MIMES, ", ") + ")");
  if (mime === "application/json") N.displayJson(value, mime);
  else if (mime === VEGA_LITE) {
    if (value === null || typeof value !== "object" || isArray(value)) throw new TypeErrorCtor("display: a Vega-Lite spec is an object, such as { mark: 'bar', data: { values: [...] }, encoding: {...} }");
    N.displayJson(value, mime);
  } else if (mime === "image/png" || mime === "image/jpeg") N.displayText(mime, imageBase64(mime, value));
  else N.displayText(mime, typeof value === "string" ? value : loadExtras().inspect(value, new SetCtor(), 0, false));
}

// ---------------------------------------------------------------- timers

const timerCallbacks = new MapCtor();
function reportError(e) {
  // An error thrown by a timer callback is uncaught: surface it like a
  // rejection so the run fails the way a browser reports it.
  promiseThen(promiseResolve(), () => {
    throw e;
  });
}
function fireTimer(id) {
  const t = timerCallbacks.get(id);
  if (t === undefined) return;
  if (!t.repeat) timerCallbacks.delete(id);
  else N.timerArm(t.delay, id);
  try {
    reflectApply(t.fn, undefined, t.args);
  } catch (e) {
    reportError(e);
  }
}
function toDelay(ms) {
  const n = NumberCtor(ms);
  return n > 0 ? n : 0;
}
function addTimer(fn, ms, args, repeat) {
  if (typeof fn !== "function") throw new TypeErrorCtor("the callback must be a function (string callbacks are not supported)");
  const delay = toDelay(ms);
  const id = N.timerArm(delay, 0);
  timerCallbacks.set(id, { fn, args, repeat, delay });
  return id;
}
function clearTimer(id) {
  if (typeof id !== "number") return;
  if (timerCallbacks.delete(id)) N.timerClear(id);
}
function setTimeout(fn, ms, ...args) {
  return addTimer(fn, ms, args, false);
}
function setInterval(fn, ms, ...args) {
  return addTimer(fn, ms, args, true);
}
function queueMicrotask(fn) {
  if (typeof fn !== "function") throw new TypeErrorCtor("queueMicrotask: the callback must be a function");
  promiseThen(promiseResolve(), () => fn());
}

// ---------------------------------------------------------------- install

function install(name, value) {
  defineProperty(globalThis, name, { value, writable: true, configurable: true, enumerable: false });
}
// Rarely used globals live in a second bytecode module, loaded on first
// access: most blocks never pay for them.
const LAZY = ["structuredClone", "TextEncoder", "TextDecoder", "URL", "URLSearchParams", "atob", "btoa", "crypto", "fetch", "Request", "Response", "Headers"];
function lazyGlobal(name) {
  defineProperty(globalThis, name, {
    get() {
      const v = loadExtras()[name];
      install(name, v);
      return v;
    },
    set(v) {
      install(name, v);
    },
    configurable: true,
    enumerable: false,
  });
}
install("console", consoleObj);
install("display", display);
install("setTimeout", setTimeout);
install("clearTimeout", clearTimer);
install("setInterval", setInterval);
install("clearInterval", clearTimer);
install("queueMicrotask", queueMicrotask);
// Milliseconds since the run started, with sub-millisecond precision.
install("performance", O.freeze({ now: () => N.now(), timeOrigin: 0 }));
// The host module ("quire") captures this when it is imported, before any
// block code runs. Calling it directly gains nothing: every check is in Rust.
// A failed call's error gets the stack of the call site (captured when the
// block made the call), so an uncaught denial points at the block's line.
const nativeHostCall = N.hostCall;
const hostWithSite = (op, args) => {
  const site = new ErrorCtor();
  return promiseThen(nativeHostCall(op, args), undefined, (e) => {
    if (e !== null && typeof e === "object") {
      try {
        // Drop this wrapper's own frame; keep the module's and the block's.
        const st = site.stack;
        const nl = typeof st === "string" ? stringIndexOf(st, "\n") : -1;
        defineProperty(e, "stack", { value: nl >= 0 ? stringSlice(st, nl + 1) : st, writable: true, configurable: true, enumerable: false });
      } catch {}
    }
    throw e;
  });
};
defineProperty(globalThis, "__quire_host", { value: hostWithSite, writable: false, configurable: false, enumerable: false });
for (let i = 0; i < LAZY.length; i++) lazyGlobal(LAZY[i]);
N.registerHooks(fireTimer, O.prototype, Array.prototype);
