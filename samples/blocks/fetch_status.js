// Call a granted URL, sending a secret the block never sees.
//   quire serve &   # then:
//   quire run samples/blocks/fetch_status.js --cap net:127.0.0.1:7878
// Grants: net:127.0.0.1:7878 (loopback needs the exact host and port).
// DEMO_TOKEN is bound to 127.0.0.1:7878, so `{{secret:DEMO_TOKEN}}` is
// replaced in Rust for that host only. Input: {"url": "..."} to call another.
export default async function ({ input }) {
  const url = input?.url ?? "http://127.0.0.1:7878/healthz";
  const res = await fetch(url, { headers: { authorization: "Bearer {{secret:DEMO_TOKEN}}" } });
  const body = await res.text();
  console.log(`${res.status} ${res.statusText} from ${res.url}`);
  return { status: res.status, ok: res.ok, contentType: res.headers.get("content-type"), body: body.slice(0, 500) };
}
