// expect: output_limit
for (;;) { try { console.log("x".repeat(1000)); } catch {} }
