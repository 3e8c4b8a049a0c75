// expect: exception
// An uncaught refusal of a too-deep display() ends this run only.
display(JSON.parse("[".repeat(500) + "]".repeat(500)));
