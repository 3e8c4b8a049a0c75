// expect: exception
Promise.reject(new Error("nobody handles this"));
await new Promise((r) => setTimeout(r, 10));
