//! One run's host: its workspace and grants, and the dispatch of each call
//! to a grant check and then to the gate (storage) or the fetcher.

use std::sync::Arc;

use quire_engine::{CallContext, Host, HostCall, HostError, HostReply, HostResult};
use quire_storage::{Filter, RowQuery, StorageError};
use serde_json::{json, Value};

use crate::grants::{Access, Checker, Denied};
use crate::staged;
use crate::Inner;

const GLUE: &str = include_str!("glue.js");

/// The host of one run (see [`crate::HostApi::session`]).
pub(crate) struct Session {
    pub(crate) inner: Arc<Inner>,
    pub(crate) check: Checker,
    /// This run's share of the storage pool.
    pub(crate) storage_lane: Arc<crate::pool::Lane>,
    /// This run's share of the fetch pool.
    pub(crate) fetch_lane: Arc<crate::pool::Lane>,
    /// The workspace quotas its writes are held to.
    pub(crate) quota: crate::SessionQuota,
    /// What `results.get` may read, and what it read.
    pub(crate) results: crate::results::ResultsCheck,
    /// A dry-run's staged writes; `None` for a run that commits.
    pub(crate) staging: Option<crate::staging::DryRun>,
}

fn denied(op: &str, d: Denied, check: &Checker) -> HostError {
    let have = check.grants.to_strings();
    let suspended = check.grants.suspended();
    let context = if !suspended.is_empty() {
        format!(
            "this block's grants {} are suspended: its source changed after an admin \
             approved them, and an admin must approve them again",
            suspended.join(", ")
        )
    } else if have.is_empty() {
        "this block has no grants".to_string()
    } else {
        format!("this block has {}", have.join(", "))
    };
    let message = format!(
        "{op} is denied: it needs the grant {} ({context})",
        d.needed
    );
    HostError::denied(message, Some(d.needed))
}

pub(crate) fn storage_error(op: &str, e: StorageError) -> HostError {
    match e {
        StorageError::NotFound { .. } => HostError::new("NotFound", format!("{op}: {e}")),
        StorageError::Invalid { .. } => HostError::new("TypeError", format!("{op}: {e}")),
        other => {
            tracing::error!(op, error = %other, "storage failed during a host call");
            HostError::new("InternalError", format!("{op}: storage failed: {other}"))
        }
    }
}

/// A dry-run's `fetch` may only read: writes to other systems cannot be
/// staged.
fn check_dry_run_method(args: &Value) -> Result<(), HostError> {
    let method = args.get("method").and_then(Value::as_str).unwrap_or("GET");
    let has_body = ["body", "body_base64"]
        .iter()
        .any(|k| args.get(k).is_some_and(|b| !b.is_null()));
    let reads = method.eq_ignore_ascii_case("GET") || method.eq_ignore_ascii_case("HEAD");
    if reads && !has_body {
        return Ok(());
    }
    if reads {
        // The glue refuses a GET with a body; this holds for a raw call.
        return Err(HostError::new(
            "TypeError",
            "fetch: a dry-run sends no request body: a write to another system cannot be staged and previewed",
        ));
    }
    let shown: String = method.chars().take(32).collect();
    Err(HostError::new(
        "TypeError",
        format!(
            "fetch: a dry-run allows only GET and HEAD requests, not {shown}: a write to another system cannot be staged and previewed"
        ),
    ))
}

/// Positional argument `i` of `op`.
fn arg(args: &Value, i: usize) -> &Value {
    args.get(i).unwrap_or(&Value::Null)
}

fn str_arg(op: &str, args: &Value, i: usize, name: &str) -> Result<String, HostError> {
    match arg(args, i) {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) if name == "id" => Ok(n.to_string()),
        other => Err(HostError::new(
            "TypeError",
            format!("{op}: {name} must be a string, got {}", type_name(other)),
        )),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null or undefined",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

pub(crate) type Job = Box<dyn FnOnce() -> HostResult + Send>;

/// Where a call's work runs.
enum Exec {
    /// On the calling worker thread, now (single-key reads).
    Inline,
    /// On the storage pool.
    Storage,
    /// On the fetch pool.
    Fetch,
}

impl Session {
    /// Check the grant and prepare the work; `Err` settles at once.
    fn prepare(&self, cx: &CallContext, call: HostCall) -> Result<(Exec, Job), HostError> {
        let HostCall { op, args } = call;
        let gate = self.inner.gate.clone();
        let c = &self.check;
        let d = |e: Denied| denied(&op, e, c);
        let s = |e: StorageError| storage_error(&op, e);
        let op2 = op.clone();
        let dry = self.staging.clone();
        // A staged call's context; `readable`: the run may read what it
        // writes (else a diff does not show what the write replaced).
        let staged_cx = |dry: crate::staging::DryRun, readable: bool| staged::Cx {
            gate: gate.clone(),
            dry,
            op: op.clone(),
            readable,
        };
        let job: Job = match op.as_str() {
            "doc.list" => {
                let p = c.doc(Access::Read).map_err(d)?;
                if let Some(dry) = dry {
                    return Ok((Exec::Storage, staged::doc_list(staged_cx(dry, true), p)));
                }
                Box::new(move || {
                    Ok(json!(gate
                        .list_docs(&p)
                        .map_err(|e| storage_error(&op2, e))?))
                })
            }
            "doc.get" => {
                let p = c.doc(Access::Read).map_err(d)?;
                let id = str_arg(&op, &args, 0, "id")?;
                if let Some(dry) = dry {
                    return Ok((Exec::Storage, staged::doc_get(staged_cx(dry, true), p, id)));
                }
                Box::new(move || {
                    Ok(json!(gate
                        .get_doc(&p, &id)
                        .map_err(|e| storage_error(&op2, e))?))
                })
            }
            "doc.update" => {
                let p = c.doc(Access::Write).map_err(d)?;
                let id = str_arg(&op, &args, 0, "id")?;
                let patch = arg(&args, 1).clone();
                if let Some(dry) = dry {
                    let readable = c.doc(Access::Read).is_ok();
                    staged::doc_update(staged_cx(dry, readable), (p, id, patch))
                } else {
                    Box::new(move || {
                        Ok(json!(gate
                            .update_doc(&p, &id, &patch)
                            .map_err(|e| storage_error(&op2, e))?))
                    })
                }
            }
            "db.query" => {
                let coll = str_arg(&op, &args, 0, "collection")?;
                let p = c.collection(&coll, Access::Read).map_err(d)?;
                let q = self.row_query(&op, &coll, arg(&args, 1), cx.limits.host_rows_per_query)?;
                let explicit = arg(&args, 1).get("limit").is_some();
                let max = cx.limits.host_rows_per_query as usize;
                let fetch: Job = match dry {
                    Some(dry) => staged::query(staged_cx(dry, true), p, q),
                    None => Box::new(move || {
                        Ok(Value::Array(
                            gate.query(&p, &q).map_err(|e| storage_error(&op2, e))?,
                        ))
                    }),
                };
                Box::new(move || {
                    let rows = match fetch()? {
                        Value::Array(rows) => rows,
                        _ => Vec::new(),
                    };
                    if !explicit && rows.len() > max {
                        return Err(HostError::new(
                            "RangeError",
                            format!("db.query('{coll}') matched more than the limit of {max} rows per query; pass {{limit}} (at most {max}) and page with {{after: lastRow.id}}"),
                        ));
                    }
                    Ok(Value::Array(rows))
                })
            }
            "db.insert" => {
                let coll = str_arg(&op, &args, 0, "collection")?;
                let p = c.collection(&coll, Access::Write).map_err(d)?;
                let row = arg(&args, 1).clone();
                match dry {
                    Some(dry) => {
                        let readable = c.collection(&coll, Access::Read).is_ok();
                        staged::insert(staged_cx(dry, readable), p, row)
                    }
                    None => {
                        Box::new(move || gate.insert(&p, &row).map_err(|e| storage_error(&op2, e)))
                    }
                }
            }
            "db.update" => {
                let coll = str_arg(&op, &args, 0, "collection")?;
                let p = c.collection(&coll, Access::Write).map_err(d)?;
                let id = str_arg(&op, &args, 1, "id")?;
                let patch = arg(&args, 2).clone();
                match dry {
                    Some(dry) => {
                        let readable = c.collection(&coll, Access::Read).is_ok();
                        staged::update(staged_cx(dry, readable), (p, id, patch))
                    }
                    None => Box::new(move || {
                        gate.update(&p, &id, &patch)
                            .map_err(|e| storage_error(&op2, e))
                    }),
                }
            }
            "db.delete" => {
                let coll = str_arg(&op, &args, 0, "collection")?;
                let p = c.collection(&coll, Access::Write).map_err(d)?;
                let id = str_arg(&op, &args, 1, "id")?;
                match dry {
                    Some(dry) => {
                        let readable = c.collection(&coll, Access::Read).is_ok();
                        staged::delete(staged_cx(dry, readable), p, id)
                    }
                    None => Box::new(move || {
                        Ok(json!(gate
                            .delete(&p, &id)
                            .map_err(|e| storage_error(&op2, e))?))
                    }),
                }
            }
            "kv.get" => {
                let p = c.kv(Access::Read).map_err(d)?;
                let key = str_arg(&op, &args, 0, "key")?;
                if let Some(dry) = dry {
                    return Ok((Exec::Storage, staged::kv_get(staged_cx(dry, true), p, key)));
                }
                Box::new(move || {
                    Ok(gate
                        .kv_get(&p, &key)
                        .map_err(|e| storage_error(&op2, e))?
                        .unwrap_or(Value::Null))
                })
            }
            "kv.set" => {
                let p = c.kv(Access::Write).map_err(d)?;
                let key = str_arg(&op, &args, 0, "key")?;
                let value = arg(&args, 1).clone();
                if let Some(dry) = dry {
                    let readable = c.kv(Access::Read).is_ok();
                    staged::kv_write(staged_cx(dry, readable), (p, key, Some(value)))
                } else {
                    Box::new(move || {
                        gate.kv_set(&p, &key, &value)
                            .map_err(|e| storage_error(&op2, e))?;
                        Ok(Value::Null)
                    })
                }
            }
            "kv.delete" => {
                let p = c.kv(Access::Write).map_err(d)?;
                let key = str_arg(&op, &args, 0, "key")?;
                match dry {
                    Some(dry) => {
                        let readable = c.kv(Access::Read).is_ok();
                        staged::kv_write(staged_cx(dry, readable), (p, key, None))
                    }
                    None => Box::new(move || {
                        Ok(json!(gate
                            .kv_delete(&p, &key)
                            .map_err(|e| storage_error(&op2, e))?))
                    }),
                }
            }
            "secrets.get" => {
                let name = str_arg(&op, &args, 0, "name")?;
                quire_storage::check_secret_name(&name).map_err(s)?;
                let p = c.secret(&name).map_err(d)?;
                Box::new(move || {
                    gate.secret(&p)
                        .map_err(|e| storage_error(&op2, e))?
                        .map(Value::String)
                        .ok_or_else(|| {
                            HostError::new(
                                "NotFound",
                                format!("secrets.get: secret '{}' not found", p.name),
                            )
                        })
                })
            }
            "results.get" => {
                let reference = str_arg(&op, &args, 0, "block")?;
                let p = self.results.check(&reference)?;
                let reads = self.results.reads.clone();
                // A block read twice in one run reads the same run twice
                // (and the newest-run search is made once).
                let known = reads.run_for(&p.block);
                Box::new(move || {
                    let found = match known {
                        Some(run) => gate.result_of_run(&p, &run).map(|v| v.map(|v| (run, v))),
                        None => gate.latest_result(&p),
                    }
                    .map_err(|e| storage_error(&op2, e))?;
                    let Some((run, value)) = found else {
                        return Err(HostError::new(
                            "NotFound",
                            format!("results.get('{reference}'): block {} has no result yet; run it first", p.block),
                        ));
                    };
                    reads.record(crate::results::ResultRead {
                        block: p.block.clone(),
                        run,
                    });
                    Ok(value)
                })
            }
            "fetch" => {
                if self.staging.is_some() {
                    check_dry_run_method(&args)?;
                }
                let inner = self.inner.clone();
                let check = self.check.clone();
                let budget = crate::fetch::Budget {
                    deadline: cx.deadline,
                    max_body: inner
                        .fetcher
                        .config
                        .max_response_bytes
                        .min(cx.limits.host_value_bytes),
                };
                return Ok((
                    Exec::Fetch,
                    Box::new(move || inner.fetcher.perform(&inner.gate, &check, &budget, args)),
                ));
            }
            other => {
                return Err(HostError::new(
                    "TypeError",
                    format!("unknown host call '{other}'"),
                ))
            }
        };
        let job = self.metered(&op, &args, job);
        // Point reads (one key) are microseconds: answering them on the
        // engine's worker saves two thread hand-offs.
        let point_read = matches!(op.as_str(), "kv.get" | "doc.get" | "secrets.get");
        if point_read && self.inner.inline_point_reads {
            return Ok((Exec::Inline, job));
        }
        Ok((Exec::Storage, job))
    }

    /// `job`, preceded by the storage quota check when `op` writes.
    fn metered(&self, op: &str, args: &Value, job: Job) -> Job {
        let Some(limit) = self.quota.storage_bytes else {
            return job;
        };
        if !matches!(op, "doc.update" | "db.insert" | "db.update" | "kv.set") {
            return job;
        }
        // The JSON size of the arguments estimates what the write adds.
        let adding = serde_json::to_string(args).map_or(0, |s| s.len() as u64);
        let inner = self.inner.clone();
        let ws = self.check.ws;
        let op = op.to_string();
        let dry = self.staging.clone();
        Box::new(move || {
            // A dry-run's staged records count as if written (a write over
            // the quota is refused now, not when the diff is applied), but
            // are not added to the meter: they store nothing.
            let checked = match &dry {
                Some(d) => inner.meter.peek(&ws, limit, adding + d.after_bytes()),
                None => inner.meter.check(&ws, limit, adding),
            };
            match checked {
                Ok(()) => {}
                Err(crate::MeterError::Quota(q)) => {
                    return Err(HostError::quota(format!("{op}: {q}")))
                }
                Err(crate::MeterError::Storage(e)) => return Err(storage_error(&op, e)),
            }
            job()
        })
    }

    fn row_query(
        &self,
        op: &str,
        coll: &str,
        opts: &Value,
        max_rows: u32,
    ) -> Result<RowQuery, HostError> {
        let bad = |m: String| HostError::new("TypeError", format!("{op}('{coll}'): {m}"));
        let (w, limit, after) = match opts {
            Value::Null => (None, None, None),
            Value::Object(o) => {
                if let Some(k) = o
                    .keys()
                    .find(|k| !matches!(k.as_str(), "where" | "limit" | "after"))
                {
                    return Err(bad(format!(
                        "unknown option '{k}' (use where, limit, after)"
                    )));
                }
                (o.get("where"), o.get("limit"), o.get("after"))
            }
            other => {
                return Err(bad(format!(
                    "options must be an object, got {}",
                    type_name(other)
                )))
            }
        };
        let filter = Filter::parse(w).map_err(|e| bad(e.to_string()))?;
        let limit = match limit {
            None | Some(Value::Null) => max_rows as usize + 1,
            Some(v) => {
                let n = v
                    .as_u64()
                    .ok_or_else(|| bad("limit must be a non-negative integer".into()))?;
                if n > max_rows as u64 {
                    return Err(HostError::new(
                        "RangeError",
                        format!("{op}('{coll}'): limit {n} exceeds the limit of {max_rows} rows per query"),
                    ));
                }
                n as usize
            }
        };
        let after = match after {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(bad("after must be a row id (string)".into())),
        };
        Ok(RowQuery {
            filter,
            limit,
            after,
        })
    }
}

impl Host for Session {
    fn module_source(&self) -> &'static str {
        GLUE
    }

    fn call(&self, cx: &CallContext, call: HostCall, reply: HostReply) {
        let span = tracing::debug_span!("host_call", run = %cx.run, workspace = %self.check.ws, op = %call.op);
        let _g = span.enter();
        match self.prepare(cx, call) {
            Err(e) => {
                tracing::debug!(name = %e.name, "host call refused");
                reply.send(Err(e));
            }
            Ok((Exec::Inline, job)) => reply.send(job()),
            Ok((exec, job)) => {
                let (lane, pool) = match exec {
                    Exec::Fetch => (&self.fetch_lane, &self.inner.fetch_pool),
                    _ => (&self.storage_lane, &self.inner.storage_pool),
                };
                let deadline = cx.deadline;
                lane.submit(
                    pool,
                    Box::new(move || {
                        // Work queued past the run's end is skipped.
                        if std::time::Instant::now() >= deadline {
                            reply.send(Err(HostError::new(
                                "TimeoutError",
                                "the run ended before this call started",
                            )));
                        } else {
                            reply.send(job());
                        }
                    }),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn a_dry_run_fetch_only_reads() {
        let ok = |v| super::check_dry_run_method(&v).is_ok();
        assert!(ok(json!({"url": "http://x/"})));
        assert!(ok(
            json!({"url": "http://x/", "method": "head", "body": null})
        ));
        for bad in [
            json!({"method": "POST"}),
            json!({"method": "GET", "body": "x"}),
            json!({"method": "get", "body_base64": "eA=="}),
            json!({"method": "DELETE"}),
            json!({"method": "GETX"}),
        ] {
            let e = super::check_dry_run_method(&bad).unwrap_err();
            assert!(e.message.contains("dry-run"), "{}", e.message);
        }
    }
}
