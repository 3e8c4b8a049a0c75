// expect: exception
// Far past the depth limit: still this run's exception, never `internal`.
export default JSON.parse("[".repeat(300) + "]".repeat(300));
