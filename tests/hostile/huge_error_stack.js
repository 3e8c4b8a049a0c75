// expect: exception
// An error whose stack is 9 MB is reported, cut to size: it never makes a
// frame too large for the server to read.
const e = new Error("x");
e.stack = "a".repeat(9e6);
throw e;
