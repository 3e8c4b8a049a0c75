//! Key layout. Every key of workspace data starts with the workspace's
//! 16-byte id, so no name or id a caller passes can reach another
//! workspace's keys: names inside a key are length-prefixed (u32, big
//! endian) except the last segment, which runs to the end of the key. A
//! prefix scan over `ws | len | collection` therefore matches exactly that
//! collection of that workspace, whatever bytes the names contain.

use crate::error::{invalid, Result};
use crate::model::WorkspaceId;

/// Longest name accepted for a collection, document id, row id, kv key,
/// secret name or block id, in bytes.
pub const MAX_NAME_BYTES: usize = 1024;

/// Check a caller-given name: non-empty, at most [`MAX_NAME_BYTES`].
pub(crate) fn check_name(what: &'static str, name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(invalid(what, "it is empty"));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(invalid(
            what,
            format!(
                "it is {} bytes long; the limit is {MAX_NAME_BYTES} bytes",
                name.len()
            ),
        ));
    }
    Ok(())
}

/// A key builder starting with a workspace id.
pub(crate) struct Key(Vec<u8>);

impl Key {
    pub(crate) fn ws(ws: &WorkspaceId) -> Self {
        let mut v = Vec::with_capacity(64);
        v.extend_from_slice(ws.as_bytes());
        Self(v)
    }

    /// A length-prefixed segment (any segment that is not the last).
    pub(crate) fn seg(mut self, s: &[u8]) -> Self {
        self.0.extend_from_slice(&(s.len() as u32).to_be_bytes());
        self.0.extend_from_slice(s);
        self
    }

    /// The final segment, unprefixed (keys sort by it).
    pub(crate) fn last(mut self, s: &[u8]) -> Vec<u8> {
        self.0.extend_from_slice(s);
        self.0
    }

    pub(crate) fn raw(mut self, s: &[u8]) -> Self {
        self.0.extend_from_slice(s);
        self
    }

    /// The key so far (a scan prefix).
    pub(crate) fn prefix(self) -> Vec<u8> {
        self.0
    }
}

/// The final segment of `key` after `prefix`, as text.
pub(crate) fn tail(key: &[u8], prefix_len: usize) -> String {
    String::from_utf8_lossy(key.get(prefix_len..).unwrap_or_default()).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_collection_prefix_never_matches_a_longer_name_or_another_workspace() {
        let a = WorkspaceId::from_bytes([1; 16]);
        let b = WorkspaceId::from_bytes([2; 16]);
        let p = Key::ws(&a).seg(b"tasks").prefix();
        let other_coll = Key::ws(&a).seg(b"tasks2").last(b"x");
        let crafted = Key::ws(&a).seg(b"task").last(b"s\0\0\0\x05tasks");
        let other_ws = Key::ws(&b).seg(b"tasks").last(b"x");
        assert!(!other_coll.starts_with(&p));
        assert!(!crafted.starts_with(&p));
        assert!(!other_ws.starts_with(&p));
        assert!(Key::ws(&a).seg(b"tasks").last(b"x").starts_with(&p));
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("kv key", "").is_err());
        assert!(check_name("kv key", &"x".repeat(MAX_NAME_BYTES + 1)).is_err());
        assert!(check_name("kv key", "ключ/../\0").is_ok());
    }
}
