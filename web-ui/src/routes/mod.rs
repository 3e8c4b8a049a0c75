//! The HTTP routes. Each handler takes a [`Principal`], enters the
//! workspace in its path with the role it needs, and answers JSON.

mod blocks;
mod data;
mod mcp;
pub use mcp::McpSessions;
mod quotas;
pub(crate) mod runs;
mod schedules;
mod webhooks;
mod workspaces;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, Request};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::de::DeserializeOwned;
use tower_http::trace::TraceLayer;

use crate::error::{ApiError, ApiResult};
use crate::AppState;

pub(crate) fn router(state: AppState) -> Router {
    let limit = state.config.max_body_bytes;
    let api = Router::new()
        .merge(workspaces::routes())
        .merge(blocks::routes())
        .merge(runs::routes())
        .merge(data::routes())
        .merge(schedules::routes())
        .merge(quotas::routes())
        .merge(webhooks::api_routes())
        .merge(mcp::routes())
        .fallback(|| async { ApiError::not_found("route", "this path") });
    Router::new()
        .nest("/api/v1", api)
        .merge(webhooks::hook_routes())
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .merge(
            // The app's bundle is ~0.5 MB; gzip takes it to about a third.
            Router::new()
                .route("/", get(index))
                .route("/app.js", get(app_js))
                .route("/app.css", get(app_css))
                .route("/chart.html", get(chart_html))
                .route("/chart.js", get(chart_js))
                .route("/chart.css", get(chart_css))
                .layer(tower_http::compression::CompressionLayer::new()),
        )
        .layer(DefaultBodyLimit::max(limit))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request| {
                tracing::info_span!("request", method = %req.method(), path = %req.uri().path())
            }),
        )
        .with_state(state)
}

async fn healthz(axum::extract::State(s): axum::extract::State<AppState>) -> Response {
    if s.hub.accepting() {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response()
    }
}

/// A process without the api role (`quire serve --role worker`): only
/// `/healthz` and `/metrics` (with its token, as on the full app); every
/// other path says the process has no api role.
pub(crate) fn worker_router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .fallback(|| async {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(serde_json::json!({
                    "error": "this quire process has no api role (started with --role without api); use a process that has one"
                })),
            )
        })
        .with_state(state)
}

/// Only `GET /metrics`, without a token, for a listener on a private
/// address (`quire serve --metrics-addr`); every other path is 404.
pub(crate) fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(open_metrics))
        .fallback(|| async { ApiError::not_found("route", "this path") })
        .with_state(state)
}

/// `GET /metrics` on the main address: the metrics token or a server-admin
/// token, as `Authorization: Bearer`. No or an unknown token is 401
/// (whether or not a metrics token is configured, so the answer does not
/// tell); a workspace token, of any role, is 403: metrics are server-wide.
async fn metrics(
    axum::extract::State(s): axum::extract::State<AppState>,
    headers: axum::http::HeaderMap,
) -> Response {
    match metrics_access(&s, &headers) {
        Ok(()) => render_metrics(&s),
        Err(e) => e.into_response(),
    }
}

fn metrics_access(s: &AppState, headers: &axum::http::HeaderMap) -> ApiResult<()> {
    const SEND: ApiError = ApiError::Unauthorized(
        "send the metrics token or a server-admin token as 'Authorization: Bearer <token>'",
    );
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(SEND)?;
    if let Some(want) = &s.config.metrics_token {
        if want.matches(token) {
            return s.auth.take("metrics");
        }
    }
    let who = s.auth.verify(&s.store, token)?;
    s.auth.take(&who.token_id)?;
    if !who.is_server_admin() {
        return Err(ApiError::ServerAdminOnly(
            "read /metrics (or send the metrics token)",
        ));
    }
    Ok(())
}

async fn open_metrics(axum::extract::State(s): axum::extract::State<AppState>) -> Response {
    render_metrics(&s)
}

fn render_metrics(s: &AppState) -> Response {
    let body = s.metrics.render(&s.hub.gauges());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// The browser app's built files (`web-ui/app`, built into
/// `web-ui/assets/` and committed), embedded in the binary.
const INDEX_HTML: &str = include_str!("../../assets/index.html");
const APP_JS: &str = include_str!("../../assets/app.js");
const APP_CSS: &str = include_str!("../../assets/app.css");
const CHART_HTML: &str = include_str!("../../assets/chart.html");
const CHART_JS: &str = include_str!("../../assets/chart.js");
const CHART_CSS: &str = include_str!("../../assets/chart.css");

/// The app's policy: its own scripts only, no plugins, not framable; a
/// block's `text/html` output renders in a sandboxed `srcdoc` iframe,
/// which inherits this policy (so it cannot load anything from elsewhere
/// either). Inline styles are allowed for CodeMirror.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The chart frame's policy (`web-ui/app/src/chart/`): it runs in an
/// iframe sandboxed with `allow-scripts` only, inside the app alone; it
/// runs its own script and loads nothing else at all (no fetch, no
/// images from anywhere, no frames, no forms).
const CHART_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'self'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    asset_with(content_type, body, CSP)
}

fn asset_with(content_type: &'static str, body: &'static str, csp: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CONTENT_SECURITY_POLICY, csp),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        body,
    )
        .into_response()
}

async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

async fn app_js() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

async fn app_css() -> Response {
    asset("text/css; charset=utf-8", APP_CSS)
}

async fn chart_html() -> Response {
    asset_with("text/html; charset=utf-8", CHART_HTML, CHART_CSP)
}

async fn chart_js() -> Response {
    asset_with("text/javascript; charset=utf-8", CHART_JS, CHART_CSP)
}

async fn chart_css() -> Response {
    asset_with("text/css; charset=utf-8", CHART_CSS, CHART_CSP)
}

/// A JSON body whose rejections are 400s naming the field (or 413).
pub(crate) struct Body<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> ApiResult<Self> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Self(v)),
            Err(JsonRejection::JsonDataError(e)) => Err(data_error(&e.body_text())),
            Err(JsonRejection::JsonSyntaxError(e)) if e.body_text().contains("recursion limit") => {
                Err(ApiError::field("body", quire_engine::too_deep("the body")))
            }
            Err(JsonRejection::JsonSyntaxError(e)) => Err(ApiError::field(
                "body",
                format!("not valid JSON: {}", e.body_text()),
            )),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::field(
                "content-type",
                "send the body as JSON with 'Content-Type: application/json'",
            )),
            Err(JsonRejection::BytesRejection(e))
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE =>
            {
                Err(ApiError::TooLarge {
                    limit_bytes: state.config.max_body_bytes,
                })
            }
            Err(e) => Err(ApiError::field("body", e.body_text())),
        }
    }
}

/// A 400 naming `field` if `v` is nested deeper than the value depth
/// limit ([`quire_engine::MAX_VALUE_DEPTH`], not counting `wrapping`
/// levels of envelope around the value that counts).
pub(crate) fn within_depth(field: &str, v: &serde_json::Value, wrapping: usize) -> ApiResult<()> {
    quire_engine::check_depth(field, v, wrapping).map_err(|m| ApiError::field(field, m))
}

/// serde's message names the field (`missing field `source``, `unknown
/// field `x``, `lang: unknown variant ...`); pull the name out for `field`.
fn data_error(text: &str) -> ApiError {
    let detail = text
        .strip_prefix("Failed to deserialize the JSON body into the target type: ")
        .unwrap_or(text);
    let field = detail
        .split_once('`')
        .and_then(|(_, rest)| rest.split_once('`'))
        .map(|(f, _)| f.to_string())
        .filter(|_| detail.contains("field"))
        .or_else(|| {
            detail
                .split_once(": ")
                .map(|(path, _)| path.to_string())
                .filter(|p| !p.contains(' '))
        })
        .unwrap_or_else(|| "body".to_string());
    let message = detail
        .strip_prefix(&format!("{field}: "))
        .unwrap_or(detail)
        .to_string();
    ApiError::field(field, message)
}

/// A body that may be empty (`None`), else JSON with the same 400s as
/// [`Body`].
pub(crate) fn optional_json<T: DeserializeOwned>(raw: &[u8]) -> ApiResult<Option<T>> {
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let de = &mut serde_json::Deserializer::from_slice(raw);
    match serde_path_to_error::deserialize(de) {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.inner().is_data() => Err(data_error(&e.to_string())),
        Err(e) => Err(ApiError::field("body", format!("not valid JSON: {e}"))),
    }
}

/// Enter workspace `ws` as `who` with role `need` (404 / 403 as
/// [`crate::Principal::enter`]), then run `f` with the store and the
/// workspace, off the async threads.
pub(crate) async fn in_workspace<T: Send + 'static>(
    s: &AppState,
    who: crate::Principal,
    ws: String,
    need: crate::Role,
    f: impl FnOnce(&quire_storage::Store, &quire_storage::Workspace) -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    let store = s.store.clone();
    blocking(move || {
        let w = who.enter(&store, &ws, need)?;
        f(&store, &w)
    })
    .await
}

/// Run a store call off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_messages_become_named_fields() {
        let e = data_error("Failed to deserialize the JSON body into the target type: missing field `source` at line 1 column 2");
        assert!(
            matches!(e, ApiError::BadField { ref field, .. } if field == "source"),
            "{e:?}"
        );
        let e = data_error("Failed to deserialize the JSON body into the target type: lang: unknown variant `py`, expected `js` or `ts` at line 1 column 20");
        assert!(
            matches!(e, ApiError::BadField { ref field, .. } if field == "lang"),
            "{e:?}"
        );
        let e = data_error("Failed to deserialize the JSON body into the target type: unknown field `sourc`, expected one of `source`, `lang`");
        assert!(
            matches!(e, ApiError::BadField { ref field, .. } if field == "sourc"),
            "{e:?}"
        );
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod router_tests;
