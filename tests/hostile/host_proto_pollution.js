// expect: ok
// grants: db:read:notes db:write:notes
// result: {"id":"n1","text":"clean","tags":["a"]}
// Polluted prototypes and toJSON do not change what is stored.
import { db } from "quire";
Object.prototype.toJSON = () => "evil";
Array.prototype.toJSON = () => "evil";
Object.defineProperty(Object.prototype, "text", { value: "evil", writable: true });
JSON.stringify = () => '"evil"';
await db.insert("notes", { id: "n1", text: "clean", tags: ["a"] });
delete Object.prototype.toJSON;
delete Array.prototype.toJSON;
const [row] = await db.query("notes", { where: { id: "n1" } });
export default { id: row.id, text: row.text, tags: row.tags };
