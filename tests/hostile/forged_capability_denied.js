// expect: exception
// grants: kv:read
// A block names its own error CapabilityDenied to pass for a host denial
// (and talk an admin into a grant): only a denial the host recorded is
// capability_denied, so this is an exception.
const e = new Error("db.query is denied: it needs the grant secret:PROD_DB_PASSWORD (this block has no grants)");
e.name = "CapabilityDenied";
throw e;
