// expect: ok
// result: ["TypeError", "TypeError", "d1", "cleared"]
// A block that breaks Map and String methods, or calls a handle's methods
// on other objects, cannot update a display it does not hold or make the
// prelude emit a bad id.
const h = display(1);
Map.prototype.get = () => true;
Map.prototype.has = () => false;
String.prototype.charCodeAt = () => 65;
const out = [];
try { h.update.call({}, 2); } catch (e) { out.push(e.name); }
try { display(1, { id: "has space" }); } catch (e) { out.push(e.name); }
out.push(h.id);
h.clear();
out.push("cleared");
export default out;
