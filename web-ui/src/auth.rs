//! Tokens, roles and who may do what.
//!
//! A token is `qt_<id>_<secret>`: the id (16 hex digits) finds its record,
//! the secret (64 hex digits, 256 random bits) is checked against the
//! stored SHA-256 with a constant-time comparison. The store never holds
//! a token, only its hash. A server-admin token given by the operator is
//! kept as a hash in memory and compared the same way.
//!
//! Every request names its workspace in the path; [`Principal::enter`]
//! answers 404 for a workspace the token does not belong to (exactly as
//! for one that does not exist) before it checks the role (403), so a
//! token learns nothing about other workspaces.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use quire_storage::{now_ms, Store, TokenRecord, Workspace, WorkspaceId};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{ApiError, ApiResult};
use crate::AppState;

/// A token's role in its workspace. Each includes the ones below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read documents, data, blocks and runs; follow live runs.
    Viewer,
    /// Also write documents and data, edit blocks, start and cancel runs.
    Editor,
    /// Also manage tokens, secrets and block grants.
    Admin,
}

impl Role {
    /// `viewer`, `editor` or `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Editor => "editor",
            Self::Admin => "admin",
        }
    }

    /// Parse a role name.
    ///
    /// # Errors
    /// A 400 naming `field` for anything but the three names.
    pub fn parse(s: &str, field: &str) -> ApiResult<Self> {
        match s {
            "viewer" => Ok(Self::Viewer),
            "editor" => Ok(Self::Editor),
            "admin" => Ok(Self::Admin),
            other => Err(ApiError::field(
                field,
                format!("unknown role '{other}'; use admin, editor or viewer"),
            )),
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who is calling: the token's id, what it opens, and its role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's id (`env` for the operator's `QUIRE_ADMIN_TOKEN`).
    pub token_id: String,
    /// The workspace it opens; `None` for a server-admin token, which is
    /// admin of every workspace.
    pub workspace: Option<WorkspaceId>,
    /// Its role.
    pub role: Role,
}

impl Principal {
    /// Whether this is a server-admin token.
    pub fn is_server_admin(&self) -> bool {
        self.workspace.is_none()
    }

    /// Check this token may act on `ws` with role `need`.
    ///
    /// # Errors
    /// 404 for another workspace (never 403: that would confirm it
    /// exists), 403 when the role is too low.
    pub fn check(&self, ws: &Workspace, need: Role, asked: &str) -> ApiResult<()> {
        if let Some(own) = &self.workspace {
            if *own != ws.id {
                return Err(ApiError::not_found("workspace", asked));
            }
        }
        if self.role < need {
            return Err(ApiError::Forbidden {
                need,
                have: self.role,
            });
        }
        Ok(())
    }

    /// Check this token has role `need` in `ws` for one part of a request
    /// it may otherwise make (`action`, e.g. "creating a block with
    /// grants").
    ///
    /// # Errors
    /// 404 for another workspace; 403 naming `action` and the role.
    pub fn check_part(&self, ws: &Workspace, need: Role, action: &'static str) -> ApiResult<()> {
        self.check(ws, need, &ws.name).map_err(|e| match e {
            ApiError::Forbidden { need, have } => ApiError::ForbiddenPart { action, need, have },
            other => other,
        })
    }

    /// Look up the workspace named `asked` (its id or its name) and check
    /// this token may act on it with role `need`.
    ///
    /// # Errors
    /// As [`Principal::check`], and 404 when no such workspace exists.
    pub fn enter(&self, store: &Store, asked: &str, need: Role) -> ApiResult<Workspace> {
        let found = match asked.parse::<WorkspaceId>() {
            Ok(id) => store.workspace(&id)?,
            Err(_) if asked.is_empty() || asked.len() > 64 => None,
            Err(_) => store.workspace_by_name(asked)?,
        };
        let ws = found.ok_or_else(|| ApiError::not_found("workspace", asked))?;
        self.check(&ws, need, asked)?;
        Ok(ws)
    }
}

pub(crate) fn sha256_hex(b: &[u8]) -> String {
    let d = Sha256::digest(b);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn random_hex(bytes: usize) -> ApiResult<String> {
    let mut b = vec![0u8; bytes];
    getrandom::fill(&mut b).map_err(|e| ApiError::Internal(format!("no randomness: {e}")))?;
    Ok(b.iter().map(|b| format!("{b:02x}")).collect())
}

/// The SHA-256 of a bearer token the operator configured (such as the
/// metrics token), so the token itself need not be kept. Checks compare in
/// constant time; `Debug` never shows the hash.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    /// The hash of `token`.
    pub fn of(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }

    /// The hash given as its 32 bytes (for an operator who keeps only the
    /// hash).
    pub fn from_bytes(sha256: [u8; 32]) -> Self {
        Self(sha256)
    }

    /// Whether `token` hashes to this, compared in constant time.
    pub fn matches(&self, token: &str) -> bool {
        let got: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        bool::from(got.ct_eq(&self.0))
    }
}

impl std::fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenHash(<set>)")
    }
}

/// Token checks and per-token rate limits.
pub struct Auth {
    admin_sha256: Option<[u8; 32]>,
    buckets: Mutex<HashMap<String, Bucket>>,
    rate_per_sec: f64,
    burst: f64,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("admin_token", &self.admin_sha256.map(|_| "<set>"))
            .finish()
    }
}

impl Auth {
    /// Checks against `admin_token` (if any) and the store's tokens, with
    /// `rate_per_sec` sustained and `burst` extra requests per token.
    pub fn new(admin_token: Option<&str>, rate_per_sec: f64, burst: f64) -> Self {
        Self {
            admin_sha256: admin_token.map(|t| Sha256::digest(t.as_bytes()).into()),
            buckets: Mutex::new(HashMap::new()),
            rate_per_sec,
            burst,
        }
    }

    /// Create a token for `workspace` (`None`: server admin) with `role`.
    /// Returns the stored record and the token, which is shown once and
    /// never kept.
    ///
    /// # Errors
    /// 500 if randomness or the store fails.
    pub fn mint(
        store: &Store,
        workspace: Option<WorkspaceId>,
        role: Role,
        label: &str,
    ) -> ApiResult<(TokenRecord, String)> {
        let id = random_hex(8)?;
        let secret = random_hex(32)?;
        let rec = TokenRecord {
            id: id.clone(),
            workspace,
            role: role.as_str().into(),
            label: label.into(),
            secret_sha256: sha256_hex(secret.as_bytes()),
            created_ms: now_ms(),
        };
        store.put_token(&rec)?;
        Ok((rec, format!("qt_{id}_{secret}")))
    }

    /// Who `token` is.
    ///
    /// # Errors
    /// 401 for a malformed, unknown or revoked token.
    pub fn verify(&self, store: &Store, token: &str) -> ApiResult<Principal> {
        const BAD: ApiError = ApiError::Unauthorized("the token is not valid");
        if let Some(want) = &self.admin_sha256 {
            let got: [u8; 32] = Sha256::digest(token.as_bytes()).into();
            if bool::from(got.ct_eq(want)) {
                return Ok(Principal {
                    token_id: "env".into(),
                    workspace: None,
                    role: Role::Admin,
                });
            }
        }
        let rest = token.strip_prefix("qt_").ok_or(BAD)?;
        let (id, secret) = rest.split_once('_').ok_or(BAD)?;
        if id.len() != 16 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(BAD);
        }
        let rec = store.get_token(id)?.ok_or(BAD)?;
        let got = sha256_hex(secret.as_bytes());
        if !bool::from(got.as_bytes().ct_eq(rec.secret_sha256.as_bytes())) {
            return Err(BAD);
        }
        let role = Role::parse(&rec.role, "role").map_err(|_| BAD)?;
        Ok(Principal {
            token_id: rec.id,
            workspace: rec.workspace,
            role,
        })
    }

    /// Take one request from `token_id`'s bucket.
    ///
    /// # Errors
    /// 429 with the wait until the next request is allowed.
    pub fn take(&self, token_id: &str) -> ApiResult<()> {
        let now = Instant::now();
        let mut b = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let bucket = b.entry(token_id.to_string()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let refill = now.duration_since(bucket.at).as_secs_f64() * self.rate_per_sec;
        bucket.tokens = (bucket.tokens + refill).min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        let wait = (1.0 - bucket.tokens) / self.rate_per_sec.max(f64::MIN_POSITIVE);
        Err(ApiError::RateLimited {
            rate_per_sec: self.rate_per_sec,
            retry_after_ms: (wait * 1000.0).ceil() as u64,
        })
    }
}

/// Where a request's token comes from: `Authorization: Bearer T`; on the
/// WebSocket route only (browsers cannot set headers there), the
/// subprotocol `quire.token.T` beside `quire.v1` (so the token is in no
/// URL, and no log of one), or `?token=T`, kept for older clients. Then
/// the token's rate limit is charged.
impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .map(|v| v.to_str().unwrap_or(""));
        let token = match header {
            Some(h) => h
                .strip_prefix("Bearer ")
                .map(str::trim)
                .ok_or(ApiError::Unauthorized(
                    "the Authorization header must be 'Bearer <token>'",
                ))?
                .to_string(),
            None if is_live_route(parts.uri.path()) => protocol_token(&parts.headers)
                .or_else(|| query_token(parts.uri.query()))
                .ok_or(ApiError::Unauthorized(
                    "send a token as 'Authorization: Bearer <token>', the WebSocket subprotocol 'quire.token.<token>' (with 'quire.v1'), or ?token=",
                ))?,
            None => {
                return Err(ApiError::Unauthorized(
                    "send a token as 'Authorization: Bearer <token>'",
                ))
            }
        };
        // A store read: off the async threads, so a slow store never
        // holds up the runtime that serves every other request.
        let (auth, store) = (state.auth.clone(), state.store.clone());
        let p = crate::routes::blocking(move || auth.verify(&store, &token)).await?;
        state.auth.take(&p.token_id)?;
        Ok(p)
    }
}

/// `/workspaces/{ws}/live` under `/api/v1` exactly (not a document named
/// `live`). Inside the nested API router the path has lost its `/api/v1`.
fn is_live_route(path: &str) -> bool {
    let path = path.strip_prefix("/api/v1").unwrap_or(path);
    let segs: Vec<&str> = path.split('/').collect();
    matches!(segs.as_slice(), ["", "workspaces", ws, "live"] if !ws.is_empty())
}

/// The subprotocol a live connection's client names to carry its token.
pub(crate) const TOKEN_PROTOCOL_PREFIX: &str = "quire.token.";

/// The token in `Sec-WebSocket-Protocol: quire.v1, quire.token.T`.
fn protocol_token(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get_all(axum::http::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|p| p.trim().strip_prefix(TOKEN_PROTOCOL_PREFIX))
        .filter(|t| !t.is_empty())
        .map(str::to_string)
}

fn query_token(q: Option<&str>) -> Option<String> {
    q?.split('&')
        .find_map(|kv| kv.strip_prefix("token="))
        .map(|t| t.replace("%5F", "_").replace("%5f", "_"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_verify_and_tampered_ones_do_not() -> ApiResult<()> {
        let store = Store::memory()?;
        let ws = store.create_workspace("a")?;
        let auth = Auth::new(Some("operator-secret"), 10.0, 10.0);
        let (rec, token) = Auth::mint(&store, Some(ws.id), Role::Editor, "t")?;
        assert!(!format!("{rec:?}").contains(&token[20..]));
        let p = auth.verify(&store, &token)?;
        assert_eq!((p.workspace, p.role), (Some(ws.id), Role::Editor));
        let mut flipped = token.clone().into_bytes();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'0' { b'1' } else { b'0' };
        let flipped = String::from_utf8(flipped).map_err(|e| ApiError::Internal(e.to_string()))?;
        for bad in [
            flipped.as_str(),
            &token[..token.len() - 1],
            "qt_",
            "qt__",
            "",
            "operator-secret ",
            &format!("qt_{}_", rec.id),
            &format!("qt_{}_{}", rec.id, rec.secret_sha256),
            "qt_../../x_y",
        ] {
            assert!(
                matches!(auth.verify(&store, bad), Err(ApiError::Unauthorized(_))),
                "{bad:?} was accepted"
            );
        }
        let admin = auth.verify(&store, "operator-secret")?;
        assert!(admin.is_server_admin());
        store.delete_token(&rec.id)?;
        assert!(auth.verify(&store, &token).is_err());
        Ok(())
    }

    #[test]
    fn other_workspaces_are_404_before_roles_are_403() -> ApiResult<()> {
        let store = Store::memory()?;
        let a = store.create_workspace("a")?;
        let b = store.create_workspace("b")?;
        let viewer = Principal {
            token_id: "x".into(),
            workspace: Some(a.id),
            role: Role::Viewer,
        };
        assert!(viewer.enter(&store, "a", Role::Viewer).is_ok());
        assert!(viewer
            .enter(&store, &a.id.to_string(), Role::Viewer)
            .is_ok());
        assert!(matches!(
            viewer.enter(&store, "a", Role::Editor),
            Err(ApiError::Forbidden { .. })
        ));
        for asked in ["b", &b.id.to_string(), "nope", ""] {
            assert!(matches!(
                viewer.enter(&store, asked, Role::Admin),
                Err(ApiError::NotFound { .. })
            ));
        }
        Ok(())
    }

    #[test]
    fn the_live_token_can_come_as_a_subprotocol() {
        let mut h = axum::http::HeaderMap::new();
        assert_eq!(protocol_token(&h), None);
        h.insert(
            axum::http::header::SEC_WEBSOCKET_PROTOCOL,
            "quire.v1, quire.token.qt_ab_cd".parse().unwrap(),
        );
        assert_eq!(protocol_token(&h).as_deref(), Some("qt_ab_cd"));
        h.insert(
            axum::http::header::SEC_WEBSOCKET_PROTOCOL,
            "quire.v1, quire.token.".parse().unwrap(),
        );
        assert_eq!(protocol_token(&h), None, "an empty token is no token");
    }

    #[test]
    fn only_the_live_route_takes_a_query_token() {
        assert!(is_live_route("/api/v1/workspaces/default/live"));
        assert!(is_live_route("/workspaces/default/live"));
        for p in [
            "/api/v1/workspaces/default/docs/live",
            "/api/v1/workspaces//live",
            "/live",
            "/api/v1/workspaces/a/live/x",
        ] {
            assert!(!is_live_route(p), "{p}");
        }
    }

    #[test]
    fn the_rate_limit_refuses_past_the_burst() {
        let auth = Auth::new(None, 0.001, 3.0);
        for _ in 0..3 {
            assert!(auth.take("t").is_ok());
        }
        match auth.take("t") {
            Err(ApiError::RateLimited { retry_after_ms, .. }) => assert!(retry_after_ms > 1000),
            other => panic!("expected 429, got {other:?}"),
        }
        assert!(auth.take("other").is_ok());
    }
}
