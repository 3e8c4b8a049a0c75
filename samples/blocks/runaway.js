// A block that never ends: quire stops it at the CPU limit.
//   quire run samples/blocks/runaway.js --cpu-ms 200
let n = 0;
for (;;) n++;
