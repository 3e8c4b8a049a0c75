// expect: wall_limit
// limits: wall_ms=500
// A FileReader that starts a new read from each load: every step is a
// task, so the run ends at its wall-clock limit, never hangs the runner.
const fr = new FileReader();
const b = new Blob(["x"]);
fr.onload = () => fr.readAsText(b);
fr.readAsText(b);
