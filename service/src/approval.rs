//! Grants belong to the source an admin approved.
//!
//! Only admins decide what a block may touch. Setting grants is an admin
//! route, and creating a block with grants needs the admin role; but an
//! editor may still change a granted block's source, and code is what
//! grants are given to: `secrets.get` in new source would hand an editor a
//! secret only admins may read. So a block's grants apply only to the
//! source (language and text) they were approved for:
//!
//! - an admin who sets grants, creates a block with them or saves its
//!   source approves that source;
//! - an editor's save keeps the approval on the old source, so the grants
//!   are *suspended* until an admin approves again (`PUT .../grants`); runs
//!   of the changed source get none, and a denied call says why;
//! - unsaved source run under a block (`run_source` with `block`) gets the
//!   block's grants only if it is the approved source, or the caller is an
//!   admin.
//!
//! The digest is SHA-256 over the language, a NUL and the source.

use quire_storage::BlockRecord;
use sha2::{Digest, Sha256};

/// The digest a block's grant approval names.
pub fn source_digest(lang: &str, source: &str) -> String {
    let mut h = Sha256::new();
    h.update(lang.as_bytes());
    h.update([0]);
    h.update(source.as_bytes());
    h.finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()
}

/// The digest of the source `block`'s grants were approved for.
fn approved(block: &BlockRecord) -> String {
    block
        .grants_approved_for
        .clone()
        .unwrap_or_else(|| source_digest(&block.lang, &block.source))
}

/// Whether `block`'s grants apply to `source` in `lang`.
pub fn grants_apply(block: &BlockRecord, lang: &str, source: &str) -> bool {
    block.grants.is_empty() || approved(block) == source_digest(lang, source)
}

/// Whether `block`'s grants are suspended (its stored source is not the
/// one they were approved for).
pub fn grants_pending(block: &BlockRecord) -> bool {
    !grants_apply(block, &block.lang, &block.source)
}

/// Record an approval of `block`'s grants for its source as it is now.
pub fn approve(block: &mut BlockRecord) {
    block.grants_approved_for = None;
}

/// Before `block`'s source or language is changed by someone who is not an
/// admin: pin the approval to the source as it is now, so the grants stay
/// with it.
pub fn pin(block: &mut BlockRecord) {
    if block.grants_approved_for.is_none() {
        block.grants_approved_for = Some(source_digest(&block.lang, &block.source));
    }
}

/// A block record as the API shows it: with `grants_pending`.
pub fn shown(block: &BlockRecord) -> serde_json::Value {
    let mut v = serde_json::to_value(block).unwrap_or_default();
    v["grants_pending"] = serde_json::Value::Bool(grants_pending(block));
    v["input_schema"] = input_schema(block);
    v
}

/// The JSON Schema a block declares for `ctx.input`
/// (`export const input = {…}`, a literal), or `null`.
pub fn input_schema(block: &BlockRecord) -> serde_json::Value {
    let lang = if block.lang == "ts" {
        quire_engine::Lang::Ts
    } else {
        quire_engine::Lang::Js
    };
    quire_engine::input_schema(lang, &block.source).unwrap_or(serde_json::Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(src: &str, grants: &[&str]) -> BlockRecord {
        BlockRecord {
            id: "b".into(),
            name: String::new(),
            source: src.into(),
            lang: "js".into(),
            grants: grants.iter().map(|g| g.to_string()).collect(),
            grants_approved_for: None,
            engine: String::new(),
            updated_ms: 0,
        }
    }

    #[test]
    fn an_editor_change_suspends_grants_until_approved() {
        let mut b = block("export default 1", &["secret:K"]);
        assert!(grants_apply(&b, "js", "export default 1"));
        assert!(!grants_apply(&b, "js", "export default 2"));
        assert!(
            !grants_apply(&b, "ts", "export default 1"),
            "language counts"
        );
        pin(&mut b);
        b.source = "export default 2".into();
        assert!(grants_pending(&b));
        assert!(
            grants_apply(&b, "js", "export default 1"),
            "the old source keeps them"
        );
        // A second editor change keeps the first approval.
        pin(&mut b);
        b.source = "export default 3".into();
        assert!(grants_pending(&b));
        approve(&mut b);
        assert!(!grants_pending(&b));
        assert!(grants_apply(&b, "js", "export default 3"));
        assert_eq!(shown(&b)["grants_pending"], false);
    }

    #[test]
    fn blocks_without_grants_are_never_pending() {
        let mut b = block("1", &[]);
        pin(&mut b);
        b.source = "2".into();
        assert!(!grants_pending(&b));
        assert!(grants_apply(&b, "js", "anything"));
    }

    #[test]
    fn the_digest_separates_language_from_source() {
        assert_ne!(source_digest("js", "x"), source_digest("jsx", ""));
        assert_eq!(source_digest("js", "x").len(), 64);
    }
}
