// expect: output_limit
// A result over the output limit is refused whatever the block replaced.
Math.max = () => Infinity;
export default "\x01".repeat(2e6);
