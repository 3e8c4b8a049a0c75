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

// ---------------------------------------------------------------- inspect

const MAX_DEPTH = 4;
const MAX_ITEMS = 100;
const MAX_STRING = 10000;

function quote(s) {
  if (s.length > MAX_STRING) s = stringSlice(s, 0, MAX_STRING) + "…";
  return "'" + stringReplace(stringReplace(s, /\\/g, "\\\\"), /'/g, "\\'") + "'";
}

function keyText(k) {
  if (typeof k === "symbol") return "[" + symbolToString(k) + "]";
  return regexpTest(/^[A-Za-z_$][A-Za-z0-9_$]*$/, k) ? k : quote(k);
}

function fnName(f) {
  const d = safe(() => getOwnPropertyDescriptor(f, "name"), undefined);
  const n = d && typeof d.value === "string" ? d.value : "";
  const isClass = safe(() => regexpTest(/^class[\s{]/, functionToString(f)), false);
  if (isClass) return n ? "[class " + n + "]" : "[class (anonymous)]";
  return n ? "[Function: " + n + "]" : "[Function (anonymous)]";
}

function errorText(e, seen, depth) {
  const stack = safe(() => e.stack, undefined);
  const head = safe(() => errorToString(e), "Error");
  let out = typeof stack === "string" && stack.length > 0 ? head + "\n" + stringReplace(stack, /\s+$/, "") : head;
  const cause = safe(() => e.cause, undefined);
  if (cause !== undefined && depth < MAX_DEPTH) out += " { [cause]: " + inspect(cause, seen, depth + 1, false) + " }";
  return out;
}

function ownEntries(v, seen, depth, skipIndices) {
  const parts = [];
  const ks = safe(() => objectKeys(v), []);
  let n = 0;
  for (let i = 0; i < ks.length; i++) {
    const k = ks[i];
    if (skipIndices && regexpTest(/^(0|[1-9][0-9]*)$/, k)) continue;
    if (n++ >= MAX_ITEMS) {
      arrayPush(parts, "... " + (ks.length - MAX_ITEMS) + " more items");
      break;
    }
    const d = safe(() => getOwnPropertyDescriptor(v, k), undefined);
    let text;
    if (d && (d.get || d.set) && !("value" in d)) {
      text = d.get && d.set ? "[Getter/Setter]" : d.get ? "[Getter]" : "[Setter]";
    } else {
      let val;
      let threw = false;
      try {
        val = v[k];
      } catch {
        threw = true;
      }
      text = threw ? "[Getter: threw]" : inspect(val, seen, depth + 1, true);
    }
    arrayPush(parts, keyText(k) + ": " + text);
  }
  const syms = safe(() => getOwnPropertySymbols(v), []);
  for (let i = 0; i < syms.length && n < MAX_ITEMS; i++, n++) {
    const d = safe(() => getOwnPropertyDescriptor(v, syms[i]), undefined);
    if (d && !d.enumerable) continue;
    const val = safe(() => v[syms[i]], "[Getter: threw]");
    arrayPush(parts, keyText(syms[i]) + ": " + inspect(val, seen, depth + 1, true));
  }
  return parts;
}

function wrap(prefix, open, parts, close) {
  if (parts.length === 0) return prefix + open + close;
  const one = prefix + open + " " + arrayJoin(parts, ", ") + " " + close;
  if (one.length <= 72) return one;
  return prefix + open + "\n  " + stringReplace(arrayJoin(parts, ",\n"), /\n/g, "\n  ") + "\n" + close;
}

function ctorPrefix(v) {
  const proto = safe(() => getPrototypeOf(v), null);
  if (proto === null) return "[Object: null prototype] ";
  const c = safe(() => getOwnPropertyDescriptor(proto, "constructor"), undefined);
  const name = c && typeof c.value === "function" ? safe(() => c.value.name, "") : "";
  return name && name !== "Object" ? name + " " : "";
}

function inspect(v, seen, depth, nested) {
  switch (typeof v) {
    case "string":
      return nested ? quote(v) : v;
    case "number":
      return objectIs(v, -0) ? "-0" : "" + v;
    case "bigint":
      return bigintToString(v) + "n";
    case "boolean":
      return v ? "true" : "false";
    case "undefined":
      return "undefined";
    case "symbol":
      return symbolToString(v);
    case "function":
      return fnName(v);
  }
  if (v === null) return "null";
  if (seen.has(v)) return "[Circular *]";
  if (depth > MAX_DEPTH) return isArray(v) ? "[Array]" : "[Object]";
  seen.add(v);
  try {
    const tag = safe(() => objectToString(v), "[object Object]");
    if (isArray(v)) {
      const parts = [];
      const len = safe(() => v.length, 0);
      for (let i = 0; i < len && i < MAX_ITEMS; i++) {
        let el;
        try {
          el = v[i];
        } catch {
          el = "[Getter: threw]";
        }
        arrayPush(parts, inspect(el, seen, depth + 1, true));
      }
      if (len > MAX_ITEMS) arrayPush(parts, "... " + (len - MAX_ITEMS) + " more items");
      const extra = ownEntries(v, seen, depth, true);
      for (let i = 0; i < extra.length; i++) arrayPush(parts, extra[i]);
      return wrap("", "[", parts, "]");
    }
    if (v instanceof ErrorCtor || tag === "[object Error]") return errorText(v, seen, depth);
    if (v instanceof MapCtor) {
      const parts = [];
      const it = mapEntries(v);
      for (let r = iterNext(it), i = 0; !r.done; r = iterNext(it), i++) {
        if (i >= MAX_ITEMS) {
          arrayPush(parts, "...");
          break;
        }
        arrayPush(parts, inspect(r.value[0], seen, depth + 1, true) + " => " + inspect(r.value[1], seen, depth + 1, true));
      }
      return wrap("Map(" + mapSize(v) + ") ", "{", parts, "}");
    }
    if (v instanceof SetCtor) {
      const parts = [];
      const it = setValues(v);
      for (let r = iterNext(it), i = 0; !r.done; r = iterNext(it), i++) {
        if (i >= MAX_ITEMS) {
          arrayPush(parts, "...");
          break;
        }
        arrayPush(parts, inspect(r.value, seen, depth + 1, true));
      }
      return wrap("Set(" + setSize(v) + ") ", "{", parts, "}");
    }
    if (v instanceof DateCtor) {
      return safe(() => dateToISOString(v), "Invalid Date");
    }
    if (v instanceof RegExpCtor) return safe(() => regexpToString(v), "/(regexp)/");
    if (v instanceof PromiseCtor) return "Promise { <state unknown> }";
    if (ArrayBufferIsView(v) && safe(() => typedArrayTag(v), undefined)) {
      const len = typedArrayLength(v);
      const parts = [];
      for (let i = 0; i < len && i < MAX_ITEMS; i++) arrayPush(parts, inspect(v[i], seen, depth + 1, true));
      if (len > MAX_ITEMS) arrayPush(parts, "... " + (len - MAX_ITEMS) + " more items");
      return wrap(typedArrayTag(v) + "(" + len + ") ", "[", parts, "]");
    }
    if (v instanceof ArrayBufferCtor) return "ArrayBuffer { byteLength: " + arrayBufferByteLength(v) + " }";
    if (tag === "[object Boolean]" || tag === "[object Number]" || tag === "[object String]") {
      return "[" + stringSlice(tag, 8, -1) + ": " + inspect(safe(() => v.valueOf(), undefined), seen, depth + 1, true) + "]";
    }
    const custom = ctorPrefix(v);
    return wrap(custom, "{", ownEntries(v, seen, depth, false), "}");
  } finally {
    seen.delete(v);
  }
}

function format(args) {
  const parts = [];
  let i = 0;
  if (typeof args[0] === "string" && stringIndexOf(args[0], "%") !== -1 && args.length > 1) {
    const fmt = args[0];
    let out = "";
    i = 1;
    for (let p = 0; p < fmt.length; p++) {
      const c = fmt[p];
      if (c === "%" && p + 1 < fmt.length) {
        const d = fmt[p + 1];
        if (d === "%") {
          out += "%";
          p++;
          continue;
        }
        if (i < args.length && (d === "s" || d === "d" || d === "i" || d === "f" || d === "o" || d === "O" || d === "j" || d === "c")) {
          const a = args[i++];
          p++;
          if (d === "s") out += typeof a === "string" ? a : inspect(a, new SetCtor(), 1, false);
          else if (d === "d" || d === "i") out += typeof a === "object" ? "NaN" : d === "i" ? "" + mathFloor(NumberCtor(a)) : "" + NumberCtor(a);
          else if (d === "f") out += "" + NumberCtor(a);
          else if (d === "c") {
            /* CSS is ignored */
          } else out += inspect(a, new SetCtor(), 0, true);
          continue;
        }
      }
      out += c;
    }
    arrayPush(parts, out);
  }
  for (; i < args.length; i++) arrayPush(parts, inspect(args[i], new SetCtor(), 0, false));
  return arrayJoin(parts, " ");
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
  N.log("log", inspect(v, new SetCtor(), 0, true));
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

const MIMES = ["application/json", "text/plain", "text/html", "text/csv"];
function display(value, options) {
  let mime = options && options.mime;
  if (mime === undefined) mime = typeof value === "string" ? "text/plain" : "application/json";
  mime = StringCtor(mime);
  let ok = false;
  for (let i = 0; i < MIMES.length; i++) if (MIMES[i] === mime) ok = true;
  if (!ok) throw new TypeErrorCtor("display: unsupported mime '" + mime + "' (use one of " + arrayJoin(MIMES, ", ") + ")");
  if (mime === "application/json") N.displayJson(value);
  else N.displayText(mime, typeof value === "string" ? value : inspect(value, new SetCtor(), 0, false));
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
const LAZY = ["structuredClone", "TextEncoder", "TextDecoder", "URL", "URLSearchParams", "atob", "btoa", "crypto"];
const H = { N, safe, fnName, symbolToString, MapCtor, isArray, DateCtor, dateGetTime, RegExpCtor, mapEntries, iterNext, SetCtor, setValues, ArrayBufferCtor, ArrayBufferIsView, ErrorCtor, PromiseCtor, WeakMapCtor, objectToString, objectKeys, Uint8ArrayCtor, TypeErrorCtor, StringCtor, stringToLower, RangeErrorCtor, stringReplace, encodeURIComponent, decodeURIComponent, arrayPush, stringSlice, stringSplit, stringIndexOf, arrayJoin, reflectApply, arraySlice, defineProperty, typedArrayTag };
let extras;
function lazyGlobal(name) {
  defineProperty(globalThis, name, {
    get() {
      if (extras === undefined) extras = N.loadExtras()(H);
      const v = extras[name];
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
for (let i = 0; i < LAZY.length; i++) lazyGlobal(LAZY[i]);
N.registerHooks(fireTimer, O.prototype, Array.prototype);
