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
    ("docs/tour.json", include_str!("../samples/docs/tour.json")),
    (
        "blocks/tasks_summary.ts",
        include_str!("../samples/blocks/tasks_summary.ts"),
    ),
    (
        "blocks/tasks_chart.js",
        include_str!("../samples/blocks/tasks_chart.js"),
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

/// The port the samples name for the server (`quire serve`'s default);
/// [`seed`] points them at the server's real port.
const SAMPLE_PORT: &str = "7878";

/// `quire serve`'s default port: what `quire run`'s samples call.
pub const SERVE_PORT: u16 = 7878;

/// `text` with the samples' server address (127.0.0.1 or localhost, port
/// 7878) moved to `port`.
fn at_port(text: &str, port: u16) -> String {
    let port = port.to_string();
    ["127.0.0.1", "localhost"]
        .iter()
        .fold(text.to_string(), |t, host| {
            t.replace(&format!("{host}:{SAMPLE_PORT}"), &format!("{host}:{port}"))
        })
}

/// Load the sample workspace into `store`, adding only what is missing
/// (so it never overwrites a user's changes). Returns the workspace.
/// `port` is the port of the server the samples call (the "Integrations"
/// block fetches it with a secret bound to it): `quire serve`'s own, or
/// 7878 for `quire run`.
pub fn seed(store: &Store, port: u16) -> anyhow::Result<Workspace> {
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
            let hosts: Vec<String> = s.hosts.iter().map(|h| at_port(h, port)).collect();
            store.put_secret(&ws.id, &s.name, &s.value, &hosts)?;
        }
    }
    for b in &m.blocks {
        if store.get_block(&ws.id, &b.id)?.is_some() {
            continue;
        }
        let grants: Vec<String> = b.grants.iter().map(|g| at_port(g, port)).collect();
        quire_host_api::Grants::parse(&grants).with_context(|| format!("sample block {}", b.id))?;
        let lang = if b.file.ends_with(".ts") { "ts" } else { "js" };
        store.put_block(
            &ws.id,
            BlockRecord {
                id: b.id.clone(),
                name: b.name.clone(),
                source: at_port(file(&b.file)?, port),
                lang: lang.into(),
                grants,
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
        let ws = seed(&store, 7878).unwrap();
        assert!(store.count_rows(&ws.id, "tasks").unwrap() >= 300);
        assert_eq!(store.list_docs(&ws.id).unwrap().len(), 4);
        assert_eq!(store.list_blocks(&ws.id).unwrap().len(), 10);
        assert!(store.get_secret(&ws.id, "DEMO_TOKEN").unwrap().is_some());
        store
            .update_row(&ws.id, "tasks", "t001", &serde_json::json!({"status": "x"}))
            .unwrap();
        seed(&store, 7878).unwrap();
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

    #[test]
    fn every_sample_block_is_in_a_sample_document() {
        let store = Store::memory().unwrap();
        let ws = seed(&store, 7878).unwrap();
        let mut shown = std::collections::BTreeSet::new();
        for d in store.list_docs(&ws.id).unwrap() {
            let doc = store.get_doc(&ws.id, &d.id).unwrap().unwrap();
            let v = serde_json::to_value(&doc).unwrap();
            for b in v["blocks"].as_array().unwrap() {
                if let Some(id) = b["block"].as_str() {
                    shown.insert(id.to_string());
                }
            }
        }
        for b in store.list_blocks(&ws.id).unwrap() {
            assert!(
                shown.contains(&b.id),
                "sample block {} is in no document",
                b.id
            );
        }
    }

    #[test]
    fn the_integrations_sample_calls_the_server_on_its_own_port() {
        let store = Store::memory().unwrap();
        let ws = seed(&store, 41234).unwrap();
        let b = store.get_block(&ws.id, "fetch-status").unwrap().unwrap();
        assert_eq!(b.grants, vec!["net:127.0.0.1:41234".to_string()]);
        assert!(
            b.source.contains("\"http://127.0.0.1:41234/healthz\""),
            "{}",
            b.source
        );
        assert!(!b.source.contains("7878"), "{}", b.source);
        let hosts = store
            .get_secret(&ws.id, "DEMO_TOKEN")
            .unwrap()
            .unwrap()
            .hosts;
        assert_eq!(
            hosts,
            vec!["127.0.0.1:41234".to_string(), "localhost:41234".to_string()]
        );
    }
}
