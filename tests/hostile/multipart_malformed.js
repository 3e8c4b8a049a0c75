// expect: ok
// limits: cpu_ms=10000 wall_ms=20000
// result: [["no boundary", "TypeError"], ["boundary not first", "TypeError"], ["no CRLF after boundary", "TypeError"], ["header without colon", "TypeError"], ["part without name", "TypeError"], ["not form-data", "TypeError"], ["unterminated part", "TypeError"], ["headers never end", "TypeError"], ["null body", "TypeError"], ["wrong content type", "TypeError"], ["body read twice", "TypeError"], ["huge boundary", "ok 1"], ["2000 parts", "ok 2000"]]
// formData() of bodies a hostile sender could make: each malformed one
// rejects with a TypeError the block can catch; large but valid ones
// parse.
const enc = (s) => new TextEncoder().encode(s);
const mp = (boundary) => ({ "content-type": "multipart/form-data; boundary=" + boundary });
const cases = [
  ["no boundary", "--x\r\n", { "content-type": "multipart/form-data" }],
  ["boundary not first", "junk--x\r\n", mp("x")],
  ["no CRLF after boundary", "--xjunk", mp("x")],
  ["header without colon", '--x\r\nContent-Disposition form-data; name="a"\r\n\r\nv\r\n--x--\r\n', mp("x")],
  ["part without name", "--x\r\nContent-Disposition: form-data\r\n\r\nv\r\n--x--\r\n", mp("x")],
  ["not form-data", '--x\r\nContent-Disposition: attachment; name="a"\r\n\r\nv\r\n--x--\r\n', mp("x")],
  ["unterminated part", '--x\r\nContent-Disposition: form-data; name="a"\r\n\r\nvvvv', mp("x")],
  ["headers never end", '--x\r\nContent-Disposition: form-data; name="a"\r\n', mp("x")],
];
const out = [];
for (const [name, body, headers] of cases) {
  try {
    await new Response(enc(body), { headers }).formData();
    out.push([name, "parsed"]);
  } catch (e) {
    out.push([name, e.name]);
  }
}
for (const [name, make] of [
  ["null body", () => new Response(null, { headers: mp("x") }).formData()],
  ["wrong content type", () => new Response("a=b", { headers: { "content-type": "text/plain" } }).formData()],
  ["body read twice", async () => {
    const r = new Response("a=b", { headers: { "content-type": "application/x-www-form-urlencoded" } });
    await r.formData();
    return r.formData();
  }],
]) {
  try {
    await make();
    out.push([name, "parsed"]);
  } catch (e) {
    out.push([name, e.name]);
  }
}
const long = "b".repeat(70000);
const one = await new Response(enc("--" + long + '\r\nContent-Disposition: form-data; name="a"\r\n\r\nv\r\n--' + long + "--\r\n"), { headers: mp(long) }).formData();
out.push(["huge boundary", "ok " + [...one.keys()].length]);
const many = new FormData();
for (let i = 0; i < 2000; i++) many.append("k" + i, "v");
const back = await new Response(many).formData();
out.push(["2000 parts", "ok " + [...back.keys()].length]);
export default out;
