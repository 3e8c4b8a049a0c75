// List the workspace's documents with the code blocks each contains.
//   quire run samples/blocks/doc_outline.js --cap doc:read
// Grants: doc:read.
import { doc } from "quire";

export default async function () {
  const docs = await doc.list();
  const outline = [];
  for (const d of docs) {
    const full = await doc.get(d.id);
    outline.push({ id: d.id, title: d.title, owner: full.properties.owner, code: full.blocks.filter((b) => b.type === "code").map((b) => b.block ?? b.lang) });
  }
  display(outline);
  return outline.length;
}
