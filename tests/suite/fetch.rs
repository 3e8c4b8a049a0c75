//! fetch against a local server: which addresses a grant reaches, every
//! redirect hop re-checked, limits, the web API shape, and secrets a block
//! uses without seeing.

use quire_engine::ErrorKind;
use serde_json::{json, Value};

use crate::common::{on_each_engine, Ran};
use crate::host::{fixture, run_in, Fx};
use crate::http::Server;

fn fetch_probe(url: &str, init: &str) -> String {
    format!(
        r#"export default async () => {{
  try {{
    const r = await fetch({url:?}, {init});
    const body = await r.text();
    return {{ ok: true, status: r.status, statusText: r.statusText, url: r.url, redirected: r.redirected, ctype: r.headers.get("content-type"), xtest: r.headers.get("x-test"), body }};
  }} catch (e) {{ return {{ ok: false, name: e.name, message: e.message }}; }}
}};"#
    )
}

fn go(fx: &Fx, grants: &[&str], url: &str, init: &str) -> Value {
    let r = run_in(fx, &fx.a, grants, &fetch_probe(url, init));
    r.result()
        .cloned()
        .unwrap_or_else(|| panic!("{:?}", r.outcome.error))
}

fn denied(v: &Value, needle: &str) {
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["name"], "CapabilityDenied", "{v}");
    assert!(
        v["message"].as_str().unwrap().contains(needle),
        "expected {needle:?} in {v}"
    );
}

#[test]
fn loopback_needs_the_exact_host_and_port() {
    let fx = fixture();
    let s = Server::start();
    let url = s.url("/hello");
    let exact = format!("net:127.0.0.1:{}", s.port);
    denied(&go(&fx, &[], &url, "{}"), &exact);
    denied(&go(&fx, &["net:127.0.0.1"], &url, "{}"), "loopback");
    denied(&go(&fx, &["net:127.0.0.1:1"], &url, "{}"), &exact);
    denied(&go(&fx, &["net:localhost"], &url, "{}"), &exact);
    assert!(s.requests().is_empty(), "a denied fetch reached the server");
    let v = go(&fx, &[&exact], &url, "{}");
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["status"], 200);
    assert_eq!(v["body"], "hello");
    assert_eq!(v["xtest"], "yes");
    assert_eq!(v["ctype"], "text/plain");
    assert_eq!(s.requests().len(), 1);
}

#[test]
fn names_resolving_to_private_addresses_are_denied() {
    let fx = fixture();
    let s = Server::start();
    let port = s.port;
    // evil.test resolves to 127.0.0.1 (the test resolver).
    denied(
        &go(
            &fx,
            &["net:evil.test"],
            &format!("http://evil.test:{port}/hello"),
            "{}",
        ),
        "evil.test resolves to 127.0.0.1",
    );
    denied(
        &go(
            &fx,
            &["net:metadata.test"],
            "http://metadata.test/latest/meta-data/",
            "{}",
        ),
        "metadata",
    );
    // One private answer among public ones is enough to refuse.
    denied(
        &go(&fx, &["net:mixed.test"], "http://mixed.test/", "{}"),
        "10.0.0.7",
    );
    // "localhost" through the system resolver.
    denied(
        &go(
            &fx,
            &["net:localhost"],
            &format!("http://localhost:{port}/hello"),
            "{}",
        ),
        "loopback",
    );
    // Encoded forms of 127.0.0.1 are the same address.
    for u in [
        format!("http://2130706433:{port}/hello"),
        format!("http://0x7f.1:{port}/hello"),
        format!("http://[::ffff:127.0.0.1]:{port}/hello"),
    ] {
        let v = go(
            &fx,
            &["net:2130706433", "net:0x7f.1", "net:[::ffff:127.0.0.1]"],
            &u,
            "{}",
        );
        assert_eq!(v["ok"], false, "{u}: {v}");
    }
    assert!(s.requests().is_empty(), "a denied fetch reached the server");
    // The exact grant for the name allows it, and connects to the checked address.
    let v = go(
        &fx,
        &[&format!("net:evil.test:{port}")],
        &format!("http://evil.test:{port}/hello"),
        "{}",
    );
    assert_eq!(v["body"], "hello", "{v}");
}

#[test]
fn every_redirect_hop_is_checked_again() {
    let fx = fixture();
    let a = Server::start();
    let b = Server::start();
    let grant_a = format!("net:127.0.0.1:{}", a.port);
    let to_b = a.url(&format!("/redirect?to={}", b.url("/hello")));
    denied(
        &go(&fx, &[&grant_a], &to_b, "{}"),
        &format!("net:127.0.0.1:{}", b.port),
    );
    assert!(
        b.requests().is_empty(),
        "the redirect reached an ungranted port"
    );
    // Redirect to a metadata address is refused too.
    let v = go(
        &fx,
        &[&grant_a, "net:169.254.169.254"],
        &a.url("/redirect?to=http://169.254.169.254/latest"),
        "{}",
    );
    denied(&v, "metadata");
    // Granted both: followed, and the response says so.
    let grant_b = format!("net:127.0.0.1:{}", b.port);
    let v = go(&fx, &[&grant_a, &grant_b], &to_b, "{}");
    assert_eq!(v["body"], "hello", "{v}");
    assert_eq!(v["redirected"], true);
    assert_eq!(v["url"], b.url("/hello"));
    // redirect: "manual" hands back the 302; "error" fails.
    let v = go(&fx, &[&grant_a], &to_b, "{redirect: 'manual'}");
    assert_eq!(v["status"], 302, "{v}");
    let v = go(&fx, &[&grant_a], &to_b, "{redirect: 'error'}");
    assert_eq!(v["name"], "TypeError", "{v}");
    // A redirect loop ends at the limit.
    let v = go(&fx, &[&grant_a], &a.url("/loop"), "{}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("more than 5 redirects"),
        "{v}"
    );
}

#[test]
fn responses_have_the_web_shape_and_limits() {
    let fx = fixture();
    let s = Server::start();
    let g = format!("net:127.0.0.1:{}", s.port);
    let src = format!(
        r#"export default async () => {{
  const j = await (await fetch("{json}")).json();
  const p = await fetch("{echo}", {{ method: "post", body: JSON.stringify({{ x: 1 }}), headers: {{ "Content-Type": "application/json" }} }});
  const echoed = await p.json();
  const miss = await fetch("{missing}");
  const bytes = new Uint8Array(await (await fetch("{bytes}")).arrayBuffer());
  const h = new Headers({{ A: "1" }}); h.append("a", "2");
  let used; const r2 = await fetch("{hello}"); await r2.text(); try {{ await r2.text(); }} catch (e) {{ used = e.name; }}
  let tooBig; try {{ await fetch("{big}"); }} catch (e) {{ tooBig = e.name + ": " + e.message; }}
  const multi = (await fetch("{multi}")).headers.get("x-multi");
  const made = new Response("hi", {{ status: 201 }});
  return {{ j, echoed, miss: [miss.status, miss.ok, await miss.text()], bytes: [...bytes], h: h.get("A"), used, tooBig, made: [made.status, await made.text()], multi, req: new Request("{hello}", {{ method: "PUT", body: "z" }}).method }};
}};"#,
        json = s.url("/json"),
        echo = s.url("/echo"),
        missing = s.url("/missing"),
        bytes = s.url("/bytes"),
        hello = s.url("/hello"),
        big = s.url("/big"),
        multi = s.url("/multi")
    );
    let r = run_in(&fx, &fx.a, &[&g], &src);
    let v = r
        .result()
        .unwrap_or_else(|| panic!("{:?}", r.outcome.error));
    assert_eq!(v["j"], json!({"a": 1, "list": [1, 2]}));
    assert_eq!(
        v["echoed"],
        json!({"method": "POST", "body": "{\"x\":1}", "ctype": "application/json"})
    );
    assert_eq!(v["miss"], json!([404, false, "no such thing"]));
    assert_eq!(v["bytes"], json!([255, 0, 254]));
    assert_eq!(v["h"], "1, 2");
    assert_eq!(v["used"], "TypeError");
    assert!(
        v["tooBig"]
            .as_str()
            .unwrap()
            .contains("exceeds the limit of 1048576 bytes"),
        "{v}"
    );
    assert_eq!(v["made"], json!([201, "hi"]));
    // A repeated header is each of its values once.
    assert_eq!(v["multi"], "a, b");
    assert_eq!(v["req"], "PUT");
    let bad = run_in(
        &fx,
        &fx.a,
        &[&g],
        "export default await fetch('ftp://example.com/x');",
    );
    assert_eq!(bad.kind(), Some(ErrorKind::Exception));
    assert!(
        bad.message().contains("only http and https"),
        "{}",
        bad.message()
    );
}

fn all_event_text(r: &Ran) -> String {
    r.events
        .iter()
        .map(|e| serde_json::to_string(e).unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn bound_secrets_are_sent_without_the_block_seeing_them() {
    let fx = fixture();
    let s = Server::start();
    let other = Server::start();
    let host = format!("127.0.0.1:{}", s.port);
    fx.store
        .put_secret(
            &fx.a.id,
            "API_KEY",
            "sk-live-0123456789",
            std::slice::from_ref(&host),
        )
        .unwrap();
    let grants = [
        format!("net:{host}"),
        format!("net:127.0.0.1:{}", other.port),
    ];
    let g: Vec<&str> = grants.iter().map(String::as_str).collect();
    let src = format!(
        r#"export default async () => {{
  const r = await fetch("{echo}", {{ headers: {{ authorization: "Bearer {{{{secret:API_KEY}}}}" }} }});
  const body = await r.text();
  console.log("server said", body, r.headers.get("x-echo"));
  return {{ body, echo: r.headers.get("x-echo") }};
}};"#,
        echo = s.url("/echo-auth")
    );
    let r = run_in(&fx, &fx.a, &g, &src);
    let v = r
        .result()
        .unwrap_or_else(|| panic!("{:?}", r.outcome.error));
    // The server got the real value...
    let seen = s.requests();
    assert_eq!(
        (
            seen.last().unwrap().method.as_str(),
            seen.last().unwrap().path.as_str()
        ),
        ("GET", "/echo-auth")
    );
    assert_eq!(
        seen.last().unwrap().header("authorization"),
        Some("Bearer sk-live-0123456789")
    );
    // ...the block, its logs and its events only ever see a placeholder.
    assert_eq!(v["body"], "Bearer [secret:API_KEY]");
    assert_eq!(v["echo"], "Bearer [secret:API_KEY]");
    assert!(
        !all_event_text(&r).contains("sk-live"),
        "the secret leaked into events"
    );
    // To a host the secret is not bound to: refused, nothing sent.
    let to_other = format!(
        "export default await fetch('{}', {{ headers: {{ 'x-key': '{{{{secret:API_KEY}}}}' }} }});",
        other.url("/echo-auth")
    );
    let r = run_in(&fx, &fx.a, &g, &to_other);
    assert_eq!(r.kind(), Some(ErrorKind::CapabilityDenied));
    assert!(r.message().contains("not bound"), "{}", r.message());
    assert!(other.requests().is_empty());
    // A redirect from the bound host to another one does not carry it along.
    let hop = format!(
        "export default await fetch('{}', {{ headers: {{ 'x-key': '{{{{secret:API_KEY}}}}' }} }});",
        s.url(&format!("/redirect?to={}", other.url("/echo-auth")))
    );
    let r = run_in(&fx, &fx.a, &g, &hop);
    assert_eq!(
        r.kind(),
        Some(ErrorKind::CapabilityDenied),
        "{:?}",
        r.outcome
    );
    assert!(other.requests().is_empty());
    assert!(!all_event_text(&r).contains("sk-live"));
    // Another workspace's secret of the same name is not reachable.
    let r = run_in(&fx, &fx.b, &g, &src);
    assert_eq!(
        r.kind(),
        Some(ErrorKind::CapabilityDenied),
        "{:?}",
        r.outcome
    );
}

const KEY: &str = "sk-live-0123456789";
/// A secret with characters the URL parser percent-encodes.
const SPACED: &str = "tok en\"<9876>";

/// Bind `API_KEY` (and `SPACED`) to the server's host:port; the grant that
/// reaches it (no `secret:` grant).
fn bind_key(fx: &Fx, s: &Server) -> String {
    let host = format!("127.0.0.1:{}", s.port);
    for (name, value) in [("API_KEY", KEY), ("SPACED", SPACED)] {
        fx.store
            .put_secret(&fx.a.id, name, value, std::slice::from_ref(&host))
            .unwrap();
    }
    format!("net:{host}")
}

/// Everything a run produced: its events and its outcome.
fn everything(r: &Ran) -> String {
    format!("{}\n{:?}", all_event_text(r), r.outcome)
}

/// A block that fetches each `[name, url, init]` with the secret `secret`
/// in its authorization header and returns (and logs) all it saw.
fn fetch_each(secret: &str, cases: &[(&str, String, &str)]) -> String {
    let list: Vec<String> = cases
        .iter()
        .map(|(name, url, init)| format!("[{name:?}, {url:?}, {init}]"))
        .collect();
    format!(
        r#"export default async () => {{
  const out = {{}};
  for (const [name, url, init] of [{list}]) {{
    try {{
      const r = await fetch(url, {{ headers: {{ authorization: "Bearer {{{{secret:{secret}}}}}" }}, ...init }});
      out[name] = {{ status: r.status, statusText: r.statusText, url: r.url, headers: Object.fromEntries(r.headers), body: await r.text() }};
    }} catch (e) {{ out[name] = {{ ok: false, name: e.name, message: e.message }}; }}
  }}
  console.log(JSON.stringify(out));
  return out;
}};"#,
        list = list.join(", ")
    )
}

fn run_each(
    fx: &Fx,
    grants: &[&str],
    secret: &str,
    cases: &[(&str, String, &str)],
) -> (Value, Ran) {
    let r = run_in(fx, &fx.a, grants, &fetch_each(secret, cases));
    let v = r
        .result()
        .cloned()
        .unwrap_or_else(|| panic!("{:?}", r.outcome.error));
    (v, r)
}

fn no_leak(r: &Ran) {
    let all = everything(r);
    for needle in [KEY, "tok en", "tok%20en"] {
        assert!(
            !all.contains(needle),
            "{needle:?} leaked into the run: {all}"
        );
    }
}

#[test]
fn bound_secrets_are_redacted_from_status_text_and_headers() {
    let fx = fixture();
    let s = Server::start();
    let g = bind_key(&fx, &s);
    let (v, r) = run_each(&fx, &[&g], "API_KEY", &[("all", s.url("/echo-all"), "{}")]);
    let all = &v["all"];
    assert_eq!(all["statusText"], "Bearer [secret:API_KEY]", "{v}");
    assert_eq!(all["headers"]["x-echo"], "Bearer [secret:API_KEY]", "{v}");
    // A header whose name carries the secret is dropped.
    assert_eq!(
        all["headers"]
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| k.starts_with("x-"))
            .collect::<Vec<_>>(),
        ["x-echo"],
        "{v}"
    );
    assert_eq!(all["body"], "echoed", "{v}");
    assert_eq!(
        s.requests().last().unwrap().header("authorization"),
        Some("Bearer sk-live-0123456789")
    );
    no_leak(&r);
}

#[test]
fn bound_secrets_are_redacted_from_redirect_urls() {
    let fx = fixture();
    let s = Server::start();
    let g = bind_key(&fx, &s);
    let landing = s.url("/landing?t=[secret:API_KEY]");
    let (v, r) = run_each(
        &fx,
        &[&g],
        "API_KEY",
        &[
            ("raw", s.url("/bounce?to=/landing?t="), "{}"),
            ("pct", s.url("/bounce-pct?to=/landing?t="), "{}"),
            (
                "manual",
                s.url("/bounce?to=/landing?t="),
                "{ redirect: 'manual' }",
            ),
            (
                "error",
                s.url("/bounce?to=/landing?t="),
                "{ redirect: 'error' }",
            ),
        ],
    );
    for case in ["raw", "pct"] {
        assert_eq!(v[case]["url"], landing, "{case}: {v}");
        assert_eq!(v[case]["body"], "landed", "{case}: {v}");
    }
    assert_eq!(v["manual"]["status"], 302, "{v}");
    assert_eq!(
        v["manual"]["headers"]["location"], "/landing?t=[secret:API_KEY]",
        "{v}"
    );
    assert_eq!(v["error"]["name"], "TypeError", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/landing?t=[secret:API_KEY]"),
        "{v}"
    );
    // The server did get the token in the redirected request.
    assert!(s.requests().iter().any(|q| q.path.contains(KEY)));
    no_leak(&r);
    // A secret the URL parser percent-encodes on the way (space, quote, <>).
    let (v, r) = run_each(
        &fx,
        &[&g],
        "SPACED",
        &[("raw", s.url("/bounce?to=/landing?t="), "{}")],
    );
    assert_eq!(v["raw"]["url"], s.url("/landing?t=[secret:SPACED]"), "{v}");
    assert!(s.requests().iter().any(|q| q.path.contains("tok%20en")));
    no_leak(&r);
}

#[test]
fn bound_secrets_are_redacted_from_denials_of_redirect_targets() {
    let fx = fixture();
    let s = Server::start();
    let other = Server::start();
    let g = bind_key(&fx, &s);
    let away = format!("/bounce?to=http://127.0.0.1:{}/x?t=", other.port);
    let (v, r) = run_each(
        &fx,
        &[&g],
        "API_KEY",
        &[
            ("port", s.url(&away), "{}"),
            ("host", s.url("/bounce?to=http://"), "{}"),
        ],
    );
    denied(&v["port"], &format!("net:127.0.0.1:{}", other.port));
    denied(&v["port"], "/x?t=[secret:API_KEY]");
    // The secret as the redirect's host: the message and the grant it names.
    denied(&v["host"], "net:[secret:API_KEY]");
    assert!(other.requests().is_empty());
    no_leak(&r);
    // Uncaught, on either engine: the run's error (and its grant) are
    // redacted too, and keep their kind.
    let src = format!(
        "export default await fetch({:?}, {{ headers: {{ authorization: 'Bearer {{{{secret:API_KEY}}}}' }} }});",
        s.url("/bounce?to=http://")
    );
    on_each_engine(|_| {
        let r = run_in(&fx, &fx.a, &[&g], &src);
        assert_eq!(
            r.kind(),
            Some(ErrorKind::CapabilityDenied),
            "{:?}",
            r.outcome
        );
        assert!(r.message().contains("[secret:API_KEY]"), "{}", r.message());
        assert_eq!(
            r.outcome.error.as_ref().and_then(|e| e.grant.as_deref()),
            Some("net:[secret:API_KEY]"),
            "{:?}",
            r.outcome
        );
        no_leak(&r);
    });
}

#[test]
fn bodies_are_decoded_then_redacted() {
    let fx = fixture();
    let s = Server::start();
    let g = bind_key(&fx, &s);
    let (v, r) = run_each(
        &fx,
        &[&g],
        "API_KEY",
        &[
            ("gzip", s.url("/gzip"), "{}"),
            ("deflate", s.url("/deflate"), "{}"),
            ("deflate-raw", s.url("/deflate-raw"), "{}"),
            ("layered", s.url("/layered"), "{}"),
            ("br", s.url("/br"), "{}"),
            ("unknown", s.url("/unknown-encoding"), "{}"),
        ],
    );
    for (case, text) in [
        ("gzip", "gzip says Bearer [secret:API_KEY]"),
        ("deflate", "deflate says Bearer [secret:API_KEY]"),
        ("deflate-raw", "raw deflate says Bearer [secret:API_KEY]"),
        ("layered", "layered says Bearer [secret:API_KEY]"),
        ("br", "br says [secret:API_KEY], twice: [secret:API_KEY]."),
    ] {
        assert_eq!(v[case]["body"], text, "{case}: {v}");
        // The block sees the decoded body, as the web's fetch shows it.
        let h = v[case]["headers"].as_object().unwrap();
        assert!(
            !h.contains_key("content-encoding") && !h.contains_key("content-length"),
            "{case}: {v}"
        );
    }
    // An encoding fetch does not decode is handed over as it came.
    assert_eq!(v["unknown"]["body"], "as sent", "{v}");
    assert_eq!(
        v["unknown"]["headers"]["content-encoding"], "x-custom",
        "{v}"
    );
    // It asked for what it decodes.
    let asked: Vec<_> = s
        .requests()
        .iter()
        .map(|q| q.header("accept-encoding").map(str::to_owned))
        .collect();
    assert!(
        asked
            .iter()
            .all(|a| a.as_deref() == Some("gzip, deflate, br")),
        "{asked:?}"
    );
    no_leak(&r);
}

#[test]
fn a_decompression_bomb_stops_at_the_body_limit() {
    let fx = fixture();
    let s = Server::start();
    let g = bind_key(&fx, &s);
    let (v, _) = run_each(
        &fx,
        &[&g],
        "API_KEY",
        &[("bomb", s.url("/gzip-bomb"), "{}")],
    );
    assert_eq!(v["bomb"]["name"], "RangeError", "{v}");
    let msg = v["bomb"]["message"].as_str().unwrap();
    assert!(msg.contains("exceeds the limit of 1048576 bytes"), "{v}");
}

#[test]
fn a_bound_secret_the_host_returns_later_is_redacted() {
    // The server remembers the credential one fetch sent and returns it to
    // the next, which sent none.
    let fx = fixture();
    let s = Server::start();
    let g = bind_key(&fx, &s);
    let src = format!(
        r#"export default async () => {{
  await (await fetch("{hello}", {{ headers: {{ authorization: "Bearer {{{{secret:API_KEY}}}}" }} }})).text();
  return await (await fetch("{last}")).text();
}};"#,
        hello = s.url("/hello"),
        last = s.url("/last-auth")
    );
    let r = run_in(&fx, &fx.a, &[&g], &src);
    assert_eq!(
        r.result(),
        Some(&json!("Bearer [secret:API_KEY]")),
        "{:?}",
        r.outcome
    );
    no_leak(&r);
}

#[test]
fn one_runs_fetch_flood_does_not_starve_another_run() {
    // Five fetch threads; a run may hold four. Run A parks 20 fetches on a
    // response that never comes until released; run B must still get its
    // answer.
    let fx = crate::host::fixture_with(quire_host_api::HostConfig {
        fetch_threads: 5,
        fetches_per_run: 4,
        ..Default::default()
    });
    let s = Server::start();
    let g = format!("net:127.0.0.1:{}", s.port);
    let flood = crate::host::start_in(&fx, &fx.a, &[&g], &format!(
        "export default (await Promise.all(Array.from({{ length: 20 }}, () => fetch('{}').then(r => r.text())))).length;",
        s.url("/hold")
    ));
    while s.requests().len() < 4 {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let v = go(&fx, &[&g], &s.url("/hello"), "{}");
    assert_eq!(v["body"], "hello", "{v}");
    assert_eq!(
        s.requests().iter().filter(|r| r.path == "/hold").count(),
        4,
        "run A had more than 4 fetches in flight"
    );
    s.release_held();
    let out = flood.wait();
    assert_eq!(out.result, Some(json!(20)), "{:?}", out.error);
}
