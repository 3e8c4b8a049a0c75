// Blob, File and FormData (the File API and the XHR Standard's FormData),
// with the multipart/form-data encoder and parser Request and Response
// bodies use: one copy for both engines, put before prelude_extras.js
// (engine/src/lib.rs PRELUDE_EXTRAS), whose `init` calls `blobGlobals`.
//
// A Blob's bytes live in the isolate as an immutable Uint8Array, counted
// against the run's memory limit like any other value; nothing here
// reaches the host.

// A WebIDL pair iterator (`iterable<K, V>`) for `cls`: `entries`, `keys`,
// `values`, `forEach` and @@iterator on its prototype, and iterators whose
// prototype is "NAME Iterator" over %IteratorPrototype%. `pairsOf(obj)`
// gives the current pairs (and throws for an object not of `cls`); each
// step reads them again, so the iteration is live.
function pairIterable(H, cls, name, pairsOf) {
  const { WeakMapCtor, TypeErrorCtor, defineProperty, objectCreate, iteratorProto, reflectApply } = H;
  const state = new WeakMapCtor();
  const proto = objectCreate(iteratorProto);
  const method = (value) => ({ value, writable: true, enumerable: true, configurable: true });
  defineProperty(proto, "next", method(function next() {
    const st = state.get(this);
    if (st === undefined) throw new TypeErrorCtor(name + " Iterator.next: not an iterator of " + name);
    const pairs = pairsOf(st.target);
    if (st.index >= pairs.length) return { value: undefined, done: true };
    const p = pairs[st.index++];
    return { value: st.kind === "key" ? p[0] : st.kind === "value" ? p[1] : [p[0], p[1]], done: false };
  }));
  defineProperty(proto, Symbol.toStringTag, { value: name + " Iterator", configurable: true });
  const make = (kind) => function () {
    pairsOf(this);
    const it = objectCreate(proto);
    state.set(it, { target: this, kind, index: 0 });
    return it;
  };
  const entries = make("key+value");
  defineProperty(entries, "name", { value: "entries" });
  defineProperty(cls.prototype, "entries", method(entries));
  defineProperty(cls.prototype, "keys", method(make("key")));
  defineProperty(cls.prototype, "values", method(make("value")));
  defineProperty(cls.prototype, "forEach", method(function forEach(callback, thisArg = undefined) {
    let pairs = pairsOf(this);
    if (typeof callback !== "function") throw new TypeErrorCtor(name + ".forEach: the callback must be a function");
    for (let i = 0; i < pairs.length; i++) {
      reflectApply(callback, thisArg, [pairs[i][1], pairs[i][0], this]);
      pairs = pairsOf(this);
    }
  }));
  defineProperty(cls.prototype, Symbol.iterator, { value: entries, writable: true, enumerable: false, configurable: true });
}

// The list with `entry` in place of the first entry of its name and the
// others of that name dropped, or added at the end: the `set` of
// URLSearchParams, FormData and Headers.
function setEntry(list, entry) {
  const out = [];
  let placed = false;
  for (let i = 0; i < list.length; i++) {
    const e = list[i];
    if (e[0] !== entry[0]) out[out.length] = e;
    else if (!placed) {
      out[out.length] = entry;
      placed = true;
    }
  }
  if (!placed) out[out.length] = entry;
  return out;
}

function blobGlobals(H, usv, decodeText) {
  const { N, TypeErrorCtor, Uint8ArrayCtor, ArrayBufferCtor, ArrayBufferIsView, StringCtor, NumberCtor, DateCtor, mathFloor, regexpTest, stringToLower, stringReplace, stringIndexOf, arrayPush, reflectApply, defineProperty, typedArraySet, typedArraySubarray } = H;

  const isObject = (v) => (typeof v === "object" && v !== null) || typeof v === "function";

  // WebIDL `sequence<BlobPart>`: any object with a @@iterator method, each
  // item converted as it is taken (a Blob or a buffer as it is, anything
  // else to a USVString).
  function toBlobParts(value, what) {
    if (!isObject(value)) throw new TypeErrorCtor(what + ": expected a sequence (an iterable object)");
    const method = value[Symbol.iterator];
    if (typeof method !== "function") throw new TypeErrorCtor(what + ": expected a sequence (an iterable object)");
    const out = [];
    const it = reflectApply(method, value, []);
    for (let r = it.next(); !r.done; r = it.next()) {
      const p = r.value;
      arrayPush(out, p instanceof Blob || p instanceof ArrayBufferCtor || ArrayBufferIsView(p) ? p : usv(p));
    }
    return out;
  }

  // A WebIDL dictionary argument: undefined and null are empty; any other
  // primitive is a TypeError.
  function dictionary(value, what) {
    if (value === undefined || value === null) return {};
    if (!isObject(value)) throw new TypeErrorCtor(what + ": the options must be an object");
    return value;
  }

  function concat(chunks, total) {
    const out = new Uint8ArrayCtor(total);
    let at = 0;
    for (let i = 0; i < chunks.length; i++) {
      typedArraySet(out, chunks[i], at);
      at += chunks[i].length;
    }
    return out;
  }

  // A Blob's type: lower-cased, or "" when it has a character outside
  // U+0020..U+007E.
  function blobType(t) {
    const s = StringCtor(t);
    return regexpTest(/[^\u0020-\u007e]/, s) ? "" : stringToLower(s);
  }

  // The File API's "process blob parts".
  function processParts(parts, endings) {
    const chunks = [];
    let total = 0;
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i];
      let bytes;
      if (p instanceof Blob) bytes = bytesOf(p);
      else if (p instanceof ArrayBufferCtor) bytes = new Uint8ArrayCtor(p.slice(0));
      else if (ArrayBufferIsView(p)) bytes = new Uint8ArrayCtor(p.buffer.slice(p.byteOffset, p.byteOffset + p.byteLength));
      else {
        let s = p;
        if (endings === "native") s = stringReplace(s, /\r\n?/g, "\n");
        bytes = N.utf8Encode(s);
      }
      arrayPush(chunks, bytes);
      total += bytes.length;
    }
    return concat(chunks, total);
  }

  // A relative index of `slice`, clamped to 0..size.
  function relative(v, size, fallback) {
    if (v === undefined) return fallback;
    let n = NumberCtor(v);
    n = n !== n ? 0 : n < 0 ? -mathFloor(-n) : mathFloor(n);
    if (n < 0) return n + size < 0 ? 0 : n + size;
    return n > size ? size : n;
  }

  let bytesOf;
  let makeBlob;
  class Blob {
    #bytes;
    #type;
    constructor(blobParts = undefined, options = undefined) {
      const parts = blobParts === undefined ? [] : toBlobParts(blobParts, "Blob");
      const o = dictionary(options, "Blob");
      // Dictionary members are read in lexicographic order.
      const endings = o.endings === undefined ? "transparent" : StringCtor(o.endings);
      if (endings !== "transparent" && endings !== "native") throw new TypeErrorCtor("Blob: endings must be 'transparent' or 'native'");
      const type = o.type === undefined ? "" : blobType(o.type);
      this.#bytes = processParts(parts, endings);
      this.#type = type;
    }
    static {
      bytesOf = (b) => b.#bytes;
      makeBlob = (bytes, type) => {
        const b = new Blob();
        b.#bytes = bytes;
        b.#type = type;
        return b;
      };
    }
    get size() {
      return this.#bytes.length;
    }
    get type() {
      return this.#type;
    }
    slice(start = undefined, end = undefined, contentType = undefined) {
      const size = this.#bytes.length;
      const from = relative(start, size, 0);
      const to = relative(end, size, size);
      const bytes = to > from ? typedArraySubarray(this.#bytes, from, to) : new Uint8ArrayCtor(0);
      return makeBlob(bytes, contentType === undefined ? "" : blobType(contentType));
    }
    // The bytes as a byte stream, 64 KiB a chunk.
    stream() {
      const bytes = this.#bytes;
      const { ReadableStream } = H.loadStreams();
      let at = 0;
      return new ReadableStream({
        type: "bytes",
        pull(c) {
          if (at >= bytes.length) {
            c.close();
            return;
          }
          const n = bytes.length - at < 65536 ? bytes.length - at : 65536;
          c.enqueue(new Uint8ArrayCtor(typedArraySubarray(bytes, at, at + n)));
          at += n;
          if (at >= bytes.length) c.close();
        },
      });
    }
    async text() {
      return N.utf8Decode(this.#bytes, false);
    }
    async arrayBuffer() {
      return new Uint8ArrayCtor(this.#bytes).buffer;
    }
    async bytes() {
      return new Uint8ArrayCtor(this.#bytes);
    }
    get [Symbol.toStringTag]() {
      return "Blob";
    }
  }

  class File extends Blob {
    #name;
    #lastModified;
    constructor(fileBits, fileName, options = undefined) {
      if (arguments.length < 2) throw new TypeErrorCtor("File: expected the file's bits and its name");
      const parts = toBlobParts(fileBits, "File");
      const name = usv(fileName);
      const o = dictionary(options, "File");
      // BlobPropertyBag's members (endings, type), then lastModified.
      const endings = o.endings;
      const type = o.type;
      const lm = o.lastModified;
      super(parts, { endings, type });
      this.#name = name;
      this.#lastModified = lm === undefined ? DateCtor.now() : longLong(lm);
    }
    get name() {
      return this.#name;
    }
    get lastModified() {
      return this.#lastModified;
    }
    get webkitRelativePath() {
      return "";
    }
    get [Symbol.toStringTag]() {
      return "File";
    }
  }

  // WebIDL `long long`: NaN and infinities are 0, the rest truncated.
  function longLong(v) {
    const n = NumberCtor(v);
    if (n !== n || n === Infinity || n === -Infinity) return 0;
    return n < 0 ? -mathFloor(-n) : mathFloor(n);
  }

  function copyFile(bytes, name, type, lastModified) {
    return new File([makeBlob(bytes, "")], name, { type, lastModified });
  }

  // FormData's "create an entry".
  function entry(name, value, filename, argc) {
    name = usv(name);
    if (value instanceof Blob) {
      if (!(value instanceof File)) return [name, copyFile(bytesOf(value), filename === undefined ? "blob" : usv(filename), value.type, undefined)];
      if (filename !== undefined) return [name, copyFile(bytesOf(value), usv(filename), value.type, value.lastModified)];
      return [name, value];
    }
    if (argc > 2) throw new TypeErrorCtor("FormData: a file name goes only with a Blob value");
    return [name, usv(value)];
  }

  let formList;
  class FormData {
    #list = [];
    constructor(form = undefined, submitter = undefined) {
      if (form !== undefined) throw new TypeErrorCtor("FormData: there are no form elements here; call new FormData() without arguments");
      void submitter;
    }
    static {
      formList = (fd) => fd.#list;
    }
    append(name, value, filename = undefined) {
      if (arguments.length < 2) throw new TypeErrorCtor("FormData.append: expected a name and a value");
      arrayPush(this.#list, entry(name, value, filename, arguments.length));
    }
    delete(name) {
      const n = usv(name);
      this.#list = this.#list.filter((e) => e[0] !== n);
    }
    get(name) {
      const n = usv(name);
      for (const e of this.#list) if (e[0] === n) return e[1];
      return null;
    }
    getAll(name) {
      const n = usv(name);
      const out = [];
      for (const e of this.#list) if (e[0] === n) arrayPush(out, e[1]);
      return out;
    }
    has(name) {
      const n = usv(name);
      for (const e of this.#list) if (e[0] === n) return true;
      return false;
    }
    set(name, value, filename = undefined) {
      if (arguments.length < 2) throw new TypeErrorCtor("FormData.set: expected a name and a value");
      this.#list = setEntry(this.#list, entry(name, value, filename, arguments.length));
    }
    get [Symbol.toStringTag]() {
      return "FormData";
    }
  }

  pairIterable(H, FormData, "FormData", (fd) => formList(fd));

  // ------------------------------------------------ FileReader

  // The File API's FileReader, reading a Blob already in memory: each read
  // goes on in later tasks with loadstart, progress, load (or abort) and
  // loadend, through the `on…` attributes and addEventListener.
  const READ_EVENTS = ["loadstart", "progress", "load", "abort", "error", "loadend"];
  class FileReader {
    #state = 0;
    #result = null;
    #listeners = [];
    #read = 0;
    constructor() {
      for (let i = 0; i < READ_EVENTS.length; i++) this["on" + READ_EVENTS[i]] = null;
    }
    get readyState() {
      return this.#state;
    }
    get result() {
      return this.#result;
    }
    get error() {
      return null;
    }
    addEventListener(type, fn) {
      if (typeof fn === "function" || isObject(fn)) arrayPush(this.#listeners, [StringCtor(type), fn]);
    }
    removeEventListener(type, fn) {
      const t = StringCtor(type);
      this.#listeners = this.#listeners.filter((l) => l[0] !== t || l[1] !== fn);
    }
    #fire(type, loaded) {
      const ev = { type, target: this, currentTarget: this, lengthComputable: true, loaded, total: loaded };
      const handler = this["on" + type];
      if (typeof handler === "function") reflectApply(handler, this, [ev]);
      const ls = [...this.#listeners];
      for (let i = 0; i < ls.length; i++) {
        if (ls[i][0] !== type) continue;
        const fn = ls[i][1];
        if (typeof fn === "function") reflectApply(fn, this, [ev]);
        else reflectApply(fn.handleEvent, fn, [ev]);
      }
    }
    #start(blob, convert) {
      if (!(blob instanceof Blob)) throw new TypeErrorCtor("FileReader: expected a Blob");
      if (this.#state === 1) {
        const D = H.DOMExceptionCtor;
        throw D ? new D("FileReader: a read is already in progress", "InvalidStateError") : new TypeErrorCtor("FileReader: a read is already in progress");
      }
      this.#state = 1;
      this.#result = null;
      const id = ++this.#read;
      const bytes = bytesOf(blob);
      // Each step is its own task, as the File API queues them; an abort
      // or a new read drops the rest.
      const step = (fn) => H.queueTask(() => {
        if (id === this.#read) fn();
      });
      step(() => {
        this.#fire("loadstart", 0);
        step(() => {
          if (bytes.length > 0) this.#fire("progress", bytes.length);
          step(() => {
            this.#state = 2;
            this.#result = convert(bytes, blob);
            this.#fire("load", bytes.length);
            // A browser runs microtasks between two events it fires; a
            // task of its own gives loadend the same.
            step(() => this.#fire("loadend", bytes.length));
          });
        });
      });
    }
    readAsArrayBuffer(blob) {
      this.#start(blob, (b) => new Uint8ArrayCtor(b).buffer);
    }
    readAsBinaryString(blob) {
      this.#start(blob, (b) => {
        let out = "";
        for (let i = 0; i < b.length; i += 4096) out += reflectApply(StringCtor.fromCharCode, null, [...typedArraySubarray(b, i, i + 4096)]);
        return out;
      });
    }
    readAsText(blob, encoding = undefined) {
      this.#start(blob, (b) => decodeText(b, encoding === undefined ? "utf-8" : StringCtor(encoding), blob.type));
    }
    readAsDataURL(blob) {
      this.#start(blob, (b, bl) => "data:" + (bl.type || "application/octet-stream") + ";base64," + N.bytesToBase64(b));
    }
    abort() {
      if (this.#state !== 1) return;
      this.#read++;
      this.#state = 2;
      this.#result = null;
      this.#fire("abort", 0);
      if (this.#state === 2) this.#fire("loadend", 0);
    }
    get [Symbol.toStringTag]() {
      return "FileReader";
    }
  }
  for (let i = 0; i < 3; i++) {
    const c = { value: i, enumerable: true };
    defineProperty(FileReader, ["EMPTY", "LOADING", "DONE"][i], c);
    defineProperty(FileReader.prototype, ["EMPTY", "LOADING", "DONE"][i], c);
  }

  // ------------------------------------------------ multipart/form-data

  // The HTML Standard's multipart/form-data encoding of FormData: names
  // and file names escape `"`, CR and LF as %22, %0D, %0A; string values
  // have their line breaks normalised to CRLF.
  function escapeName(s) {
    return stringReplace(stringReplace(stringReplace(s, /\n/g, "%0A"), /\r/g, "%0D"), /"/g, "%22");
  }
  const crlf = (s) => stringReplace(s, /\r\n|\r|\n/g, "\r\n");

  // An empty FormData is an empty body, as browsers send it.
  function encodeMultipart(fd) {
    const rnd = N.randomBytes(16);
    let boundary = "----quire-form-";
    for (let i = 0; i < rnd.length; i++) boundary += "0123456789abcdef"[rnd[i] >> 4] + "0123456789abcdef"[rnd[i] & 15];
    const chunks = [];
    let total = 0;
    const push = (bytes) => {
      arrayPush(chunks, bytes);
      total += bytes.length;
    };
    for (const [name, value] of formList(fd)) {
      let head = "--" + boundary + '\r\nContent-Disposition: form-data; name="' + escapeName(crlf(name)) + '"';
      if (typeof value === "string") {
        push(N.utf8Encode(head + "\r\n\r\n" + crlf(value) + "\r\n"));
      } else {
        head += '; filename="' + escapeName(value.name) + '"\r\nContent-Type: ' + (value.type || "application/octet-stream") + "\r\n\r\n";
        push(N.utf8Encode(head));
        push(bytesOf(value));
        push(N.utf8Encode("\r\n"));
      }
    }
    if (chunks.length > 0) push(N.utf8Encode("--" + boundary + "--\r\n"));
    return { bytes: concat(chunks, total), type: "multipart/form-data; boundary=" + boundary };
  }

  // A parameter of a MIME type (`boundary`), unquoted.
  function mimeParam(type, name) {
    const parts = type.split(";");
    for (let i = 1; i < parts.length; i++) {
      const p = parts[i];
      const eq = stringIndexOf(p, "=");
      if (eq < 0 || stringToLower(p.slice(0, eq).trim()) !== name) continue;
      let v = p.slice(eq + 1).trim();
      if (v.length >= 2 && v[0] === '"' && v[v.length - 1] === '"') v = v.slice(1, -1);
      return v;
    }
    return null;
  }

  function indexOfBytes(hay, needle, from) {
    const last = hay.length - needle.length;
    outer: for (let i = from; i <= last; i++) {
      for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
      return i;
    }
    return -1;
  }

  function formError(why) {
    return new TypeErrorCtor("formData(): the body is not valid multipart/form-data: " + why);
  }

  // One part's headers: its name, file name and content type.
  function partHeaders(text) {
    let name = null;
    let filename = null;
    let type = null;
    for (const line of text.split("\r\n")) {
      const colon = stringIndexOf(line, ":");
      if (colon < 0) throw formError("a part's header line has no ':'");
      const key = stringToLower(line.slice(0, colon).trim());
      const value = line.slice(colon + 1).trim();
      if (key === "content-disposition") {
        if (stringToLower(value.split(";")[0].trim()) !== "form-data") throw formError("a part is not form-data");
        const n = dispositionParam(value, "name");
        if (n !== null) name = n;
        filename = dispositionParam(value, "filename");
      } else if (key === "content-type") {
        type = value;
      }
    }
    if (name === null) throw formError("a part has no name");
    return { name, filename, type };
  }

  function dispositionParam(value, key) {
    const re = key === "name" ? /;\s*name="([^"]*)"/i : /;\s*filename="([^"]*)"/i;
    const m = re.exec(value);
    if (m === null) return null;
    return stringReplace(stringReplace(stringReplace(m[1], /%0A/gi, "\n"), /%0D/gi, "\r"), /%22/gi, '"');
  }

  // The Fetch Standard's multipart/form-data parser (RFC 7578).
  function parseMultipart(bytes, contentType) {
    const boundary = mimeParam(contentType, "boundary");
    if (boundary === null || boundary === "") throw formError("the content type has no boundary");
    const delim = N.utf8Encode("--" + boundary);
    const fd = new FormData();
    // What an empty FormData is sent as.
    if (bytes.length === 0) return fd;
    const headEndMark = N.utf8Encode("\r\n\r\n");
    const nextMark = N.utf8Encode("\r\n--" + boundary);
    let at = indexOfBytes(bytes, delim, 0);
    if (at !== 0) throw formError("it does not start with the boundary");
    for (;;) {
      at += delim.length;
      if (bytes[at] === 0x2d && bytes[at + 1] === 0x2d) return fd;
      if (bytes[at] !== 0x0d || bytes[at + 1] !== 0x0a) throw formError("a boundary is not followed by CRLF");
      at += 2;
      const headEnd = indexOfBytes(bytes, headEndMark, at);
      if (headEnd < 0) throw formError("a part's headers do not end");
      const h = partHeaders(N.utf8Decode(typedArraySubarray(bytes, at, headEnd), false));
      const bodyStart = headEnd + 4;
      const next = indexOfBytes(bytes, nextMark, bodyStart);
      if (next < 0) throw formError("a part does not end with the boundary");
      const body = typedArraySubarray(bytes, bodyStart, next);
      if (h.filename !== null) {
        fd.append(h.name, copyFile(new Uint8ArrayCtor(body), h.filename, h.type === null ? "text/plain" : h.type, undefined));
      } else {
        fd.append(h.name, N.utf8Decode(body, false));
      }
      at = next + 2;
    }
  }

  return { Blob, File, FormData, FileReader, bytesOf, encodeMultipart, parseMultipart, mimeParam };
}
