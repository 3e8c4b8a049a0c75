// Runs WPT's URL data suites the way WPT's own tests do
// (url/url-constructor.any.js, url/url-origin.any.js and
// url/url-setters.any.js at the vendored commit), over the vendored
// `urltestdata.json` and `setters_tests.json`. The same function runs in
// a quire block on each engine and in Node (tests/suite/wpt.rs), so the
// counts compare like for like. It returns, per suite, the number of
// cases, how many passed, and the name and first failed check of each
// failure; it never throws.
function runUrlSuites(urltestdata, setters) {
  const fails = (list, name, why) => list.push([name, why]);
  const same = (a, b) => a === b;

  const parsing = { cases: 0, passed: 0, failed: [] };
  for (const t of urltestdata) {
    if (typeof t === "string") continue;
    parsing.cases++;
    const base = t.base === null ? undefined : t.base;
    const name = JSON.stringify(t.input) + (base === undefined ? "" : " against " + JSON.stringify(base));
    let url;
    try {
      url = base === undefined ? new URL(t.input) : new URL(t.input, base);
    } catch (e) {
      if (t.failure && e instanceof TypeError) parsing.passed++;
      else fails(parsing.failed, name, t.failure ? "threw " + String(e && e.name) + ", not TypeError" : "threw: " + String(e && e.message));
      continue;
    }
    if (t.failure) {
      fails(parsing.failed, name, "parsed as " + url.href + ", expected a failure");
      continue;
    }
    let bad = null;
    for (const k of ["href", "protocol", "username", "password", "host", "hostname", "port", "pathname", "search", "hash"]) {
      if (!same(url[k], t[k])) { bad = k + ": got " + JSON.stringify(url[k]) + ", expected " + JSON.stringify(t[k]); break; }
    }
    if (bad === null && "searchParams" in t && !same(url.searchParams.toString(), t.searchParams)) bad = "searchParams: got " + JSON.stringify(url.searchParams.toString());
    if (bad === null && "origin" in t && !same(url.origin, t.origin)) bad = "origin: got " + JSON.stringify(url.origin) + ", expected " + JSON.stringify(t.origin);
    if (bad === null) parsing.passed++;
    else fails(parsing.failed, name, bad);
  }

  const setting = { cases: 0, passed: 0, failed: [] };
  for (const attr of Object.keys(setters)) {
    if (attr === "comment") continue;
    for (const t of setters[attr]) {
      setting.cases++;
      const name = attr + ": " + JSON.stringify(t.href) + " = " + JSON.stringify(t.new_value);
      let bad = null;
      try {
        const url = new URL(t.href);
        url[attr] = t.new_value;
        for (const k of Object.keys(t.expected)) {
          if (!same(url[k], t.expected[k])) { bad = k + ": got " + JSON.stringify(url[k]) + ", expected " + JSON.stringify(t.expected[k]); break; }
        }
      } catch (e) {
        bad = "threw: " + String(e && e.message);
      }
      if (bad === null) setting.passed++;
      else fails(setting.failed, name, bad);
    }
  }
  return { "url (urltestdata.json)": parsing, "url setters (setters_tests.json)": setting };
}
