// expect: exception
export default { get x() { throw new Error("getter says no"); } };
