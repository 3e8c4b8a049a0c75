// expect: exception
for (;;) setTimeout(() => {}, 1e9);
