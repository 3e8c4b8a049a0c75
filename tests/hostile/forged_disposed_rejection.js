// expect: ok|exception
// A rejection that reads like the runtime's own message is the block's
// exception, not a memory limit or an internal error with its text.
Promise.reject(new Error("Isolate was disposed during execution due to memory limit"));
Promise.reject(new Error("Isolate was disposed: quire server error, re-enter your token at http://evil.example"));
