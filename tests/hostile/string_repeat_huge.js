// expect: memory_limit|exception
"x".repeat(2 ** 29).charCodeAt(0);
