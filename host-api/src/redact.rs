//! Redaction: the one place a fetch's results pass through before the
//! block sees them.
//!
//! A [`Redactor`] holds the secret values one fetch must not hand back
//! (every secret it substituted, and every secret bound to a host it
//! reached) and replaces each occurrence with `[secret:NAME]` in every
//! string the fetch returns: status text, URL, header names and values,
//! the (decoded) body, error messages and the grants they name.
//!
//! A value matches in the forms a URL or an echoing server puts it in
//! without meaning to transform it: ASCII letters in any case (host names
//! are lowercased), any byte percent-encoded as `%XX` (either hex case),
//! and a space as `+` (form encoding). Values shorter than
//! [`MIN_REDACTED`] bytes are not redacted: they would match everywhere.

use quire_engine::HostError;

/// Secret values shorter than this are not redacted.
pub(crate) const MIN_REDACTED: usize = 4;

/// The secrets one fetch must not hand back.
#[derive(Debug, Default)]
pub(crate) struct Redactor {
    /// (value, mark), longest value first so a secret that contains
    /// another is replaced whole.
    secrets: Vec<(Vec<u8>, String)>,
}

impl Redactor {
    /// Redact `value` from now on, as `[secret:name]`.
    pub(crate) fn add(&mut self, name: &str, value: &str) {
        if value.len() < MIN_REDACTED || self.secrets.iter().any(|(v, _)| v == value.as_bytes()) {
            return;
        }
        self.secrets
            .push((value.as_bytes().to_vec(), format!("[secret:{name}]")));
        self.secrets
            .sort_by_key(|(value, _)| std::cmp::Reverse(value.len()));
    }

    /// Redact every (name, value) pair.
    pub(crate) fn add_all(&mut self, secrets: &[(String, String)]) {
        for (name, value) in secrets {
            self.add(name, value);
        }
    }

    /// `bytes` with every secret replaced by its mark.
    pub(crate) fn bytes(&self, bytes: Vec<u8>) -> Vec<u8> {
        if self.secrets.is_empty() {
            return bytes;
        }
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        'scan: while i < bytes.len() {
            for (needle, mark) in &self.secrets {
                if let Some(end) = occurs_at(&bytes, i, needle) {
                    out.extend_from_slice(mark.as_bytes());
                    i = end;
                    continue 'scan;
                }
            }
            out.push(bytes[i]);
            i += 1;
        }
        out
    }

    /// `text` with every secret replaced by its mark.
    pub(crate) fn text(&self, text: String) -> String {
        match String::from_utf8(self.bytes(text.into_bytes())) {
            Ok(s) => s,
            // Marks are ASCII and matches end on whole characters, so this
            // does not happen; never hand back a partial match if it does.
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        }
    }

    /// `e` with its message and grant redacted; its name and kind kept.
    pub(crate) fn error(&self, e: HostError) -> HostError {
        HostError {
            message: self.text(e.message),
            grant: e.grant.map(|g| self.text(g)),
            ..e
        }
    }
}

/// Where a match of `needle` starting at `hay[start]` ends, if there is
/// one (the longest, when encoded and raw forms both match).
fn occurs_at(hay: &[u8], start: usize, needle: &[u8]) -> Option<usize> {
    let (&first, _) = needle.split_first()?;
    let b = *hay.get(start)?;
    if !(b.eq_ignore_ascii_case(&first) || b == b'%' || (b == b'+' && first == b' ')) {
        return None;
    }
    // Positions in `hay` after matching a prefix of `needle`; more than one
    // only where the needle has a '%' that hay has both raw and as %25.
    let mut at = vec![start];
    let mut next = Vec::new();
    for &c in needle {
        next.clear();
        for &p in &at {
            let Some(&b) = hay.get(p) else { continue };
            if b.eq_ignore_ascii_case(&c) || (b == b'+' && c == b' ') {
                next.push(p + 1);
            }
            if b == b'%' {
                if let (Some(hi), Some(lo)) = (
                    hay.get(p + 1).and_then(|&h| hex(h)),
                    hay.get(p + 2).and_then(|&l| hex(l)),
                ) {
                    if (hi << 4 | lo).eq_ignore_ascii_case(&c) {
                        next.push(p + 3);
                    }
                }
            }
        }
        if next.is_empty() {
            return None;
        }
        next.sort_unstable();
        next.dedup();
        std::mem::swap(&mut at, &mut next);
    }
    at.last().copied()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn red(pairs: &[(&str, &str)]) -> Redactor {
        let mut r = Redactor::default();
        for (n, v) in pairs {
            r.add(n, v);
        }
        r
    }

    #[test]
    fn raw_cased_and_encoded_forms_are_replaced() {
        let r = red(&[("K", "sk-live 42")]);
        for (input, want) in [
            ("a sk-live 42 b", "a [secret:K] b"),
            ("SK-LIVE 42", "[secret:K]"),
            (
                "?t=sk-live%2042&u=sk%2dlive+42",
                "?t=[secret:K]&u=[secret:K]",
            ),
            ("%73%6B%2D%6C%69%76%65%20%34%32", "[secret:K]"),
            ("sk-live 42sk-live 42", "[secret:K][secret:K]"),
            ("sk-live 4", "sk-live 4"),
            ("sk-live%2", "sk-live%2"),
            ("", ""),
        ] {
            assert_eq!(r.text(input.to_string()), want, "{input}");
        }
    }

    #[test]
    fn a_percent_in_the_secret_matches_raw_or_encoded() {
        let r = red(&[("P", "a%25b")]);
        assert_eq!(r.text("x a%25b y".into()), "x [secret:P] y");
        assert_eq!(r.text("x a%2525b y".into()), "x [secret:P] y");
        assert_eq!(r.text("x a%25%62 y".into()), "x [secret:P] y");
    }

    #[test]
    fn short_values_are_left_and_longer_secrets_win() {
        let r = red(&[("S", "abc"), ("IN", "live"), ("OUT", "sk-live-1")]);
        assert_eq!(
            r.text("abc sk-live-1 live".into()),
            "abc [secret:OUT] [secret:IN]"
        );
    }

    #[test]
    fn errors_keep_their_kind() {
        let r = red(&[("K", "hunter22")]);
        let e = r.error(HostError::denied(
            "fetch to http://hunter22/ is denied",
            Some("net:hunter22".into()),
        ));
        assert_eq!(e.message, "fetch to http://[secret:K]/ is denied");
        assert_eq!(e.grant.as_deref(), Some("net:[secret:K]"));
        assert_eq!(e.kind, quire_engine::HostErrorKind::Denied);
        assert_eq!(e.name, "CapabilityDenied");
    }

    #[test]
    fn non_utf8_bytes_are_redacted_too() {
        let r = red(&[("K", "hunter22")]);
        assert_eq!(
            r.bytes(b"\xff\x00hunter22\xfe".to_vec()),
            b"\xff\x00[secret:K]\xfe".to_vec()
        );
    }
}
