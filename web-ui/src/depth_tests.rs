//! Values nested past the depth limit are refused where they enter the
//! API (400 naming the field and the limit) and lose nothing; values at
//! the limit are taken.

use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::auth::{Auth, Role};
use crate::testkit::{call, fixture};
use crate::ServerConfig;

const BASE: &str = "/api/v1/workspaces/alpha";

fn nested(levels: usize) -> Value {
    let mut v = json!(1);
    for _ in 0..levels {
        v = json!([v]);
    }
    v
}

/// A 400 naming `field` and the depth limit.
fn assert_refused(s: StatusCode, v: &Value, field: &str) {
    assert!(
        s == StatusCode::BAD_REQUEST && names_the_limit(v, field),
        "{field}: {s} {v}"
    );
}

fn names_the_limit(v: &Value, field: &str) -> bool {
    v["field"] == field
        && v["message"]
            .as_str()
            .is_some_and(|m| m.contains("deeper than the limit of 64 levels"))
}

#[tokio::test]
async fn api_values_past_the_depth_limit_are_400_and_lose_nothing() -> anyhow::Result<()> {
    let f = fixture(ServerConfig::default())?;
    let ed = Auth::mint(&f.state.store, Some(f.a.id), Role::Editor, "e")?.1;
    let send = |method: &'static str, path: String, body: Value| {
        let (state, ed) = (f.state.clone(), ed.clone());
        async move { call(&state, method, &path, Some(&ed), Some(body)).await }
    };
    // Rows: one row at the limit is stored, one past it refuses the batch.
    let rows = format!("{BASE}/db/tasks/rows");
    let (s, v) = send("POST", rows.clone(), json!({"rows": [{"v": nested(63)}]})).await?;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, v) = send(
        "POST",
        rows.clone(),
        json!({"rows": [{"n": 1}, {"v": nested(64)}]}),
    )
    .await?;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(names_the_limit(&v, "rows[1]"), "{v}");
    let (_, listed) = call(&f.state, "GET", &rows, Some(&ed), None).await?;
    assert_eq!(
        listed["rows"].as_array().map(Vec::len),
        Some(1),
        "nothing of the refused batch"
    );
    let id = listed["rows"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let (s, v) = send("PATCH", format!("{rows}/{id}"), json!({"v": nested(64)})).await?;
    assert_refused(s, &v, "body");
    // A filter.
    // A filter past our limit, and past serde_json's.
    for levels in [40, 70] {
        let mut filter = json!({"n": 1});
        for _ in 0..levels {
            filter = json!({"$and": [filter]});
        }
        let q = format!("{rows}?where={}", urlencode(&filter.to_string()));
        let (s, v) = call(&f.state, "GET", &q, Some(&ed), None).await?;
        assert_refused(s, &v, "where");
    }
    // Documents: properties at the limit (the document is two levels
    // around them), past it, and a patch.
    let docs = format!("{BASE}/docs");
    let (s, v) = send(
        "POST",
        docs.clone(),
        json!({"title": "ok", "properties": {"p": nested(62)}}),
    )
    .await?;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, v) = send(
        "POST",
        docs.clone(),
        json!({"title": "no", "properties": {"p": nested(63)}}),
    )
    .await?;
    assert_refused(s, &v, "properties");
    let (s, v) = send(
        "PATCH",
        format!("{docs}/d1"),
        json!({"properties": {"p": nested(64)}}),
    )
    .await?;
    assert_refused(s, &v, "body");
    let (_, d1) = call(&f.state, "GET", &format!("{docs}/d1"), Some(&ed), None).await?;
    assert_eq!(
        d1["properties"],
        json!({}),
        "the refused patch changed nothing"
    );
    // Run inputs: a saved block's and unsaved source's.
    let (s, v) = send(
        "POST",
        format!("{BASE}/blocks/b1/runs"),
        json!({"input": nested(65)}),
    )
    .await?;
    assert_refused(s, &v, "input");
    let (s, v) = send(
        "POST",
        format!("{BASE}/runs"),
        json!({"source": "export default 1", "lang": "js", "input": nested(65)}),
    )
    .await?;
    assert_refused(s, &v, "input");
    let (s, v) = send(
        "POST",
        format!("{BASE}/blocks/b1/runs"),
        json!({"input": nested(64)}),
    )
    .await?;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    // Past serde_json's own limit: still a 400 that names the limit.
    let (s, v) = send("POST", rows, json!({"rows": [{"v": nested(200)}]})).await?;
    assert_refused(s, &v, "body");
    Ok(())
}

#[tokio::test]
async fn a_webhook_body_past_the_depth_limit_is_refused_without_a_run() -> anyhow::Result<()> {
    let f = fixture(ServerConfig::default())?;
    let ed = Auth::mint(&f.state.store, Some(f.a.id), Role::Editor, "e")?.1;
    let hooks = format!("{BASE}/blocks/b1/webhooks");
    let (s, v) = call(&f.state, "POST", &hooks, Some(&ed), None).await?;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let path = v["path"].as_str().unwrap_or_default().to_string();
    let (s, v) = call(
        &f.state,
        "POST",
        &format!("{path}?wait=true"),
        None,
        Some(nested(65)),
    )
    .await?;
    assert_refused(s, &v, "input");
    let (s, v) = call(
        &f.state,
        "POST",
        &format!("{path}?wait=true"),
        None,
        Some(nested(64)),
    )
    .await?;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, runs) = call(
        &f.state,
        "GET",
        &format!("{BASE}/runs?block=b1"),
        Some(&ed),
        None,
    )
    .await?;
    assert_eq!(runs["runs"].as_array().map(Vec::len), Some(1), "{runs}");
    Ok(())
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
