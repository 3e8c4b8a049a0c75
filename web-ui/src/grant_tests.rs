//! Grants are an admin's decision on every path (see `approval.rs`): an
//! editor cannot create a granted block, and cannot repurpose a granted
//! block's grants by changing its source, running unsaved source under it,
//! or triggering it from a webhook (schedules start runs the same way).

use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::auth::{Auth, Role};
use crate::testkit::{call, fixture};
use crate::ServerConfig;

const BASE: &str = "/api/v1/workspaces/alpha";
const SECRET: &str = "s3cret-value-42";
const READ_SECRET: &str =
    "import { secrets } from 'quire'; export default await secrets.get('API_KEY');";

struct Tokens {
    admin: String,
    editor: String,
}

/// A fixture with secret `API_KEY` and block `keyed` granted `secret:API_KEY`
/// by an admin.
async fn keyed() -> anyhow::Result<(crate::testkit::Fixture, Tokens)> {
    let f = fixture(ServerConfig {
        rate_burst: 1e9,
        ..ServerConfig::default()
    })?;
    let t = Tokens {
        admin: Auth::mint(&f.state.store, Some(f.a.id), Role::Admin, "a")?.1,
        editor: Auth::mint(&f.state.store, Some(f.a.id), Role::Editor, "e")?.1,
    };
    let (status, v) = call(
        &f.state,
        "PUT",
        &format!("{BASE}/secrets/API_KEY"),
        Some(&t.admin),
        Some(json!({"value": SECRET})),
    )
    .await?;
    assert!(status.is_success(), "{v}");
    let (status, v) = call(
        &f.state,
        "POST",
        &format!("{BASE}/blocks"),
        Some(&t.admin),
        Some(
            json!({"id": "keyed", "source": "export default 1", "lang": "js",
                    "grants": ["secret:API_KEY"]}),
        ),
    )
    .await?;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    Ok((f, t))
}

/// The finished run `run`: its stored record.
async fn finished(f: &crate::testkit::Fixture, token: &str, run: &Value) -> anyhow::Result<Value> {
    let path = format!("{BASE}/runs/{}", run.as_str().unwrap_or_default());
    for _ in 0..500 {
        let (_, v) = call(&f.state, "GET", &path, Some(token), None).await?;
        if v["status"] != "running" && v["status"] != "queued" {
            return Ok(v);
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    anyhow::bail!("run {run} did not finish")
}

/// The result of run `v["run"]`, or its error.
async fn outcome(f: &crate::testkit::Fixture, token: &str, v: &Value) -> anyhow::Result<Value> {
    let r = finished(f, token, &v["run"]).await?;
    assert!(!r.to_string().contains(SECRET), "the secret leaked: {r}");
    Ok(r["events"]
        .as_array()
        .and_then(|e| {
            e.iter()
                .find(|e| e["type"] == "result" || e["type"] == "error")
        })
        .cloned()
        .unwrap_or(Value::Null))
}

async fn run_block(f: &crate::testkit::Fixture, token: &str) -> anyhow::Result<Value> {
    let (status, v) = call(
        &f.state,
        "POST",
        &format!("{BASE}/blocks/keyed/runs"),
        Some(token),
        Some(json!({})),
    )
    .await?;
    assert_eq!(status, StatusCode::ACCEPTED, "{v}");
    outcome(f, token, &v).await
}

async fn edit(
    f: &crate::testkit::Fixture,
    token: &str,
    source: &str,
) -> anyhow::Result<(StatusCode, Value)> {
    let path = format!("{BASE}/blocks/keyed");
    call(
        &f.state,
        "PUT",
        &path,
        Some(token),
        Some(json!({ "source": source })),
    )
    .await
}

async fn run_source(
    f: &crate::testkit::Fixture,
    token: &str,
    source: &str,
) -> anyhow::Result<(StatusCode, Value)> {
    let body = json!({"source": source, "lang": "js", "block": "keyed"});
    call(
        &f.state,
        "POST",
        &format!("{BASE}/runs"),
        Some(token),
        Some(body),
    )
    .await
}

fn is_suspended_denial(e: &Value) -> bool {
    e["type"] == "error"
        && e["kind"] == "capability_denied"
        && e["message"]
            .as_str()
            .is_some_and(|m| m.contains("suspended"))
}

#[tokio::test]
async fn an_editor_cannot_create_a_block_with_grants() -> anyhow::Result<()> {
    let (f, t) = keyed().await?;
    for grants in [
        json!(["secret:API_KEY"]),
        json!(["net:example.com"]),
        json!(["db:write:*"]),
        json!(["kv:read"]),
    ] {
        let (status, v) = call(
            &f.state,
            "POST",
            &format!("{BASE}/blocks"),
            Some(&t.editor),
            Some(json!({"id": "mine", "source": READ_SECRET, "lang": "js", "grants": grants})),
        )
        .await?;
        assert_eq!(status, StatusCode::FORBIDDEN, "{grants}: {v}");
        let msg = v["message"].as_str().unwrap_or_default();
        assert!(msg.contains("admin") && msg.contains("grants"), "{msg}");
        let (status, _) = call(
            &f.state,
            "GET",
            &format!("{BASE}/blocks/mine"),
            Some(&t.admin),
            None,
        )
        .await?;
        assert_eq!(status, StatusCode::NOT_FOUND, "nothing was stored");
    }
    // With no grants (or an empty list) an editor may create it.
    let (status, v) = call(
        &f.state,
        "POST",
        &format!("{BASE}/blocks"),
        Some(&t.editor),
        Some(json!({"id": "mine", "source": READ_SECRET, "lang": "js", "grants": []})),
    )
    .await?;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    Ok(())
}

#[tokio::test]
async fn an_editors_source_change_suspends_the_grants_until_an_admin_approves() -> anyhow::Result<()>
{
    let (f, t) = keyed().await?;
    let (status, v) = edit(&f, &t.editor, READ_SECRET).await?;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["grants_pending"], true);
    let (_, shown) = call(
        &f.state,
        "GET",
        &format!("{BASE}/blocks/keyed"),
        Some(&t.editor),
        None,
    )
    .await?;
    assert_eq!(shown["grants_pending"], true);
    assert_eq!(shown["grants"], json!(["secret:API_KEY"]));
    let e = run_block(&f, &t.editor).await?;
    assert!(is_suspended_denial(&e), "{e}");
    // A second editor change keeps them suspended, whoever starts the run.
    edit(&f, &t.editor, &format!("{READ_SECRET} // again")).await?;
    let e = run_block(&f, &t.admin).await?;
    assert!(is_suspended_denial(&e), "also when an admin starts it: {e}");
    // Putting the approved source back restores them.
    edit(&f, &t.editor, "export default 1").await?;
    let e = run_block(&f, &t.editor).await?;
    assert_eq!(e["value"], 1, "{e}");
    // An admin approves by setting the grants again, or by saving.
    edit(&f, &t.editor, READ_SECRET).await?;
    let (status, v) = call(
        &f.state,
        "PUT",
        &format!("{BASE}/blocks/keyed/grants"),
        Some(&t.admin),
        Some(json!({"grants": ["secret:API_KEY"]})),
    )
    .await?;
    assert_eq!(status, StatusCode::OK, "{v}");
    let r = finished(&f, &t.admin, &{
        let (_, v) = call(
            &f.state,
            "POST",
            &format!("{BASE}/blocks/keyed/runs"),
            Some(&t.admin),
            Some(json!({})),
        )
        .await?;
        v["run"].clone()
    })
    .await?;
    assert_eq!(r["status"], "ok", "approved: {r}");
    Ok(())
}

#[tokio::test]
async fn unsaved_source_gets_a_blocks_grants_only_if_approved_or_from_an_admin(
) -> anyhow::Result<()> {
    let (f, t) = keyed().await?;
    let (status, v) = run_source(&f, &t.editor, READ_SECRET).await?;
    assert_eq!(status, StatusCode::ACCEPTED, "{v}");
    let e = outcome(&f, &t.editor, &v).await?;
    assert!(is_suspended_denial(&e), "{e}");
    // The same text in another language is another source.
    let (_, v) = call(
        &f.state,
        "POST",
        &format!("{BASE}/runs"),
        Some(&t.editor),
        Some(json!({"source": "export default 1", "lang": "ts", "block": "keyed"})),
    )
    .await?;
    let r = finished(&f, &t.editor, &v["run"]).await?;
    assert_eq!(r["request"]["grants"], json!([]), "{r}");
    assert_eq!(r["request"]["grants_suspended"], json!(["secret:API_KEY"]));
    // The approved source keeps its grants for an editor.
    let (_, v) = run_source(&f, &t.editor, "export default 1").await?;
    let r = finished(&f, &t.editor, &v["run"]).await?;
    assert_eq!(r["request"]["grants"], json!(["secret:API_KEY"]), "{r}");
    // An admin's unsaved source gets them (admins set grants anyway).
    let (_, v) = run_source(
        &f,
        &t.admin,
        "import { secrets } from 'quire'; export default (await secrets.get('API_KEY')).length;",
    )
    .await?;
    let e = outcome(&f, &t.admin, &v).await?;
    assert_eq!(e["value"], SECRET.len(), "{e}");
    Ok(())
}

#[tokio::test]
async fn a_webhook_of_a_changed_block_runs_without_its_grants() -> anyhow::Result<()> {
    let (f, t) = keyed().await?;
    edit(&f, &t.editor, READ_SECRET).await?;
    let (status, v) = call(
        &f.state,
        "POST",
        &format!("{BASE}/blocks/keyed/webhooks"),
        Some(&t.editor),
        None,
    )
    .await?;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let path = v["path"].as_str().unwrap_or_default().to_string();
    let (status, v) = call(&f.state, "POST", &format!("{path}?wait=true"), None, None).await?;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["error"]["kind"], "capability_denied", "{v}");
    assert!(!v.to_string().contains(SECRET));
    Ok(())
}
