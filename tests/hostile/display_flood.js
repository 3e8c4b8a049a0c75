// expect: output_limit
for (;;) display({ rows: [1, 2, 3] });
