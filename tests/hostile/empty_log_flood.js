// expect: output_limit
// Empty lines cost no output bytes; the event count still ends the run.
for (;;) { try { console.log(); display(""); } catch {} }
