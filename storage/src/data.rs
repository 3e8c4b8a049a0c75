//! Workspace data a block can reach through the host API: documents,
//! database rows, kv and secrets.

use serde_json::{Map, Value};

use crate::backend::{Table, Tx};
use crate::error::{corrupt, invalid, Result, StorageError};
use crate::filter::Filter;
use crate::keys::{check_name, tail, Key};
use crate::model::{now_ms, DocSummary, Document, Secret, WorkspaceId};
use crate::store::{to_vec, Store};

/// Longest secret value accepted, in bytes.
pub const MAX_SECRET_BYTES: usize = 64 * 1024;

/// RFC 7396 JSON merge patch: objects merge, `null` deletes, anything else
/// replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(t) = target {
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

/// Check a document patch's shape: an object of `title`, `properties`,
/// `blocks`.
///
/// # Errors
/// [`StorageError::Invalid`] naming what is wrong.
pub fn check_doc_patch(patch: &Value) -> Result<()> {
    let Value::Object(p) = patch else {
        return Err(invalid("document patch", "it must be an object"));
    };
    if let Some(k) = p
        .keys()
        .find(|k| !matches!(k.as_str(), "title" | "properties" | "blocks"))
    {
        return Err(invalid(
            "document patch",
            format!("unknown field '{k}' (a patch may set title, properties, blocks)"),
        ));
    }
    Ok(())
}

/// Document `doc` (as stored) with `patch` applied: `title` replaces,
/// `properties` merges (RFC 7396: `null` deletes), `blocks` replaces the
/// body; `updated_ms` becomes now (the one copy of this logic, shared by
/// [`Store::update_doc`] and dry-runs).
///
/// # Errors
/// [`StorageError::Invalid`] for a patch with other fields or wrong types.
pub fn patch_document(mut doc: Value, patch: &Value) -> Result<Document> {
    check_doc_patch(patch)?;
    if let Some(t) = patch.get("title") {
        if !t.is_string() {
            return Err(invalid("document patch", "title must be a string"));
        }
        doc["title"] = t.clone();
    }
    if let Some(props) = patch.get("properties") {
        if !props.is_object() {
            return Err(invalid("document patch", "properties must be an object"));
        }
        merge_patch(&mut doc["properties"], props);
    }
    if let Some(b) = patch.get("blocks") {
        doc["blocks"] = b.clone();
    }
    let was = doc.get("updated_ms").and_then(Value::as_u64).unwrap_or(0);
    doc["updated_ms"] = Value::from(now_ms().max(was + 1));
    serde_json::from_value(doc).map_err(|e| invalid("document patch", e.to_string()))
}

fn parse<T: serde::de::DeserializeOwned>(what: &'static str, v: &[u8]) -> Result<T> {
    crate::error::decode(what, v)
}

/// What a row query asks for.
#[derive(Debug, Clone, Default)]
pub struct RowQuery {
    /// Conditions every returned row meets.
    pub filter: Filter,
    /// Most rows to return.
    pub limit: usize,
    /// Start after this row id (paging).
    pub after: Option<String>,
}

impl Store {
    // -------------------------------------------------------------- documents

    /// Every document of the workspace (id, title, last change).
    pub fn list_docs(&self, ws: &WorkspaceId) -> Result<Vec<DocSummary>> {
        let mut out = Vec::new();
        self.scan_json(
            Table::Docs,
            &Key::ws(ws).prefix(),
            "document",
            |_, d: Document| {
                out.push(DocSummary {
                    id: d.id,
                    title: d.title,
                    updated_ms: d.updated_ms,
                });
                true
            },
        )?;
        Ok(out)
    }

    /// One document.
    pub fn get_doc(&self, ws: &WorkspaceId, id: &str) -> Result<Option<Document>> {
        check_name("document id", id)?;
        self.get_json(Table::Docs, &Key::ws(ws).last(id.as_bytes()), "document")
    }

    /// Create or replace a document (an empty id gets a fresh one).
    pub fn put_doc(&self, ws: &WorkspaceId, doc: Document) -> Result<Document> {
        self.put_doc_if(ws, doc, None)
    }

    /// Create or replace a document if its stored version (`updated_ms`,
    /// 0 when it does not exist) is `expect`; `None` skips the check.
    ///
    /// # Errors
    /// [`StorageError::Stale`] when the stored version differs.
    pub fn put_doc_if(
        &self,
        ws: &WorkspaceId,
        mut doc: Document,
        expect: Option<u64>,
    ) -> Result<Document> {
        if doc.id.is_empty() {
            doc.id = self.new_id()?;
        }
        check_name("document id", &doc.id)?;
        let mut v = serde_json::to_value(&doc).map_err(|e| corrupt("document", e))?;
        let key = Key::ws(ws).last(doc.id.as_bytes());
        doc.updated_ms =
            self.put_versioned(Table::Docs, &key, "document", &doc.id, expect, &mut v)?;
        Ok(doc)
    }

    /// Apply `patch` to a document in one atomic read-modify-write:
    /// `title` replaces, `properties` merges (RFC 7396: `null` deletes),
    /// `blocks` replaces the body.
    ///
    /// # Errors
    /// [`StorageError::NotFound`], or [`StorageError::Invalid`] for a
    /// patch with other fields or wrong types.
    pub fn update_doc(&self, ws: &WorkspaceId, id: &str, patch: &Value) -> Result<Document> {
        check_name("document id", id)?;
        check_doc_patch(patch)?;
        let key = Key::ws(ws).last(id.as_bytes());
        let mut out = None;
        self.b.write(&mut |tx: &mut dyn Tx| {
            let Some(cur) = tx.get(Table::Docs, &key)? else {
                return Err(StorageError::NotFound {
                    what: "document",
                    id: id.to_string(),
                });
            };
            let typed = patch_document(parse("document", &cur)?, patch)?;
            tx.put(Table::Docs, &key, &to_vec(&typed)?)?;
            out = Some(typed);
            Ok(())
        })?;
        out.ok_or_else(|| StorageError::NotFound {
            what: "document",
            id: id.to_string(),
        })
    }

    /// Delete a document; whether it existed.
    pub fn delete_doc(&self, ws: &WorkspaceId, id: &str) -> Result<bool> {
        check_name("document id", id)?;
        let key = Key::ws(ws).last(id.as_bytes());
        self.remove_key(Table::Docs, &key)
    }

    // ------------------------------------------------------------------ rows

    fn coll_prefix(ws: &WorkspaceId, coll: &str) -> Result<Vec<u8>> {
        check_name("collection name", coll)?;
        Ok(Key::ws(ws).seg(coll.as_bytes()).prefix())
    }

    /// Rows of `coll` matching `q.filter`, in id order, at most `q.limit`.
    /// Each row carries its `id`.
    pub fn query_rows(&self, ws: &WorkspaceId, coll: &str, q: &RowQuery) -> Result<Vec<Value>> {
        let prefix = Self::coll_prefix(ws, coll)?;
        let after = q.after.as_ref().map(|a| {
            let mut k = prefix.clone();
            k.extend_from_slice(a.as_bytes());
            k
        });
        let mut out = Vec::new();
        if q.limit == 0 {
            return Ok(out);
        }
        self.b
            .scan(Table::Rows, &prefix, after.as_deref(), &mut |_, v| {
                let row: Value = parse("row", v)?;
                if q.filter.matches(&row) {
                    out.push(row);
                }
                Ok(out.len() < q.limit)
            })?;
        Ok(out)
    }

    /// Names of the collections of `ws` that hold rows, in name order.
    /// One seek per collection: after a collection's first row the scan
    /// skips past every key of it (row ids are text, so no key of it has
    /// a 0xFF byte where the id starts).
    pub fn list_collections(&self, ws: &WorkspaceId) -> Result<Vec<String>> {
        let base = Key::ws(ws).prefix();
        let mut out = Vec::new();
        let mut after: Option<Vec<u8>> = None;
        loop {
            let mut found: Option<Vec<u8>> = None;
            self.b
                .scan(Table::Rows, &base, after.as_deref(), &mut |k, _| {
                    found = Some(k.to_vec());
                    Ok(false)
                })?;
            let Some(key) = found else { break };
            let rest = key.get(base.len()..).unwrap_or_default();
            let Some(len) = rest
                .get(..4)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map(|b| u32::from_be_bytes(b) as usize)
            else {
                break;
            };
            let Some(name) = rest.get(4..4 + len) else {
                break;
            };
            out.push(String::from_utf8_lossy(name).into_owned());
            let mut skip = key[..base.len() + 4 + len].to_vec();
            skip.push(0xFF);
            after = Some(skip);
        }
        // Keys sort by name length first (segments are length-prefixed).
        out.sort();
        Ok(out)
    }

    /// Number of rows in `coll`.
    pub fn count_rows(&self, ws: &WorkspaceId, coll: &str) -> Result<u64> {
        let prefix = Self::coll_prefix(ws, coll)?;
        let mut n = 0;
        self.b.scan(Table::Rows, &prefix, None, &mut |_, _| {
            n += 1;
            Ok(true)
        })?;
        Ok(n)
    }

    /// Row `row` as [`Store::insert_rows`] would store it: its id (a
    /// fresh one when it has none) and the row carrying it.
    ///
    /// # Errors
    /// [`StorageError::Invalid`] when it is not an object or its id is not
    /// a string or number of an accepted length.
    pub fn prepare_row(&self, row: &Value) -> Result<(String, Value)> {
        let Value::Object(map) = row else {
            return Err(invalid("row", "it must be an object"));
        };
        let id = match map.get("id") {
            None | Some(Value::Null) => self.new_id()?,
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            Some(_) => return Err(invalid("row", "id must be a string or a number")),
        };
        check_name("row id", &id)?;
        let mut map = map.clone();
        map.insert("id".into(), Value::String(id.clone()));
        Ok((id, Value::Object(map)))
    }

    /// Insert rows into `coll` in one atomic write. A row without `id` gets
    /// a fresh one. Returns the stored rows.
    ///
    /// # Errors
    /// [`StorageError::Invalid`] when a row is not an object or its id
    /// exists already.
    pub fn insert_rows(&self, ws: &WorkspaceId, coll: &str, rows: &[Value]) -> Result<Vec<Value>> {
        let prefix = Self::coll_prefix(ws, coll)?;
        let mut prepared = Vec::with_capacity(rows.len());
        for r in rows {
            let (id, row) = self.prepare_row(r)?;
            let mut key = prefix.clone();
            key.extend_from_slice(id.as_bytes());
            prepared.push((id, key, to_vec(&row)?, row));
        }
        self.b.write(&mut |tx| {
            for (id, key, bytes, _) in &prepared {
                if tx.get(Table::Rows, key)?.is_some() {
                    return Err(invalid(
                        "row",
                        format!("a row with id '{id}' exists in '{coll}'"),
                    ));
                }
                tx.put(Table::Rows, key, bytes)?;
            }
            Ok(())
        })?;
        Ok(prepared.into_iter().map(|(_, _, _, r)| r).collect())
    }

    /// Merge `patch` (RFC 7396) into row `id` atomically; `id` itself
    /// cannot change. Returns the updated row.
    pub fn update_row(
        &self,
        ws: &WorkspaceId,
        coll: &str,
        id: &str,
        patch: &Value,
    ) -> Result<Value> {
        check_name("row id", id)?;
        if !patch.is_object() {
            return Err(invalid("row patch", "it must be an object"));
        }
        let mut key = Self::coll_prefix(ws, coll)?;
        key.extend_from_slice(id.as_bytes());
        let mut out = None;
        self.b.write(&mut |tx| {
            let Some(cur) = tx.get(Table::Rows, &key)? else {
                return Err(StorageError::NotFound {
                    what: "row",
                    id: format!("{coll}/{id}"),
                });
            };
            let mut row: Value = parse("row", &cur)?;
            merge_patch(&mut row, patch);
            row["id"] = Value::String(id.to_string());
            tx.put(Table::Rows, &key, &to_vec(&row)?)?;
            out = Some(row);
            Ok(())
        })?;
        out.ok_or_else(|| StorageError::NotFound {
            what: "row",
            id: id.to_string(),
        })
    }

    /// Delete row `id`; whether it existed.
    pub fn delete_row(&self, ws: &WorkspaceId, coll: &str, id: &str) -> Result<bool> {
        check_name("row id", id)?;
        let mut key = Self::coll_prefix(ws, coll)?;
        key.extend_from_slice(id.as_bytes());
        self.remove_key(Table::Rows, &key)
    }

    // -------------------------------------------------------------------- kv

    /// The value at `key`.
    pub fn kv_get(&self, ws: &WorkspaceId, key: &str) -> Result<Option<Value>> {
        check_name("kv key", key)?;
        self.get_json(Table::Kv, &Key::ws(ws).last(key.as_bytes()), "kv value")
    }

    /// Set `key` to `value`.
    pub fn kv_set(&self, ws: &WorkspaceId, key: &str, value: &Value) -> Result<()> {
        check_name("kv key", key)?;
        let k = Key::ws(ws).last(key.as_bytes());
        let v = to_vec(value)?;
        self.b.write(&mut |tx| tx.put(Table::Kv, &k, &v))
    }

    /// Delete `key`; whether it existed.
    pub fn kv_delete(&self, ws: &WorkspaceId, key: &str) -> Result<bool> {
        check_name("kv key", key)?;
        let k = Key::ws(ws).last(key.as_bytes());
        self.remove_key(Table::Kv, &k)
    }

    /// Keys starting with `prefix`, in order, at most `limit`.
    pub fn kv_keys(&self, ws: &WorkspaceId, prefix: &str, limit: usize) -> Result<Vec<String>> {
        let base = Key::ws(ws).prefix();
        let p = Key::ws(ws).raw(prefix.as_bytes()).prefix();
        let mut out = Vec::new();
        self.b.scan(Table::Kv, &p, None, &mut |k, _| {
            out.push(tail(k, base.len()));
            Ok(out.len() < limit)
        })?;
        Ok(out)
    }

    // --------------------------------------------------------------- secrets

    /// Store a secret, encrypted, with the hosts it may be sent to.
    /// Names are 1-128 of `A-Z`, `0-9`, `_`.
    pub fn put_secret(
        &self,
        ws: &WorkspaceId,
        name: &str,
        value: &str,
        hosts: &[String],
    ) -> Result<()> {
        check_secret_name(name)?;
        if value.len() > MAX_SECRET_BYTES {
            return Err(invalid(
                "secret value",
                format!("it exceeds {MAX_SECRET_BYTES} bytes"),
            ));
        }
        let key = Key::ws(ws).last(name.as_bytes());
        let sealed = self.key.seal(&key, value.as_bytes())?;
        let rec = serde_json::json!({ "sealed": sealed, "hosts": hosts });
        let v = to_vec(&rec)?;
        self.b.write(&mut |tx| tx.put(Table::Secrets, &key, &v))
    }

    /// A secret, decrypted.
    pub fn get_secret(&self, ws: &WorkspaceId, name: &str) -> Result<Option<Secret>> {
        check_secret_name(name)?;
        let key = Key::ws(ws).last(name.as_bytes());
        let Some(rec) = self.get_json::<SealedSecret>(Table::Secrets, &key, "secret")? else {
            return Ok(None);
        };
        let plain = self.key.open(name, &key, &rec.sealed)?;
        let value = String::from_utf8(plain).map_err(|_| StorageError::Decrypt(name.into()))?;
        Ok(Some(Secret {
            value,
            hosts: rec.hosts,
        }))
    }

    /// Names of the workspace's secrets with their hosts (no values).
    pub fn list_secrets(&self, ws: &WorkspaceId) -> Result<Vec<(String, Vec<String>)>> {
        let base = Key::ws(ws).prefix();
        let mut out = Vec::new();
        self.scan_json(Table::Secrets, &base, "secret", |k, s: SealedSecret| {
            out.push((tail(k, base.len()), s.hosts));
            true
        })?;
        Ok(out)
    }

    /// Delete a secret; whether it existed.
    pub fn delete_secret(&self, ws: &WorkspaceId, name: &str) -> Result<bool> {
        check_secret_name(name)?;
        let key = Key::ws(ws).last(name.as_bytes());
        self.remove_key(Table::Secrets, &key)
    }
}

#[derive(serde::Deserialize)]
struct SealedSecret {
    sealed: Vec<u8>,
    #[serde(default)]
    hosts: Vec<String>,
}

/// Check a secret name: 1-128 characters of `A-Z`, `0-9` and `_`.
pub fn check_secret_name(name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > 128
        || !name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(invalid(
            "secret name",
            format!(
                "'{}' must be 1-128 characters of A-Z, 0-9 and _",
                name.chars().take(140).collect::<String>()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::WorkspaceId;
    use serde_json::json;

    #[test]
    fn collections_are_listed_by_name_one_seek_each_and_per_workspace() {
        let s = crate::testing::store().unwrap();
        let (a, b) = (
            WorkspaceId::from_bytes([1; 16]),
            WorkspaceId::from_bytes([2; 16]),
        );
        assert!(s.list_collections(&a).unwrap().is_empty());
        // Names that sort as prefixes of one another, and a longer one first.
        for (coll, n) in [("tasks", 3), ("t", 2), ("tasks_archive", 1), ("é", 1)] {
            let rows: Vec<_> = (0..n).map(|i| json!({"id": format!("r{i}")})).collect();
            s.insert_rows(&a, coll, &rows).unwrap();
        }
        s.insert_rows(&b, "other", &[json!({"x": 1})]).unwrap();
        assert_eq!(
            s.list_collections(&a).unwrap(),
            ["t", "tasks", "tasks_archive", "é"]
        );
        assert_eq!(s.list_collections(&b).unwrap(), ["other"]);
        s.delete_row(&a, "t", "r0").unwrap();
        s.delete_row(&a, "t", "r1").unwrap();
        assert_eq!(
            s.list_collections(&a).unwrap(),
            ["tasks", "tasks_archive", "é"]
        );
    }
}
