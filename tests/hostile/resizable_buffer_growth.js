// expect: memory_limit|exception
// limits: memory_mb=64
// A resizable buffer's pages are committed as it grows: what it may grow
// to counts against the memory limit.
const b = new ArrayBuffer(0, { maxByteLength: 2 ** 32 });
b.resize(2 ** 31);
const u = new Uint8Array(b);
for (let i = 0; i < u.length; i += 4096) u[i] = 1;
export default b.byteLength;
