// Summarise a list of tasks passed as input (try:
//   quire run samples/blocks/tasks_summary.ts --input '[{"title":"a","done":true},{"title":"b","done":false}]')
interface Task {
  title: string;
  done: boolean;
  owner?: string;
}

enum Status {
  Open = "open",
  Done = "done",
}

export default async function summarise(ctx: { input: Task[] | null }) {
  const tasks: Task[] = ctx.input ?? [
    { title: "write the README", done: true, owner: "ana" },
    { title: "ship the engine", done: false, owner: "bo" },
    { title: "benchmark it", done: false },
  ];
  const byStatus = new Map<Status, number>();
  for (const t of tasks) {
    const s = t.done ? Status.Done : Status.Open;
    byStatus.set(s, (byStatus.get(s) ?? 0) + 1);
  }
  console.log("tasks by status:", byStatus);
  display(
    "title,done\n" + tasks.map((t) => `${t.title},${t.done}`).join("\n"),
    { mime: "text/csv" },
  );
  await new Promise((r) => setTimeout(r, 100));
  return {
    total: tasks.length,
    open: byStatus.get(Status.Open) ?? 0,
    owners: [...new Set(tasks.map((t) => t.owner).filter(Boolean))],
  };
}
