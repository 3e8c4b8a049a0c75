// expect: cpu_limit
// limits: cpu_ms=200
class T { toJSON() { for (;;) {} } }
export default new T();
