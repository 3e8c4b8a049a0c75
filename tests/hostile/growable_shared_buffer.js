// expect: memory_limit|exception
// limits: memory_mb=64
// The same for a growable SharedArrayBuffer.
const b = new SharedArrayBuffer(0, { maxByteLength: 2 ** 32 });
b.grow(2 ** 31);
const u = new Uint8Array(b);
for (let i = 0; i < u.length; i += 4096) u[i] = 1;
export default b.byteLength;
