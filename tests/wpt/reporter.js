// quire's own (not WPT's): collects testharness.js results into
// `globalThis.__wpt_result`, a promise of
// {status, message, results: [[name, passed, message]]}. Loaded right
// after testharness.js by anyjs.mjs.
(function () {
  const results = [];
  let finish;
  globalThis.__wpt_result = new Promise((r) => { finish = r; });
  // Well-formed text: a lone surrogate (some names hold one) is written as
  // its escape, so names stay distinct; messages are cut short.
  const lone = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;
  const text = (s, n) => s == null ? null
    : String(s).slice(0, n).replace(lone, (c) => "\\u" + c.charCodeAt(0).toString(16).toUpperCase());
  add_result_callback((t) => results.push([text(t.name, 1e6), t.status === 0, text(t.message, 300)]));
  // Timers a test leaves running are cleared once the harness completes
  // (a page ignores what they do then; a block would wait for them, and a
  // late `assert_unreached` would fail the run after the verdict).
  const pending = new Set();
  const { setTimeout: st, setInterval: si, clearTimeout: ct, clearInterval: ci } = globalThis;
  const track = (arm, once) => function (fn, ms, ...args) {
    const id = arm(typeof fn === "function" ? function (...a) {
      if (once) pending.delete(id);
      return fn.apply(this, a);
    } : fn, ms, ...args);
    pending.add(id);
    return id;
  };
  globalThis.setTimeout = track(st, true);
  globalThis.setInterval = track(si, false);
  add_completion_callback((_, status) => {
    for (const id of pending) {
      ct(id);
      ci(id);
    }
    finish({ status: status.status, message: text(status.message, 300), results });
  });
})();
