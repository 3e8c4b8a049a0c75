//! Capability grants and the proof values a successful check returns.
//!
//! A block's grants start empty. Each host call asks [`Grants`] first; a
//! check that passes returns a proof (`CheckedCollection`, `CheckedDoc`,
//! ...) whose fields are private to this crate, and the data gate
//! (`gate.rs`) only accepts proofs. So no code path reaches storage for a
//! block without passing the check, and the proof carries the workspace
//! the session was built for, not anything the block passed.

use std::collections::BTreeSet;
use std::fmt;

use quire_storage::WorkspaceId;

/// A grant string that is not one of the forms in DESIGN.md.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid grant '{grant}': {reason} (grants are doc:read, doc:write, db:read:<collection|*>, db:write:<collection|*>, kv:read, kv:write, secret:<NAME>, net:<host>[:port])")]
pub struct GrantError {
    /// The grant as given.
    pub grant: String,
    /// What is wrong with it.
    pub reason: String,
}

/// One capability.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Grant {
    /// `doc:read`: list and read documents.
    DocRead,
    /// `doc:write`: update documents.
    DocWrite,
    /// `db:read:<collection|*>`: query rows.
    DbRead(String),
    /// `db:write:<collection|*>`: insert, update, delete rows.
    DbWrite(String),
    /// `kv:read`.
    KvRead,
    /// `kv:write`.
    KvWrite,
    /// `secret:<NAME>`: read one secret's value.
    Secret(String),
    /// `net:<host>[:port]`: fetch from that host (any port when none is
    /// given, but loopback/private addresses only with the exact port).
    Net {
        /// Lower-case host name or IP literal (IPv6 without brackets).
        host: String,
        /// The port, when the grant names one.
        port: Option<u16>,
    },
}

impl Grant {
    /// Whether the grant only reads this workspace's data (documents,
    /// rows, keys): what code nobody reviewed may be given until its
    /// writes can be previewed (dry-runs). Secrets and the network are
    /// not: a secret leaves with the first fetch, and a fetch can write
    /// to another system.
    pub fn reads_only(&self) -> bool {
        matches!(self, Grant::DocRead | Grant::DbRead(_) | Grant::KvRead)
    }
}

/// Check the grants an admin sets for agent-written code: each must
/// parse and reach only `doc`, `db` or `kv` (reads, or writes that a
/// dry-run stages for a person to apply); secrets and the network are
/// never an agent's.
///
/// # Errors
/// The first grant that does not parse or that reaches a secret or the
/// network, said in words.
pub fn check_agent_grants<S: AsRef<str>>(list: &[S]) -> Result<Grants, String> {
    agent_grants(list, true)
}

/// The grants agent-written code runs with: the admin's agent grants as
/// [`check_agent_grants`] accepts them, writes included only in a
/// dry-run (`dry_run`), where they are staged for a person to apply.
///
/// # Errors
/// As [`check_agent_grants`].
pub fn agent_grants<S: AsRef<str>>(list: &[S], dry_run: bool) -> Result<Grants, String> {
    let mut kept = Vec::with_capacity(list.len());
    for g in list {
        let grant: Grant = g.as_ref().parse().map_err(|e: GrantError| e.to_string())?;
        let stageable = matches!(grant, Grant::DocWrite | Grant::DbWrite(_) | Grant::KvWrite);
        if !grant.reads_only() && !stageable {
            return Err(format!(
                "{grant} cannot be an agent grant: agent-written code may read and write documents, rows and kv (its writes staged as a preview a person applies), never secrets or the network"
            ));
        }
        if grant.reads_only() || dry_run {
            kept.push(g.as_ref());
        }
    }
    Grants::parse(&kept).map_err(|e| e.to_string())
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Grant::DocRead => f.write_str("doc:read"),
            Grant::DocWrite => f.write_str("doc:write"),
            Grant::DbRead(c) => write!(f, "db:read:{c}"),
            Grant::DbWrite(c) => write!(f, "db:write:{c}"),
            Grant::KvRead => f.write_str("kv:read"),
            Grant::KvWrite => f.write_str("kv:write"),
            Grant::Secret(n) => write!(f, "secret:{n}"),
            Grant::Net { host, port } => {
                let h = if host.contains(':') {
                    format!("[{host}]")
                } else {
                    host.clone()
                };
                match port {
                    Some(p) => write!(f, "net:{h}:{p}"),
                    None => write!(f, "net:{h}"),
                }
            }
        }
    }
}

impl std::str::FromStr for Grant {
    type Err = GrantError;
    fn from_str(s: &str) -> Result<Self, GrantError> {
        let bad = |reason: &str| GrantError {
            grant: s.to_string(),
            reason: reason.to_string(),
        };
        let g = s.trim();
        Ok(match g {
            "doc:read" => Grant::DocRead,
            "doc:write" => Grant::DocWrite,
            "kv:read" => Grant::KvRead,
            "kv:write" => Grant::KvWrite,
            _ => {
                if let Some(c) = g.strip_prefix("db:read:") {
                    Grant::DbRead(collection(c).map_err(&bad)?)
                } else if let Some(c) = g.strip_prefix("db:write:") {
                    Grant::DbWrite(collection(c).map_err(&bad)?)
                } else if let Some(n) = g.strip_prefix("secret:") {
                    quire_storage::check_secret_name(n).map_err(|e| bad(&e.to_string()))?;
                    Grant::Secret(n.to_string())
                } else if let Some(h) = g.strip_prefix("net:") {
                    net(h).map_err(|r| bad(&r))?
                } else {
                    return Err(bad("unknown kind"));
                }
            }
        })
    }
}

fn collection(c: &str) -> Result<String, &'static str> {
    if c.is_empty() {
        return Err("the collection is empty (use * for every collection)");
    }
    if c.len() > quire_storage::MAX_NAME_BYTES {
        return Err("the collection name is too long");
    }
    Ok(c.to_string())
}

fn net(h: &str) -> Result<Grant, String> {
    if h.is_empty() || h.contains('/') || h.contains('@') || h.contains('*') {
        return Err(
            "expected a host name or IP, optionally with :port (no scheme, path or wildcard)"
                .into(),
        );
    }
    let u = url::Url::parse(&format!("http://{h}/")).map_err(|e| format!("not a host: {e}"))?;
    let host = match u.host() {
        Some(url::Host::Ipv6(a)) => a.to_string(),
        Some(other) => other.to_string().to_ascii_lowercase(),
        None => return Err("no host".into()),
    };
    // `Url` drops a port equal to the scheme default; read it back from the
    // text so `net:host:80` keeps its exact port.
    let port = match h.rsplit_once(':') {
        Some((before, p))
            if !p.is_empty()
                && p.bytes().all(|b| b.is_ascii_digit())
                && (!before.contains(':') || before.ends_with(']')) =>
        {
            Some(
                p.parse::<u16>()
                    .map_err(|_| format!("port {p} is out of range"))?,
            )
        }
        _ => None,
    };
    Ok(Grant::Net { host, port })
}

/// A block's grants (empty by default: pure computation only).
///
/// Grants can be *suspended* ([`Grants::suspend`]): none of them applies,
/// but denials name them and say why, so a block whose source changed
/// after an admin approved its grants fails with a message that says what
/// to ask for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    set: BTreeSet<Grant>,
    suspended: BTreeSet<Grant>,
}

impl Grants {
    /// No grants.
    pub fn none() -> Self {
        Self::default()
    }

    /// Parse grant strings.
    ///
    /// # Errors
    /// The first invalid one, naming it.
    pub fn parse<S: AsRef<str>>(list: &[S]) -> Result<Self, GrantError> {
        list.iter()
            .map(|s| s.as_ref().parse())
            .collect::<Result<_, _>>()
            .map(|set| Self {
                set,
                suspended: BTreeSet::new(),
            })
    }

    /// The same grants, none of them in force: every check is denied, and
    /// the denial names them as suspended.
    pub fn suspend(mut self) -> Self {
        self.suspended.append(&mut self.set);
        self
    }

    /// The suspended grants as strings, sorted (empty unless
    /// [`Grants::suspend`] was called).
    pub fn suspended(&self) -> Vec<String> {
        self.suspended.iter().map(ToString::to_string).collect()
    }

    /// Whether this exact grant is present.
    pub fn has(&self, g: &Grant) -> bool {
        self.set.contains(g)
    }

    /// Every grant.
    pub fn iter(&self) -> impl Iterator<Item = &Grant> {
        self.set.iter()
    }

    /// The grants as strings, sorted.
    pub fn to_strings(&self) -> Vec<String> {
        self.set.iter().map(ToString::to_string).collect()
    }

    /// `net:` grants for `host`: (any port granted, exact ports granted).
    pub(crate) fn net_for(&self, host: &str) -> (bool, Vec<u16>) {
        let mut any = false;
        let mut ports = Vec::new();
        for g in &self.set {
            if let Grant::Net { host: h, port } = g {
                if h == host {
                    match port {
                        None => any = true,
                        Some(p) => ports.push(*p),
                    }
                }
            }
        }
        (any, ports)
    }
}

/// A denied check: the grant that was missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    /// What the call needed, e.g. `db:read:tasks`.
    pub needed: String,
}

/// Read or write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Reading.
    Read,
    /// Writing.
    Write,
}

/// Proof that the session may read or write documents of `ws`.
#[derive(Debug)]
pub struct CheckedDoc {
    pub(crate) ws: WorkspaceId,
    pub(crate) access: Access,
}

/// Proof that the session may read or write collection `name` of `ws`.
#[derive(Debug)]
pub struct CheckedCollection {
    pub(crate) ws: WorkspaceId,
    pub(crate) name: String,
    pub(crate) access: Access,
}

/// Proof that the session may read or write the kv of `ws`.
#[derive(Debug)]
pub struct CheckedKv {
    pub(crate) ws: WorkspaceId,
    pub(crate) access: Access,
}

/// Proof that the session may read secret `name` of `ws`.
#[derive(Debug)]
pub struct CheckedSecret {
    pub(crate) ws: WorkspaceId,
    pub(crate) name: String,
}

/// The checks, bound to one workspace.
#[derive(Debug, Clone)]
pub(crate) struct Checker {
    pub(crate) ws: WorkspaceId,
    pub(crate) grants: Grants,
}

impl Checker {
    fn need(&self, g: Grant) -> Result<(), Denied> {
        if self.grants.has(&g) {
            Ok(())
        } else {
            Err(Denied {
                needed: g.to_string(),
            })
        }
    }

    pub(crate) fn doc(&self, access: Access) -> Result<CheckedDoc, Denied> {
        self.need(match access {
            Access::Read => Grant::DocRead,
            Access::Write => Grant::DocWrite,
        })?;
        Ok(CheckedDoc {
            ws: self.ws,
            access,
        })
    }

    pub(crate) fn collection(
        &self,
        name: &str,
        access: Access,
    ) -> Result<CheckedCollection, Denied> {
        let (exact, any) = match access {
            Access::Read => (Grant::DbRead(name.to_string()), Grant::DbRead("*".into())),
            Access::Write => (Grant::DbWrite(name.to_string()), Grant::DbWrite("*".into())),
        };
        if !self.grants.has(&exact) && !self.grants.has(&any) {
            return Err(Denied {
                needed: exact.to_string(),
            });
        }
        Ok(CheckedCollection {
            ws: self.ws,
            name: name.to_string(),
            access,
        })
    }

    pub(crate) fn kv(&self, access: Access) -> Result<CheckedKv, Denied> {
        self.need(match access {
            Access::Read => Grant::KvRead,
            Access::Write => Grant::KvWrite,
        })?;
        Ok(CheckedKv {
            ws: self.ws,
            access,
        })
    }

    pub(crate) fn secret(&self, name: &str) -> Result<CheckedSecret, Denied> {
        self.need(Grant::Secret(name.to_string()))?;
        Ok(CheckedSecret {
            ws: self.ws,
            name: name.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn agent_grants_write_only_in_a_dry_run_and_never_reach_secrets_or_the_net() {
        let set = ["doc:read", "db:read:*", "db:write:tasks", "kv:write"];
        let dry = super::agent_grants(&set, true).map(|g| g.to_strings());
        assert_eq!(dry.ok().map(|g| g.len()), Some(4));
        let committed = super::agent_grants(&set, false).map(|g| g.to_strings());
        assert_eq!(
            committed.ok(),
            Some(vec!["doc:read".to_string(), "db:read:*".to_string()])
        );
        for bad in ["secret:API", "net:example.com", "nope", "db:write:"] {
            let e = super::check_agent_grants(&[bad]).err().unwrap_or_default();
            assert!(!e.is_empty(), "{bad} was accepted");
        }
        assert!(super::check_agent_grants(&["net:example.com"])
            .err()
            .unwrap_or_default()
            .contains("never secrets or the network"));
    }

    use super::*;

    #[test]
    fn grants_parse_and_print_back() {
        for s in [
            "doc:read",
            "doc:write",
            "db:read:tasks",
            "db:write:*",
            "kv:read",
            "kv:write",
            "secret:API_TOKEN",
            "net:example.com",
            "net:example.com:8443",
            "net:127.0.0.1:80",
            "net:[::1]:8080",
        ] {
            let g: Grant = s.parse().unwrap();
            assert_eq!(g.to_string(), s);
        }
    }

    #[test]
    fn malformed_grants_are_refused_with_the_reason() {
        for s in [
            "",
            "doc",
            "doc:admin",
            "db:read:",
            "secret:lower",
            "net:",
            "net:http://x.com",
            "net:*.x.com",
            "net:x.com:99999",
            "net:a@b",
            "fs:read",
        ] {
            let e = s.parse::<Grant>().unwrap_err();
            assert!(e.to_string().contains("invalid grant"), "{s}: {e}");
        }
    }

    #[test]
    fn checks_need_the_exact_grant_or_a_star() {
        let c = Checker {
            ws: WorkspaceId::from_bytes([1; 16]),
            grants: Grants::parse(&["db:read:tasks", "db:write:*"]).unwrap(),
        };
        assert!(c.collection("tasks", Access::Read).is_ok());
        assert_eq!(
            c.collection("tasks2", Access::Read).unwrap_err().needed,
            "db:read:tasks2"
        );
        assert_eq!(
            c.collection("*", Access::Read).unwrap_err().needed,
            "db:read:*"
        );
        assert!(c.collection("anything", Access::Write).is_ok());
        assert_eq!(c.doc(Access::Read).unwrap_err().needed, "doc:read");
        assert_eq!(c.secret("X").unwrap_err().needed, "secret:X");
        let upper = Checker {
            ws: c.ws,
            grants: Grants::parse(&["db:read:Tasks"]).unwrap(),
        };
        assert!(upper.collection("tasks", Access::Read).is_err());
    }
}
