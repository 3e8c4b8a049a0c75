//! Cron schedules of blocks. The store keeps each schedule's next fire time;
//! moving it on is a compare-and-set, and the same atomic write files the
//! run it fires as `queued`, so an occurrence is neither lost nor fired
//! twice across restarts (the server starts queued runs when it starts).

use serde::{Deserialize, Serialize};

use crate::backend::{Table, Tx};
use crate::error::Result;
use crate::keys::{check_name, Key};
use crate::model::{RunRecord, WorkspaceId};
use crate::store::{to_vec, Store};

/// A block's cron schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleRecord {
    /// Its id (unique in the workspace).
    pub id: String,
    /// The block it runs.
    pub block: String,
    /// The cron expression (5 fields, or 6 with seconds first).
    pub cron: String,
    /// IANA time zone the expression is read in, e.g. `Europe/Lisbon`.
    pub timezone: String,
    /// A paused schedule does not fire (its next time still moves on).
    #[serde(default)]
    pub paused: bool,
    /// When the server was down at an occurrence: run once at start
    /// (`true`), or skip what was missed (`false`).
    #[serde(default = "yes")]
    pub catch_up: bool,
    /// The next occurrence, milliseconds since the Unix epoch (`None`:
    /// the expression has no more occurrences).
    pub next_fire_ms: Option<u64>,
    /// The last occurrence that fired.
    #[serde(default)]
    pub last_fired_ms: Option<u64>,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_ms: u64,
}

fn yes() -> bool {
    true
}

impl Store {
    /// Create or replace a schedule (an empty id gets a fresh one).
    pub fn put_schedule(&self, ws: &WorkspaceId, mut s: ScheduleRecord) -> Result<ScheduleRecord> {
        if s.id.is_empty() {
            s.id = self.new_id()?;
        }
        check_name("schedule id", &s.id)?;
        check_name("block id", &s.block)?;
        let v = to_vec(&s)?;
        let key = Key::ws(ws).last(s.id.as_bytes());
        self.b.write(&mut |tx| tx.put(Table::Schedules, &key, &v))?;
        Ok(s)
    }

    /// One schedule.
    pub fn get_schedule(&self, ws: &WorkspaceId, id: &str) -> Result<Option<ScheduleRecord>> {
        check_name("schedule id", id)?;
        self.get_json(
            Table::Schedules,
            &Key::ws(ws).last(id.as_bytes()),
            "schedule",
        )
    }

    /// The workspace's schedules.
    pub fn list_schedules(&self, ws: &WorkspaceId) -> Result<Vec<ScheduleRecord>> {
        let mut out = Vec::new();
        self.scan_json(
            Table::Schedules,
            &Key::ws(ws).prefix(),
            "schedule",
            |_, s| {
                out.push(s);
                true
            },
        )?;
        Ok(out)
    }

    /// Every schedule of every workspace (what the scheduler watches).
    pub fn all_schedules(&self) -> Result<Vec<(WorkspaceId, ScheduleRecord)>> {
        let mut out = Vec::new();
        self.scan_json(Table::Schedules, b"", "schedule", |k, s: ScheduleRecord| {
            if let Some(ws) = k.get(..16).and_then(|b| <[u8; 16]>::try_from(b).ok()) {
                out.push((WorkspaceId::from_bytes(ws), s));
            }
            true
        })?;
        Ok(out)
    }

    /// Delete a schedule; whether it existed.
    pub fn delete_schedule(&self, ws: &WorkspaceId, id: &str) -> Result<bool> {
        check_name("schedule id", id)?;
        self.remove_key(Table::Schedules, &Key::ws(ws).last(id.as_bytes()))
    }

    /// Move schedule `id` on from `from` to `to` in one atomic write, and
    /// with it record `fire` (a run with status `queued`) when given.
    /// Returns `false`, changing nothing, when the schedule is gone or no
    /// longer at `from` (another scheduler, or an edit, moved it first).
    pub fn advance_schedule(
        &self,
        ws: &WorkspaceId,
        id: &str,
        from: Option<u64>,
        to: Option<u64>,
        fire: Option<&RunRecord>,
    ) -> Result<bool> {
        check_name("schedule id", id)?;
        let key = Key::ws(ws).last(id.as_bytes());
        let run = match fire {
            Some(r) => {
                check_name("run id", &r.id)?;
                if r.status != "queued" {
                    return Err(crate::error::invalid(
                        "fired run",
                        "its status must be queued",
                    ));
                }
                Some((Key::ws(ws).last(r.id.as_bytes()), to_vec(r)?))
            }
            None => None,
        };
        let mut moved = false;
        self.b.write(&mut |tx: &mut dyn Tx| {
            moved = false;
            let Some(cur) = tx.get(Table::Schedules, &key)? else {
                return Ok(());
            };
            let mut s: ScheduleRecord = crate::error::decode("schedule", &cur)?;
            if s.next_fire_ms != from {
                return Ok(());
            }
            s.next_fire_ms = to;
            if let Some((rk, rv)) = &run {
                s.last_fired_ms = from;
                tx.put(Table::Runs, rk, rv)?;
                tx.put(Table::RunsQueued, rk, b"")?;
            }
            tx.put(Table::Schedules, &key, &to_vec(&s)?)?;
            moved = true;
            Ok(())
        })?;
        Ok(moved)
    }

    /// Runs filed as `queued` and not started yet (in every workspace),
    /// oldest first.
    pub fn queued_runs(&self) -> Result<Vec<(WorkspaceId, RunRecord)>> {
        let mut out = self.indexed_runs(Table::RunsQueued)?;
        out.sort_by(|a, b| {
            a.1.started_ms
                .cmp(&b.1.started_ms)
                .then(a.1.id.cmp(&b.1.id))
        });
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StorageError;

    fn sched(next: Option<u64>) -> ScheduleRecord {
        ScheduleRecord {
            id: "s1".into(),
            block: "b".into(),
            cron: "* * * * *".into(),
            timezone: "UTC".into(),
            paused: false,
            catch_up: true,
            next_fire_ms: next,
            last_fired_ms: None,
            created_ms: 1,
        }
    }

    fn queued(id: &str, at: u64) -> RunRecord {
        RunRecord::queued(
            id.into(),
            Some("b".into()),
            serde_json::json!({"kind": "schedule", "scheduled_at_ms": at}),
            at,
        )
    }

    #[test]
    fn advancing_is_compare_and_set_and_files_the_run_with_it() -> Result<()> {
        let s = crate::testing::store()?;
        let ws = s.create_workspace("w")?.id;
        let other = s.create_workspace("o")?.id;
        s.put_schedule(&ws, sched(Some(60_000)))?;
        // Wrong `from` (someone moved it): nothing changes, nothing filed.
        assert!(!s.advance_schedule(&ws, "s1", Some(1), Some(120_000), Some(&queued("r0", 1)))?);
        assert!(s.get_run(&ws, "r0")?.is_none());
        assert!(s.advance_schedule(
            &ws,
            "s1",
            Some(60_000),
            Some(120_000),
            Some(&queued("r1", 60_000))
        )?);
        // The same occurrence cannot fire twice.
        assert!(!s.advance_schedule(
            &ws,
            "s1",
            Some(60_000),
            Some(120_000),
            Some(&queued("r2", 60_000))
        )?);
        let cur = s.get_schedule(&ws, "s1")?.ok_or(StorageError::NotFound {
            what: "s",
            id: "s1".into(),
        })?;
        assert_eq!(
            (cur.next_fire_ms, cur.last_fired_ms),
            (Some(120_000), Some(60_000))
        );
        let q: Vec<_> = s
            .queued_runs()?
            .into_iter()
            .map(|(w, r)| (w, r.id))
            .collect();
        assert_eq!(q, [(ws, "r1".to_string())]);
        // Recording the run as started takes it off the queue.
        let mut r = queued("r1", 60_000);
        r.status = "running".into();
        s.put_run(&ws, &r)?;
        assert!(s.queued_runs()?.is_empty());
        // Other workspaces and missing schedules are untouched.
        assert!(!s.advance_schedule(&other, "s1", Some(120_000), None, None)?);
        assert_eq!(s.all_schedules()?.len(), 1);
        assert!(s.delete_schedule(&ws, "s1")?);
        assert!(!s.advance_schedule(&ws, "s1", Some(120_000), None, None)?);
        Ok(())
    }
}
