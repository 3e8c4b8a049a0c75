// expect: exception
const sab = new SharedArrayBuffer(16);
Atomics.wait(new Int32Array(sab), 0, 0, 100000);
