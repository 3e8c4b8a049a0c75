// expect: exception
// v8-expect: wall_limit
// (V8 lets the main thread block in Atomics.wait; the server ends it at
// the wall-clock limit by killing the runner.)
const sab = new SharedArrayBuffer(16);
Atomics.wait(new Int32Array(sab), 0, 0, 100000);
