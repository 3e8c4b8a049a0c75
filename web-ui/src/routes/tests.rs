//! Router tests with `oneshot`: the authorization matrix, validation,
//! limits. The real-socket and WebSocket tests are in the root suite.

use axum::body::Body as AxBody;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::auth::{Auth, Role};
use crate::{app, ServerConfig};

use crate::testkit::{call, fixture};

/// (method, path after /api/v1/workspaces/{ws}, body, role needed)
fn matrix_routes() -> Vec<(&'static str, &'static str, Option<Value>, Role)> {
    vec![
        ("GET", "", None, Role::Viewer),
        ("GET", "/blocks", None, Role::Viewer),
        ("GET", "/blocks/b1", None, Role::Viewer),
        (
            "POST",
            "/blocks",
            Some(json!({"source": "export default 2", "lang": "js"})),
            Role::Editor,
        ),
        (
            "POST",
            "/blocks",
            Some(json!({"source": "export default 2", "lang": "js", "grants": ["kv:read"]})),
            Role::Admin,
        ),
        (
            "PUT",
            "/blocks/b1",
            Some(json!({"name": "renamed"})),
            Role::Editor,
        ),
        (
            "PUT",
            "/settings",
            Some(json!({"default_engine": "quickjs"})),
            Role::Admin,
        ),
        (
            "PUT",
            "/blocks/b1/grants",
            Some(json!({"grants": ["kv:read"]})),
            Role::Admin,
        ),
        (
            "POST",
            "/blocks/b1/runs",
            Some(json!({"input": 1})),
            Role::Editor,
        ),
        (
            "POST",
            "/runs",
            Some(json!({"source": "export default 3", "lang": "ts"})),
            Role::Editor,
        ),
        ("GET", "/runs", None, Role::Viewer),
        ("GET", "/runs?block=b1", None, Role::Viewer),
        ("GET", "/docs", None, Role::Viewer),
        ("GET", "/docs/d1", None, Role::Viewer),
        ("POST", "/docs", Some(json!({"title": "new"})), Role::Editor),
        (
            "PATCH",
            "/docs/d1",
            Some(json!({"title": "patched"})),
            Role::Editor,
        ),
        ("GET", "/db", None, Role::Viewer),
        ("GET", "/db/tasks/rows", None, Role::Viewer),
        (
            "POST",
            "/db/tasks/rows",
            Some(json!({"rows": [{"n": 1}]})),
            Role::Editor,
        ),
        ("GET", "/tokens", None, Role::Admin),
        (
            "POST",
            "/tokens",
            Some(json!({"role": "viewer"})),
            Role::Admin,
        ),
        ("GET", "/secrets", None, Role::Admin),
        (
            "PUT",
            "/secrets/API_KEY",
            Some(json!({"value": "s3cret"})),
            Role::Admin,
        ),
        ("GET", "/schedules", None, Role::Viewer),
        ("GET", "/agent-grants", None, Role::Viewer),
        (
            "PUT",
            "/agent-grants",
            Some(json!({"grants": ["db:read:tasks"]})),
            Role::Admin,
        ),
        ("GET", "/quota", None, Role::Admin),
        (
            "PUT",
            "/quota",
            Some(json!({"max_concurrent_runs": 3})),
            Role::Admin,
        ),
        ("GET", "/usage?days=7", None, Role::Admin),
        (
            "POST",
            "/blocks/b1/schedules",
            Some(json!({"cron": "0 9 * * 1-5", "timezone": "Europe/Lisbon"})),
            Role::Editor,
        ),
    ]
}

#[tokio::test]
async fn authorization_matrix_role_by_route_by_workspace() -> anyhow::Result<()> {
    let f = fixture(ServerConfig {
        rate_burst: 1e9,
        ..ServerConfig::default()
    })?;
    let store = &f.state.store;
    let mut tokens = vec![];
    for role in [Role::Viewer, Role::Editor, Role::Admin] {
        tokens.push((Some(role), Auth::mint(store, Some(f.a.id), role, "t")?.1));
    }
    tokens.push((None, Auth::mint(store, None, Role::Admin, "server")?.1));
    let mut checked = 0;
    for (method, tail, body, need) in matrix_routes() {
        for (role, token) in &tokens {
            for (target, own) in [(&f.a, true), (&f.b, false)] {
                for name in [target.name.clone(), target.id.to_string()] {
                    let path = format!("/api/v1/workspaces/{name}{tail}");
                    let (status, v) =
                        call(&f.state, method, &path, Some(token), body.clone()).await?;
                    let want = match role {
                        None => None,
                        Some(_) if !own => Some(StatusCode::NOT_FOUND),
                        Some(r) if *r < need => Some(StatusCode::FORBIDDEN),
                        Some(_) => None,
                    };
                    match want {
                        Some(w) => assert_eq!(status, w, "{method} {path} as {role:?}: {v}"),
                        None => assert!(
                            status.is_success(),
                            "{method} {path} as {role:?}: {status} {v}"
                        ),
                    }
                    if status == StatusCode::NOT_FOUND {
                        assert_eq!(v["error"], "not_found");
                        assert!(!v.to_string().contains("beta's"), "{v}");
                    }
                    if let (StatusCode::FORBIDDEN, Some(r)) = (status, role) {
                        // Which role it takes (the first check refused:
                        // above the token's, at most the route's), and
                        // which the token has.
                        let rank = |name: &Value| {
                            [Role::Viewer, Role::Editor, Role::Admin]
                                .into_iter()
                                .find(|x| name == x.as_str())
                        };
                        let said = rank(&v["need"]);
                        assert!(
                            said.is_some_and(|n| n > *r && n <= need),
                            "{method} {path}: {v}"
                        );
                        assert_eq!(v["have"], r.as_str(), "{method} {path}: {v}");
                    }
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, matrix_routes().len() * 4 * 2 * 2);
    // Another workspace's run, asked for under one's own workspace.
    let (_, admin_a) = &tokens[2];
    let (status, v) = call(
        &f.state,
        "GET",
        &format!("/api/v1/workspaces/alpha/runs/{}", f.b_run),
        Some(admin_a),
        None,
    )
    .await?;
    assert_eq!(status, StatusCode::NOT_FOUND, "{v}");
    // Workspace listing shows only the token's own workspace.
    let (_, v) = call(&f.state, "GET", "/api/v1/workspaces", Some(admin_a), None).await?;
    assert_eq!(v["workspaces"].as_array().map(Vec::len), Some(1));
    // Only a server admin creates workspaces.
    let (status, _) = call(
        &f.state,
        "POST",
        "/api/v1/workspaces",
        Some(admin_a),
        Some(json!({"name": "gamma"})),
    )
    .await?;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, server) = &tokens[3];
    let (status, v) = call(
        &f.state,
        "POST",
        "/api/v1/workspaces",
        Some(server),
        Some(json!({"name": "gamma"})),
    )
    .await?;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let gamma_admin = v["admin_token"].as_str().unwrap_or_default().to_string();
    let (status, _) = call(
        &f.state,
        "GET",
        "/api/v1/workspaces/gamma/blocks",
        Some(&gamma_admin),
        None,
    )
    .await?;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = call(
        &f.state,
        "GET",
        "/api/v1/workspaces/alpha/blocks",
        Some(&gamma_admin),
        None,
    )
    .await?;
    assert_eq!(status, StatusCode::NOT_FOUND);
    Ok(())
}

#[tokio::test]
async fn missing_wrong_and_revoked_tokens_are_401() -> anyhow::Result<()> {
    let f = fixture(ServerConfig::default())?;
    let path = "/api/v1/workspaces/alpha/blocks";
    assert_eq!(
        call(&f.state, "GET", path, None, None).await?.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(&f.state, "GET", path, Some("qt_0000000000000000_00"), None)
            .await?
            .0,
        StatusCode::UNAUTHORIZED
    );
    let (rec, token) = Auth::mint(&f.state.store, Some(f.a.id), Role::Admin, "x")?;
    assert_eq!(
        call(&f.state, "GET", path, Some(&token), None).await?.0,
        StatusCode::OK
    );
    // The token given in the query is accepted on /live only.
    let req = Request::builder()
        .uri(format!("{path}?token={token}"))
        .body(AxBody::empty())?;
    assert_eq!(
        app(f.state.clone()).oneshot(req).await?.status(),
        StatusCode::UNAUTHORIZED
    );
    // Nor on a document that happens to be called `live`.
    let req = Request::builder()
        .uri(format!("/api/v1/workspaces/alpha/docs/live?token={token}"))
        .body(AxBody::empty())?;
    assert_eq!(
        app(f.state.clone()).oneshot(req).await?.status(),
        StatusCode::UNAUTHORIZED
    );
    let del = format!("/api/v1/workspaces/alpha/tokens/{}", rec.id);
    assert_eq!(
        call(&f.state, "DELETE", &del, Some(&token), None).await?.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        call(&f.state, "GET", path, Some(&token), None).await?.0,
        StatusCode::UNAUTHORIZED
    );
    Ok(())
}

#[tokio::test]
async fn bad_requests_name_the_field() -> anyhow::Result<()> {
    let f = fixture(ServerConfig {
        max_body_bytes: 4096,
        ..ServerConfig::default()
    })?;
    let t = Auth::mint(&f.state.store, Some(f.a.id), Role::Admin, "x")?.1;
    let blocks = "/api/v1/workspaces/alpha/blocks";
    let cases = [
        (json!({"lang": "js"}), "source"),
        (json!({"source": "1", "lang": "python"}), "lang"),
        (json!({"source": 1, "lang": "js"}), "source"),
        (
            json!({"source": "1", "lang": "js", "grants": ["kv:read", "db:read:"]}),
            "grants[1]",
        ),
        (
            json!({"source": "1", "lang": "js", "grants": ["net:"]}),
            "grants[0]",
        ),
        (
            json!({"source": "1", "lang": "js", "sorce": "typo"}),
            "sorce",
        ),
    ];
    for (body, field) in cases {
        let (status, v) = call(&f.state, "POST", blocks, Some(&t), Some(body.clone())).await?;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {v}");
        assert_eq!(v["field"], field, "{body}: {v}");
        assert!(v["message"].as_str().is_some_and(|m| m.len() > 10), "{v}");
    }
    let (status, v) = call(
        &f.state,
        "POST",
        "/api/v1/workspaces/alpha/tokens",
        Some(&t),
        Some(json!({"role": "owner"})),
    )
    .await?;
    assert_eq!(
        (status, v["field"].clone()),
        (StatusCode::BAD_REQUEST, json!("role"))
    );
    let (status, v) = call(
        &f.state,
        "GET",
        "/api/v1/workspaces/alpha/runs?limit=100000",
        Some(&t),
        None,
    )
    .await?;
    assert_eq!(
        (status, v["field"].clone()),
        (StatusCode::BAD_REQUEST, json!("limit"))
    );
    let (status, v) = call(
        &f.state,
        "GET",
        "/api/v1/workspaces/alpha/db/tasks/rows?where=%7Bnope",
        Some(&t),
        None,
    )
    .await?;
    assert_eq!(
        (status, v["field"].clone()),
        (StatusCode::BAD_REQUEST, json!("where"))
    );
    // Not JSON, wrong content type, too large.
    let req = Request::builder()
        .method("POST")
        .uri(blocks)
        .header("authorization", format!("Bearer {t}"))
        .header("content-type", "application/json")
        .body(AxBody::from("{\"source\":"))?;
    let resp = app(f.state.clone()).oneshot(req).await?;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let req = Request::builder()
        .method("POST")
        .uri(blocks)
        .header("authorization", format!("Bearer {t}"))
        .header("content-type", "text/plain")
        .body(AxBody::from("{}"))?;
    assert_eq!(
        app(f.state.clone()).oneshot(req).await?.status(),
        StatusCode::BAD_REQUEST
    );
    let big = json!({"source": "x".repeat(5000), "lang": "js"});
    let (status, v) = call(&f.state, "POST", blocks, Some(&t), Some(big)).await?;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert!(
        v["message"].as_str().is_some_and(|m| m.contains("4096")),
        "{v}"
    );
    Ok(())
}

#[tokio::test]
async fn a_token_over_its_rate_gets_429_with_retry_after() -> anyhow::Result<()> {
    let f = fixture(ServerConfig {
        rate_per_sec: 0.01,
        rate_burst: 3.0,
        ..ServerConfig::default()
    })?;
    let t = Auth::mint(&f.state.store, Some(f.a.id), Role::Viewer, "x")?.1;
    let other = Auth::mint(&f.state.store, Some(f.a.id), Role::Viewer, "y")?.1;
    let path = "/api/v1/workspaces/alpha/docs";
    for _ in 0..3 {
        assert_eq!(
            call(&f.state, "GET", path, Some(&t), None).await?.0,
            StatusCode::OK
        );
    }
    let req = Request::builder()
        .uri(path)
        .header("authorization", format!("Bearer {t}"))
        .body(AxBody::empty())?;
    let resp = app(f.state.clone()).oneshot(req).await?;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(retry >= 1);
    // Another token is not affected.
    assert_eq!(
        call(&f.state, "GET", path, Some(&other), None).await?.0,
        StatusCode::OK
    );
    Ok(())
}

#[tokio::test]
async fn stale_edits_are_409_and_lose_nothing() -> anyhow::Result<()> {
    let f = fixture(ServerConfig::default())?;
    let t = Auth::mint(&f.state.store, Some(f.a.id), Role::Editor, "x")?.1;
    let path = "/api/v1/workspaces/alpha/blocks/b1";
    let (_, b) = call(&f.state, "GET", path, Some(&t), None).await?;
    let base = b["updated_ms"].clone();
    let (s1, v1) = call(
        &f.state,
        "PUT",
        path,
        Some(&t),
        Some(json!({"source": "export default 'tab 1'", "base_updated_ms": base})),
    )
    .await?;
    assert_eq!(s1, StatusCode::OK, "{v1}");
    let (s2, v2) = call(
        &f.state,
        "PUT",
        path,
        Some(&t),
        Some(json!({"source": "export default 'tab 2'", "base_updated_ms": base})),
    )
    .await?;
    assert_eq!(s2, StatusCode::CONFLICT, "{v2}");
    assert!(v2["message"]
        .as_str()
        .is_some_and(|m| m.contains("changed by someone else")));
    let (_, now) = call(&f.state, "GET", path, Some(&t), None).await?;
    assert_eq!(now["source"], "export default 'tab 1'");
    // Same for documents.
    let doc = "/api/v1/workspaces/alpha/docs/d1";
    let (_, d) = call(&f.state, "GET", doc, Some(&t), None).await?;
    let body = |title: &str| json!({"title": title, "base_updated_ms": d["updated_ms"]});
    assert_eq!(
        call(&f.state, "PUT", doc, Some(&t), Some(body("one")))
            .await?
            .0,
        StatusCode::OK
    );
    assert_eq!(
        call(&f.state, "PUT", doc, Some(&t), Some(body("two")))
            .await?
            .0,
        StatusCode::CONFLICT
    );
    Ok(())
}

#[tokio::test]
async fn a_block_shows_the_input_schema_it_declares_as_a_literal() -> anyhow::Result<()> {
    let f = fixture(ServerConfig::default())?;
    let t = Auth::mint(&f.state.store, Some(f.a.id), Role::Editor, "x")?.1;
    let path = "/api/v1/workspaces/alpha/blocks/b1";
    let schema = "export const input = { type: 'object', required: ['n'], properties: { n: { type: 'integer' } } };\nexport default (ctx) => ctx.input.n;";
    let (status, v) = call(
        &f.state,
        "PUT",
        path,
        Some(&t),
        Some(json!({"source": schema})),
    )
    .await?;
    assert_eq!(status, StatusCode::OK, "{v}");
    let want =
        json!({"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}});
    assert_eq!(v["input_schema"], want);
    let (_, b) = call(&f.state, "GET", path, Some(&t), None).await?;
    assert_eq!(b["input_schema"], want);
    let (_, list) = call(
        &f.state,
        "GET",
        "/api/v1/workspaces/alpha/blocks",
        Some(&t),
        None,
    )
    .await?;
    let listed = list["blocks"]
        .as_array()
        .and_then(|bs| bs.iter().find(|b| b["id"] == "b1"));
    assert_eq!(listed.map(|b| &b["input_schema"]), Some(&want));
    // Computed, or not there: no schema (never evaluated).
    for source in [
        "export const input = JSON.parse('{}'); export default 1;",
        "export default 1;",
        "export const input = {",
    ] {
        let (_, v) = call(
            &f.state,
            "PUT",
            path,
            Some(&t),
            Some(json!({"source": source})),
        )
        .await?;
        assert_eq!(v["input_schema"], Value::Null, "{source}: {v}");
    }
    Ok(())
}

#[tokio::test]
async fn collections_are_listed_per_workspace() -> anyhow::Result<()> {
    let f = fixture(ServerConfig::default())?;
    let t = Auth::mint(&f.state.store, Some(f.a.id), Role::Viewer, "x")?.1;
    f.state
        .store
        .insert_rows(&f.a.id, "notes", &[json!({"text": "a"})])?;
    f.state
        .store
        .insert_rows(&f.b.id, "beta_only", &[json!({"text": "b"})])?;
    let (status, v) = call(
        &f.state,
        "GET",
        "/api/v1/workspaces/alpha/db",
        Some(&t),
        None,
    )
    .await?;
    assert_eq!(status, StatusCode::OK, "{v}");
    let names: Vec<&str> = v["collections"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert!(names.contains(&"notes"), "{v}");
    assert!(!names.contains(&"beta_only"), "{v}");
    Ok(())
}

/// One request to `router`: its status, `WWW-Authenticate` and body text.
async fn text(
    router: axum::Router,
    method: &str,
    path: &str,
    authorization: Option<&str>,
) -> anyhow::Result<(StatusCode, Option<String>, String)> {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(a) = authorization {
        req = req.header("authorization", a);
    }
    let resp = router.oneshot(req.body(AxBody::empty())?).await?;
    let status = resp.status();
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = String::from_utf8(resp.into_body().collect().await?.to_bytes().to_vec())?;
    Ok((status, challenge, body))
}

fn assert_prometheus(body: &str) {
    for family in [
        "quire_runs_total",
        "quire_run_latency_seconds_bucket",
        "quire_active_runs",
        "quire_queued_runs",
        "quire_host_calls_total",
        "quire_websocket_clients",
    ] {
        assert!(body.contains(family), "{family} missing: {body}");
    }
}

const METRICS_TOKEN: &str = "metrics-7f3a9c1e5b2d4f6081a3c5e7f9b1d3e5";

#[tokio::test]
async fn health_is_open_and_metrics_need_the_metrics_or_a_server_admin_token() -> anyhow::Result<()>
{
    let f = fixture(ServerConfig {
        admin_token: Some("operator-secret".into()),
        metrics_token: Some(crate::TokenHash::of(METRICS_TOKEN)),
        rate_burst: 1e9,
        ..ServerConfig::default()
    })?;
    let store = &f.state.store;
    let server_admin = Auth::mint(store, None, Role::Admin, "server")?.1;
    let ws_admin = Auth::mint(store, Some(f.a.id), Role::Admin, "a")?.1;
    let ws_viewer = Auth::mint(store, Some(f.b.id), Role::Viewer, "b")?.1;
    let get = |auth: Option<String>| {
        let router = app(f.state.clone());
        async move { text(router, "GET", "/metrics", auth.as_deref()).await }
    };
    let bearer = |t: &str| Some(format!("Bearer {t}"));
    assert_eq!(
        text(app(f.state.clone()), "GET", "/healthz", None).await?.0,
        StatusCode::OK
    );
    // No token, not a bearer token, an unknown or almost-right token: 401.
    for auth in [
        None,
        Some(String::new()),
        Some(format!("Basic {METRICS_TOKEN}")),
        Some(METRICS_TOKEN.to_string()),
        bearer(""),
        bearer("wrong"),
        bearer(&METRICS_TOKEN[..METRICS_TOKEN.len() - 1]),
        bearer(&format!("{METRICS_TOKEN}x")),
        bearer("qt_0000000000000000_00"),
    ] {
        let (status, challenge, body) = get(auth.clone()).await?;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{auth:?}: {body}");
        assert!(
            challenge.is_some_and(|c| c.starts_with("Bearer")),
            "{auth:?}"
        );
        assert!(!body.contains("quire_runs_total"), "{auth:?}: {body}");
    }
    // Workspace tokens, even a workspace admin's: 403, never the numbers.
    for t in [&ws_admin, &ws_viewer] {
        let (status, _, body) = get(bearer(t)).await?;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert!(!body.contains("quire_runs_total"), "{body}");
    }
    // The metrics token, a minted server-admin token and the operator's.
    for t in [METRICS_TOKEN, server_admin.as_str(), "operator-secret"] {
        let req = Request::builder()
            .uri("/metrics")
            .header("authorization", format!("Bearer {t}"))
            .body(AxBody::empty())?;
        let resp = app(f.state.clone()).oneshot(req).await?;
        assert_eq!(resp.status(), StatusCode::OK);
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
        let body = String::from_utf8(resp.into_body().collect().await?.to_bytes().to_vec())?;
        assert_prometheus(&body);
    }
    // The metrics token opens /metrics and nothing else.
    for path in [
        "/api/v1/workspaces",
        "/api/v1/workspaces/alpha/runs",
        "/api/v1/quota/ceilings",
    ] {
        let (status, _, body) = text(
            app(f.state.clone()),
            "GET",
            path,
            bearer(METRICS_TOKEN).as_deref(),
        )
        .await?;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}: {body}");
    }
    Ok(())
}

#[tokio::test]
async fn without_a_metrics_token_only_server_admins_read_metrics() -> anyhow::Result<()> {
    let f = fixture(ServerConfig::default())?;
    let store = &f.state.store;
    let server_admin = Auth::mint(store, None, Role::Admin, "server")?.1;
    let ws_admin = Auth::mint(store, Some(f.a.id), Role::Admin, "a")?.1;
    for (auth, want) in [
        (None, StatusCode::UNAUTHORIZED),
        (
            Some(format!("Bearer {METRICS_TOKEN}")),
            StatusCode::UNAUTHORIZED,
        ),
        (Some(format!("Bearer {ws_admin}")), StatusCode::FORBIDDEN),
        (Some(format!("Bearer {server_admin}")), StatusCode::OK),
    ] {
        let (status, _, body) =
            text(app(f.state.clone()), "GET", "/metrics", auth.as_deref()).await?;
        assert_eq!(status, want, "{auth:?}: {body}");
        if want == StatusCode::OK {
            assert_prometheus(&body);
        }
    }
    Ok(())
}

#[tokio::test]
async fn the_metrics_listener_serves_metrics_only() -> anyhow::Result<()> {
    let f = fixture(ServerConfig {
        metrics_token: Some(crate::TokenHash::of(METRICS_TOKEN)),
        ..ServerConfig::default()
    })?;
    let router = || crate::metrics_app(f.state.clone());
    // No token needed: the address is the operator's to keep private.
    let (status, _, body) = text(router(), "GET", "/metrics", None).await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_prometheus(&body);
    let server_admin = Auth::mint(&f.state.store, None, Role::Admin, "server")?.1;
    let auth = format!("Bearer {server_admin}");
    for (method, path) in [
        ("GET", "/api/v1/workspaces"),
        ("POST", "/api/v1/workspaces"),
        ("GET", "/api/v1/workspaces/alpha/blocks"),
        ("GET", "/api/v1/workspaces/alpha/runs"),
        ("POST", "/api/v1/workspaces/alpha/runs"),
        ("GET", "/api/v1/workspaces/alpha/live"),
        ("GET", "/api/v1/quota/ceilings"),
        ("POST", "/hooks/0000000000000000/00"),
        ("GET", "/healthz"),
        ("GET", "/"),
        ("GET", "/app.js"),
        ("GET", "/chart.js"),
    ] {
        for a in [None, Some(auth.as_str())] {
            let (status, _, body) = text(router(), method, path, a).await?;
            assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {body}");
        }
    }
    let _ = (&f.b, &f.b_run);
    Ok(())
}

#[tokio::test]
async fn run_ids_do_not_count_other_workspaces_runs() -> anyhow::Result<()> {
    let f = fixture(ServerConfig {
        rate_burst: 1e9,
        ..ServerConfig::default()
    })?;
    let store = &f.state.store;
    let a = Auth::mint(store, Some(f.a.id), Role::Editor, "a")?.1;
    let b = Auth::mint(store, Some(f.b.id), Role::Editor, "b")?.1;
    let mut ids = vec![];
    for i in 0..6 {
        let (ws, t) = if i % 2 == 0 {
            ("alpha", &a)
        } else {
            ("beta", &b)
        };
        let body = json!({"source": "export default 1", "lang": "js"});
        let path = format!("/api/v1/workspaces/{ws}/runs");
        let (status, v) = call(&f.state, "POST", &path, Some(t), Some(body)).await?;
        assert_eq!(status, StatusCode::ACCEPTED, "{v}");
        ids.push(v["run"].as_str().unwrap_or_default().to_string());
    }
    for w in ids.windows(2) {
        let (x, y) = (&w[0], &w[1]);
        assert_eq!((x.len(), y.len()), (32, 32), "{x} {y}");
        // Later ids sort later, but the gap between alpha's two runs says
        // nothing of beta's: the random part differs each time.
        assert!(x < y, "{x} then {y}");
        assert_ne!(x[16..], y[16..]);
        let n = u128::from_str_radix(x, 16)?;
        assert_ne!(format!("{:032x}", n + 1), *y, "consecutive ids");
    }
    Ok(())
}

#[tokio::test]
async fn the_app_is_served_from_the_binary_with_a_strict_policy() -> anyhow::Result<()> {
    let f = fixture(ServerConfig::default())?;
    for (path, ty) in [
        ("/", "text/html"),
        ("/app.js", "text/javascript"),
        ("/app.css", "text/css"),
    ] {
        let req = Request::builder().uri(path).body(AxBody::empty())?;
        let resp = app(f.state.clone()).oneshot(req).await?;
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        let h = resp.headers();
        let ct = h
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        assert!(ct.starts_with(ty), "{path}: {ct}");
        let csp = h
            .get("content-security-policy")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        assert!(
            csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
            "{csp}"
        );
        assert_eq!(
            h.get("x-content-type-options").map(|v| v.as_bytes()),
            Some(&b"nosniff"[..])
        );
        let body = resp.into_body().collect().await?.to_bytes();
        assert!(body.len() > 100, "{path} is empty");
    }
    // The chart frame may be framed by the app only, and loads nothing.
    for (path, ty) in [
        ("/chart.html", "text/html"),
        ("/chart.js", "text/javascript"),
        ("/chart.css", "text/css"),
    ] {
        let req = Request::builder().uri(path).body(AxBody::empty())?;
        let resp = app(f.state.clone()).oneshot(req).await?;
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        let h = resp.headers();
        let ct = h.get("content-type").and_then(|v| v.to_str().ok());
        assert!(ct.unwrap_or("").starts_with(ty), "{path}: {ct:?}");
        let csp = h
            .get("content-security-policy")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        for part in [
            "default-src 'none'",
            "script-src 'self'",
            "frame-ancestors 'self'",
        ] {
            assert!(csp.contains(part), "{path}: {csp}");
        }
        assert!(!csp.contains("connect-src"), "{path}: {csp}");
    }
    let req = Request::builder()
        .uri("/app.js")
        .header("accept-encoding", "gzip")
        .body(AxBody::empty())?;
    let resp = app(f.state.clone()).oneshot(req).await?;
    assert_eq!(
        resp.headers().get("content-encoding").map(|v| v.as_bytes()),
        Some(&b"gzip"[..])
    );
    let gz = resp.into_body().collect().await?.to_bytes().len();
    assert!(gz < 300_000, "gzipped bundle is {gz} bytes");
    Ok(())
}

#[tokio::test]
async fn schedules_are_created_listed_paused_and_deleted() -> anyhow::Result<()> {
    let f = fixture(ServerConfig::default())?;
    let t = Auth::mint(&f.state.store, Some(f.a.id), Role::Editor, "x")?.1;
    let base = "/api/v1/workspaces/alpha";
    let (status, v) = call(
        &f.state,
        "POST",
        &format!("{base}/blocks/b1/schedules"),
        Some(&t),
        Some(json!({"cron": "*/5 * * * *", "timezone": "Asia/Tokyo"})),
    )
    .await?;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let id = v["id"].as_str().unwrap_or_default().to_string();
    assert!(
        v["next_fire_ms"].as_u64().is_some_and(|n| n % 300_000 == 0),
        "{v}"
    );
    assert!(
        v["description"].as_str().is_some_and(|d| !d.is_empty()),
        "{v}"
    );
    for (body, field) in [
        (json!({"cron": "every day"}), "cron"),
        (
            json!({"cron": "* * * * *", "timezone": "Nowhere/Here"}),
            "timezone",
        ),
        (json!({"cron": "* * * * *", "when": 1}), "when"),
    ] {
        let (status, v) = call(
            &f.state,
            "POST",
            &format!("{base}/blocks/b1/schedules"),
            Some(&t),
            Some(body),
        )
        .await?;
        assert_eq!(
            (status, v["field"].clone()),
            (StatusCode::BAD_REQUEST, json!(field)),
            "{v}"
        );
    }
    let (status, _) = call(
        &f.state,
        "POST",
        &format!("{base}/blocks/nope/schedules"),
        Some(&t),
        Some(json!({"cron": "* * * * *"})),
    )
    .await?;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, v) = call(
        &f.state,
        "PATCH",
        &format!("{base}/schedules/{id}"),
        Some(&t),
        Some(json!({"paused": true})),
    )
    .await?;
    assert_eq!(v["paused"], true);
    let (_, v) = call(
        &f.state,
        "GET",
        &format!("{base}/schedules"),
        Some(&t),
        None,
    )
    .await?;
    assert_eq!(v["schedules"].as_array().map(Vec::len), Some(1));
    // Another workspace's schedule id is not found under this one.
    let (status, _) = call(
        &f.state,
        "DELETE",
        &format!("/api/v1/workspaces/beta/schedules/{id}"),
        Some(&t),
        None,
    )
    .await?;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = call(
        &f.state,
        "DELETE",
        &format!("{base}/schedules/{id}"),
        Some(&t),
        None,
    )
    .await?;
    assert_eq!(status, StatusCode::NO_CONTENT);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_runs_its_block_with_the_body_and_can_answer_with_the_result(
) -> anyhow::Result<()> {
    let f = fixture(ServerConfig::default())?;
    let ed = Auth::mint(&f.state.store, Some(f.a.id), Role::Editor, "x")?.1;
    let viewer = Auth::mint(&f.state.store, Some(f.a.id), Role::Viewer, "v")?.1;
    let base = "/api/v1/workspaces/alpha";
    let src = "export default (ctx) => { if (ctx.input.n < 0) throw new Error('negative'); return { doubled: ctx.input.n * 2, via: ctx.trigger.kind }; }";
    let (status, _) = call(
        &f.state,
        "POST",
        &format!("{base}/blocks"),
        Some(&ed),
        Some(json!({"id": "double", "source": src, "lang": "js"})),
    )
    .await?;
    assert_eq!(status, StatusCode::CREATED);
    let hooks = format!("{base}/blocks/double/webhooks");
    assert_eq!(
        call(&f.state, "POST", &hooks, Some(&viewer), None).await?.0,
        StatusCode::FORBIDDEN
    );
    let (status, v) = call(&f.state, "POST", &hooks, Some(&ed), None).await?;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let path = v["path"].as_str().unwrap_or_default().to_string();
    let id = v["id"].as_str().unwrap_or_default().to_string();
    // No bearer token: the URL is the credential.
    let (status, v) = call(
        &f.state,
        "POST",
        &format!("{path}?wait=true"),
        None,
        Some(json!({"n": 21})),
    )
    .await?;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["result"], json!({"doubled": 42, "via": "webhook"}));
    let (status, v) = call(
        &f.state,
        "POST",
        &format!("{path}?wait=true"),
        None,
        Some(json!({"n": -1})),
    )
    .await?;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["error"]["kind"], "exception");
    let (status, v) = call(&f.state, "POST", &path, None, Some(json!({"n": 1}))).await?;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert!(v["run"].is_string());
    // A wrong secret and an unknown id look the same.
    let wrong = format!("{}0", &path[..path.len() - 1]);
    let wrong = if wrong == path {
        format!("{}1", &path[..path.len() - 1])
    } else {
        wrong
    };
    assert_eq!(
        call(&f.state, "POST", &wrong, None, None).await?.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        call(&f.state, "POST", "/hooks/0000000000000000/00", None, None)
            .await?
            .0,
        StatusCode::NOT_FOUND
    );
    // The secret is never listed; deleting the hook disables the URL.
    let (_, v) = call(&f.state, "GET", &hooks, Some(&ed), None).await?;
    assert!(!v
        .to_string()
        .contains(path.rsplit('/').next().unwrap_or("x")));
    let del = format!("{base}/webhooks/{id}");
    assert_eq!(
        call(&f.state, "DELETE", &del, Some(&ed), None).await?.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        call(&f.state, "POST", &path, None, None).await?.0,
        StatusCode::NOT_FOUND
    );
    Ok(())
}
