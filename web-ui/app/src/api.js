// The HTTP API and the WebSocket live connection.

export class ApiError extends Error {
  constructor(status, body) {
    super(inWords(status, body || {}));
    this.status = status;
    this.body = body || {};
  }
}

// A request field as a person would name it: `grants[1]` → "grant 2",
// `max_concurrent_runs` → "max concurrent runs".
export function fieldWords(field) {
  const m = /^(\w+?)s?\[(\d+)\]$/.exec(field);
  if (m) return `${m[1].replace(/_/g, " ")} ${Number(m[2]) + 1}`;
  return String(field).replace(/_/g, " ").replace(/\./g, " → ");
}

// What the API said, in words for the person in front of the app rather
// than in its field names and codes. The API's own text stays in `body`.
export function inWords(status, body) {
  const raw = typeof body.message === "string" ? body.message : "";
  switch (body.error) {
    case "invalid_field": {
      // "invalid name: invalid secret name: must be …" → "must be …"
      let why = raw;
      while (/^invalid [^:]{1,60}: /.test(why)) why = why.replace(/^invalid [^:]{1,60}: /, "");
      const what = body.field ? fieldWords(body.field) : "request";
      return why ? `The ${what} is not accepted: ${why}` : `The ${what} is not accepted.`;
    }
    case "forbidden": {
      const { need, have } = body;
      if (typeof need === "string" && typeof have === "string") {
        return `Only ${article(need)} ${need} can do this; you are signed in as ${article(have)} ${have}.`;
      }
      return raw ? `Not allowed: ${raw}.` : "Not allowed.";
    }
    case "not_found":
      return raw ? `${raw.charAt(0).toUpperCase()}${raw.slice(1)} (it may have been deleted meanwhile).` : "Not found.";
    case "too_large":
      return "That is too large for the server to take in one request.";
    case "internal":
      return "The server failed to do this (its log has the details); try again.";
    case "shutting_down":
      return "The server is restarting; try again in a moment.";
    default:
      return raw || `The server answered ${status}.`;
  }
}

function article(word) {
  return /^[aeiou]/i.test(word) ? "an" : "a";
}

export class Api {
  constructor(token) {
    this.token = token;
  }

  async call(method, path, body) {
    const opts = { method, headers: { authorization: `Bearer ${this.token}` } };
    if (body !== undefined) {
      opts.headers["content-type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(`/api/v1${path}`, opts);
    } catch {
      throw new ApiError(0, { message: "Could not reach the server; check the connection and try again." });
    }
    const text = await res.text();
    let json = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      json = { message: text };
    }
    if (!res.ok) throw new ApiError(res.status, json);
    return json;
  }

  get(path) { return this.call("GET", path); }
  post(path, body) { return this.call("POST", path, body ?? {}); }
  put(path, body) { return this.call("PUT", path, body); }
  patch(path, body) { return this.call("PATCH", path, body); }
  del(path) { return this.call("DELETE", path); }
}

const enc = encodeURIComponent;
export const paths = {
  ws: (ws) => `/workspaces/${enc(ws)}`,
  docs: (ws) => `/workspaces/${enc(ws)}/docs`,
  doc: (ws, id) => `/workspaces/${enc(ws)}/docs/${enc(id)}`,
  graph: (ws, id) => `/workspaces/${enc(ws)}/docs/${enc(id)}/graph`,
  blocks: (ws) => `/workspaces/${enc(ws)}/blocks`,
  block: (ws, id) => `/workspaces/${enc(ws)}/blocks/${enc(id)}`,
  grants: (ws, id) => `/workspaces/${enc(ws)}/blocks/${enc(id)}/grants`,
  runs: (ws, block) => `/workspaces/${enc(ws)}/runs?block=${enc(block)}&limit=20`,
  lastRun: (ws, block) => `/workspaces/${enc(ws)}/runs?block=${enc(block)}&limit=1`,
  run: (ws, id, from = 0) => `/workspaces/${enc(ws)}/runs/${enc(id)}${from ? `?from_seq=${from}` : ""}`,
  applyRun: (ws, id) => `/workspaces/${enc(ws)}/runs/${enc(id)}/apply`,
  discardRun: (ws, id) => `/workspaces/${enc(ws)}/runs/${enc(id)}/discard`,
  schedules: (ws) => `/workspaces/${enc(ws)}/schedules`,
  blockSchedules: (ws, block) => `/workspaces/${enc(ws)}/blocks/${enc(block)}/schedules`,
  schedule: (ws, id) => `/workspaces/${enc(ws)}/schedules/${enc(id)}`,
  blockWebhooks: (ws, block) => `/workspaces/${enc(ws)}/blocks/${enc(block)}/webhooks`,
  webhook: (ws, id) => `/workspaces/${enc(ws)}/webhooks/${enc(id)}`,
  quota: (ws) => `/workspaces/${enc(ws)}/quota`,
  workspace: (ws) => `/workspaces/${enc(ws)}`,
  settings: (ws) => `/workspaces/${enc(ws)}/settings`,
  usage: (ws, days) => `/workspaces/${enc(ws)}/usage?days=${days}`,
};

// One WebSocket per workspace. Replies are matched by `ref`; run events are
// dispatched to whoever follows the run. After a dropped connection it
// reconnects and re-follows every unfinished run from the next `seq`, so no
// event is lost or repeated.
export class Live {
  constructor(token, ws, onStatus) {
    // The token goes as a subprotocol, never in the URL (which proxies and
    // logs keep); the server answers "quire.v1". An operator's token with
    // characters a subprotocol cannot hold falls back to ?token=.
    this.url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/api/v1/workspaces/${enc(ws)}/live`;
    if (/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(token)) {
      this.protocols = ["quire.v1", `quire.token.${token}`];
    } else {
      this.protocols = [];
      this.url += `?token=${enc(token)}`;
    }
    this.onStatus = onStatus || (() => {});
    this.pending = new Map(); // ref -> {resolve, reject}
    this.runs = new Map(); // run -> {onEvent, nextSeq, done}
    this.subs = new Map(); // block -> onRun(announcement)
    this.queue = [];
    this.nextRef = 1;
    this.closed = false;
    this.delay = 250;
    this.open();
  }

  open() {
    const sock = new WebSocket(this.url, this.protocols);
    this.sock = sock;
    sock.onopen = () => {
      this.delay = 250;
      this.onStatus("connected");
      for (const [run, f] of this.runs) {
        if (!f.done) this.raw({ op: "follow", run, from_seq: f.nextSeq });
      }
      for (const block of this.subs.keys()) this.raw({ op: "subscribe", block });
      for (const m of this.queue.splice(0)) sock.send(JSON.stringify(m));
    };
    sock.onmessage = (e) => this.receive(JSON.parse(e.data));
    sock.onclose = () => {
      if (this.closed) return;
      this.onStatus("reconnecting");
      setTimeout(() => this.open(), this.delay);
      this.delay = Math.min(this.delay * 2, 5000);
    };
  }

  // The connection is up now (messages go out at once, not queued).
  get connected() {
    return this.sock.readyState === WebSocket.OPEN;
  }

  raw(msg) {
    if (this.sock.readyState === WebSocket.OPEN) this.sock.send(JSON.stringify(msg));
    else this.queue.push(msg);
  }

  request(msg) {
    const ref = this.nextRef++;
    return new Promise((resolve, reject) => {
      this.pending.set(ref, { resolve, reject });
      this.raw({ ...msg, ref });
    });
  }

  receive(m) {
    if (m.op === "run" && m.run && !this.runs.has(m.run)) {
      // A run of a subscribed block started elsewhere (a schedule, a
      // webhook, another tab); the server follows it for us.
      const onRun = this.subs.get(m.block);
      const onEvent = onRun && onRun(m);
      if (onEvent) this.runs.set(m.run, { onEvent, nextSeq: 0, done: false });
      return;
    }
    if (m.op) {
      const p = m.ref !== undefined && this.pending.get(m.ref);
      if (p) {
        this.pending.delete(m.ref);
        if (m.op === "rejected") p.reject(new Error(m.reason));
        else p.resolve(m);
      }
      return;
    }
    const f = this.runs.get(m.run);
    if (!f) return;
    // A live meter repeats the seq of the event before it: it is not
    // part of the numbered stream (the last one, `final`, is).
    if (m.type === "meter" && !m.final) {
      if (!f.done) f.onEvent(m);
      return;
    }
    if (m.seq < f.nextSeq) return;
    f.nextSeq = m.seq + 1;
    if (m.type === "finished") f.done = true;
    f.onEvent(m);
  }

  // Start a run and stream its events to onEvent. Resolves with the run id.
  async run(msg, onEvent) {
    const acc = await this.request(msg);
    this.follow(acc.run, onEvent, true);
    return acc.run;
  }

  follow(run, onEvent, alreadyFollowing = false) {
    this.runs.set(run, { onEvent, nextSeq: 0, done: false });
    if (!alreadyFollowing) this.raw({ op: "follow", run, from_seq: 0 });
  }

  // Hear of every run of `block` started anywhere: onRun(announcement)
  // returns an event handler to follow it, or nothing to ignore it.
  subscribe(block, onRun) {
    const fresh = !this.subs.has(block);
    this.subs.set(block, onRun);
    if (fresh) this.raw({ op: "subscribe", block });
  }

  // Stop hearing of the runs of every subscribed block.
  unsubscribeAll() {
    for (const block of this.subs.keys()) this.raw({ op: "unsubscribe", block });
    this.subs.clear();
  }

  cancel(run) {
    return this.request({ op: "cancel", run });
  }

  close() {
    this.closed = true;
    this.sock.close();
  }
}
