// expect: exception
// grants: kv:read
// A block's own QuotaExceeded error is not a quota the host enforced.
class QuotaExceeded extends Error {}
const e = new QuotaExceeded("kv.set: storage quota of 1 bytes exceeded");
e.name = "QuotaExceeded";
throw e;
