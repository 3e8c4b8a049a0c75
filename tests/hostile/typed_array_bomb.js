// expect: memory_limit
// limits: memory_mb=32
const big = new Uint8Array(1e9);
export default big.length;
