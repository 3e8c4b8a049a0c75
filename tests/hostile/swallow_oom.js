// expect: memory_limit
// limits: memory_mb=16
const keep = [];
for (let i = 0; i < 1000; i++) { try { keep.push(new Uint8Array(4e6)); } catch (e) { console.log("swallowed", String(e)); } }
export default "survived";
