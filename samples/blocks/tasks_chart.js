// Chart the sample workspace's tasks: open story points per project,
// stacked by status, as a Vega-Lite bar chart (drawn by the app).
//   quire run samples/blocks/tasks_chart.js --cap db:read:tasks
// Grants: db:read:tasks.
import { db } from "quire";

const tasks = [];
let after;
for (;;) {
  const page = await db.query("tasks", { limit: 100, after });
  tasks.push(...page);
  if (page.length < 100) break;
  after = page[page.length - 1].id;
}

const points = new Map();
for (const t of tasks) {
  if (t.status === "done") continue;
  const key = `${t.project}\u0000${t.status}`;
  points.set(key, (points.get(key) ?? 0) + t.points);
}
const values = [...points].map(([key, pts]) => {
  const [project, status] = key.split("\u0000");
  return { project, status, points: pts };
});

display(
  {
    $schema: "https://vega.github.io/schema/vega-lite/v5.json",
    title: "Open points by project",
    width: 360,
    height: 200,
    data: { values },
    mark: { type: "bar", tooltip: true },
    encoding: {
      x: { field: "project", type: "nominal", title: "Project" },
      y: { field: "points", type: "quantitative", aggregate: "sum", title: "Open points" },
      color: { field: "status", type: "nominal", title: "Status" },
    },
  },
  { mime: "application/vnd.vegalite.v5+json" },
);
export default { open_tasks: values.length, projects: [...new Set(values.map((v) => v.project))].sort() };
