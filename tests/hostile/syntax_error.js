// expect: syntax
let x = ;
