// Summarise the sample workspace's tasks database by status and assignee.
//   quire run samples/blocks/tasks_summary.ts --cap db:read:tasks
// Grants: db:read:tasks. Input (optional): {"project": "atlas"}
import { db } from "quire";

interface Task {
  id: string;
  title: string;
  status: "open" | "in_progress" | "done" | "blocked";
  assignee: string | null;
  project: string;
  points: number;
}

export default async function summarise(ctx: { input: { project?: string } | null }) {
  const where = ctx.input?.project ? { project: ctx.input.project } : undefined;
  const tasks: Task[] = [];
  // Page through the collection (a query returns at most 1000 rows).
  let after: string | undefined;
  for (;;) {
    const page: Task[] = await db.query("tasks", { where, limit: 100, after });
    tasks.push(...page);
    if (page.length < 100) break;
    after = page[page.length - 1].id;
  }
  const byStatus: Record<string, number> = {};
  const openPoints: Record<string, number> = {};
  for (const t of tasks) {
    byStatus[t.status] = (byStatus[t.status] ?? 0) + 1;
    if (t.status !== "done") {
      const who = t.assignee ?? "(unassigned)";
      openPoints[who] = (openPoints[who] ?? 0) + t.points;
    }
  }
  console.log(`${tasks.length} tasks${where ? ` in ${ctx.input!.project}` : ""}`);
  display(
    "assignee,open_points\n" +
      Object.entries(openPoints)
        .sort((a, b) => b[1] - a[1])
        .map(([who, pts]) => `${who},${pts}`)
        .join("\n"),
    { mime: "text/csv" },
  );
  return { total: tasks.length, byStatus, openPoints };
}
