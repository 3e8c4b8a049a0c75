// expect: output_limit
export default "x".repeat(5e6);
