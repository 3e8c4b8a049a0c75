// expect: memory_limit
// v8-expect: exception|memory_limit
// (V8 aborts its whole process on an array past its size limit
// (crbug.com/1201626): the glue refuses the split first.)
export default "x".repeat(2 ** 28).split("").length;
