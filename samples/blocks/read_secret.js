// Read a secret the block was granted, and show only a fingerprint of it.
//   quire run samples/blocks/read_secret.js --cap secret:DEMO_TOKEN
// Grants: secret:DEMO_TOKEN.
import { secrets } from "quire";

export default async function () {
  const token = await secrets.get("DEMO_TOKEN");
  const digest = [...token].reduce((h, c) => (h * 31 + c.charCodeAt(0)) >>> 0, 7);
  return { length: token.length, starts: token.slice(0, 4) + "…", fingerprint: digest.toString(16) };
}
