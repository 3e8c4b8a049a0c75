//! The sample workspace (samples/workspace.json and the files it names),
//! embedded in the binary so `quire run` and `quire serve` can load it on
//! any machine, from any directory.

use anyhow::{anyhow, Context as _};
use quire_storage::{BlockRecord, Document, Store, Workspace};
use serde::Deserialize;

/// Every file of samples/ the manifest may name.
const FILES: &[(&str, &str)] = &[
    ("workspace.json", include_str!("../samples/workspace.json")),
    (
        "data/tasks.json",
        include_str!("../samples/data/tasks.json"),
    ),
    (
        "docs/roadmap.json",
        include_str!("../samples/docs/roadmap.json"),
    ),
    (
        "docs/standup.json",
        include_str!("../samples/docs/standup.json"),
    ),
    (
        "docs/integrations.json",
        include_str!("../samples/docs/integrations.json"),
    ),
    (
        "blocks/tasks_summary.ts",
        include_str!("../samples/blocks/tasks_summary.ts"),
    ),
    (
        "blocks/filter_tasks.js",
        include_str!("../samples/blocks/filter_tasks.js"),
    ),
    (
        "blocks/flag_overdue.ts",
        include_str!("../samples/blocks/flag_overdue.ts"),
    ),
    (
        "blocks/read_secret.js",
        include_str!("../samples/blocks/read_secret.js"),
    ),
    (
        "blocks/fetch_status.js",
        include_str!("../samples/blocks/fetch_status.js"),
    ),
    (
        "blocks/doc_outline.js",
        include_str!("../samples/blocks/doc_outline.js"),
    ),
    (
        "blocks/visit_counter.js",
        include_str!("../samples/blocks/visit_counter.js"),
    ),
    (
        "blocks/hello.js",
        include_str!("../samples/blocks/hello.js"),
    ),
    (
        "blocks/live_progress.js",
        include_str!("../samples/blocks/live_progress.js"),
    ),
];

#[derive(Deserialize)]
struct Manifest {
    workspace: String,
    collections: std::collections::BTreeMap<String, String>,
    documents: Vec<String>,
    secrets: Vec<SecretSpec>,
    blocks: Vec<BlockSpec>,
}

#[derive(Deserialize)]
struct SecretSpec {
    name: String,
    value: String,
    hosts: Vec<String>,
}

#[derive(Deserialize)]
struct BlockSpec {
    id: String,
    name: String,
    file: String,
    grants: Vec<String>,
}

fn file(path: &str) -> anyhow::Result<&'static str> {
    FILES
        .iter()
        .find(|(p, _)| *p == path)
        .map(|(_, c)| *c)
        .ok_or_else(|| anyhow!("samples/workspace.json names {path}, which is not embedded"))
}

/// Load the sample workspace into `store`, adding only what is missing
/// (so it never overwrites a user's changes). Returns the workspace.
pub fn seed(store: &Store) -> anyhow::Result<Workspace> {
    let m: Manifest =
        serde_json::from_str(file("workspace.json")?).context("samples/workspace.json")?;
    let ws = store.ensure_workspace(&m.workspace)?;
    for (coll, path) in &m.collections {
        if store.count_rows(&ws.id, coll)? > 0 {
            continue;
        }
        let rows: Vec<serde_json::Value> =
            serde_json::from_str(file(path)?).with_context(|| format!("samples/{path}"))?;
        store.insert_rows(&ws.id, coll, &rows)?;
    }
    for path in &m.documents {
        let d: Document =
            serde_json::from_str(file(path)?).with_context(|| format!("samples/{path}"))?;
        if store.get_doc(&ws.id, &d.id)?.is_none() {
            store.put_doc(&ws.id, d)?;
        }
    }
    for s in &m.secrets {
        if store.get_secret(&ws.id, &s.name)?.is_none() {
            store.put_secret(&ws.id, &s.name, &s.value, &s.hosts)?;
        }
    }
    for b in &m.blocks {
        if store.get_block(&ws.id, &b.id)?.is_some() {
            continue;
        }
        quire_host_api::Grants::parse(&b.grants)
            .with_context(|| format!("sample block {}", b.id))?;
        let lang = if b.file.ends_with(".ts") { "ts" } else { "js" };
        store.put_block(
            &ws.id,
            BlockRecord {
                id: b.id.clone(),
                name: b.name.clone(),
                source: file(&b.file)?.to_string(),
                lang: lang.into(),
                grants: b.grants.clone(),
                grants_approved_for: None,
                engine: String::new(),
                updated_ms: 0,
            },
        )?;
    }
    Ok(ws)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_samples_load_and_reloading_adds_nothing() {
        let store = Store::memory().unwrap();
        let ws = seed(&store).unwrap();
        assert!(store.count_rows(&ws.id, "tasks").unwrap() >= 300);
        assert_eq!(store.list_docs(&ws.id).unwrap().len(), 3);
        assert_eq!(store.list_blocks(&ws.id).unwrap().len(), 9);
        assert!(store.get_secret(&ws.id, "DEMO_TOKEN").unwrap().is_some());
        store
            .update_row(&ws.id, "tasks", "t001", &serde_json::json!({"status": "x"}))
            .unwrap();
        seed(&store).unwrap();
        let row = store
            .query_rows(
                &ws.id,
                "tasks",
                &quire_storage::RowQuery {
                    limit: 1,
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(row[0]["status"], "x");
    }
}
