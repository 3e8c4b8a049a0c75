//! Workspace quotas, the server's ceilings over them, and metered usage.
//!
//! The store only keeps the numbers: what a workspace's admins set
//! ([`Quota`] under the workspace id), the server admin's ceilings (a
//! [`Quota`] under `ceilings`), and per UTC day what each workspace's
//! runs used ([`UsageDay`]). Enforcing them is the server's job.

use serde::{Deserialize, Serialize};

use crate::backend::{Table, Tx};
use crate::error::Result;
use crate::keys::Key;
use crate::model::WorkspaceId;
use crate::store::{to_vec, Store};

const CEILINGS_KEY: &[u8] = b"ceilings";
const MIB: u64 = 1024 * 1024;

/// What one workspace may use. Every field is a hard limit; the
/// effective quota is each field's minimum of the workspace's value and
/// the server's ceiling ([`Quota::within`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Quota {
    /// Runs executing at once. Further runs wait in a queue. Default: 4.
    pub max_concurrent_runs: u32,
    /// Runs waiting for a free slot at once; a run past it is refused.
    /// Default: 100.
    pub max_queued_runs: u32,
    /// CPU time one run may use, in milliseconds. Default: 1000.
    pub cpu_ms_per_run: u64,
    /// Wall-clock time one run may take, in milliseconds. Default: 5000.
    pub wall_ms_per_run: u64,
    /// Memory one run's isolate may allocate, in bytes. Default: 64 MiB.
    pub memory_bytes_per_run: u64,
    /// Output one run may write (logs, displays, result), in bytes.
    /// Default: 1 MiB.
    pub output_bytes_per_run: u64,
    /// Runs started in any 60-second window. Default: 600.
    pub runs_per_minute: u32,
    /// CPU time all runs may use per UTC day, in milliseconds (measured,
    /// not estimated). Default: 3,600,000 (one CPU hour).
    pub cpu_ms_per_day: u64,
    /// Bytes of stored data (documents, rows, key-value entries, secrets
    /// and blocks, keys included). Writes that would grow data past it
    /// are refused; deletes always work. Default: 256 MiB.
    pub storage_bytes: u64,
    /// Bytes of run history kept (every run's record and events, as
    /// stored). When a run finishes past it, the oldest finished runs are
    /// deleted until the history fits. Default: 256 MiB.
    pub history_bytes: u64,
    /// Days a finished run is kept; older ones are deleted when a run
    /// finishes. Default: 30.
    pub history_days: u64,
}

impl Default for Quota {
    fn default() -> Self {
        Self {
            max_concurrent_runs: 4,
            max_queued_runs: 100,
            cpu_ms_per_run: 1000,
            wall_ms_per_run: 5000,
            memory_bytes_per_run: 64 * MIB,
            output_bytes_per_run: MIB,
            runs_per_minute: 600,
            cpu_ms_per_day: 3_600_000,
            storage_bytes: 256 * MIB,
            history_bytes: 256 * MIB,
            history_days: 30,
        }
    }
}

impl Quota {
    /// The ceilings a server starts with, before its admin sets any.
    pub fn default_ceilings() -> Self {
        Self {
            max_concurrent_runs: 16,
            max_queued_runs: 10_000,
            cpu_ms_per_run: 30_000,
            wall_ms_per_run: 300_000,
            memory_bytes_per_run: 512 * MIB,
            output_bytes_per_run: 16 * MIB,
            runs_per_minute: 100_000,
            cpu_ms_per_day: 86_400_000,
            storage_bytes: 10 * 1024 * MIB,
            history_bytes: 10 * 1024 * MIB,
            history_days: 3650,
        }
    }

    /// Each field as `(name, value)`, in declaration order.
    pub fn fields(&self) -> [(&'static str, u64); 11] {
        [
            ("max_concurrent_runs", u64::from(self.max_concurrent_runs)),
            ("max_queued_runs", u64::from(self.max_queued_runs)),
            ("cpu_ms_per_run", self.cpu_ms_per_run),
            ("wall_ms_per_run", self.wall_ms_per_run),
            ("memory_bytes_per_run", self.memory_bytes_per_run),
            ("output_bytes_per_run", self.output_bytes_per_run),
            ("runs_per_minute", u64::from(self.runs_per_minute)),
            ("cpu_ms_per_day", self.cpu_ms_per_day),
            ("storage_bytes", self.storage_bytes),
            ("history_bytes", self.history_bytes),
            ("history_days", self.history_days),
        ]
    }

    /// This quota cut down to `ceilings`, field by field.
    pub fn within(&self, ceilings: &Quota) -> Quota {
        Quota {
            max_concurrent_runs: self.max_concurrent_runs.min(ceilings.max_concurrent_runs),
            max_queued_runs: self.max_queued_runs.min(ceilings.max_queued_runs),
            cpu_ms_per_run: self.cpu_ms_per_run.min(ceilings.cpu_ms_per_run),
            wall_ms_per_run: self.wall_ms_per_run.min(ceilings.wall_ms_per_run),
            memory_bytes_per_run: self.memory_bytes_per_run.min(ceilings.memory_bytes_per_run),
            output_bytes_per_run: self.output_bytes_per_run.min(ceilings.output_bytes_per_run),
            runs_per_minute: self.runs_per_minute.min(ceilings.runs_per_minute),
            cpu_ms_per_day: self.cpu_ms_per_day.min(ceilings.cpu_ms_per_day),
            storage_bytes: self.storage_bytes.min(ceilings.storage_bytes),
            history_bytes: self.history_bytes.min(ceilings.history_bytes),
            history_days: self.history_days.min(ceilings.history_days),
        }
    }

    /// The first field over its ceiling, as `(name, value, ceiling)`.
    pub fn over(&self, ceilings: &Quota) -> Option<(&'static str, u64, u64)> {
        self.fields()
            .into_iter()
            .zip(ceilings.fields())
            .find(|((_, v), (_, c))| v > c)
            .map(|((n, v), (_, c))| (n, v, c))
    }
}

/// What one workspace's runs used on one UTC day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct UsageDay {
    /// Days since 1970-01-01 (UTC).
    pub day: u32,
    /// Runs that finished.
    pub runs: u64,
    /// Measured CPU time, in milliseconds.
    pub cpu_ms: f64,
    /// Wall-clock time, in milliseconds.
    pub wall_ms: f64,
}

/// The UTC day number of `ms` milliseconds since the Unix epoch.
pub fn utc_day(ms: u64) -> u32 {
    u32::try_from(ms / 86_400_000).unwrap_or(u32::MAX)
}

/// Add one run's usage to day `day` of `ws` inside write `tx`.
pub(crate) fn add_usage_in(
    tx: &mut dyn Tx,
    ws: &WorkspaceId,
    day: u32,
    cpu_ms: f64,
    wall_ms: f64,
) -> Result<()> {
    let key = Key::ws(ws).last(&day.to_be_bytes());
    let mut u: UsageDay = match tx.get(Table::Usage, &key)? {
        Some(v) => crate::error::decode("usage", &v)?,
        None => UsageDay {
            day,
            ..UsageDay::default()
        },
    };
    u.runs += 1;
    u.cpu_ms += cpu_ms.max(0.0);
    u.wall_ms += wall_ms.max(0.0);
    tx.put(Table::Usage, &key, &to_vec(&u)?)
}

/// Tables holding a workspace's data, counted against `storage_bytes`.
const DATA_TABLES: [Table; 5] = [
    Table::Docs,
    Table::Rows,
    Table::Kv,
    Table::Secrets,
    Table::Blocks,
];

impl Store {
    /// The quota workspace `ws`'s admins set, if they set one.
    pub fn get_quota(&self, ws: &WorkspaceId) -> Result<Option<Quota>> {
        self.get_json(Table::Quotas, &Key::ws(ws).prefix(), "quota")
    }

    /// Set workspace `ws`'s quota (checking it against the ceilings is
    /// the caller's job).
    pub fn put_quota(&self, ws: &WorkspaceId, q: &Quota) -> Result<()> {
        let (k, v) = (Key::ws(ws).prefix(), to_vec(q)?);
        self.b.write(&mut |tx| tx.put(Table::Quotas, &k, &v))
    }

    /// The server's ceilings ([`Quota::default_ceilings`] until set).
    pub fn quota_ceilings(&self) -> Result<Quota> {
        Ok(self
            .get_json(Table::Quotas, CEILINGS_KEY, "quota ceilings")?
            .unwrap_or_else(Quota::default_ceilings))
    }

    /// Set the server's ceilings.
    pub fn put_quota_ceilings(&self, q: &Quota) -> Result<()> {
        let v = to_vec(q)?;
        self.b
            .write(&mut |tx| tx.put(Table::Quotas, CEILINGS_KEY, &v))
    }

    /// Add one finished run's measured usage to day `day` of `ws`, in one
    /// atomic read-modify-write.
    pub fn add_usage(&self, ws: &WorkspaceId, day: u32, cpu_ms: f64, wall_ms: f64) -> Result<()> {
        self.b
            .write(&mut |tx| add_usage_in(tx, ws, day, cpu_ms, wall_ms))
    }

    /// Usage of `ws` on day `day` (zeros when nothing ran).
    pub fn usage_day(&self, ws: &WorkspaceId, day: u32) -> Result<UsageDay> {
        let key = Key::ws(ws).last(&day.to_be_bytes());
        Ok(self
            .get_json(Table::Usage, &key, "usage")?
            .unwrap_or(UsageDay {
                day,
                ..UsageDay::default()
            }))
    }

    /// Usage of `ws` on the days from `first` to `last` (inclusive) that
    /// had any, oldest first.
    pub fn usage_days(&self, ws: &WorkspaceId, first: u32, last: u32) -> Result<Vec<UsageDay>> {
        let mut out = Vec::new();
        self.scan_json(
            Table::Usage,
            &Key::ws(ws).prefix(),
            "usage",
            |_, u: UsageDay| {
                if u.day >= first && u.day <= last {
                    out.push(u);
                }
                u.day < last
            },
        )?;
        Ok(out)
    }

    /// Bytes of `ws`'s stored data (keys and values of its documents,
    /// rows, key-value entries, secrets and blocks). Reads them all:
    /// callers cache it.
    pub fn workspace_data_bytes(&self, ws: &WorkspaceId) -> Result<u64> {
        let prefix = Key::ws(ws).prefix();
        let mut total = 0u64;
        for t in DATA_TABLES {
            self.b.scan(t, &prefix, None, &mut |k, v| {
                total += (k.len() + v.len()) as u64;
                Ok(true)
            })?;
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The README's quota paragraph gives each history default and ceiling.
    #[test]
    fn the_readme_gives_the_history_defaults_and_ceilings() {
        let readme = include_str!("../../README.md").replace('\n', " ");
        let (d, c) = (Quota::default(), Quota::default_ceilings());
        let text = format!(
            "`history_bytes` {} MiB ({} GiB) and `history_days` {} ({})",
            d.history_bytes / MIB,
            c.history_bytes / (1024 * MIB),
            d.history_days,
            c.history_days
        );
        assert!(readme.contains(&text), "README: {text}");
    }

    #[test]
    fn quota_within_and_over_ceilings() {
        let ceilings = Quota {
            cpu_ms_per_run: 500,
            ..Quota::default_ceilings()
        };
        let q = Quota::default();
        assert_eq!(q.within(&ceilings).cpu_ms_per_run, 500);
        assert_eq!(q.over(&ceilings), Some(("cpu_ms_per_run", 1000, 500)));
        assert_eq!(q.within(&ceilings).over(&ceilings), None);
    }

    #[test]
    fn quotas_usage_and_data_bytes_are_per_workspace() -> Result<()> {
        let s = crate::testing::store()?;
        let a = s.create_workspace("a")?.id;
        let b = s.create_workspace("b")?.id;
        assert_eq!(s.get_quota(&a)?, None);
        let q = Quota {
            max_concurrent_runs: 1,
            ..Quota::default()
        };
        s.put_quota(&a, &q)?;
        assert_eq!(s.get_quota(&a)?, Some(q));
        assert_eq!(s.get_quota(&b)?, None);
        assert_eq!(s.quota_ceilings()?, Quota::default_ceilings());
        s.put_quota_ceilings(&q)?;
        assert_eq!(s.quota_ceilings()?, q);

        s.add_usage(&a, 20_000, 12.5, 20.0)?;
        s.add_usage(&a, 20_000, 7.5, 1.0)?;
        s.add_usage(&a, 20_001, 1.0, 1.0)?;
        let d = s.usage_day(&a, 20_000)?;
        assert_eq!((d.runs, d.cpu_ms, d.wall_ms), (2, 20.0, 21.0));
        assert_eq!(s.usage_day(&b, 20_000)?.runs, 0);
        assert_eq!(s.usage_days(&a, 19_999, 20_001)?.len(), 2);
        assert_eq!(s.usage_days(&a, 20_001, 20_001)?[0].cpu_ms, 1.0);

        let before = s.workspace_data_bytes(&a)?;
        s.kv_set(&a, "k", &serde_json::json!("x".repeat(1000)))?;
        let after = s.workspace_data_bytes(&a)?;
        assert!(after >= before + 1000, "{before} -> {after}");
        assert_eq!(s.workspace_data_bytes(&b)?, 0);
        Ok(())
    }
}
