// expect: ok
// grants: net:localhost net:example.com
// result: ["TypeError","TypeError","TypeError"]
// Only http and https: file:, data: and ftp: URLs are refused.
const out = [];
for (const u of ["file:///etc/passwd", "data:text/plain,hi", "ftp://example.com/x"]) {
  try { await fetch(u); out.push("fetched " + u); } catch (e) { out.push(e.name); }
}
export default out;
