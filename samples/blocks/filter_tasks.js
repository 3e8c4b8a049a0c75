// List tasks matching a filter (default: blocked ones), highest priority first.
//   quire run samples/blocks/filter_tasks.js --cap db:read:tasks --input '{"status":"open","assignee":"ana"}'
// Grants: db:read:tasks.
import { db } from "quire";

// The input it takes: the app draws a form from it, and an MCP client
// sees this block as a tool with this schema.
export const input = {
  type: "object",
  description: "List tasks matching a filter, highest priority first",
  properties: {
    status: { type: "string", enum: ["open", "in_progress", "blocked", "done"], default: "blocked" },
    assignee: { type: "string" },
    minPriority: { type: "integer", minimum: 1, maximum: 4 },
  },
};

export default async function ({ input }) {
  const where = { status: input?.status ?? "blocked" };
  if (input?.assignee) where.assignee = input.assignee;
  if (input?.minPriority) where.priority = { $gte: input.minPriority };
  const rows = await db.query("tasks", { where, limit: 1000 });
  rows.sort((a, b) => b.priority - a.priority || a.due.localeCompare(b.due));
  display(rows.slice(0, 20).map(({ id, title, assignee, priority, due }) => ({ id, title, assignee, priority, due })));
  return { matched: rows.length, ids: rows.map((r) => r.id) };
}
