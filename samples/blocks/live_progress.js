// Output that updates in place: a progress bar and a status table that
// change as the work goes (one output each, not one line per step), and
// logs that stream live. Watch the meters beside the output while it runs.
const steps = ["fetch", "parse", "check", "summarize", "publish"];
const bar = display.progress(0, "starting");
const status = display(steps.map((step) => ({ step, state: "waiting" })));
for (let i = 0; i < steps.length; i++) {
  console.log(`step ${i + 1}/${steps.length}: ${steps[i]}`);
  status.update(steps.map((step, j) => ({ step, state: j < i ? "done" : j === i ? "running" : "waiting" })));
  await new Promise((r) => setTimeout(r, 300));
  bar.update((i + 1) / steps.length, `${steps[i]} done`);
}
status.update(steps.map((step) => ({ step, state: "done" })));
export default "done";
