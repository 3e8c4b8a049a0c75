// quire's lazily loaded web globals: structuredClone, TextEncoder/TextDecoder,
// URL/URLSearchParams, atob/btoa, crypto. Compiled to bytecode once per
// process; loaded into an isolate the first time a block touches one of
// them. `init` receives the natives and the intrinsics the core prelude
// captured before any block code ran.

export function init(H) {
  const { N, getOwnPropertyDescriptor, getPrototypeOf, getOwnPropertySymbols, objectIs, regexpTest, functionToString, errorToString, dateToISOString, regexpToString, bigintToString, mapSize, setSize, typedArrayLength, arrayBufferByteLength, NumberCtor, mathFloor, safe, symbolToString, MapCtor, isArray, DateCtor, dateGetTime, RegExpCtor, mapEntries, iterNext, SetCtor, setValues, ArrayBufferCtor, ArrayBufferIsView, ErrorCtor, PromiseCtor, WeakMapCtor, objectToString, objectKeys, Uint8ArrayCtor, TypeErrorCtor, StringCtor, stringToLower, RangeErrorCtor, stringReplace, encodeURIComponent, decodeURIComponent, arrayPush, stringSlice, stringSplit, stringIndexOf, arrayJoin, reflectApply, arraySlice, defineProperty, typedArrayTag, stringIsWellFormed, stringToWellFormed, stringNormalize, stringFromCodePoint, DOMExceptionCtor, wrapperValueOf, arrayBufferTransfer, ObjectCtor, reflectOwnKeys, typedArraySet, loadStreams, objectCreate } = H;
  // WebIDL USVString: a lone surrogate becomes U+FFFD.
  const usv = (v) => {
    const s = StringCtor(v);
    return stringIsWellFormed(s) ? s : stringToWellFormed(s);
  };
  // FileReader.readAsText: the label's decoder (the File API's "package
  // data": a BOM wins, then the label, then the Blob type's charset).
  const decodeText = (bytes, label, type) => {
    let enc = "utf-8";
    const charset = mimeParam(type, "charset");
    if (bytes[0] === 0xfe && bytes[1] === 0xff) enc = "utf-16be";
    else if (bytes[0] === 0xff && bytes[1] === 0xfe) enc = "utf-16le";
    else if (bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) enc = "utf-8";
    else if (safe(() => new TextDecoder(label), null) !== null) enc = label;
    else if (charset !== null && safe(() => new TextDecoder(charset), null) !== null) enc = charset;
    return new TextDecoder(enc).decode(bytes);
  };
  const { Blob, File, FormData, FileReader, bytesOf, encodeMultipart, parseMultipart, mimeParam } = blobGlobals(H, usv, decodeText);
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
    let stack = safe(() => e.stack, undefined);
    const head = safe(() => errorToString(e), "Error");
    // V8's stack starts with the head again; QuickJS's has only frames.
    if (typeof stack === "string") {
      const nl = stringIndexOf(stack, "\n");
      if ((nl < 0 ? stack : stringSlice(stack, 0, nl)) === head) stack = nl < 0 ? "" : stringSlice(stack, nl + 1);
    }
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


  // ---------------------------------------------------------------- structuredClone

  function cloneError(message) {
    if (DOMExceptionCtor) return new DOMExceptionCtor(message, "DataCloneError");
    const e = new ErrorCtor(message);
    e.name = "DataCloneError";
    return e;
  }
  // A Boolean, Number, String or BigInt wrapper object's copy, or undefined.
  function cloneWrapper(v) {
    for (let i = 0; i < wrapperValueOf.length; i++) {
      const p = safe(() => ({ p: wrapperValueOf[i](v) }), undefined);
      if (p !== undefined) return ObjectCtor(p.p);
    }
    return undefined;
  }
  // The `transfer` option: ArrayBuffers only, each once.
  function transferList(options) {
    if (options === undefined || options === null) return [];
    if (typeof options !== "object" && typeof options !== "function") throw new TypeErrorCtor("structuredClone: the options must be an object");
    const t = options.transfer;
    if (t === undefined) return [];
    const list = [...t];
    for (let i = 0; i < list.length; i++) {
      const b = list[i];
      if (!(b instanceof ArrayBufferCtor)) throw cloneError("structuredClone: only ArrayBuffers can be transferred");
      if (arrayBufferTransfer === null || b.detached) throw cloneError("structuredClone: an ArrayBuffer in the transfer list is detached");
      for (let j = 0; j < i; j++) if (list[j] === b) throw cloneError("structuredClone: an ArrayBuffer is in the transfer list twice");
    }
    return list;
  }
  function structuredClone(value, options = undefined) {
    const transfer = transferList(options);
    const memo = new MapCtor();
    for (let i = 0; i < transfer.length; i++) memo.set(transfer[i], transfer[i].slice(0));
    // Own enumerable string keys, copied onto `out` (objects, and arrays'
    // non-index properties too).
    function props(v, out) {
      memo.set(v, out);
      const ks = objectKeys(v);
      for (let i = 0; i < ks.length; i++) out[ks[i]] = c(v[ks[i]]);
      return out;
    }
    function c(v) {
      if (typeof v === "function" || typeof v === "symbol") throw cloneError((typeof v === "function" ? fnName(v) : symbolToString(v)) + " could not be cloned");
      if (v === null || typeof v !== "object") return v;
      if (memo.has(v)) return memo.get(v);
      // Platform objects that are not serializable.
      if (v instanceof URL || v instanceof URLSearchParams) throw cloneError(objectToString(v) + " could not be cloned");
      if (isArray(v)) return props(v, new Array(v.length));
      let out = cloneWrapper(v);
      if (out !== undefined) {
        // a primitive's wrapper
      } else if (v instanceof DateCtor) out = new DateCtor(dateGetTime(v));
      else if (v instanceof RegExpCtor) out = new RegExpCtor(v.source, v.flags);
      else if (v instanceof MapCtor) {
        out = new MapCtor();
        memo.set(v, out);
        const it = mapEntries(v);
        for (let r = iterNext(it); !r.done; r = iterNext(it)) out.set(c(r.value[0]), c(r.value[1]));
        return out;
      } else if (v instanceof SetCtor) {
        out = new SetCtor();
        memo.set(v, out);
        const it = setValues(v);
        for (let r = iterNext(it); !r.done; r = iterNext(it)) out.add(c(r.value));
        return out;
      } else if (v instanceof File) out = new File([v], v.name, { type: v.type, lastModified: v.lastModified });
      else if (v instanceof Blob) out = v.slice(0, v.size, v.type);
      else if (v instanceof ArrayBufferCtor) out = v.slice(0);
      else if (ArrayBufferIsView(v)) {
        const C = v.constructor;
        out = new C(c(v.buffer), v.byteOffset, v.length === undefined ? v.byteLength : v.length);
      } else if (v instanceof ErrorCtor) {
        out = new ErrorCtor(v.message);
        out.name = v.name;
        if (v.stack !== undefined) out.stack = v.stack;
      } else if (v instanceof PromiseCtor || v instanceof WeakMapCtor) {
        throw cloneError(objectToString(v) + " could not be cloned");
      } else {
        return props(v, {});
      }
      memo.set(v, out);
      return out;
    }
    const out = c(value);
    // Only once the whole value is copied: the transferred buffers detach.
    for (let i = 0; i < transfer.length; i++) arrayBufferTransfer(transfer[i]);
    return out;
  }

  // ---------------------------------------------------------------- encoding

  function toBytes(input) {
    if (input === undefined) return new Uint8ArrayCtor(0);
    if (input instanceof ArrayBufferCtor) return new Uint8ArrayCtor(input);
    if (ArrayBufferIsView(input)) return new Uint8ArrayCtor(input.buffer, input.byteOffset, input.byteLength);
    throw new TypeErrorCtor("expected an ArrayBuffer or a typed array / DataView");
  }

  class TextEncoder {
    get encoding() {
      return "utf-8";
    }
    encode(input = "") {
      return N.utf8Encode(usv(input));
    }
    encodeInto(input, dest) {
      if (!(dest instanceof Uint8ArrayCtor)) throw new TypeErrorCtor("TextEncoder.encodeInto: the destination must be a Uint8Array");
      const bytes = N.utf8Encode(usv(input));
      const n = bytes.length < dest.length ? bytes.length : dest.length;
      // Do not split a UTF-8 sequence.
      let w = n;
      while (w > 0 && w < bytes.length && (bytes[w] & 0xc0) === 0x80) w--;
      for (let i = 0; i < w; i++) dest[i] = bytes[i];
      const read = N.utf8Decode(bytes.subarray(0, w), false).length;
      return { read, written: w };
    }
  }

  // The start of an incomplete UTF-8 sequence at the end of `bytes` (where
  // a streaming decode stops, to go on with the next chunk), or its length.
  function incompleteTail(bytes) {
    const end = bytes.length;
    let i = end;
    while (i > 0 && end - i < 3 && (bytes[i - 1] & 0xc0) === 0x80) i--;
    if (i === 0) return end;
    const lead = bytes[i - 1];
    const need = lead >= 0xf0 && lead <= 0xf4 ? 4 : lead >= 0xe0 && lead <= 0xef ? 3 : lead >= 0xc2 && lead <= 0xdf ? 2 : 1;
    if (need === 1 || need <= end - (i - 1)) return end;
    // Only a prefix that can still become a valid sequence waits (the
    // byte after E0, ED, F0 and F4 has a narrower range).
    if (i < end) {
      const b = bytes[i];
      const lo = lead === 0xe0 ? 0xa0 : lead === 0xf0 ? 0x90 : 0x80;
      const hi = lead === 0xed ? 0x9f : lead === 0xf4 ? 0x8f : 0xbf;
      if (b < lo || b > hi) return end;
    }
    return i - 1;
  }

  // The Encoding Standard's labels of the encodings TextDecoder decodes.
  const LABELS = {
    __proto__: null,
    "unicode-1-1-utf-8": "utf-8", unicode11utf8: "utf-8", unicode20utf8: "utf-8", "utf-8": "utf-8", utf8: "utf-8", "x-unicode20utf8": "utf-8",
    csunicode: "utf-16le", "iso-10646-ucs-2": "utf-16le", "ucs-2": "utf-16le", unicode: "utf-16le", unicodefeff: "utf-16le", "utf-16": "utf-16le", "utf-16le": "utf-16le",
    unicodefffe: "utf-16be", "utf-16be": "utf-16be",
  };
  const BOMS = { "utf-8": [0xef, 0xbb, 0xbf], "utf-16le": [0xff, 0xfe], "utf-16be": [0xfe, 0xff] };

  // UTF-16 code units to a string, a few thousand at a time.
  function unitsToString(units) {
    let out = "";
    for (let k = 0; k < units.length; k += 4096) out += reflectApply(StringCtor.fromCharCode, null, arraySlice(units, k, k + 4096));
    return out;
  }

  // The single-byte encodings (`SINGLE_BYTE`, put before this file from
  // single_byte.json; see engine/src/lib.rs): a label's encoding name, or
  // undefined.
  function singleByteName(label) {
    const name = SINGLE_BYTE.labels[label];
    return typeof name === "string" && isArray(SINGLE_BYTE.indexes[name]) ? name : undefined;
  }
  // Bytes below 0x80 as themselves, others through the encoding's index;
  // a byte it has no code point for is U+FFFD, or a TypeError when fatal.
  function decodeSingleByte(bytes, name, fatal) {
    const index = SINGLE_BYTE.indexes[name];
    const units = [];
    for (let i = 0; i < bytes.length; i++) {
      const b = bytes[i];
      const cp = b < 0x80 ? b : index[b - 0x80];
      if (cp === 0 && b !== 0) {
        if (fatal) throw new TypeErrorCtor("TextDecoder: byte 0x" + b.toString(16) + " is not in " + name);
        arrayPush(units, 0xfffd);
      } else arrayPush(units, cp);
    }
    return unitsToString(units);
  }

  // Where a streaming UTF-16 decode stops: before an odd last byte and a
  // last lead surrogate (they wait for the next chunk).
  function incompleteTail16(bytes, be) {
    let end = bytes.length - (bytes.length % 2);
    if (end >= 2) {
      const u = be ? (bytes[end - 2] << 8) | bytes[end - 1] : (bytes[end - 1] << 8) | bytes[end - 2];
      if (u >= 0xd800 && u <= 0xdbff) end -= 2;
    }
    return end;
  }

  // UTF-16 code units to text: a lone surrogate or an odd last byte is
  // U+FFFD, or a TypeError when `fatal`.
  function decode16(bytes, be, fatal) {
    const units = [];
    const bad = () => {
      if (fatal) throw new TypeErrorCtor("TextDecoder: invalid UTF-16");
      arrayPush(units, 0xfffd);
    };
    const unit = (i) => (be ? (bytes[i] << 8) | bytes[i + 1] : (bytes[i + 1] << 8) | bytes[i]);
    let i = 0;
    for (; i + 1 < bytes.length; i += 2) {
      const u = unit(i);
      if (u >= 0xd800 && u <= 0xdbff) {
        const next = i + 3 < bytes.length ? unit(i + 2) : -1;
        if (next >= 0xdc00 && next <= 0xdfff) {
          arrayPush(units, u, next);
          i += 2;
        } else bad();
      } else if (u >= 0xdc00 && u <= 0xdfff) bad();
      else arrayPush(units, u);
    }
    if (i < bytes.length) bad();
    return unitsToString(units);
  }

  class TextDecoder {
    #encoding;
    #fatal;
    #ignoreBOM;
    // Streaming state: bytes of an unfinished sequence, and whether the
    // stream's start (where a BOM is taken off) is behind.
    #pending = new Uint8ArrayCtor(0);
    #started = false;
    constructor(label = "utf-8", options = {}) {
      // A label, ASCII whitespace trimmed, case-insensitive.
      const l = stringToLower(stringReplace(StringCtor(label), /^[\t\n\f\r ]+|[\t\n\f\r ]+$/g, ""));
      const encoding = LABELS[l] || singleByteName(l);
      if (encoding === undefined) {
        throw new RangeErrorCtor("TextDecoder: unsupported encoding '" + label + "' (UTF-8, UTF-16 and the single-byte encodings are)");
      }
      this.#encoding = encoding;
      this.#fatal = !!(options && options.fatal);
      this.#ignoreBOM = !!(options && options.ignoreBOM);
    }
    get encoding() {
      return this.#encoding;
    }
    get fatal() {
      return this.#fatal;
    }
    get ignoreBOM() {
      return this.#ignoreBOM;
    }
    decode(input, options) {
      const stream = !!(options && options.stream);
      let bytes = toBytes(input);
      if (this.#pending.length > 0) {
        const joined = new Uint8ArrayCtor(this.#pending.length + bytes.length);
        joined.set(this.#pending);
        joined.set(bytes, this.#pending.length);
        bytes = joined;
        this.#pending = new Uint8ArrayCtor(0);
      }
      if (!this.#started && !this.#ignoreBOM && BOMS[this.#encoding]) {
        const bom = BOMS[this.#encoding];
        let k = 0;
        while (k < bom.length && k < bytes.length && bytes[k] === bom[k]) k++;
        if (k < bom.length && k === bytes.length && stream) {
          // Maybe a BOM, cut by the chunk: wait for more.
          this.#pending = new Uint8ArrayCtor(bytes);
          return "";
        }
        if (k === bom.length) bytes = bytes.subarray(k);
      }
      this.#started = stream && (this.#started || bytes.length > 0);
      if (!BOMS[this.#encoding]) return decodeSingleByte(bytes, this.#encoding, this.#fatal);
      const utf8 = this.#encoding === "utf-8";
      const be = this.#encoding === "utf-16be";
      if (stream) {
        const cut = utf8 ? incompleteTail(bytes) : incompleteTail16(bytes, be);
        this.#pending = new Uint8ArrayCtor(bytes.subarray(cut));
        bytes = bytes.subarray(0, cut);
      }
      return utf8 ? N.utf8Decode(bytes, this.#fatal) : decode16(bytes, be, this.#fatal);
    }
  }

  function btoa(s) {
    return N.btoa(StringCtor(s));
  }
  // Forgiving-base64 decode's checks (HTML), one copy for both engines.
  function atob(s) {
    s = StringCtor(s);
    let t = stringReplace(s, /[\t\n\f\r ]/g, "");
    if (t.length % 4 === 0) t = stringReplace(t, /==?$/, "");
    if (t.length % 4 === 1 || !regexpTest(/^[A-Za-z0-9+/]*$/, t)) {
      const D = DOMExceptionCtor || ErrorCtor;
      throw new D("atob: the string is not valid base64", "InvalidCharacterError");
    }
    return N.atob(s);
  }

  // ---------------------------------------------------------------- URL

  // The application/x-www-form-urlencoded serializer: all but
  // alphanumerics and `*-._` percent-encoded, space as `+`.
  const FORM_EXTRA = { "!": "%21", "'": "%27", "(": "%28", ")": "%29", "~": "%7E" };
  const hexByte = (c) => FORM_EXTRA[c];
  function encodeForm(s) {
    const e = stringReplace(encodeURIComponent(usv(s)), /[!'()~]/g, hexByte);
    return stringReplace(e, /%20/g, "+");
  }
  const hexValue = (b) => (b >= 0x30 && b <= 0x39 ? b - 0x30 : b >= 0x41 && b <= 0x46 ? b - 0x37 : b >= 0x61 && b <= 0x66 ? b - 0x57 : -1);
  // `+` as space, then percent-decoding to bytes, read as UTF-8 (an
  // invalid sequence becomes U+FFFD).
  function decodeForm(s) {
    const t = stringReplace(s, /\+/g, " ");
    if (stringIndexOf(t, "%") === -1) return usv(t);
    const bytes = N.utf8Encode(usv(t));
    const out = new Uint8ArrayCtor(bytes.length);
    let n = 0;
    for (let i = 0; i < bytes.length; i++) {
      const hi = i + 2 < bytes.length ? hexValue(bytes[i + 1]) : -1;
      const lo = hi >= 0 ? hexValue(bytes[i + 2]) : -1;
      if (bytes[i] === 0x25 && lo >= 0) {
        out[n++] = hi * 16 + lo;
        i += 2;
      } else out[n++] = bytes[i];
    }
    return N.utf8Decode(out.subarray(0, n), false);
  }

  const searchParamsOwner = new WeakMapCtor();

  class URLSearchParams {
    #list = [];
    constructor(init = "") {
      // WebIDL: any object (a function too) is a sequence or a record.
      if ((typeof init === "object" && init !== null) || typeof init === "function") {
        if (typeof init[Symbol.iterator] === "function") {
          for (const pair of init) {
            const p = [...pair];
            if (p.length !== 2) throw new TypeErrorCtor("URLSearchParams: each pair must have exactly two items");
            arrayPush(this.#list, [usv(p[0]), usv(p[1])]);
          }
        } else {
          const ks = objectKeys(init);
          // A WebIDL record: keys that become the same USVString (lone
          // surrogates) are one entry, where the first was, with the last value.
          const at = new MapCtor();
          for (let i = 0; i < ks.length; i++) {
            const k = usv(ks[i]);
            const v = usv(init[ks[i]]);
            if (at.has(k)) this.#list[at.get(k)][1] = v;
            else {
              at.set(k, this.#list.length);
              arrayPush(this.#list, [k, v]);
            }
          }
        }
      } else {
        this._parse(StringCtor(init));
      }
    }
    _parse(s) {
      this.#list = [];
      if (s[0] === "?") s = stringSlice(s, 1);
      const parts = stringSplit(s, "&");
      for (let i = 0; i < parts.length; i++) {
        if (parts[i] === "") continue;
        const eq = stringIndexOf(parts[i], "=");
        const k = eq === -1 ? parts[i] : stringSlice(parts[i], 0, eq);
        const v = eq === -1 ? "" : stringSlice(parts[i], eq + 1);
        arrayPush(this.#list, [decodeForm(k), decodeForm(v)]);
      }
    }
    _update() {
      const owner = searchParamsOwner.get(this);
      if (owner) owner._setSearch(this.toString());
    }
    get size() {
      return this.#list.length;
    }
    append(k, v) {
      arrayPush(this.#list, [usv(k), usv(v)]);
      this._update();
    }
    delete(k, v) {
      k = usv(k);
      const value = v === undefined ? undefined : usv(v);
      this.#list = this.#list.filter((p) => !(p[0] === k && (value === undefined || p[1] === value)));
      this._update();
    }
    get(k) {
      k = usv(k);
      for (const p of this.#list) if (p[0] === k) return p[1];
      return null;
    }
    getAll(k) {
      k = usv(k);
      const out = [];
      for (const p of this.#list) if (p[0] === k) arrayPush(out, p[1]);
      return out;
    }
    has(k, v) {
      k = usv(k);
      const value = v === undefined ? undefined : usv(v);
      for (const p of this.#list) if (p[0] === k && (value === undefined || p[1] === value)) return true;
      return false;
    }
    set(k, v) {
      this.#list = setEntry(this.#list, [usv(k), usv(v)]);
      this._update();
    }
    sort() {
      this.#list = this.#list.map((p, i) => [p, i]).sort((a, b) => (a[0][0] < b[0][0] ? -1 : a[0][0] > b[0][0] ? 1 : a[1] - b[1])).map((x) => x[0]);
      this._update();
    }
    // Iteration reads the live list (WebIDL pair iterators, shared with
    // FormData and Headers): pairs deleted or added during a loop are seen
    // as they are then.
    static {
      pairIterable(H, URLSearchParams, "URLSearchParams", (p) => p.#list);
    }
    toString() {
      return arrayJoin(this.#list.map((p) => encodeForm(p[0]) + "=" + encodeForm(p[1])), "&");
    }
    get [Symbol.toStringTag]() {
      return "URLSearchParams";
    }
  }

  const URL_FIELDS = ["href", "protocol", "username", "password", "host", "hostname", "port", "pathname", "search", "hash", "origin"];
  const urlState = new WeakMapCtor();

  // RFC 3492 Punycode decoding of a label's part after `xn--`; null when
  // it is not valid Punycode.
  function punycodeDecode(input) {
    const out = [];
    let b = input.lastIndexOf("-");
    if (b < 0) b = 0;
    for (let j = 0; j < b; j++) {
      const c = input.charCodeAt(j);
      if (c >= 0x80) return null;
      arrayPush(out, c);
    }
    let i = 0;
    let n = 128;
    let bias = 72;
    for (let at = b > 0 ? b + 1 : 0; at < input.length; ) {
      const oldi = i;
      let w = 1;
      for (let k = 36; ; k += 36) {
        if (at >= input.length) return null;
        const c = input.charCodeAt(at++);
        const digit = c >= 0x30 && c <= 0x39 ? c - 22 : c >= 0x41 && c <= 0x5a ? c - 0x41 : c >= 0x61 && c <= 0x7a ? c - 0x61 : 36;
        if (digit >= 36 || digit > mathFloor((0x7fffffff - i) / w)) return null;
        i += digit * w;
        const t = k <= bias ? 1 : k >= bias + 26 ? 26 : k - bias;
        if (digit < t) break;
        if (w > mathFloor(0x7fffffff / (36 - t))) return null;
        w *= 36 - t;
      }
      const len = out.length + 1;
      let delta = oldi === 0 ? mathFloor((i - oldi) / 700) : (i - oldi) >> 1;
      delta += mathFloor(delta / len);
      let k = 0;
      while (delta > 455) {
        delta = mathFloor(delta / 35);
        k += 36;
      }
      bias = k + mathFloor((36 * delta) / (delta + 38));
      if (mathFloor(i / len) > 0x10ffff - n) return null;
      n += mathFloor(i / len);
      i %= len;
      if (n >= 0xd800 && n <= 0xdfff) return null;
      out.splice(i++, 0, n);
    }
    return reflectApply(stringFromCodePoint, null, out);
  }

  // UTS #46 (15.1) as the URL Standard uses it, for what the parser does
  // not check: a label starting `xn--` must decode to a non-empty,
  // non-ASCII label in NFKC (a mapped or unnormalized label is invalid).
  function hostLabelsValid(host) {
    if (stringIndexOf(stringToLower(host), "xn--") === -1) return true;
    const labels = stringSplit(host, ".");
    for (let i = 0; i < labels.length; i++) {
      if (stringSlice(stringToLower(labels[i]), 0, 4) !== "xn--") continue;
      const d = punycodeDecode(stringSlice(labels[i], 4));
      if (d === null || d === "" || regexpTest(/^[\x00-\x7f]*$/, d) || stringNormalize(d, "NFKC") !== d || regexpTest(/^\p{M}/u, d)) return false;
    }
    return true;
  }
  // Fields of a parse (or null), refused when the host is not valid.
  const hostChecked = (f) => (f === null || hostLabelsValid(f[5]) ? f : null);

  function urlParse(input, base) {
    return hostChecked(base === undefined ? N.urlParse(StringCtor(input)) : N.urlParse(StringCtor(input), StringCtor(base)));
  }
  function urlOf(u) {
    const st = urlState.get(u);
    if (st === undefined) throw new TypeErrorCtor("not a URL object");
    return st;
  }

  class URL {
    constructor(input, base) {
      const f = urlParse(input, base);
      if (f === null) {
        throw new TypeErrorCtor("Invalid URL: '" + StringCtor(input) + "'" + (base === undefined ? "" : " with base '" + StringCtor(base) + "'"));
      }
      const params = new URLSearchParams(f[8]);
      urlState.set(this, { f, params });
      searchParamsOwner.set(params, this);
    }
    static canParse(input, base) {
      return urlParse(input, base) !== null;
    }
    static parse(input, base) {
      return urlParse(input, base) === null ? null : new URL(input, base);
    }
    _setSearch(s) {
      const st = urlOf(this);
      const f = N.urlSet(st.f[0], "search", s);
      if (f !== null) st.f = f;
    }
    get searchParams() {
      return urlOf(this).params;
    }
    toString() {
      return urlOf(this).f[0];
    }
    toJSON() {
      return urlOf(this).f[0];
    }
    get [Symbol.toStringTag]() {
      return "URL";
    }
  }
  for (let i = 0; i < URL_FIELDS.length; i++) {
    const name = URL_FIELDS[i];
    const desc = {
      get() {
        return urlOf(this).f[i];
      },
      enumerable: true,
      configurable: true,
    };
    if (name !== "origin") {
      desc.set = function (v) {
        const st = urlOf(this);
        const f = hostChecked(N.urlSet(st.f[0], name, StringCtor(v)));
        if (f === null) {
          if (name === "href") throw new TypeErrorCtor("Invalid URL: '" + StringCtor(v) + "'");
          return;
        }
        st.f = f;
        if (name === "href" || name === "search") st.params._parse(f[8]);
      };
    }
    defineProperty(URL.prototype, name, desc);
  }


  // ---------------------------------------------------------------- fetch

  // Headers, Request, Response and fetch for the common cases. The request
  // crosses to the host as JSON; every check (grants, addresses, sizes,
  // redirects, secret substitution) happens in Rust.
  const headerNameRe = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
  // WebIDL ByteString: a string of code units up to 0xFF.
  function byteString(v, what) {
    if (typeof v === "symbol") throw new TypeErrorCtor(what + ": a Symbol is not a header name or value");
    const s = StringCtor(v);
    if (regexpTest(/[^\u0000-\u00ff]/, s)) throw new TypeErrorCtor(what + ": '" + s + "' has a character above U+00FF");
    return s;
  }
  function headerName(name) {
    const n = byteString(name, "Headers");
    if (!regexpTest(headerNameRe, n)) throw new TypeErrorCtor("Headers: invalid header name '" + n + "'");
    return stringToLower(n);
  }
  // A value, normalised (leading and trailing HTTP whitespace removed) and
  // checked (no NUL, CR or LF).
  function headerValue(v) {
    const s = stringReplace(byteString(v, "Headers"), /^[\t\n\r ]+|[\t\n\r ]+$/g, "");
    if (regexpTest(/[\0\r\n]/, s)) throw new TypeErrorCtor("Headers: invalid header value");
    return s;
  }
  // A HeadersInit: a sequence of [name, value] pairs, or a record.
  function headersInit(init) {
    if ((typeof init !== "object" || init === null) && typeof init !== "function") {
      throw new TypeErrorCtor("Headers: expected an object, an array of pairs or a Headers");
    }
    const out = [];
    const method = init[Symbol.iterator];
    if (method !== undefined) {
      if (typeof method !== "function") throw new TypeErrorCtor("Headers: the init's @@iterator is not a function");
      const it = reflectApply(method, init, []);
      for (let r = it.next(); !r.done; r = it.next()) {
        const pair = r.value;
        if ((typeof pair !== "object" || pair === null) && typeof pair !== "function") throw new TypeErrorCtor("Headers: each entry must be a [name, value] pair");
        const p = [];
        for (const x of pair) arrayPush(p, byteString(x, "Headers"));
        if (p.length !== 2) throw new TypeErrorCtor("Headers: each entry must be a [name, value] pair");
        arrayPush(out, p);
      }
      return out;
    }
    const ks = reflectOwnKeys(init);
    for (let i = 0; i < ks.length; i++) {
      const d = getOwnPropertyDescriptor(init, ks[i]);
      if (d === undefined || !d.enumerable) continue;
      const k = byteString(ks[i], "Headers");
      arrayPush(out, [k, byteString(init[ks[i]], "Headers")]);
    }
    return out;
  }

  let headersFromHost;
  class Headers {
    // [lower-cased name, value], in the order they were added.
    #list = [];
    // The Fetch Standard's "sort and combine" of #list, until it changes.
    #sorted = null;
    constructor(init = undefined) {
      if (init === undefined) return;
      const pairs = headersInit(init);
      for (let i = 0; i < pairs.length; i++) this.append(pairs[i][0], pairs[i][1]);
    }
    static {
      // The host's response headers, as the host read them.
      headersFromHost = (pairs) => {
        const h = new Headers();
        for (const [k, v] of pairs || []) arrayPush(h.#list, [stringToLower(StringCtor(k)), StringCtor(v)]);
        return h;
      };
      pairIterable(H, Headers, "Headers", (h) => h.#sortAndCombine());
    }
    #sortAndCombine() {
      if (this.#sorted !== null) return this.#sorted;
      const names = [];
      const values = new MapCtor();
      for (const [k, v] of this.#list) {
        if (!values.has(k)) {
          values.set(k, []);
          arrayPush(names, k);
        }
        arrayPush(values.get(k), v);
      }
      names.sort();
      const out = [];
      for (const k of names) {
        const vs = values.get(k);
        if (k === "set-cookie") for (const v of vs) arrayPush(out, [k, v]);
        else arrayPush(out, [k, arrayJoin(vs, ", ")]);
      }
      this.#sorted = out;
      return out;
    }
    append(name, value) {
      const k = headerName(name);
      arrayPush(this.#list, [k, headerValue(value)]);
      this.#sorted = null;
    }
    set(name, value) {
      const k = headerName(name);
      this.#list = setEntry(this.#list, [k, headerValue(value)]);
      this.#sorted = null;
    }
    get(name) {
      const k = headerName(name);
      const vs = [];
      for (const e of this.#list) if (e[0] === k) arrayPush(vs, e[1]);
      return vs.length === 0 ? null : arrayJoin(vs, ", ");
    }
    getSetCookie() {
      const vs = [];
      for (const e of this.#list) if (e[0] === "set-cookie") arrayPush(vs, e[1]);
      return vs;
    }
    has(name) {
      const k = headerName(name);
      for (const e of this.#list) if (e[0] === k) return true;
      return false;
    }
    delete(name) {
      const k = headerName(name);
      this.#list = this.#list.filter((e) => e[0] !== k);
      this.#sorted = null;
    }
    get [Symbol.toStringTag]() {
      return "Headers";
    }
  }

  // A body as given: `{ text }`, `{ bytes }` (a copy), `{ stream }` (a
  // ReadableStream, read when the body is consumed) or `{}` for none. Sets
  // the Content-Type the body implies, unless one is set.
  function extractBody(body, headers) {
    if (body === undefined || body === null) return {};
    const type = (t) => {
      if (!headers.has("content-type")) headers.set("content-type", t);
    };
    if (typeof body === "string") {
      type("text/plain;charset=UTF-8");
      return { text: body };
    }
    if (body instanceof URLSearchParams) {
      type("application/x-www-form-urlencoded;charset=UTF-8");
      return { text: body.toString() };
    }
    if (body instanceof ArrayBufferCtor || ArrayBufferIsView(body)) return { bytes: new Uint8ArrayCtor(toBytes(body)) };
    if (body instanceof Blob) {
      if (body.type !== "") type(body.type);
      return { bytes: bytesOf(body) };
    }
    if (body instanceof FormData) {
      const m = encodeMultipart(body);
      type(m.type);
      return { bytes: m.bytes };
    }
    if (body instanceof loadStreams().ReadableStream) {
      if (body.locked || streamDisturbed(body)) throw new TypeErrorCtor("the body stream is locked or has been read");
      return { stream: body };
    }
    // Anything else is its string, as WebIDL's union makes it.
    type("text/plain;charset=UTF-8");
    return { text: usv(body) };
  }
  // A one-field record with no prototype: what crosses an await inside
  // the prelude, where a `then` on Object.prototype cannot reach it.
  const rec = (k, v) => {
    const o = objectCreate(null);
    o[k] = v;
    return o;
  };
  // Whether a stream has been read from (the polyfill's own mark).
  const streamDisturbed = (s) => s._disturbed === true;

  // Request's and Response's body: held whole (text or bytes) or as the
  // stream the block gave. `body` hands out a stream of it; consuming it
  // (text(), json()…) reads it once.
  class Body {
    #src;
    #stream = null;
    #used = false;
    constructor(src) {
      this.#src = src;
    }
    #has() {
      return this.#src.text !== undefined || this.#src.bytes !== undefined || this.#src.stream !== undefined;
    }
    // The bytes of a body held whole, as a new array.
    #copy() {
      if (this.#src.bytes !== undefined) return new Uint8ArrayCtor(this.#src.bytes);
      if (this.#src.text !== undefined) return N.utf8Encode(this.#src.text);
      return new Uint8ArrayCtor(0);
    }
    get body() {
      if (!this.#has()) return null;
      if (this.#src.stream !== undefined) return this.#src.stream;
      if (this.#stream === null) {
        const { ReadableStream } = loadStreams();
        const consumed = this.#used;
        this.#stream = new ReadableStream({
          type: "bytes",
          pull: (c) => {
            this.#used = true;
            const b = this.#copy();
            if (b.length > 0) c.enqueue(b);
            c.close();
          },
        });
        // Consumed whole before anyone asked for the stream: it is the
        // stream that was read, locked by that read.
        if (consumed) this.#stream.getReader();
      }
      return this.#stream;
    }
    get bodyUsed() {
      const s = this.#src.stream !== undefined ? this.#src.stream : this.#stream;
      return this.#used || (s !== null && streamDisturbed(s));
    }
    // Consume the body: `{ text }` or `{ bytes }` (with no prototype, so
    // a `then` a block puts on Object.prototype cannot hijack it as it
    // crosses an await); a body-less message can be read again and again.
    async #read() {
      if (!this.#has()) return rec("bytes", new Uint8ArrayCtor(0));
      const s = this.#src.stream !== undefined ? this.#src.stream : this.#stream;
      if (this.bodyUsed || (s !== null && s.locked)) throw new TypeErrorCtor("the body has already been read (or its stream is locked by a reader): a body is read once; clone() the Request or Response before reading it to read it twice");
      this.#used = true;
      if (s === null) return this.#src.text !== undefined ? rec("text", this.#src.text) : rec("bytes", this.#copy());
      // Piped into a sink of our own: the stream's internal reads hand the
      // chunks over directly, with no read result object crossing a
      // promise a block could hijack (a `then` on Object.prototype).
      const chunks = [];
      let total = 0;
      const { WritableStream } = loadStreams();
      const sink = new WritableStream({
        write(chunk) {
          if (!(chunk instanceof Uint8ArrayCtor)) throw new TypeErrorCtor("a body stream must give Uint8Array chunks");
          arrayPush(chunks, new Uint8ArrayCtor(chunk));
          total += chunk.length;
        },
      });
      await s.pipeTo(sink);
      const out = new Uint8ArrayCtor(total);
      let at = 0;
      for (let i = 0; i < chunks.length; i++) {
        typedArraySet(out, chunks[i], at);
        at += chunks[i].length;
      }
      return rec("bytes", out);
    }
    // A copy of the body for a clone (a stream is teed).
    _cloneBody() {
      if (this.bodyUsed) throw new TypeErrorCtor("clone: the body has already been read; clone before reading it");
      if (this.#src.stream === undefined) return this.#src;
      const [a, b] = this.#src.stream.tee();
      this.#src = { stream: a };
      return { stream: b };
    }
    // The body as the host takes it: `{body}` for text, `{body_base64}`
    // for bytes (a stream is read whole first).
    async _wire() {
      if (!this.#has()) return objectCreate(null);
      if (this.#src.stream === undefined && this.#stream === null) {
        return this.#src.text !== undefined ? rec("body", this.#src.text) : rec("body_base64", N.bytesToBase64(this.#src.bytes));
      }
      const r = await this.#read();
      return r.text !== undefined ? rec("body", r.text) : rec("body_base64", N.bytesToBase64(r.bytes));
    }
    async text() {
      const r = await this.#read();
      return r.text !== undefined ? r.text : N.utf8Decode(r.bytes, false);
    }
    async json() {
      const t = await this.text();
      return JSON.parse(t);
    }
    async arrayBuffer() {
      return (await this.bytes()).buffer;
    }
    async bytes() {
      const r = await this.#read();
      return r.bytes !== undefined ? r.bytes : N.utf8Encode(r.text);
    }
    async blob() {
      const bytes = await this.bytes();
      const type = this.headers.get("content-type");
      return new Blob([bytes], { type: type === null ? "" : type });
    }
    // The body as form data: application/x-www-form-urlencoded or
    // multipart/form-data, as its Content-Type says.
    async formData() {
      const type = this.headers.get("content-type");
      const essence = type === null ? "" : stringToLower(stringSplit(type, ";")[0].trim());
      const none = !this.#has();
      const bytes = await this.bytes();
      if (essence === "multipart/form-data") {
        if (none) throw new TypeErrorCtor("formData(): there is no body to parse as multipart/form-data");
        return parseMultipart(bytes, type);
      }
      if (essence !== "application/x-www-form-urlencoded") {
        throw new TypeErrorCtor("formData(): the Content-Type is " + (type === null ? "missing" : "'" + type + "'") + ", not multipart/form-data or application/x-www-form-urlencoded");
      }
      const fd = new FormData();
      for (const [k, v] of new URLSearchParams(N.utf8Decode(bytes, false))) fd.append(k, v);
      return fd;
    }
  }

  const METHODS = ["DELETE", "GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH"];
  function normalizeMethod(m) {
    const s = StringCtor(m);
    if (!regexpTest(headerNameRe, s)) throw new TypeErrorCtor("fetch: invalid method '" + s + "'");
    const up = s.toUpperCase();
    for (let i = 0; i < METHODS.length; i++) if (METHODS[i] === up) return up;
    return s;
  }

  class Request extends Body {
    #url;
    #method;
    #headers;
    #redirect;
    constructor(input, init = {}) {
      let base = null;
      if (input instanceof Request) base = input;
      let url = base ? base.url : null;
      if (url === null) {
        const parsed = new URL(usv(input));
        if (parsed.username !== "" || parsed.password !== "") throw new TypeErrorCtor("Request: the URL has credentials; put them in an Authorization header");
        url = parsed.href;
      }
      const method = normalizeMethod(init.method !== undefined ? init.method : base ? base.method : "GET");
      const headers = new Headers(init.headers !== undefined ? init.headers : base ? base.headers : undefined);
      let src = {};
      if (init.body !== undefined && init.body !== null) {
        if (method === "GET" || method === "HEAD") throw new TypeErrorCtor("fetch: a " + method + " request cannot have a body");
        src = extractBody(init.body, headers);
        if (src.stream !== undefined && init.duplex !== "half") throw new TypeErrorCtor("Request: a stream body needs duplex: 'half'");
      } else if (base) {
        src = base._cloneBody();
      }
      super(src);
      this.#url = url;
      this.#method = method;
      this.#headers = headers;
      this.#redirect = init.redirect !== undefined ? StringCtor(init.redirect) : base ? base.redirect : "follow";
      if (this.#redirect !== "follow" && this.#redirect !== "manual" && this.#redirect !== "error") {
        throw new TypeErrorCtor("fetch: redirect must be 'follow', 'manual' or 'error'");
      }
    }
    get url() {
      return this.#url;
    }
    get method() {
      return this.#method;
    }
    get headers() {
      return this.#headers;
    }
    get redirect() {
      return this.#redirect;
    }
    clone() {
      return new Request(this);
    }
    get [Symbol.toStringTag]() {
      return "Request";
    }
  }

  // A response the prelude makes itself (fetch's, clone, redirect, error):
  // its fields as they are, unchecked. Only this module can make one.
  class ResponseMeta {
    constructor(fields) {
      this.f = fields;
    }
  }
  const NULL_BODY_STATUS = [101, 103, 204, 205, 304];
  // A ResponseInit dictionary, read in WebIDL's order (headers, status,
  // statusText) and checked.
  function responseInit(init) {
    if (init !== undefined && init !== null && typeof init !== "object" && typeof init !== "function") {
      throw new TypeErrorCtor("Response: the init must be an object");
    }
    const o = init === undefined || init === null ? {} : init;
    const headers = o.headers;
    let status = 200;
    if (o.status !== undefined) {
      // WebIDL `unsigned short`.
      const n = NumberCtor(o.status);
      status = n !== n || n === Infinity || n === -Infinity ? 0 : ((mathFloor(n < 0 ? -n : n) * (n < 0 ? -1 : 1)) % 65536 + 65536) % 65536;
      if (status < 200 || status > 599) throw new RangeErrorCtor("Response: status must be an integer from 200 to 599, got " + StringCtor(o.status));
    }
    let statusText = "";
    if (o.statusText !== undefined) {
      statusText = byteString(o.statusText, "Response");
      if (regexpTest(/[^\t\u0020-\u007e\u0080-\u00ff]/, statusText)) throw new TypeErrorCtor("Response: statusText is not a valid reason phrase");
    }
    return { headers, status, statusText };
  }

  class Response extends Body {
    #status;
    #statusText;
    #headers;
    #url;
    #redirected;
    #type;
    constructor(body = null, init = undefined, meta = undefined) {
      const internal = meta instanceof ResponseMeta ? meta.f : null;
      const o = internal || responseInit(init);
      const headers = internal ? internal.headers : new Headers(o.headers);
      let src = {};
      if (internal) {
        src = internal.body || {};
      } else if (body !== null && body !== undefined) {
        if (NULL_BODY_STATUS.indexOf(o.status) !== -1) throw new TypeErrorCtor("Response: a " + o.status + " response cannot have a body");
        src = extractBody(body, headers);
      }
      super(src);
      this.#status = o.status;
      this.#statusText = o.statusText;
      this.#headers = headers;
      this.#url = internal ? internal.url : "";
      this.#redirected = internal ? internal.redirected : false;
      this.#type = internal ? internal.type : "default";
    }
    static json(data, init = undefined) {
      const text = JSON.stringify(data);
      if (text === undefined) throw new TypeErrorCtor("Response.json: the data cannot be serialised as JSON");
      const o = responseInit(init);
      const headers = new Headers(o.headers);
      if (!headers.has("content-type")) headers.set("content-type", "application/json");
      return new Response(text, { status: o.status, statusText: o.statusText, headers });
    }
    static redirect(url, status = 302) {
      const href = new URL(usv(url)).href;
      const s = NumberCtor(status);
      if (s !== 301 && s !== 302 && s !== 303 && s !== 307 && s !== 308) throw new RangeErrorCtor("Response.redirect: status must be 301, 302, 303, 307 or 308, got " + StringCtor(status));
      const headers = new Headers();
      headers.set("location", href);
      return new Response(null, undefined, new ResponseMeta({ status: s, statusText: "", headers, url: "", redirected: false, type: "default" }));
    }
    static error() {
      return new Response(null, undefined, new ResponseMeta({ status: 0, statusText: "", headers: new Headers(), url: "", redirected: false, type: "error" }));
    }
    get status() {
      return this.#status;
    }
    get statusText() {
      return this.#statusText;
    }
    get ok() {
      return this.#status >= 200 && this.#status <= 299;
    }
    get headers() {
      return this.#headers;
    }
    get url() {
      return this.#url;
    }
    get redirected() {
      return this.#redirected;
    }
    get type() {
      return this.#type;
    }
    clone() {
      const body = this._cloneBody();
      return new Response(null, undefined, new ResponseMeta({ body, status: this.#status, statusText: this.#statusText, headers: new Headers(this.#headers), url: this.#url, redirected: this.#redirected, type: this.#type }));
    }
    get [Symbol.toStringTag]() {
      return "Response";
    }
  }

  async function fetch(input, init) {
    // A failure carries the caller's stack (see __quire_host in the prelude).
    const site = new ErrorCtor();
    try {
      return await fetchInner(input, init);
    } catch (e) {
      if (e !== null && typeof e === "object") {
        try {
          defineProperty(e, "stack", { value: site.stack, writable: true, configurable: true, enumerable: false });
        } catch {}
      }
      throw e;
    }
  }

  async function fetchInner(input, init) {
    const req = new Request(input, init);
    const pairs = [];
    req.headers.forEach((v, k) => arrayPush(pairs, [k, v]));
    const wire = { url: req.url, method: req.method, headers: pairs, redirect: req.redirect, ...(await req._wire()) };
    const r = await N.hostCall("fetch", wire);
    const body = r.body_base64 !== undefined ? { bytes: N.base64ToBytes(r.body_base64) } : r.body !== undefined ? { text: r.body } : {};
    const status = NumberCtor(r.status);
    const statusText = StringCtor(r.status_text === undefined ? "" : r.status_text);
    return new Response(null, undefined, new ResponseMeta({ body, status, statusText, url: r.url, redirected: !!r.redirected, headers: headersFromHost(r.headers), type: "basic" }));
  }

  // ---------------------------------------------------------------- crypto

  const crypto = {
    getRandomValues(view) {
      if (!ArrayBufferIsView(view) || !safe(() => typedArrayTag(view), undefined) || stringIndexOf(typedArrayTag(view), "Float") !== -1) {
        throw new TypeErrorCtor("crypto.getRandomValues: expected an integer typed array");
      }
      if (view.byteLength > 65536) {
        const e = new ErrorCtor("crypto.getRandomValues: at most 65536 bytes per call, got " + view.byteLength);
        e.name = "QuotaExceededError";
        throw e;
      }
      const bytes = N.randomBytes(view.byteLength);
      new Uint8ArrayCtor(view.buffer, view.byteOffset, view.byteLength).set(bytes);
      return view;
    },
    randomUUID() {
      return N.randomUUID();
    },
  };

  return { format, inspect, structuredClone, TextEncoder, TextDecoder, URL, URLSearchParams, atob, btoa, crypto, fetch, Request, Response, Headers, Blob, File, FormData, FileReader };
}
