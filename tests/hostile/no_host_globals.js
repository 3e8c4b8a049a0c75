// expect: ok
// result: "clean"
const leaked = ["std", "os", "require", "process", "Deno", "__quire_native", "scriptArgs", "print"].filter((n) => typeof globalThis[n] !== "undefined");
if (leaked.length) throw new Error("leaked globals: " + leaked);
export default "clean";
