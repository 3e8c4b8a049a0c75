//! The only path from a host call to storage: every method takes the proof
//! a grant check returned, and reads the workspace from the proof, never
//! from anything the block passed.

use quire_storage::{DocSummary, Document, RowQuery, StorageError, Store, Target};
use serde_json::Value;

use crate::grants::{Access, CheckedCollection, CheckedDoc, CheckedKv, CheckedSecret};
use crate::net::CheckedNet;

/// Storage behind proofs.
#[derive(Clone, Debug)]
pub(crate) struct Gate {
    store: Store,
}

fn write_proof(a: Access) -> Result<(), StorageError> {
    match a {
        Access::Write => Ok(()),
        Access::Read => Err(StorageError::Invalid {
            what: "host call",
            reason: "a read grant was offered for a write (a bug in quire)".into(),
        }),
    }
}

impl Gate {
    pub(crate) fn new(store: Store) -> Self {
        Self { store }
    }

    pub(crate) fn list_docs(&self, p: &CheckedDoc) -> Result<Vec<DocSummary>, StorageError> {
        self.store.list_docs(&p.ws)
    }

    pub(crate) fn get_doc(
        &self,
        p: &CheckedDoc,
        id: &str,
    ) -> Result<Option<Document>, StorageError> {
        self.store.get_doc(&p.ws, id)
    }

    pub(crate) fn update_doc(
        &self,
        p: &CheckedDoc,
        id: &str,
        patch: &Value,
    ) -> Result<Document, StorageError> {
        write_proof(p.access)?;
        self.store.update_doc(&p.ws, id, patch)
    }

    pub(crate) fn query(
        &self,
        p: &CheckedCollection,
        q: &RowQuery,
    ) -> Result<Vec<Value>, StorageError> {
        self.store.query_rows(&p.ws, &p.name, q)
    }

    pub(crate) fn insert(&self, p: &CheckedCollection, row: &Value) -> Result<Value, StorageError> {
        write_proof(p.access)?;
        let mut rows = self
            .store
            .insert_rows(&p.ws, &p.name, std::slice::from_ref(row))?;
        rows.pop().ok_or_else(|| StorageError::NotFound {
            what: "row",
            id: String::new(),
        })
    }

    pub(crate) fn update(
        &self,
        p: &CheckedCollection,
        id: &str,
        patch: &Value,
    ) -> Result<Value, StorageError> {
        write_proof(p.access)?;
        self.store.update_row(&p.ws, &p.name, id, patch)
    }

    pub(crate) fn delete(&self, p: &CheckedCollection, id: &str) -> Result<bool, StorageError> {
        write_proof(p.access)?;
        self.store.delete_row(&p.ws, &p.name, id)
    }

    pub(crate) fn kv_get(&self, p: &CheckedKv, key: &str) -> Result<Option<Value>, StorageError> {
        self.store.kv_get(&p.ws, key)
    }

    pub(crate) fn kv_set(
        &self,
        p: &CheckedKv,
        key: &str,
        value: &Value,
    ) -> Result<(), StorageError> {
        write_proof(p.access)?;
        self.store.kv_set(&p.ws, key, value)
    }

    pub(crate) fn kv_delete(&self, p: &CheckedKv, key: &str) -> Result<bool, StorageError> {
        write_proof(p.access)?;
        self.store.kv_delete(&p.ws, key)
    }

    /// A document's stored JSON, for a dry-run (it writes nothing: the
    /// write proof only shows the run may stage it).
    pub(crate) fn doc_record(
        &self,
        p: &CheckedDoc,
        id: &str,
    ) -> Result<Option<Value>, StorageError> {
        self.store.get_record(&p.ws, &Target::Doc { id: id.into() })
    }

    /// A row's stored JSON, for a dry-run.
    pub(crate) fn row_record(
        &self,
        p: &CheckedCollection,
        id: &str,
    ) -> Result<Option<Value>, StorageError> {
        let t = Target::Row {
            collection: p.name.clone(),
            id: id.into(),
        };
        self.store.get_record(&p.ws, &t)
    }

    /// A kv value's stored JSON, for a dry-run.
    pub(crate) fn kv_record(
        &self,
        p: &CheckedKv,
        key: &str,
    ) -> Result<Option<Value>, StorageError> {
        self.store
            .get_record(&p.ws, &Target::Kv { key: key.into() })
    }

    /// A row as an insert would store it (a fresh id when it has none).
    pub(crate) fn new_row(
        &self,
        p: &CheckedCollection,
        row: &Value,
    ) -> Result<(String, Value), StorageError> {
        write_proof(p.access)?;
        self.store.prepare_row(row)
    }

    pub(crate) fn secret(&self, p: &CheckedSecret) -> Result<Option<String>, StorageError> {
        Ok(self.store.get_secret(&p.ws, &p.name)?.map(|s| s.value))
    }

    /// A secret's value for a fetch header, only if the secret is bound to
    /// the host (or host:port) the proof says the request goes to.
    pub(crate) fn secret_for_host(
        &self,
        p: &CheckedNet,
        name: &str,
    ) -> Result<Result<String, Vec<String>>, StorageError> {
        let Some(s) = self.store.get_secret(&p.ws, name)? else {
            return Err(StorageError::NotFound {
                what: "secret",
                id: name.to_string(),
            });
        };
        if bound_to(&s.hosts, p) {
            Ok(Ok(s.value))
        } else {
            Ok(Err(s.hosts))
        }
    }

    /// The latest result of the block the proof names, as (run, value).
    pub(crate) fn latest_result(
        &self,
        p: &crate::results::CheckedResult,
    ) -> Result<Option<(String, Value)>, StorageError> {
        self.store.latest_result(&p.ws, &p.block)
    }

    /// The result of run `run` of the block the proof names.
    pub(crate) fn result_of_run(
        &self,
        p: &crate::results::CheckedResult,
        run: &str,
    ) -> Result<Option<Value>, StorageError> {
        self.store.run_result(&p.ws, run)
    }

    /// Every secret of the workspace bound to the host (or host:port) the
    /// proof names, as (name, value): what a response from it must not
    /// hand back, whether or not this request sent it.
    pub(crate) fn bound_secrets(
        &self,
        p: &CheckedNet,
    ) -> Result<Vec<(String, String)>, StorageError> {
        let mut out = Vec::new();
        for (name, hosts) in self.store.list_secrets(&p.ws)? {
            if !bound_to(&hosts, p) {
                continue;
            }
            if let Some(s) = self.store.get_secret(&p.ws, &name)? {
                out.push((name, s.value));
            }
        }
        Ok(out)
    }
}

/// Whether a secret bound to `hosts` may go to the host the proof names.
fn bound_to(hosts: &[String], p: &CheckedNet) -> bool {
    let with_port = format!("{}:{}", p.host, p.port);
    hosts
        .iter()
        .any(|h| h.eq_ignore_ascii_case(&p.host) || h.eq_ignore_ascii_case(&with_port))
}
