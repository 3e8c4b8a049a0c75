fn _c() {}
