// expect: exception
// A result nested 65 levels deep (one past the limit of 64) is refused
// with an error naming the limit; it never reaches a reader that would
// choke on it, and the runner serves the next run (checked after each).
export default JSON.parse("[".repeat(65) + "]".repeat(65));
