// expect: exception
// grants: db:write:*
// Made-up operations are refused by name.
export default await globalThis.__quire_host("storage.dropAll", []);
