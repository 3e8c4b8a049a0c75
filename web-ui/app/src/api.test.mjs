// Unit tests of how the app words the API's refusals (run by `npm test`).
import { test } from "node:test";
import assert from "node:assert/strict";
import { inWords, fieldWords } from "./api.js";

test("a bad field names the field in words, without the API's nested prefixes", () => {
  const body = { error: "invalid_field", field: "name", message: "invalid name: invalid secret name: use A-Z, 0-9 and _ (1 to 64)" };
  assert.equal(inWords(400, body), "The name is not accepted: use A-Z, 0-9 and _ (1 to 64)");
  assert.equal(fieldWords("grants[1]"), "grant 2");
  assert.equal(fieldWords("max_concurrent_runs"), "max concurrent runs");
  assert.equal(inWords(400, { error: "invalid_field", message: "invalid body: expected a JSON object" }), "The request is not accepted: expected a JSON object");
});

test("a role too low says who may, and who the person is", () => {
  assert.equal(
    inWords(403, { error: "forbidden", message: "this needs the admin role; the token has editor", need: "admin", have: "editor" }),
    "Only an admin can do this; you are signed in as an editor.",
  );
  assert.equal(inWords(403, { error: "forbidden", message: "only a server-admin token may create workspaces" }), "Not allowed: only a server-admin token may create workspaces.");
});

test("other refusals keep the server's words or say what to do", () => {
  assert.equal(inWords(404, { error: "not_found", message: "block 'x' not found" }), "Block 'x' not found (it may have been deleted meanwhile).");
  assert.equal(inWords(409, { error: "conflict", message: "someone saved this block since" }), "someone saved this block since");
  assert.equal(inWords(500, { error: "internal", message: "internal error: sled: io" }), "The server failed to do this (its log has the details); try again.");
  assert.equal(inWords(502, {}), "The server answered 502.");
  // A hostile or odd body never throws.
  assert.equal(inWords(400, { error: "invalid_field", field: 7, message: null }), "The 7 is not accepted.");
});
