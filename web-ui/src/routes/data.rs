//! Documents, database rows and secrets.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, patch};
use axum::{Json, Router};
use quire_storage::{DocBlock, Document, RowQuery};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{in_workspace, Body};
use crate::auth::{Principal, Role};
use crate::error::{ApiError, ApiResult};
use crate::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/workspaces/{ws}/docs", get(list_docs).post(create_doc))
        .route(
            "/workspaces/{ws}/docs/{doc}",
            get(get_doc)
                .put(put_doc)
                .patch(patch_doc)
                .delete(delete_doc),
        )
        .route("/workspaces/{ws}/docs/{doc}/graph", get(doc_graph))
        .route("/workspaces/{ws}/db", get(list_collections))
        .route(
            "/workspaces/{ws}/db/{coll}/rows",
            get(query_rows).post(insert_rows),
        )
        .route(
            "/workspaces/{ws}/db/{coll}/rows/{id}",
            patch(update_row).delete(delete_row),
        )
        .route("/workspaces/{ws}/secrets", get(list_secrets))
        .route(
            "/workspaces/{ws}/secrets/{name}",
            axum::routing::put(put_secret).delete(delete_secret),
        )
}

async fn list_docs(
    State(s): State<AppState>,
    who: Principal,
    Path(ws): Path<String>,
) -> ApiResult<Json<Value>> {
    let docs = in_workspace(&s, who, ws, Role::Viewer, move |store, w| {
        Ok(store.list_docs(&w.id)?)
    })
    .await?;
    Ok(Json(json!({ "docs": docs })))
}

async fn get_doc(
    State(s): State<AppState>,
    who: Principal,
    Path((ws, doc)): Path<(String, String)>,
) -> ApiResult<Json<Document>> {
    in_workspace(&s, who, ws, Role::Viewer, move |store, w| {
        store
            .get_doc(&w.id, &doc)?
            .map(Json)
            .ok_or_else(|| ApiError::not_found("document", doc))
    })
    .await
}

/// The document's dependency graph: which block reads which (from a
/// static scan), the order to run them in or the cycle that prevents
/// one, and why each block's latest output is stale (see
/// `quire_service::dataflow`).
async fn doc_graph(
    State(s): State<AppState>,
    who: Principal,
    Path((ws, doc)): Path<(String, String)>,
) -> ApiResult<Json<quire_service::dataflow::Graph>> {
    let w = in_workspace(&s, who, ws, Role::Viewer, |_, w| Ok(w.id)).await?;
    Ok(Json(
        quire_service::dataflow::graph(&s.store, w, doc).await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DocBody {
    title: String,
    #[serde(default)]
    properties: Map<String, Value>,
    #[serde(default)]
    blocks: Vec<DocBlock>,
    #[serde(default)]
    id: Option<String>,
    /// For PUT: the `updated_ms` the edit is based on (409 if stale).
    #[serde(default)]
    base_updated_ms: Option<u64>,
}

fn check_doc(d: &DocBody) -> ApiResult<()> {
    if d.title.len() > 1000 {
        return Err(ApiError::field("title", "at most 1000 bytes"));
    }
    // A block reads a document as one value: the document and its
    // properties object are two levels around each property.
    for (k, v) in &d.properties {
        if quire_engine::value_depth(v) + 2 > quire_engine::MAX_VALUE_DEPTH {
            let what = format!("the document (at properties.{k})");
            return Err(ApiError::field("properties", quire_engine::too_deep(&what)));
        }
    }
    for (i, b) in d.blocks.iter().enumerate() {
        if let DocBlock::Code { lang, source, .. } = b {
            super::blocks::check_lang(lang)
                .map_err(|e| ApiError::field(format!("blocks[{i}].lang"), e.to_string()))?;
            super::blocks::check_source(source)
                .map_err(|e| ApiError::field(format!("blocks[{i}].source"), e.to_string()))?;
        }
    }
    Ok(())
}

async fn create_doc(
    State(s): State<AppState>,
    who: Principal,
    Path(ws): Path<String>,
    Body(d): Body<DocBody>,
) -> ApiResult<(StatusCode, Json<Document>)> {
    check_doc(&d)?;
    let doc = in_workspace(&s, who, ws, Role::Editor, move |store, w| {
        let expect = d.id.as_ref().map(|_| 0);
        let doc = Document {
            id: d.id.unwrap_or_default(),
            title: d.title,
            properties: d.properties,
            blocks: d.blocks,
            updated_ms: 0,
        };
        Ok(store.put_doc_if(&w.id, doc, expect)?)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(doc)))
}

async fn put_doc(
    State(s): State<AppState>,
    who: Principal,
    Path((ws, id)): Path<(String, String)>,
    Body(d): Body<DocBody>,
) -> ApiResult<Json<Document>> {
    check_doc(&d)?;
    if d.id.as_ref().is_some_and(|i| *i != id) {
        return Err(ApiError::field("id", "does not match the path"));
    }
    in_workspace(&s, who, ws, Role::Editor, move |store, w| {
        let doc = Document {
            id,
            title: d.title,
            properties: d.properties,
            blocks: d.blocks,
            updated_ms: 0,
        };
        Ok(Json(store.put_doc_if(&w.id, doc, d.base_updated_ms)?))
    })
    .await
}

async fn patch_doc(
    State(s): State<AppState>,
    who: Principal,
    Path((ws, id)): Path<(String, String)>,
    Body(p): Body<Value>,
) -> ApiResult<Json<Document>> {
    super::within_depth("body", &p, 0)?;
    in_workspace(&s, who, ws, Role::Editor, move |store, w| {
        Ok(Json(store.update_doc(&w.id, &id, &p)?))
    })
    .await
}

async fn delete_doc(
    State(s): State<AppState>,
    who: Principal,
    Path((ws, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    in_workspace(&s, who, ws, Role::Editor, move |store, w| {
        if store.delete_doc(&w.id, &id)? {
            Ok(StatusCode::NO_CONTENT)
        } else {
            Err(ApiError::not_found("document", id))
        }
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RowsQuery {
    /// A JSON `where` filter, as blocks pass to `db.query`.
    #[serde(default, rename = "where")]
    filter: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    after: Option<String>,
}

async fn query_rows(
    State(s): State<AppState>,
    who: Principal,
    Path((ws, coll)): Path<(String, String)>,
    q: Result<Query<RowsQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(q) = q.map_err(|e| ApiError::field("query", e.body_text()))?;
    let filter = match &q.filter {
        Some(f) => Some(
            serde_json::from_str::<Value>(f)
                .map_err(|e| match e.to_string() {
                    m if m.contains("recursion limit") => {
                        ApiError::field("where", quire_engine::too_deep("where"))
                    }
                    m => ApiError::field("where", format!("not valid JSON: {m}")),
                })
                .and_then(|v| super::within_depth("where", &v, 0).map(|()| v))?,
        ),
        None => None,
    };
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > 1000 {
        return Err(ApiError::field("limit", "must be 1-1000"));
    }
    let rows = in_workspace(&s, who, ws, Role::Viewer, move |store, w| {
        let filter = quire_storage::Filter::parse(filter.as_ref())
            .map_err(|e| ApiError::field("where", e.to_string()))?;
        let query = RowQuery {
            filter,
            limit,
            after: q.after,
        };
        Ok(store.query_rows(&w.id, &coll, &query)?)
    })
    .await?;
    Ok(Json(json!({ "rows": rows })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewRows {
    rows: Vec<Value>,
}

async fn insert_rows(
    State(s): State<AppState>,
    who: Principal,
    Path((ws, coll)): Path<(String, String)>,
    Body(b): Body<NewRows>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    if b.rows.is_empty() || b.rows.len() > 1000 {
        return Err(ApiError::field("rows", "give 1-1000 rows"));
    }
    if let Some(i) = b.rows.iter().position(|r| !r.is_object()) {
        return Err(ApiError::field(
            format!("rows[{i}]"),
            "a row must be an object",
        ));
    }
    for (i, r) in b.rows.iter().enumerate() {
        super::within_depth(&format!("rows[{i}]"), r, 0)?;
    }
    let rows = in_workspace(&s, who, ws, Role::Editor, move |store, w| {
        Ok(store.insert_rows(&w.id, &coll, &b.rows)?)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(json!({ "rows": rows }))))
}

async fn update_row(
    State(s): State<AppState>,
    who: Principal,
    Path((ws, coll, id)): Path<(String, String, String)>,
    Body(patch): Body<Value>,
) -> ApiResult<Json<Value>> {
    super::within_depth("body", &patch, 0)?;
    if !patch.is_object() {
        return Err(ApiError::field("body", "a row patch must be an object"));
    }
    in_workspace(&s, who, ws, Role::Editor, move |store, w| {
        Ok(Json(store.update_row(&w.id, &coll, &id, &patch)?))
    })
    .await
}

async fn delete_row(
    State(s): State<AppState>,
    who: Principal,
    Path((ws, coll, id)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    in_workspace(&s, who, ws, Role::Editor, move |store, w| {
        if store.delete_row(&w.id, &coll, &id)? {
            Ok(StatusCode::NO_CONTENT)
        } else {
            Err(ApiError::not_found("row", id))
        }
    })
    .await
}

/// The collections that hold rows (for the grant picker and the API).
async fn list_collections(
    State(s): State<AppState>,
    who: Principal,
    Path(ws): Path<String>,
) -> ApiResult<Json<Value>> {
    let names = in_workspace(&s, who, ws, Role::Viewer, move |store, w| {
        Ok(store.list_collections(&w.id)?)
    })
    .await?;
    Ok(Json(json!({ "collections": names })))
}

async fn list_secrets(
    State(s): State<AppState>,
    who: Principal,
    Path(ws): Path<String>,
) -> ApiResult<Json<Value>> {
    let list = in_workspace(&s, who, ws, Role::Admin, move |store, w| {
        Ok(store.list_secrets(&w.id)?)
    })
    .await?;
    let names: Vec<Value> = list
        .into_iter()
        .map(|(name, hosts)| json!({"name": name, "hosts": hosts}))
        .collect();
    Ok(Json(json!({ "secrets": names })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretBody {
    value: String,
    #[serde(default)]
    hosts: Vec<String>,
}

/// Set a secret. Its value is write-only: no route returns it.
async fn put_secret(
    State(s): State<AppState>,
    who: Principal,
    Path((ws, name)): Path<(String, String)>,
    Body(b): Body<SecretBody>,
) -> ApiResult<StatusCode> {
    quire_storage::check_secret_name(&name).map_err(|e| ApiError::field("name", e.to_string()))?;
    in_workspace(&s, who, ws, Role::Admin, move |store, w| {
        store.put_secret(&w.id, &name, &b.value, &b.hosts)?;
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}

async fn delete_secret(
    State(s): State<AppState>,
    who: Principal,
    Path((ws, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    in_workspace(&s, who, ws, Role::Admin, move |store, w| {
        if store.delete_secret(&w.id, &name)? {
            Ok(StatusCode::NO_CONTENT)
        } else {
            Err(ApiError::not_found("secret", name))
        }
    })
    .await
}
