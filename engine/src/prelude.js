// quire's runtime prelude: the web globals of a block (console, display,
// timers, structuredClone, TextEncoder/TextDecoder, URL/URLSearchParams,
// atob/btoa, crypto, fetch, Blob/File/FormData/FileReader). Compiled to QuickJS bytecode once per process and
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
const stringIsWellFormed = uncurry(String.prototype.isWellFormed);
const stringToWellFormed = uncurry(String.prototype.toWellFormed);
const stringNormalize = uncurry(String.prototype.normalize);
const stringFromCodePoint = String.fromCodePoint;
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
// The primitive inside a Boolean, Number, String or BigInt wrapper object
// (each throws on anything else).
const wrapperValueOf = [Boolean, Number, String, BigInt].map((C) => uncurry(C.prototype.valueOf));
const arrayBufferTransfer = ArrayBuffer.prototype.transfer ? uncurry(ArrayBuffer.prototype.transfer) : null;
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
const typedArraySet = uncurry(typedArrayProto.set);
const objectCreate = O.create;
const reflectOwnKeys = Reflect.ownKeys;
const iteratorProto = getPrototypeOf(getPrototypeOf([][Symbol.iterator]()));
const typedArraySubarray = uncurry(typedArrayProto.subarray);
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
    const H = { N, getOwnPropertyDescriptor, getPrototypeOf, getOwnPropertySymbols, objectIs, regexpTest, functionToString, errorToString, dateToISOString, regexpToString, bigintToString, mapSize, setSize, typedArrayLength, arrayBufferByteLength, NumberCtor, mathFloor, safe, symbolToString, MapCtor, isArray, DateCtor, dateGetTime, RegExpCtor, mapEntries, iterNext, SetCtor, setValues, ArrayBufferCtor, ArrayBufferIsView, ErrorCtor, PromiseCtor, WeakMapCtor, objectToString, objectKeys, Uint8ArrayCtor, TypeErrorCtor, StringCtor, stringToLower, RangeErrorCtor, stringReplace, encodeURIComponent, decodeURIComponent, arrayPush, stringSlice, stringSplit, stringIndexOf, arrayJoin, reflectApply, arraySlice, defineProperty, typedArrayTag, stringIsWellFormed, stringToWellFormed, stringNormalize, stringFromCodePoint, DOMExceptionCtor: globalThis.DOMException, typedArraySet, typedArraySubarray, wrapperValueOf, arrayBufferTransfer, ObjectCtor: O, objectCreate, iteratorProto, reflectOwnKeys, queueTask: (fn) => addTimer(fn, 0, [], false), loadStreams };
    extras = N.loadExtras()(H);
  }
  return extras;
}

// WHATWG streams, a third module loaded on first use (a block that never
// touches a stream never pays for it).
let streams;
function loadStreams() {
  if (streams === undefined) streams = N.loadStreams()();
  return streams;
}
const STREAMS = ["ReadableStream", "ReadableStreamDefaultReader", "ReadableStreamBYOBReader", "ReadableStreamBYOBRequest", "ReadableStreamDefaultController", "ReadableByteStreamController", "WritableStream", "WritableStreamDefaultWriter", "WritableStreamDefaultController", "TransformStream", "TransformStreamDefaultController", "ByteLengthQueuingStrategy", "CountQueuingStrategy"];

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

const MIMES = ["application/json", "text/plain", "text/html", "text/csv", "text/markdown", "image/svg+xml", "image/png", "image/jpeg", "application/vnd.vegalite.v5+json", "application/vnd.quire.progress+json"];
const VEGA_LITE = "application/vnd.vegalite.v5+json";
const PROGRESS = "application/vnd.quire.progress+json";
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
function checkMime(mime) {
  mime = StringCtor(mime);
  for (let i = 0; i < MIMES.length; i++) if (MIMES[i] === mime) return mime;
  throw new TypeErrorCtor("display: unsupported mime '" + mime + "' (use one of " + arrayJoin(MIMES, ", ") + ")");
}
// Progress data: {fraction in 0..1, label?}; anything else is read as well
// as it can be (NaN and negatives are 0, past 1 is 1).
function progressData(value) {
  let f = value !== null && typeof value === "object" ? value.fraction : value;
  f = NumberCtor(f);
  if (!(f >= 0)) f = 0;
  if (f > 1) f = 1;
  const d = { fraction: f };
  const label = value !== null && typeof value === "object" ? value.label : undefined;
  // Defined, not assigned: a setter a block put on Object.prototype
  // cannot change what is sent.
  if (label !== undefined && label !== null) defineProperty(d, "label", { value: StringCtor(label), enumerable: true, writable: true, configurable: true });
  return d;
}
// Emit a display (update = false) or an update of one shown before.
function show(update, id, value, mime) {
  if (mime === "application/json") N.displayJson(update, id, value, mime);
  else if (mime === VEGA_LITE) {
    if (value === null || typeof value !== "object" || isArray(value)) throw new TypeErrorCtor("display: a Vega-Lite spec is an object, such as { mark: 'bar', data: { values: [...] }, encoding: {...} }");
    N.displayJson(update, id, value, mime);
  } else if (mime === PROGRESS) N.displayJson(update, id, progressData(value), mime);
  else if (mime === "image/png" || mime === "image/jpeg") N.displayText(update, id, mime, imageBase64(mime, value));
  else N.displayText(update, id, mime, typeof value === "string" ? value : loadExtras().inspect(value, new SetCtor(), 0, false));
}
// Display ids of this run: id -> true while shown, false once cleared.
const displays = new MapCtor();
let displaysMade = 0;
function displayId(options) {
  const given = options && options.id;
  if (given === undefined || given === null) {
    let id;
    do id = "d" + ++displaysMade;
    while (displays.has(id));
    return id;
  }
  const id = StringCtor(given);
  let ok = id.length > 0 && id.length <= 64;
  for (let i = 0; ok && i < id.length; i++) {
    const c = stringCharCodeAt(id, i);
    ok = (c >= 48 && c <= 58) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95 || c === 45 || c === 46;
  }
  if (!ok) throw new TypeErrorCtor("display: id must be 1 to 64 letters, digits, '_', '-', '.' or ':'");
  return id;
}
function defaultMime(value) {
  return typeof value === "string" ? "text/plain" : "application/json";
}
// A handle on one output: update it in place, or clear it.
class DisplayHandle {
  #id;
  #mime;
  constructor(id, mime) {
    this.#id = id;
    this.#mime = mime;
  }
  get id() {
    return this.#id;
  }
  update(value, options) {
    const id = this.#id;
    if (displays.get(id) !== true) throw new TypeErrorCtor("display: '" + id + "' was cleared; show it again with display(value, { id: '" + id + "' })");
    const mime = checkMime(options && options.mime !== undefined ? options.mime : this.#mime);
    show(true, id, value, mime);
    this.#mime = mime;
  }
  clear() {
    const id = this.#id;
    if (displays.get(id) !== true) return;
    N.clearDisplay(id);
    displays.set(id, false);
  }
}
// display(value, {mime, id}): a new output, or (with the id of one shown
// and not cleared) that output updated in place.
function display(value, options) {
  let mime = options && options.mime;
  if (mime === undefined) mime = defaultMime(value);
  mime = checkMime(mime);
  const id = displayId(options);
  const shown = displays.get(id) === true;
  show(shown, id, value, mime);
  displays.set(id, true);
  return new DisplayHandle(id, mime);
}
// display.progress(fraction, label, {id}): a progress bar that updates in
// place. Its handle sends an update only when the whole percent or the
// label changed (a label alone at most every 100 ms), so a loop may call
// update() on every item.
function progress(fraction, label, options) {
  const data = progressData({ fraction, label });
  const h = display(data, { mime: PROGRESS, id: options && options.id });
  let pct = mathFloor(data.fraction * 100);
  let text = data.label;
  let at = N.now();
  return O.freeze({
    id: h.id,
    update(f, l) {
      const d = progressData({ fraction: f, label: l === undefined ? text : l });
      const p = mathFloor(d.fraction * 100);
      const now = N.now();
      if (p === pct && (d.label === text || now - at < 100)) return;
      pct = p;
      text = d.label;
      at = now;
      h.update(d);
    },
    clear() {
      h.clear();
    },
  });
}
defineProperty(display, "progress", { value: progress, writable: true, configurable: true, enumerable: false });

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
// The HTML timeout: a WebIDL `long` (ToInt32: 2**32 is 0, NaN is 0),
// negative as 0.
function toDelay(ms) {
  const n = NumberCtor(ms) | 0;
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
const LAZY = ["structuredClone", "TextEncoder", "TextDecoder", "URL", "URLSearchParams", "atob", "btoa", "crypto", "fetch", "Request", "Response", "Headers", "Blob", "File", "FormData", "FileReader"];
function lazyGlobal(name, load) {
  defineProperty(globalThis, name, {
    get() {
      const v = load()[name];
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
for (let i = 0; i < LAZY.length; i++) lazyGlobal(LAZY[i], loadExtras);
for (let i = 0; i < STREAMS.length; i++) lazyGlobal(STREAMS[i], loadStreams);
N.registerHooks(fireTimer, O.prototype, Array.prototype);
