// expect: output_limit
// limits: output_events=5000
// Empty lines cost no output bytes; the event count still ends the run.
for (;;) { try { console.log(); display(""); } catch {} }
