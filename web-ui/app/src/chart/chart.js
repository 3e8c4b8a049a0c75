// The chart frame: renders one Vega-Lite spec a block displayed
// (`application/vnd.vegalite.v5+json`). It runs in an iframe sandboxed
// with `allow-scripts` only (an opaque origin: no access to the app, its
// storage or its token) under a policy that lets it load nothing
// (`CHART_CSP` in web-ui/src/routes/mod.rs). The spec arrives from the
// app by postMessage; Vega's expressions are interpreted, never eval'd,
// and its loader refuses every URL, so a spec can neither run script nor
// make the viewer's browser fetch anything. It answers with its height, or
// with why the spec could not be drawn.
import embed from "vega-embed";
import { expressionInterpreter } from "vega-interpreter";
import { loader } from "vega";

const refuse = () => Promise.reject(new Error("a chart cannot load data from a URL: put the rows in data.values"));
const noLoading = loader();
noLoading.load = refuse;
noLoading.sanitize = refuse;
noLoading.http = refuse;
noLoading.file = refuse;

const el = document.getElementById("chart");
const tell = (msg) => parent.postMessage(msg, "*");
let drawn = false;

// Vega reports a failed data load (or a bad expression) through its
// logger, possibly after drawing; the app hears of the first error.
let failed = false;
const fail = (why) => {
  if (failed) return;
  failed = true;
  tell({ error: String(why).slice(0, 500) });
};
// What a log call says: its error's message if it has one.
const words = (args) => {
  const err = args.find((a) => a instanceof Error);
  return err ? err.message : args.map(String).join(" ");
};
const logger = {
  level(l) {
    return l === undefined ? 1 : logger;
  },
  error(...args) {
    fail(words(args));
    return logger;
  },
  // A data load that failed is only a warning to Vega.
  warn(...args) {
    if (args[0] === "Loading failed") fail(words(args));
    return logger;
  },
  info: () => logger,
  debug: () => logger,
};

window.addEventListener("message", async (e) => {
  if (e.source !== parent || drawn) return;
  drawn = true;
  const spec = e.data && e.data.spec;
  try {
    if (spec === null || typeof spec !== "object" || Array.isArray(spec)) throw new Error("the spec is not an object");
    await embed(el, spec, {
      mode: "vega-lite",
      renderer: "svg",
      actions: false,
      ast: true,
      expr: expressionInterpreter,
      loader: noLoading,
      tooltip: false,
      logger,
    });
    if (!failed) tell({ height: Math.ceil(document.documentElement.scrollHeight) });
  } catch (err) {
    fail((err && err.message) || err);
  }
});
tell({ ready: true });
