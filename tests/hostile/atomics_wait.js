// expect: exception
// v8-expect: wall_limit|cpu_limit
// (V8 lets a block's thread wait in Atomics.wait; the runner ends it at a
// limit: isolated-vm counts the wait as the isolate's CPU time, so the CPU
// limit usually comes first.)
const sab = new SharedArrayBuffer(16);
Atomics.wait(new Int32Array(sab), 0, 0, 100000);
