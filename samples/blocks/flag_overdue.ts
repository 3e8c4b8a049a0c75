// Mark open tasks whose due date has passed as blocked, and log each change.
//   quire run samples/blocks/flag_overdue.ts --cap db:read:tasks --cap db:write:tasks --input '{"today":"2026-10-01"}'
// Grants: db:read:tasks, db:write:tasks. Input: {"today": "YYYY-MM-DD", "dryRun": false}
import { db } from "quire";

export default async function ({ input }: { input: { today?: string; dryRun?: boolean } | null }) {
  const today = input?.today ?? new Date().toISOString().slice(0, 10);
  const overdue = await db.query("tasks", { where: { status: "open", due: { $lt: today } }, limit: 1000 });
  for (const t of overdue) {
    if (!input?.dryRun) await db.update("tasks", t.id, { status: "blocked", blocked_reason: `overdue since ${t.due}` });
    console.log(`${input?.dryRun ? "would flag" : "flagged"} ${t.id} (${t.title}, due ${t.due})`);
  }
  return { today, flagged: overdue.length, dryRun: !!input?.dryRun };
}
