//! `fetch` on the Rust side: grant and address checks on every hop,
//! secret substitution for bound hosts only, limits on time, size and
//! redirects. Runs on the fetch pool (it blocks on the network).

use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use quire_engine::{HostError, HostResult};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::decode;
use crate::gate::Gate;
use crate::grants::Checker;
use crate::net::{self, CheckedNet, Resolve};
use crate::redact::Redactor;

/// Limits and identity of outgoing requests.
#[derive(Debug, Clone)]
pub struct FetchConfig {
    /// Largest response body read, in bytes; a larger one fails the fetch.
    /// Default: 5 MiB.
    pub max_response_bytes: u64,
    /// Time for one fetch (all hops), in milliseconds; also capped by the
    /// run's remaining wall-clock time. Default: 10,000.
    pub timeout_ms: u64,
    /// Redirects followed before failing. Default: 5.
    pub max_redirects: u32,
    /// The `User-Agent` sent. Default: `quire/<version>`.
    pub user_agent: String,
}

impl Default for FetchConfig {
    fn default() -> Self {
        Self {
            max_response_bytes: 5 * 1024 * 1024,
            timeout_ms: 10_000,
            max_redirects: 5,
            user_agent: format!("quire/{}", env!("CARGO_PKG_VERSION")),
        }
    }
}

/// A request as the engine's `fetch` sends it.
#[derive(Debug, Deserialize)]
pub(crate) struct WireRequest {
    url: String,
    #[serde(default = "get")]
    method: String,
    #[serde(default)]
    headers: Vec<(String, String)>,
    #[serde(default = "follow")]
    redirect: String,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    body_base64: Option<String>,
}

fn get() -> String {
    "GET".into()
}
fn follow() -> String {
    "follow".into()
}

fn type_error(msg: impl Into<String>) -> HostError {
    HostError::new("TypeError", msg)
}

/// Header (or secret) name and value pairs.
type Headers = Vec<(String, String)>;

/// Headers a block may not set (the client owns them).
const FORBIDDEN: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
    "trailer",
    "keep-alive",
    "proxy-authorization",
    "proxy-connection",
];

/// What one fetch may spend: until `deadline`, and a body of at most
/// `max_body` bytes (the fetch limit or the run's host value limit,
/// whichever is smaller).
pub(crate) struct Budget {
    pub(crate) deadline: Instant,
    pub(crate) max_body: u64,
}

pub(crate) struct Fetcher {
    pub(crate) config: FetchConfig,
    pub(crate) resolver: Arc<dyn Resolve>,
}

/// Substitute `{{secret:NAME}}` in header values, only for secrets bound
/// to the checked host. Returns the headers and the secrets used.
fn substitute(
    gate: &Gate,
    target: &CheckedNet,
    headers: &[(String, String)],
) -> Result<(Headers, Headers), HostError> {
    let mut out = Vec::with_capacity(headers.len());
    let mut used = Vec::new();
    for (k, v) in headers {
        let mut value = String::with_capacity(v.len());
        let mut rest = v.as_str();
        while let Some(start) = rest.find("{{secret:") {
            value.push_str(&rest[..start]);
            let after = &rest[start + 9..];
            let Some(end) = after.find("}}") else {
                return Err(type_error(format!(
                    "fetch: header '{k}' has an unclosed {{{{secret:...}}}}"
                )));
            };
            let name = &after[..end];
            quire_storage::check_secret_name(name).map_err(|e| type_error(e.to_string()))?;
            match gate.secret_for_host(target, name) {
                Ok(Ok(secret)) => {
                    value.push_str(&secret);
                    used.push((name.to_string(), secret));
                }
                Ok(Err(hosts)) => {
                    return Err(HostError::denied(
                        format!(
                            "secret {name} is not bound to {}:{} (it may only be sent to: {}), so the request was not sent",
                            target.host,
                            target.port,
                            if hosts.is_empty() { "no host".to_string() } else { hosts.join(", ") }
                        ),
                        None,
                    ))
                }
                Err(quire_storage::StorageError::NotFound { .. }) => {
                    return Err(HostError::denied(format!("secret {name} does not exist in this workspace"), None))
                }
                Err(e) => return Err(HostError::new("InternalError", format!("reading secret {name}: {e}"))),
            }
            rest = &after[end + 2..];
        }
        value.push_str(rest);
        out.push((k.clone(), value));
    }
    Ok((out, used))
}

/// A response as one fetch got it, before redaction.
struct Reply {
    status: u16,
    status_text: String,
    url: String,
    redirected: bool,
    headers: Headers,
    body: Vec<u8>,
}

impl Redactor {
    /// The reply as the block gets it, every string redacted. A header
    /// whose name holds a secret is dropped (a mark is not a valid name).
    fn reply(&self, r: Reply) -> Value {
        let headers: Vec<Value> = r
            .headers
            .into_iter()
            .filter_map(|(name, value)| {
                let redacted = self.text(name.clone());
                (redacted == name).then(|| json!([name, self.text(value)]))
            })
            .collect();
        let mut out = json!({
            "status": r.status,
            "status_text": self.text(r.status_text),
            "url": self.text(r.url),
            "redirected": r.redirected,
            "headers": headers,
        });
        match String::from_utf8(self.bytes(r.body)) {
            Ok(text) => out["body"] = Value::String(text),
            Err(e) => {
                out["body_base64"] =
                    Value::String(base64::engine::general_purpose::STANDARD.encode(e.into_bytes()))
            }
        }
        out
    }
}

impl Fetcher {
    /// Perform one `fetch` for a block. Everything it hands back, reply or
    /// error, passes through redaction of the secrets the fetch used or
    /// could have been answered with.
    pub(crate) fn perform(
        &self,
        gate: &Gate,
        check: &Checker,
        cx: &Budget,
        args: Value,
    ) -> HostResult {
        let mut secrets = Redactor::default();
        match self.follow(gate, check, cx, args, &mut secrets) {
            Ok(reply) => Ok(secrets.reply(reply)),
            Err(e) => Err(secrets.error(e)),
        }
    }

    /// The fetch itself, hop by hop, adding to `secrets` every secret bound
    /// to a host it reaches before it reaches it.
    fn follow(
        &self,
        gate: &Gate,
        check: &Checker,
        cx: &Budget,
        args: Value,
        secrets: &mut Redactor,
    ) -> Result<Reply, HostError> {
        let deadline = cx.deadline;
        let req: WireRequest = serde_json::from_value(args)
            .map_err(|e| type_error(format!("fetch: bad request: {e}")))?;
        let mut url = url::Url::parse(&req.url)
            .map_err(|e| type_error(format!("fetch: invalid URL '{}': {e}", req.url)))?;
        let mut method = req.method.clone();
        let mut body: Option<Vec<u8>> = match (&req.body, &req.body_base64) {
            (Some(t), _) => Some(t.clone().into_bytes()),
            (None, Some(b)) => Some(
                base64::engine::general_purpose::STANDARD
                    .decode(b)
                    .map_err(|_| type_error("fetch: body is not valid base64"))?,
            ),
            (None, None) => None,
        };
        let mut templates: Vec<(String, String)> = req
            .headers
            .iter()
            .filter(|(k, _)| !FORBIDDEN.contains(&k.to_ascii_lowercase().as_str()))
            .cloned()
            .collect();
        let end = deadline.min(Instant::now() + Duration::from_millis(self.config.timeout_ms));
        let mut redirected = false;
        for hop in 0..=self.config.max_redirects {
            let target = net::check(check.ws, &check.grants, &self.resolver, &url)?;
            let bound = gate
                .bound_secrets(&target)
                .map_err(|e| HostError::new("InternalError", format!("reading secrets: {e}")))?;
            secrets.add_all(&bound);
            let (mut headers, used) = substitute(gate, &target, &templates)?;
            secrets.add_all(&used);
            if !headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("accept-encoding"))
            {
                headers.push(("accept-encoding".into(), decode::ACCEPT_ENCODING.into()));
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(HostError::new(
                    "TimeoutError",
                    format!(
                        "fetch to {url} timed out after {} ms",
                        self.config.timeout_ms
                    ),
                ));
            }
            let addrs = target.addrs.clone();
            let agent = ureq::AgentBuilder::new()
                .resolver(move |_: &str| Ok(addrs.clone()))
                .redirects(0)
                .timeout(left)
                .max_idle_connections(0)
                .user_agent(&self.config.user_agent)
                .build();
            let mut r = agent.request(&method, url.as_str());
            for (k, v) in &headers {
                r = r.set(k, v);
            }
            let sent = match &body {
                Some(b) => r.send_bytes(b),
                None => r.call(),
            };
            let resp = match sent {
                Ok(resp) | Err(ureq::Error::Status(_, resp)) => resp,
                Err(ureq::Error::Transport(t)) => {
                    let text = t.to_string();
                    let text = text.strip_prefix(&format!("{url}: ")).unwrap_or(&text);
                    return Err(type_error(format!("fetch to {url} failed: {text}")));
                }
            };
            let status = resp.status();
            let location = resp.header("location").map(str::to_owned);
            if let (true, Some(loc)) = ((300..400).contains(&status) && status != 304, location) {
                match req.redirect.as_str() {
                    "manual" => return response(resp, &url, redirected, cx.max_body),
                    "error" => {
                        return Err(type_error(format!(
                            "fetch to {url} was redirected to {loc} and redirect is 'error'"
                        )))
                    }
                    _ => {}
                }
                if hop == self.config.max_redirects {
                    return Err(type_error(format!(
                        "fetch to {} failed: more than {} redirects",
                        req.url, self.config.max_redirects
                    )));
                }
                url = url.join(&loc).map_err(|e| {
                    type_error(format!("fetch: bad redirect location '{loc}': {e}"))
                })?;
                if status == 303 || (matches!(status, 301 | 302) && method == "POST") {
                    method = "GET".into();
                    body = None;
                    templates.retain(|(k, _)| !k.eq_ignore_ascii_case("content-type"));
                }
                redirected = true;
                continue;
            }
            return response(resp, &url, redirected, cx.max_body);
        }
        Err(type_error("fetch: too many redirects"))
    }
}

/// Read a final response: its headers, and its body decoded from its
/// `Content-Encoding` and held to `max` bytes after decoding (a small
/// compressed body that expands past the limit fails like a large one).
fn response(
    resp: ureq::Response,
    url: &url::Url,
    redirected: bool,
    max: u64,
) -> Result<Reply, HostError> {
    let too_big = |what: &str| {
        HostError::new(
            "RangeError",
            format!("fetch to {url}: the {what} exceeds the limit of {max} bytes"),
        )
    };
    let codings = decode::codings(resp.all("content-encoding")).filter(|c| !c.is_empty());
    if codings.is_none() {
        if let Some(len) = resp
            .header("content-length")
            .and_then(|l| l.parse::<u64>().ok())
        {
            if len > max {
                return Err(too_big(&format!("response body ({len} bytes)")));
            }
        }
    }
    let status = resp.status();
    let status_text = resp.status_text().to_string();
    let mut headers = Vec::new();
    let mut names = resp.headers_names();
    // One entry per header line; `all` already returns every line's value.
    names.sort();
    names.dedup();
    for name in names {
        // A decoded body has no encoding, and its length is not the one sent.
        if codings.is_some() && matches!(name.as_str(), "content-encoding" | "content-length") {
            continue;
        }
        for v in resp.all(&name) {
            headers.push((name.clone(), v.to_string()));
        }
    }
    let read_error = |e: std::io::Error| match &codings {
        Some(c) => {
            let names: Vec<_> = c.iter().map(|c| c.name()).collect();
            type_error(format!(
                "fetch to {url} failed while decoding the body ({}): {e}",
                names.join(", ")
            ))
        }
        None => type_error(format!("fetch to {url} failed while reading the body: {e}")),
    };
    let raw: Box<dyn Read> = resp.into_reader();
    let reader = match &codings {
        Some(c) => decode::decoder(raw, c).map_err(read_error)?,
        None => raw,
    };
    let mut body = Vec::new();
    reader
        .take(max + 1)
        .read_to_end(&mut body)
        .map_err(read_error)?;
    if body.len() as u64 > max {
        return Err(too_big(if codings.is_some() {
            "decoded response body"
        } else {
            "response body"
        }));
    }
    Ok(Reply {
        status,
        status_text,
        url: url.to_string(),
        redirected,
        headers,
        body,
    })
}
