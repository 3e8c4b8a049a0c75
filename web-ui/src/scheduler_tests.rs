//! Scheduler tests on a hand-moved clock: nothing waits for real minutes.

use std::sync::Arc;
use std::time::Duration;

use quire_storage::{ScheduleRecord, WorkspaceId};

use crate::error::ApiError;
use crate::scheduler::{plan, CronSpec, ManualClock, Scheduler, MAX_FIRES_PER_TICK};
use crate::testkit::{fixture, Fixture};
use crate::ServerConfig;

/// 2026-07-01T12:00:00Z in milliseconds.
const NOON: u64 = 1_782_907_200_000;
const MIN: u64 = 60_000;
const HOUR: u64 = 60 * MIN;

fn schedule(cron: &str, next: u64, catch_up: bool) -> ScheduleRecord {
    ScheduleRecord {
        id: String::new(),
        block: "b1".into(),
        cron: cron.into(),
        timezone: "UTC".into(),
        paused: false,
        catch_up,
        next_fire_ms: Some(next),
        last_fired_ms: None,
        created_ms: 0,
    }
}

fn scheduler(f: &Fixture, clock: &Arc<ManualClock>) -> Arc<Scheduler> {
    Arc::new(Scheduler::new(
        f.state.store.clone(),
        f.state.hub.clone(),
        clock.clone(),
    ))
}

async fn settle(f: &Fixture) {
    for _ in 0..2000 {
        if f.state.hub.active_count() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("runs did not finish");
}

fn schedule_runs(f: &Fixture, ws: &WorkspaceId) -> Vec<quire_storage::RunRecord> {
    let mut v: Vec<_> = f
        .state
        .store
        .recent_runs(ws, Some("b1"), 100, None)
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.trigger["kind"] == "schedule")
        .collect();
    v.sort_by_key(|r| r.started_ms);
    v
}

#[test]
fn cron_expressions_and_time_zones() -> Result<(), ApiError> {
    // 09:00 in Lisbon is 08:00 UTC in summer.
    let lisbon = CronSpec::parse("0 9 * * *", "Europe/Lisbon")?;
    assert_eq!(lisbon.next_after(NOON - 12 * HOUR), Some(NOON - 4 * HOUR));
    // Six fields: seconds first.
    let every10s = CronSpec::parse("*/10 * * * * *", "UTC")?;
    assert_eq!(every10s.next_after(NOON + 1), Some(NOON + 10_000));
    assert_eq!(
        CronSpec::parse("@hourly", "UTC")?.next_after(NOON),
        Some(NOON + HOUR)
    );
    for (cron, tz, field) in [
        ("* * *", "UTC", "cron"),
        ("61 * * * *", "UTC", "cron"),
        ("* * * * *", "Mars/Olympus", "timezone"),
    ] {
        match CronSpec::parse(cron, tz) {
            Err(quire_service::ServiceError::Invalid { field: f, .. }) => {
                assert_eq!(f, field, "{cron} {tz}")
            }
            other => panic!("{cron} {tz}: {other:?}"),
        }
    }
    Ok(())
}

#[test]
fn plans_fire_each_due_occurrence_once_or_follow_the_missed_policy() -> Result<(), ApiError> {
    let spec = CronSpec::parse("0 * * * *", "UTC")?;
    let s = schedule("0 * * * *", NOON, true);
    assert_eq!(plan(&s, &spec, NOON - 1, false), None);
    let p = plan(&s, &spec, NOON + 5 * MIN, false).ok_or(ApiError::Internal("no plan".into()))?;
    assert_eq!((p.fire, p.next), (vec![NOON], Some(NOON + HOUR)));
    // A running server that fell behind fires each occurrence.
    let p =
        plan(&s, &spec, NOON + 3 * HOUR + 1, false).ok_or(ApiError::Internal("no plan".into()))?;
    assert_eq!(
        p.fire,
        vec![NOON, NOON + HOUR, NOON + 2 * HOUR, NOON + 3 * HOUR]
    );
    // Missed while down: once (the latest), or not at all.
    let p =
        plan(&s, &spec, NOON + 3 * HOUR + 1, true).ok_or(ApiError::Internal("no plan".into()))?;
    assert_eq!(
        (p.fire, p.skipped, p.next),
        (vec![NOON + 3 * HOUR], 3, Some(NOON + 4 * HOUR))
    );
    let skip = schedule("0 * * * *", NOON, false);
    let p = plan(&skip, &spec, NOON + 3 * HOUR + 1, true)
        .ok_or(ApiError::Internal("no plan".into()))?;
    assert_eq!((p.fire.len(), p.skipped), (0, 4));
    // Paused: nothing fires, the time still moves on.
    let mut paused = schedule("0 * * * *", NOON, true);
    paused.paused = true;
    let p = plan(&paused, &spec, NOON + 1, false).ok_or(ApiError::Internal("no plan".into()))?;
    assert_eq!((p.fire.len(), p.next), (0, Some(NOON + HOUR)));
    // A stalled every-second schedule fires at most the cap per tick.
    let secs = CronSpec::parse("* * * * * *", "UTC")?;
    let p = plan(
        &schedule("* * * * * *", NOON, true),
        &secs,
        NOON + HOUR,
        false,
    )
    .ok_or(ApiError::Internal("no plan".into()))?;
    assert_eq!(p.fire.len(), MAX_FIRES_PER_TICK);
    assert_eq!(p.fire.len() + p.skipped, 3601);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_due_schedule_fires_once_with_a_schedule_trigger() -> anyhow::Result<()> {
    let f = fixture(ServerConfig::default())?;
    let ws = f.a.id;
    f.state
        .store
        .put_schedule(&ws, schedule("* * * * *", NOON + MIN, true))?;
    let clock = Arc::new(ManualClock::at(NOON + 30_000));
    let s = scheduler(&f, &clock);
    assert_eq!(s.tick(false).await?.fired, 0);
    clock.set(NOON + MIN + 5_000);
    let r = s.tick(false).await?;
    assert_eq!((r.fired, r.started), (1, 1));
    // The same instant again: nothing more.
    let r = s.tick(false).await?;
    assert_eq!((r.fired, r.started), (0, 0));
    settle(&f).await;
    let runs = schedule_runs(&f, &ws);
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].status, "ok");
    assert_eq!(runs[0].trigger["scheduled_at"], "2026-07-01T12:01:00.000Z");
    let sched = f.state.store.all_schedules()?;
    assert_eq!(sched[0].1.next_fire_ms, Some(NOON + 2 * MIN));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_filing_and_starting_neither_loses_nor_repeats_a_fire() -> anyhow::Result<()>
{
    let f = fixture(ServerConfig::default())?;
    let ws = f.a.id;
    f.state
        .store
        .put_schedule(&ws, schedule("* * * * *", NOON, true))?;
    let clock = Arc::new(ManualClock::at(NOON + 1_000));
    // The first process files the occurrence, then dies before starting it.
    let before = scheduler(&f, &clock);
    assert_eq!(before.file_due(false)?.fired, 1);
    drop(before);
    // The next process starts: it must start the queued run, not fire the
    // occurrence again.
    let after = scheduler(&f, &clock);
    let r = after.tick(true).await?;
    assert_eq!((r.fired, r.started), (0, 1));
    let r = after.tick(false).await?;
    assert_eq!((r.fired, r.started), (0, 0));
    settle(&f).await;
    let runs = schedule_runs(&f, &ws);
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0].trigger["scheduled_at_ms"], NOON);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn occurrences_missed_while_down_run_once_or_are_skipped() -> anyhow::Result<()> {
    let f = fixture(ServerConfig::default())?;
    let ws = f.a.id;
    let once = f
        .state
        .store
        .put_schedule(&ws, schedule("0 * * * *", NOON, true))?;
    let mut skip = schedule("0 * * * *", NOON, false);
    skip.block = "b1".into();
    let skip = f.state.store.put_schedule(&ws, skip)?;
    // Down from before noon until 15:30.
    let clock = Arc::new(ManualClock::at(NOON + 3 * HOUR + 30 * MIN));
    let s = scheduler(&f, &clock);
    let r = s.tick(true).await?;
    assert_eq!((r.fired, r.skipped), (1, 3 + 4));
    settle(&f).await;
    let runs = schedule_runs(&f, &ws);
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].trigger["schedule"], once.id.as_str());
    assert_eq!(runs[0].trigger["scheduled_at_ms"], NOON + 3 * HOUR);
    for id in [&once.id, &skip.id] {
        let now = f
            .state
            .store
            .get_schedule(&ws, id)?
            .and_then(|s| s.next_fire_ms);
        assert_eq!(now, Some(NOON + 4 * HOUR));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_whose_block_is_gone_records_a_failed_run() -> anyhow::Result<()> {
    let f = fixture(ServerConfig::default())?;
    let ws = f.a.id;
    f.state
        .store
        .put_schedule(&ws, schedule("* * * * *", NOON, true))?;
    f.state.store.delete_block(&ws, "b1")?;
    let clock = Arc::new(ManualClock::at(NOON + 1));
    let r = scheduler(&f, &clock).tick(false).await?;
    assert_eq!((r.fired, r.started), (1, 0));
    let runs = schedule_runs(&f, &ws);
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].status, "error");
    assert!(f.state.store.queued_runs()?.is_empty());
    Ok(())
}

#[test]
fn a_schedule_in_words_ends_without_a_doubled_period() {
    for expr in ["*/3 * * * * *", "0 9 * * 1-5", "*/5 * * * *"] {
        let words = crate::scheduler::CronSpec::parse(expr, "UTC")
            .map(|c| c.describe())
            .unwrap_or_default();
        assert!(!words.is_empty(), "{expr}");
        assert!(!words.ends_with('.'), "{expr}: {words:?}");
    }
}
