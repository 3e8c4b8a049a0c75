//! `results.get(block)`: the latest result of another block of the run's
//! own document. No grant is needed within one document; a block of
//! another document, or a run outside any document, is denied. The
//! document's blocks are given by the caller when the session starts
//! ([`DocScope`]); only this module turns a name into the proof
//! ([`CheckedResult`]) the gate reads with, and it records every read so
//! the run's provenance can name the runs whose results it used.

use std::sync::{Arc, Mutex};

use quire_engine::HostError;
use quire_storage::WorkspaceId;
use serde::Serialize;

/// The blocks of the document a run runs in: what its `results.get` may
/// read.
#[derive(Debug, Clone, Default)]
pub struct DocScope {
    doc: String,
    /// `(block id, block name)`, in document order.
    blocks: Vec<(String, String)>,
}

impl DocScope {
    /// The scope of document `doc` holding `blocks` (`(id, name)`).
    pub fn new(doc: impl Into<String>, blocks: Vec<(String, String)>) -> Self {
        Self {
            doc: doc.into(),
            blocks,
        }
    }

    /// The document's id.
    pub fn doc(&self) -> &str {
        &self.doc
    }

    /// The block `reference` names (an id first, else a unique name).
    fn resolve(&self, reference: &str) -> Result<String, HostError> {
        if let Some((id, _)) = self.blocks.iter().find(|(id, _)| id == reference) {
            return Ok(id.clone());
        }
        let named: Vec<&String> = self
            .blocks
            .iter()
            .filter(|(_, name)| name == reference)
            .map(|(id, _)| id)
            .collect();
        match named.as_slice() {
            [id] => Ok((*id).clone()),
            [] => Err(HostError::denied(
                format!(
                    "results.get('{}') is denied: no block of this document ({}) has that id or name; a block reads only the results of blocks of its own document",
                    clip(reference),
                    self.doc
                ),
                None,
            )),
            _ => Err(HostError::new(
                "TypeError",
                format!(
                    "results.get('{}'): {} blocks of this document have that name; use a block id",
                    clip(reference),
                    named.len()
                ),
            )),
        }
    }
}

fn clip(s: &str) -> String {
    s.chars().take(80).collect()
}

/// Proof that the session may read the results of block `block` of `ws`.
#[derive(Debug)]
pub struct CheckedResult {
    pub(crate) ws: WorkspaceId,
    pub(crate) block: String,
}

/// One result a run read: the block and the run that produced it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResultRead {
    /// The block read.
    pub block: String,
    /// The run whose result it got.
    pub run: String,
}

/// The reads of one session, for its caller (see
/// [`crate::HostApi::session_in`]).
#[derive(Debug, Clone, Default)]
pub struct ResultReads(Arc<Mutex<Vec<ResultRead>>>);

/// Reads kept per run (more distinct blocks than a document holds).
const MAX_READS_KEPT: usize = 1000;

impl ResultReads {
    /// The reads so far, each (block, run) once, in the order made.
    pub fn reads(&self) -> Vec<ResultRead> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The run this session read `block`'s result from, if it did: later
    /// reads of the block in the run get the same one.
    pub(crate) fn run_for(&self, block: &str) -> Option<String> {
        let r = self.0.lock().unwrap_or_else(|e| e.into_inner());
        r.iter().find(|x| x.block == block).map(|x| x.run.clone())
    }

    pub(crate) fn record(&self, read: ResultRead) {
        let mut r = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if r.len() < MAX_READS_KEPT && !r.contains(&read) {
            r.push(read);
        }
    }
}

/// The checks for `results.get`, bound to a run's workspace and document.
#[derive(Debug, Clone)]
pub(crate) struct ResultsCheck {
    pub(crate) ws: WorkspaceId,
    pub(crate) scope: Option<DocScope>,
    pub(crate) reads: ResultReads,
}

impl ResultsCheck {
    pub(crate) fn check(&self, reference: &str) -> Result<CheckedResult, HostError> {
        let Some(scope) = &self.scope else {
            return Err(HostError::denied(
                format!(
                    "results.get('{}') is denied: this run is not in a document, so it has no other blocks to read",
                    clip(reference)
                ),
                None,
            ));
        };
        Ok(CheckedResult {
            ws: self.ws,
            block: scope.resolve(reference)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_within_the_document_only() {
        let ws = WorkspaceId::from_bytes([1; 16]);
        let scope = DocScope::new(
            "d1",
            vec![
                ("b1".into(), "load".into()),
                ("b2".into(), "twin".into()),
                ("b3".into(), "twin".into()),
            ],
        );
        let c = ResultsCheck {
            ws,
            scope: Some(scope),
            reads: ResultReads::default(),
        };
        assert_eq!(c.check("b1").map(|p| p.block).ok(), Some("b1".into()));
        assert_eq!(c.check("load").map(|p| p.block).ok(), Some("b1".into()));
        let other = c.check("b9").err().map(|e| (e.kind, e.message));
        assert!(
            matches!(&other, Some((quire_engine::HostErrorKind::Denied, m)) if m.contains("own document")),
            "{other:?}"
        );
        assert_eq!(
            c.check("twin").err().map(|e| e.name),
            Some("TypeError".into())
        );
        let none = ResultsCheck {
            ws,
            scope: None,
            reads: ResultReads::default(),
        };
        assert!(none.check("b1").is_err());
    }
}
