// expect: capability_denied
// grants: net:2130706433 net:0x7f000001 net:127.1
// Decimal, hex and short forms of 127.0.0.1 are the same loopback address.
const out = [];
for (const u of ["http://2130706433/", "http://0x7f000001/", "http://127.1/"]) {
  try { await fetch(u); out.push("reached " + u); } catch (e) { out.push(e.name); }
}
if (out.some((o) => o !== "CapabilityDenied")) throw new Error(out.join(", "));
await fetch("http://2130706433/");
