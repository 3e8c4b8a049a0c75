// expect: wall_limit
await new Promise(() => {});
