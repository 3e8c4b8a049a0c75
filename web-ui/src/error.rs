//! API errors: one variant per failure, each with its HTTP status and a
//! message that says what to change.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use quire_storage::StorageError;

use crate::auth::Role;

/// Why a request failed. The body is always
/// `{"error": "<code>", "message": "...", "field": "..."?}`; a role too
/// low adds `need` and `have` (role names); a quota
/// refusal adds `quota`, `limit` and `resets_at_ms` (milliseconds since
/// the Unix epoch, or null when it resets as running runs finish).
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A field of the request is missing, of the wrong type or not
    /// acceptable (400).
    #[error("invalid {field}: {message}")]
    BadField {
        /// The field, as the client spelled it (`lang`, `grants[1]`, `body`).
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// No token, or one the server does not know (401).
    #[error("{0}")]
    Unauthorized(&'static str),
    /// The token's role is too low for this route (403).
    #[error("this needs the {need} role; the token has {have}")]
    Forbidden {
        /// The role the route needs.
        need: Role,
        /// The token's role.
        have: Role,
    },
    /// The token's role is too low for one part of a request, such as
    /// setting grants while creating a block (403).
    #[error("{action} needs the {need} role; the token has {have}")]
    ForbiddenPart {
        /// What needs the role, e.g. "setting a block's grants".
        action: &'static str,
        /// The role it needs.
        need: Role,
        /// The token's role.
        have: Role,
    },
    /// Only a server-admin token may do this (403).
    #[error("only a server-admin token may {0}")]
    ServerAdminOnly(&'static str),
    /// Not found, or in a workspace the token cannot see (404).
    #[error("{what} '{id}' not found")]
    NotFound {
        /// What kind of thing.
        what: &'static str,
        /// The id as given.
        id: String,
    },
    /// The change is based on an old version, or the name is taken (409).
    #[error("{0}")]
    Conflict(String),
    /// A dry-run's records changed since it read them: nothing was
    /// applied (409, with `conflicts`: each record's `kind` and ids).
    #[error("{message}")]
    Changed {
        /// What happened and what to do.
        message: String,
        /// The records that changed.
        records: Vec<quire_storage::Target>,
    },
    /// What was asked for existed, and its time ran out (410).
    #[error("{0}")]
    Expired(String),
    /// The body is over the limit (413).
    #[error("the request body is over the limit of {limit_bytes} bytes")]
    TooLarge {
        /// The limit, in bytes.
        limit_bytes: usize,
    },
    /// The token made too many requests (429).
    #[error(
        "rate limit of {rate_per_sec} requests per second exceeded; retry in {retry_after_ms} ms"
    )]
    RateLimited {
        /// The sustained rate allowed.
        rate_per_sec: f64,
        /// When a request will be accepted again, in milliseconds.
        retry_after_ms: u64,
    },
    /// A workspace quota refused the run (429).
    #[error("{0}")]
    Quota(crate::admission::QuotaRefusal),
    /// The server is shutting down and takes no new runs (503).
    #[error("the server is shutting down and starts no new runs")]
    ShuttingDown,
    /// Something failed on the server's side (500). Logged in full.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// A 400 for `field`.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::BadField {
            field: field.into(),
            message: message.into(),
        }
    }

    /// A 404 for `what` `id`.
    pub fn not_found(what: &'static str, id: impl Into<String>) -> Self {
        Self::NotFound {
            what,
            id: id.into(),
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadField { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden { .. } | Self::ForbiddenPart { .. } | Self::ServerAdminOnly(_) => {
                StatusCode::FORBIDDEN
            }
            Self::NotFound { .. } => StatusCode::NOT_FOUND,
            Self::Conflict(_) | Self::Changed { .. } => StatusCode::CONFLICT,
            Self::Expired(_) => StatusCode::GONE,
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RateLimited { .. } | Self::Quota(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A short machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadField { .. } => "invalid_field",
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden { .. } | Self::ForbiddenPart { .. } | Self::ServerAdminOnly(_) => {
                "forbidden"
            }
            Self::NotFound { .. } => "not_found",
            Self::Conflict(_) | Self::Changed { .. } => "conflict",
            Self::Expired(_) => "expired",
            Self::TooLarge { .. } => "too_large",
            Self::RateLimited { .. } => "rate_limited",
            Self::Quota(_) => "quota_exceeded",
            Self::ShuttingDown => "shutting_down",
            Self::Internal(_) => "internal",
        }
    }

    /// The JSON body.
    pub fn body(&self) -> serde_json::Value {
        let mut v = serde_json::json!({"error": self.code(), "message": self.to_string()});
        match self {
            Self::BadField { field, .. } => {
                v["field"] = serde_json::Value::from(field.as_str());
            }
            Self::Forbidden { need, have } | Self::ForbiddenPart { need, have, .. } => {
                v["need"] = need.as_str().into();
                v["have"] = have.as_str().into();
            }
            Self::Changed { records, .. } => {
                v["conflicts"] = serde_json::to_value(records).unwrap_or_default();
            }
            Self::Quota(q) => {
                v["quota"] = q.quota.into();
                v["limit"] = q.limit.into();
                v["resets_at_ms"] = q.resets_at_ms.into();
            }
            _ => {}
        }
        v
    }
}

impl From<quire_service::ServiceError> for ApiError {
    fn from(e: quire_service::ServiceError) -> Self {
        use quire_service::ServiceError as S;
        match e {
            S::Invalid { field, message } => Self::BadField { field, message },
            S::Quota(q) => Self::Quota(q),
            S::ShuttingDown => Self::ShuttingDown,
            S::Storage(e) => e.into(),
            S::AlreadyQueued(run) => Self::Conflict(format!(
                "run '{run}' was enqueued before; a run id runs once"
            )),
            S::Conflict(m) => Self::Conflict(m),
            S::Preview {
                run,
                refusal,
                message,
            } => {
                use quire_storage::ApplyRefusal as R;
                match refusal {
                    R::NotFound => Self::NotFound {
                        what: "dry-run",
                        id: run,
                    },
                    R::Expired { .. } => Self::Expired(message),
                    R::Conflicts(records) => Self::Changed { message, records },
                    R::Decided(_) | R::RunFailed | R::Digest => Self::Conflict(message),
                }
            }
            S::Internal(m) => Self::Internal(m),
        }
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Invalid { what, reason } => Self::field(what, reason),
            StorageError::NotFound { what, id } => Self::NotFound { what, id },
            e @ (StorageError::Stale { .. } | StorageError::WorkspaceExists(_)) => {
                Self::Conflict(e.to_string())
            }
            other => Self::Internal(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Self::Internal(m) = &self {
            tracing::error!(error = %m, "request failed");
        }
        let mut resp = (self.status(), axum::Json(self.body())).into_response();
        match &self {
            Self::RateLimited { retry_after_ms, .. } => {
                let secs = retry_after_ms.div_ceil(1000).max(1);
                if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                    resp.headers_mut().insert(header::RETRY_AFTER, v);
                }
            }
            Self::Quota(q) => {
                if let Some(at) = q.resets_at_ms {
                    let secs = at
                        .saturating_sub(quire_storage::now_ms())
                        .div_ceil(1000)
                        .max(1);
                    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                        resp.headers_mut().insert(header::RETRY_AFTER, v);
                    }
                }
            }
            Self::Unauthorized(_) => {
                resp.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"quire\""),
                );
            }
            _ => {}
        }
        resp
    }
}

/// Shorthand for handler results.
pub type ApiResult<T> = Result<T, ApiError>;
