// Logs stream live: each line appears before the next wait ends.
for (let i = 1; i <= 5; i++) {
  console.log(`step ${i}/5`);
  await new Promise((r) => setTimeout(r, 300));
}
export default "done";
