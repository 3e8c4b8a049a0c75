//! Untrusted JSON and strings the server parses before anything runs:
//! grants, `where` filters, row and document patches, run requests,
//! WebSocket live messages. Each
//! parse returns a value or an error, never panics; filters never panic
//! when matched against arbitrary rows.
#![no_main]

use libfuzzer_sys::fuzz_target;
use quire_host_api::Grants;
use quire_storage::{merge_patch, Filter};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = quire_web::live::check_message(&text);
    let _ = Grants::parse(
        &text
            .split(|c: char| c.is_whitespace() || c == ',')
            .collect::<Vec<_>>(),
    );
    let Ok(v) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    if let Ok(f) = Filter::parse(Some(&v)) {
        let _ = f.matches(&v);
        let _ = f.matches(&Value::Null);
    }
    let mut target = serde_json::json!({"id": "x", "a": {"b": 1}});
    merge_patch(&mut target, &v);
    let _ = serde_json::from_value::<quire_engine::RunRequest>(v.clone());
    let _ = serde_json::from_value::<quire_storage::Document>(v);
});
