//! The `doc`, `db` and `kv` calls of a dry-run: each takes the same proof
//! as the committed call, reads through the run's staged writes
//! ([`crate::staging`]) and stages its own instead of writing.
//! Errors read as the committed calls' do.

use quire_storage::{merge_patch, RowQuery, StorageError, Target};
use serde_json::{json, Value};

use crate::gate::Gate;
use crate::grants::{CheckedCollection, CheckedDoc, CheckedKv};
use crate::session::{storage_error, Job};
use crate::staging::DryRun;

/// What every staged call works with.
pub(crate) struct Cx {
    pub(crate) gate: Gate,
    pub(crate) dry: DryRun,
    /// The call's name, for errors.
    pub(crate) op: String,
    /// The run holds the grant to read what this call writes.
    pub(crate) readable: bool,
}

fn not_found(op: &str, what: &'static str, id: String) -> quire_engine::HostError {
    storage_error(op, StorageError::NotFound { what, id })
}

fn row_target(p: &CheckedCollection, id: &str) -> Target {
    Target::Row {
        collection: p.name.clone(),
        id: id.to_string(),
    }
}

/// `doc.list`: stored summaries, with the titles the run staged.
pub(crate) fn doc_list(cx: Cx, p: CheckedDoc) -> Job {
    let Cx { gate, dry, op, .. } = cx;
    Box::new(move || {
        let st = dry.lock();
        let mut docs = gate.list_docs(&p).map_err(|e| storage_error(&op, e))?;
        for d in &mut docs {
            if let Some(staged) = st.doc(&d.id) {
                if let Some(t) = staged.get("title").and_then(Value::as_str) {
                    d.title = t.to_string();
                }
                if let Some(ms) = staged.get("updated_ms").and_then(Value::as_u64) {
                    d.updated_ms = ms;
                }
            }
        }
        Ok(json!(docs))
    })
}

/// A point read through the staging: what the run staged for `t`, else
/// what `read` finds stored; `null` when absent.
fn read_through(
    dry: DryRun,
    t: Target,
    op: String,
    read: impl FnOnce() -> Result<Option<Value>, StorageError> + Send + 'static,
) -> Job {
    Box::new(move || {
        let st = dry.lock();
        let v = st.view(&t, || read().map_err(|e| storage_error(&op, e)))?;
        Ok(v.now.unwrap_or(Value::Null))
    })
}

/// `doc.get`.
pub(crate) fn doc_get(cx: Cx, p: CheckedDoc, id: String) -> Job {
    let Cx { gate, dry, op, .. } = cx;
    let t = Target::Doc { id: id.clone() };
    read_through(dry, t, op, move || gate.doc_record(&p, &id))
}

/// `doc.update`: the patch applied as storage applies it, staged.
pub(crate) fn doc_update(cx: Cx, (p, id, patch): (CheckedDoc, String, Value)) -> Job {
    let Cx {
        gate,
        dry,
        op,
        readable,
    } = cx;
    Box::new(move || {
        let s = |e| storage_error(&op, e);
        quire_storage::check_doc_patch(&patch).map_err(s)?;
        let mut st = dry.lock();
        let t = Target::Doc { id: id.clone() };
        let v = st.view(&t, || gate.doc_record(&p, &id).map_err(s))?;
        let Some(cur) = v.now.clone() else {
            return Err(not_found(&op, "document", id));
        };
        let doc = quire_storage::patch_document(cur, &patch).map_err(s)?;
        let after = json!(doc);
        st.put(&dry.limits, (t, readable), v, Some(after.clone()))?;
        Ok(after)
    })
}

/// `db.query`: stored rows with the run's staged rows in their place,
/// in id order. Each staged row can hide at most one stored row, so asking
/// storage for that many more keeps the page full.
pub(crate) fn query(cx: Cx, p: CheckedCollection, q: RowQuery) -> Job {
    let Cx { gate, dry, op, .. } = cx;
    Box::new(move || {
        let st = dry.lock();
        let staged: Vec<(&str, Option<&Value>)> = st.rows_of(&p.name).collect();
        let mut wide = q.clone();
        wide.limit = q.limit.saturating_add(staged.len());
        let mut rows = gate.query(&p, &wide).map_err(|e| storage_error(&op, e))?;
        if staged.is_empty() {
            rows.truncate(q.limit);
            return Ok(Value::Array(rows));
        }
        let ids: std::collections::HashSet<&str> = staged.iter().map(|(id, _)| *id).collect();
        rows.retain(|r| {
            !r.get("id")
                .and_then(Value::as_str)
                .is_some_and(|id| ids.contains(id))
        });
        let after = q.after.as_deref().unwrap_or("");
        for (id, row) in &staged {
            let Some(row) = row else { continue };
            if (q.after.is_none() || *id > after) && q.filter.matches(row) {
                rows.push((*row).clone());
            }
        }
        rows.sort_by(|a, b| {
            let id = |r: &Value| {
                r.get("id")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            id(a).cmp(&id(b))
        });
        rows.truncate(q.limit);
        Ok(Value::Array(rows))
    })
}

/// `db.insert`.
pub(crate) fn insert(cx: Cx, p: CheckedCollection, row: Value) -> Job {
    let Cx {
        gate,
        dry,
        op,
        readable,
    } = cx;
    Box::new(move || {
        let s = |e| storage_error(&op, e);
        let (id, row) = gate.new_row(&p, &row).map_err(s)?;
        let mut st = dry.lock();
        let t = row_target(&p, &id);
        let v = st.view(&t, || gate.row_record(&p, &id).map_err(s))?;
        if v.now.is_some() {
            return Err(s(StorageError::Invalid {
                what: "row",
                reason: format!("a row with id '{id}' exists in '{}'", p.name),
            }));
        }
        st.put(&dry.limits, (t, readable), v, Some(row.clone()))?;
        Ok(row)
    })
}

/// `db.update`: the patch merged as storage merges it, staged.
pub(crate) fn update(cx: Cx, (p, id, patch): (CheckedCollection, String, Value)) -> Job {
    let Cx {
        gate,
        dry,
        op,
        readable,
    } = cx;
    Box::new(move || {
        let s = |e| storage_error(&op, e);
        if !patch.is_object() {
            return Err(s(StorageError::Invalid {
                what: "row patch",
                reason: "it must be an object".into(),
            }));
        }
        let mut st = dry.lock();
        let t = row_target(&p, &id);
        let v = st.view(&t, || gate.row_record(&p, &id).map_err(s))?;
        let Some(mut row) = v.now.clone() else {
            return Err(not_found(&op, "row", format!("{}/{id}", p.name)));
        };
        merge_patch(&mut row, &patch);
        row["id"] = Value::String(id);
        st.put(&dry.limits, (t, readable), v, Some(row.clone()))?;
        Ok(row)
    })
}

/// `db.delete`: whether the row existed (as the run sees it).
pub(crate) fn delete(cx: Cx, p: CheckedCollection, id: String) -> Job {
    let Cx {
        gate,
        dry,
        op,
        readable,
    } = cx;
    Box::new(move || {
        let mut st = dry.lock();
        let t = row_target(&p, &id);
        let v = st.view(&t, || {
            gate.row_record(&p, &id).map_err(|e| storage_error(&op, e))
        })?;
        let existed = v.now.is_some();
        if existed {
            st.put(&dry.limits, (t, readable), v, None)?;
        }
        Ok(json!(existed))
    })
}

/// `kv.get`.
pub(crate) fn kv_get(cx: Cx, p: CheckedKv, key: String) -> Job {
    let Cx { gate, dry, op, .. } = cx;
    let t = Target::Kv { key: key.clone() };
    read_through(dry, t, op, move || gate.kv_record(&p, &key))
}

/// `kv.set` (`value` `None`) or `kv.delete`: `null`, or whether the key
/// existed.
pub(crate) fn kv_write(cx: Cx, (p, key, value): (CheckedKv, String, Option<Value>)) -> Job {
    let Cx {
        gate,
        dry,
        op,
        readable,
    } = cx;
    Box::new(move || {
        let mut st = dry.lock();
        let t = Target::Kv { key: key.clone() };
        let v = st.view(&t, || {
            gate.kv_record(&p, &key).map_err(|e| storage_error(&op, e))
        })?;
        let existed = v.now.is_some();
        let setting = value.is_some();
        if setting || existed {
            st.put(&dry.limits, (t, readable), v, value)?;
        }
        Ok(if setting { Value::Null } else { json!(existed) })
    })
}
