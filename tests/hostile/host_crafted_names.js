// expect: ok
// grants: db:read:* kv:read doc:read
// result: []
// Names built to escape the workspace find nothing of the victim's.
import { db, kv, doc } from "quire";
const names = ["tasks", "../victim/tasks", "victim/tasks", "victim:tasks", "\u0000\u0000\u0000\u0005tasks", "tasks\u0000", "*", "%2e%2e%2ftasks", "ｔａｓｋｓ", "t".repeat(1024)];
const leaks = [];
for (const n of names) {
  for (const f of [() => db.query(n), () => kv.get(n), () => doc.get(n)]) {
    try {
      const v = JSON.stringify(await f());
      if (v && v.includes("VICTIM")) leaks.push(n + ": " + v);
    } catch {}
  }
}
export default leaks;
