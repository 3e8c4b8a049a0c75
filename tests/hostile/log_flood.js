// expect: output_limit
for (;;) console.log("spam spam spam spam");
