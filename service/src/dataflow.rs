//! Blocks that build on each other (issue 20): the document a run reads
//! results from, what its output came from (provenance), the document's
//! dependency graph with its run order and what is stale, and re-running
//! a block's dependents when the document opts in.
//!
//! The graph comes from a static scan of each block's source
//! ([`quire_engine::result_reads`]); a read the scan cannot name is shown
//! as unknown, never guessed. A run records the runs whose results it
//! read (from the host's own record, [`quire_host_api::ResultReads`]).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use quire_engine::EngineKind;
use quire_host_api::{DocScope, Grants};
use quire_storage::{BlockRecord, DocBlock, Document, RunRecord, Store, WorkspaceId};
use serde::Serialize;
use serde_json::{json, Value};

use crate::error::{blocking, ServiceError, ServiceResult};
use crate::hub::{block_lang, RunHub, StartRun};

/// The document property that opts a document in to re-running a block's
/// dependents, server side, whenever the block finishes `ok` (whatever
/// started it).
pub const RERUN_PROPERTY: &str = "rerun_dependents";

/// The trigger kind of a run started because an upstream block finished.
pub const DATAFLOW_TRIGGER: &str = "dataflow";

/// How many of a block's newest runs are looked at for its latest `ok`
/// one (as [`quire_storage::Store::latest_result`] does).
const LATEST_SCAN: usize = quire_storage::LATEST_RESULT_SCAN;

/// A hash of a run's `ctx.input` (its canonical JSON: object keys sorted).
pub fn input_hash(input: &Value) -> String {
    use sha2::{Digest, Sha256};
    let text = serde_json::to_string(input).unwrap_or_default();
    Sha256::digest(text.as_bytes())
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The code blocks of `doc` that run as stored blocks, in order.
fn code_blocks(doc: &Document) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for b in &doc.blocks {
        if let DocBlock::Code {
            block: Some(id), ..
        } = b
        {
            if !out.contains(id) {
                out.push(id.clone());
            }
        }
    }
    out
}

/// The document a run of `req` reads results from, as a scope for its
/// host session: the one `req` names (it must hold `req`'s block), else
/// the first document (by id) holding its block. A source that never
/// names `results` needs none.
pub(crate) async fn doc_scope(store: &Store, req: &StartRun) -> ServiceResult<Option<DocScope>> {
    if req.operator.is_some() || (req.doc.is_none() && !req.source.contains("results")) {
        return Ok(None);
    }
    let (store, ws) = (store.clone(), req.workspace.id);
    let (named, block) = (req.doc.clone(), req.block.as_ref().map(|b| b.id.clone()));
    blocking(move || {
        let doc = match named {
            Some(id) => {
                let doc = store
                    .get_doc(&ws, &id)?
                    .ok_or_else(|| ServiceError::field("doc", format!("no document '{id}'")))?;
                if let Some(b) = &block {
                    if !code_blocks(&doc).contains(b) {
                        return Err(ServiceError::field(
                            "doc",
                            format!("block '{b}' is not in document '{id}'"),
                        ));
                    }
                }
                doc
            }
            None => {
                let Some(b) = block else { return Ok(None) };
                match doc_holding(&store, &ws, &b)? {
                    Some(d) => d,
                    None => return Ok(None),
                }
            }
        };
        let names: HashMap<String, String> = store
            .list_blocks(&ws)?
            .into_iter()
            .map(|b| (b.id, b.name))
            .collect();
        let blocks = code_blocks(&doc)
            .into_iter()
            .map(|id| {
                let name = names.get(&id).cloned().unwrap_or_default();
                (id, name)
            })
            .collect();
        Ok(Some(DocScope::new(doc.id, blocks)))
    })
    .await
}

/// The first document (by id) whose code blocks include `block`.
fn doc_holding(store: &Store, ws: &WorkspaceId, block: &str) -> ServiceResult<Option<Document>> {
    for summary in store.list_docs(ws)? {
        if let Some(d) = store.get_doc(ws, &summary.id)? {
            if code_blocks(&d).iter().any(|b| b == block) {
                return Ok(Some(d));
            }
        }
    }
    Ok(None)
}

/// What a run's output comes from, as its record keeps it; `upstream`
/// (the runs whose results it read) is filled in when it ends.
pub(crate) fn provenance(
    req: &StartRun,
    engine: EngineKind,
    grants: &Grants,
    doc: Option<&str>,
) -> Value {
    json!({
        "block_version": crate::approval::source_digest(req.lang.as_str(), &req.source),
        "engine": engine.as_str(),
        "grants": grants.to_strings(),
        "grants_suspended": grants.suspended(),
        "input_hash": input_hash(&req.input),
        "doc": doc,
        "upstream": [],
    })
}

/// One block of a document's graph.
#[derive(Debug, Clone, Serialize)]
pub struct Node {
    /// The block's id.
    pub block: String,
    /// Its name.
    pub name: String,
    /// The blocks of this document it reads, by id.
    pub reads: Vec<String>,
    /// Names it reads that are no block of this document (they are
    /// denied when it runs).
    pub outside: Vec<String>,
    /// Reads the scan could not name.
    pub unknown: Vec<quire_engine::UnknownRead>,
    /// Its latest `ok` run, if any (its output as shown).
    pub latest_run: Option<String>,
    /// The run whose result a reader gets (the latest `ok` run with a
    /// result), if any.
    pub result_run: Option<String>,
    /// Why that run's output is stale, if it is (empty: current).
    pub stale: Vec<String>,
}

/// A document's dependency graph.
#[derive(Debug, Clone, Serialize)]
pub struct Graph {
    /// The document.
    pub doc: String,
    /// Its stored code blocks, in document order.
    pub nodes: Vec<Node>,
    /// The order to run them in (every block after the ones it reads;
    /// otherwise document order), or `None` when there is a cycle.
    pub order: Option<Vec<String>>,
    /// The blocks of a cycle (by name, or id when unnamed), if there is
    /// one.
    pub cycle: Option<Vec<String>>,
}

impl Graph {
    /// The blocks that read `block`, directly or not, in run order.
    pub fn downstream(&self, block: &str) -> Vec<String> {
        let mut found: HashSet<&str> = HashSet::from([block]);
        let mut queue = VecDeque::from([block]);
        while let Some(b) = queue.pop_front() {
            for n in &self.nodes {
                if n.reads.iter().any(|r| r == b) && found.insert(&n.block) {
                    queue.push_back(&n.block);
                }
            }
        }
        let order = self.order.clone().unwrap_or_default();
        order
            .into_iter()
            .filter(|b| b != block && found.contains(b.as_str()))
            .collect()
    }

    /// The cycle as a refusal naming its blocks.
    pub fn cycle_error(&self) -> Option<ServiceError> {
        let cycle = self.cycle.as_ref()?;
        Some(ServiceError::Conflict(format!(
            "the blocks {} read each other's results in a cycle; no order runs them",
            cycle.join(" → ")
        )))
    }
}

/// Document `doc`'s graph (404 when there is no such document).
pub async fn graph(store: &Store, ws: WorkspaceId, doc: String) -> ServiceResult<Graph> {
    let store = store.clone();
    blocking(move || {
        let d = store
            .get_doc(&ws, &doc)?
            .ok_or(quire_storage::StorageError::NotFound {
                what: "document",
                id: doc.clone(),
            })?;
        let blocks: BTreeMap<String, BlockRecord> = store
            .list_blocks(&ws)?
            .into_iter()
            .map(|b| (b.id.clone(), b))
            .collect();
        let ids: Vec<String> = code_blocks(&d)
            .into_iter()
            .filter(|id| blocks.contains_key(id))
            .collect();
        let mut by_name: HashMap<&str, Vec<&String>> = HashMap::new();
        for id in &ids {
            if let Some(b) = blocks.get(id) {
                by_name.entry(b.name.as_str()).or_default().push(id);
            }
        }
        let mut nodes = Vec::new();
        for (id, b) in ids.iter().filter_map(|id| Some((id, blocks.get(id)?))) {
            let mut n = node(b, &ids, &by_name);
            n.latest_run = latest_ok(&store, &ws, id)?;
            n.result_run = store.latest_result_run(&ws, id)?;
            nodes.push(n);
        }
        let mut g = Graph {
            doc: d.id,
            nodes,
            order: None,
            cycle: None,
        };
        order(&mut g);
        let latest: HashMap<String, Option<String>> = g
            .nodes
            .iter()
            .map(|n| (n.block.clone(), n.result_run.clone()))
            .collect();
        for n in &mut g.nodes {
            let (Some(run), Some(b)) = (&n.latest_run, blocks.get(&n.block)) else {
                continue;
            };
            if let Some(r) = store.get_run_head(&ws, run)? {
                n.stale = stale_because(&r, b, &latest, &blocks);
            }
        }
        Ok(g)
    })
    .await
}

/// The newest run of `block` that finished `ok`.
fn latest_ok(store: &Store, ws: &WorkspaceId, block: &str) -> ServiceResult<Option<String>> {
    Ok(store
        .recent_runs(ws, Some(block), LATEST_SCAN, None)?
        .into_iter()
        .find(|r| r.status == "ok")
        .map(|r| r.id))
}

/// Block `b`'s node: what it reads among `ids` (by id, else a unique
/// name). Reading its own earlier result is no edge (it is allowed, and
/// no order needs it).
fn node(b: &BlockRecord, ids: &[String], by_name: &HashMap<&str, Vec<&String>>) -> Node {
    let scan = scan_cached(b);
    let (mut reads, mut outside) = (Vec::new(), Vec::new());
    for name in scan.blocks {
        let found = match (
            ids.iter().find(|id| **id == name),
            by_name.get(name.as_str()),
        ) {
            (Some(id), _) => Some(id.clone()),
            (None, Some(named)) if named.len() == 1 => Some(named[0].clone()),
            _ => None,
        };
        match found {
            Some(id) if id == b.id || reads.contains(&id) => {}
            Some(id) => reads.push(id),
            None => outside.push(name),
        }
    }
    Node {
        block: b.id.clone(),
        name: b.name.clone(),
        reads,
        outside,
        unknown: scan.unknown,
        latest_run: None,
        result_run: None,
        stale: vec![],
    }
}

/// Scans kept by source digest: a graph asks for every block of its
/// document each time, and sources rarely change.
static SCANS: std::sync::LazyLock<std::sync::Mutex<HashMap<String, quire_engine::ResultReads>>> =
    std::sync::LazyLock::new(Default::default);

/// Scans kept at most (the cache is emptied when full).
const MAX_SCANS_KEPT: usize = 4096;

fn scan_cached(b: &BlockRecord) -> quire_engine::ResultReads {
    let key = crate::approval::source_digest(&b.lang, &b.source);
    if let Some(r) = SCANS.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return r.clone();
    }
    let r = quire_engine::result_reads(block_lang(&b.lang), &b.source);
    let mut cache = SCANS.lock().unwrap_or_else(|e| e.into_inner());
    if cache.len() >= MAX_SCANS_KEPT {
        cache.clear();
    }
    cache.insert(key, r.clone());
    r
}

/// Kahn's order (ties in document order), or the cycle that stops it.
fn order(g: &mut Graph) {
    let index: HashMap<&str, usize> = g
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.block.as_str(), i))
        .collect();
    let mut waiting: Vec<usize> = g.nodes.iter().map(|n| n.reads.len()).collect();
    let mut done = vec![false; g.nodes.len()];
    let mut out = Vec::new();
    while let Some(i) = (0..g.nodes.len()).find(|&i| !done[i] && waiting[i] == 0) {
        done[i] = true;
        out.push(g.nodes[i].block.clone());
        for (j, n) in g.nodes.iter().enumerate() {
            let k = n.reads.iter().filter(|r| **r == g.nodes[i].block).count();
            waiting[j] = waiting[j].saturating_sub(k);
        }
    }
    if out.len() == g.nodes.len() {
        g.order = Some(out);
        return;
    }
    // Walk back along reads from a stuck block until one repeats.
    let Some(mut at) = (0..g.nodes.len()).find(|&i| !done[i]) else {
        return;
    };
    let mut path: Vec<usize> = Vec::new();
    while !path.contains(&at) {
        path.push(at);
        let next = g.nodes[at]
            .reads
            .iter()
            .filter_map(|r| index.get(r.as_str()).copied())
            .find(|&j| !done[j]);
        match next {
            Some(j) => at = j,
            None => break,
        }
    }
    let start = path.iter().position(|&i| i == at).unwrap_or(0);
    let label = |n: &Node| {
        if n.name.is_empty() {
            n.block.clone()
        } else {
            n.name.clone()
        }
    };
    let mut cycle: Vec<String> = path[start..]
        .iter()
        .rev()
        .map(|&i| label(&g.nodes[i]))
        .collect();
    if let Some(first) = cycle.first().cloned() {
        cycle.push(first);
    }
    g.cycle = Some(cycle);
}

/// Why run `r` of block `b` is stale: its code or grants changed since,
/// or a block it read has a newer result.
fn stale_because(
    r: &RunRecord,
    b: &BlockRecord,
    latest: &HashMap<String, Option<String>>,
    blocks: &BTreeMap<String, BlockRecord>,
) -> Vec<String> {
    let p = &r.provenance;
    if p.is_null() {
        return vec![];
    }
    let mut why = Vec::new();
    if p["block_version"] != json!(crate::approval::source_digest(&b.lang, &b.source)) {
        why.push("its code changed since".to_string());
    }
    let mut grants = b.grants.clone();
    grants.sort();
    let mut had: Vec<String> = p["grants"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|g| g.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    had.extend(
        p["grants_suspended"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|g| g.as_str().map(String::from)),
    );
    had.sort();
    if had != grants {
        why.push("its grants changed since".to_string());
    }
    for read in p["upstream"].as_array().into_iter().flatten() {
        let (Some(block), Some(run)) = (read["block"].as_str(), read["run"].as_str()) else {
            continue;
        };
        let newer = latest
            .get(block)
            .and_then(Clone::clone)
            .is_some_and(|l| l != run);
        if newer {
            let name = blocks.get(block).map_or(block, |b| b.name.as_str());
            why.push(format!("{name} has a newer result"));
        }
    }
    why
}

/// After block `block`'s run `run` finished `ok` in document `doc` (by
/// default the first holding the block): when the document opts in
/// ([`RERUN_PROPERTY`]), run the blocks that read it, in order, each
/// after the last one ended, stopping at the first that does not end
/// `ok`. A cycle refuses them all.
pub(crate) async fn rerun_dependents(
    hub: Arc<RunHub>,
    workspace: quire_storage::Workspace,
    doc: Option<String>,
    block: String,
    run: String,
) {
    let store = hub.store().clone();
    let ws = workspace.id;
    let b = block.clone();
    let found = blocking(move || match doc {
        Some(d) => Ok(store.get_doc(&ws, &d)?),
        None => doc_holding(&store, &ws, &b),
    })
    .await
    .ok()
    .flatten()
    .filter(|d| d.properties.get(RERUN_PROPERTY) == Some(&Value::Bool(true)));
    let Some(doc) = found.map(|d| d.id) else {
        return;
    };
    let g = match graph(hub.store(), ws, doc.clone()).await {
        Ok(g) => g,
        Err(e) => return tracing::warn!(error = %e, "no graph for re-running dependents"),
    };
    if let Some(e) = g.cycle_error() {
        return tracing::warn!(%doc, error = %e, "dependents not re-run");
    }
    for dep in g.downstream(&block) {
        let (store, d2) = (hub.store().clone(), dep.clone());
        let Ok(Some(rec)) = blocking(move || Ok(store.get_block(&ws, &d2)?)).await else {
            return;
        };
        let trigger = json!({"kind": DATAFLOW_TRIGGER, "block": block, "run": run});
        let mut req = StartRun::for_block(workspace.clone(), rec, Value::Null, trigger);
        req.doc = Some(doc.clone());
        let started = match hub.start(req).await {
            Ok(s) => s,
            Err(e) => return tracing::warn!(block = %dep, error = %e, "dependent not re-run"),
        };
        let live = started.live();
        drop(started);
        live.finished().await;
        if live.status() != "ok" {
            return;
        }
    }
}
