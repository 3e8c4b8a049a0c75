fn _p() {}
