// expect: exception
await import("os");
