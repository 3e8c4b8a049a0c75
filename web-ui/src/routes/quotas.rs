//! Quotas: a workspace's (set by its admins), the server's ceilings over
//! them (set by a server admin), and metered usage against them.

use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use quire_storage::{utc_day, Quota, UsageDay};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{blocking, in_workspace, Body};
use crate::auth::{Principal, Role};
use crate::error::{ApiError, ApiResult};
use crate::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/workspaces/{ws}/quota", get(show).put(set))
        .route("/workspaces/{ws}/usage", get(usage))
        .route("/quota/ceilings", get(ceilings).put(set_ceilings))
}

/// A change to a quota: the fields given replace the current values.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct QuotaChange {
    max_concurrent_runs: Option<u32>,
    max_queued_runs: Option<u32>,
    cpu_ms_per_run: Option<u64>,
    wall_ms_per_run: Option<u64>,
    memory_bytes_per_run: Option<u64>,
    output_bytes_per_run: Option<u64>,
    runs_per_minute: Option<u32>,
    cpu_ms_per_day: Option<u64>,
    storage_bytes: Option<u64>,
    history_bytes: Option<u64>,
    history_days: Option<u64>,
}

/// The smallest value each field takes: below it no run could start or
/// do anything useful, which is better said as a 400 than discovered.
const MINIMUMS: [(&str, u64); 11] = [
    ("max_concurrent_runs", 1),
    ("max_queued_runs", 0),
    ("cpu_ms_per_run", 1),
    ("wall_ms_per_run", 1),
    ("memory_bytes_per_run", 4 * 1024 * 1024),
    ("output_bytes_per_run", 1024),
    ("runs_per_minute", 1),
    ("cpu_ms_per_day", 1),
    ("storage_bytes", 0),
    ("history_bytes", 0),
    ("history_days", 0),
];

impl QuotaChange {
    fn apply(&self, q: &mut Quota) {
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(v) = self.$f { q.$f = v; } )* };
        }
        set!(
            max_concurrent_runs,
            max_queued_runs,
            cpu_ms_per_run,
            wall_ms_per_run,
            memory_bytes_per_run,
            output_bytes_per_run,
            runs_per_minute,
            cpu_ms_per_day,
            storage_bytes,
            history_bytes,
            history_days
        );
    }
}

fn check_minimums(q: &Quota) -> ApiResult<()> {
    for ((name, v), (_, min)) in q.fields().into_iter().zip(MINIMUMS) {
        if v < min {
            return Err(ApiError::field(
                name,
                format!("{v} is below the minimum of {min}"),
            ));
        }
    }
    Ok(())
}

/// Midnight UTC after `now_ms`.
fn next_utc_midnight(now_ms: u64) -> u64 {
    (u64::from(utc_day(now_ms)) + 1) * 86_400_000
}

fn day_view(u: &UsageDay) -> Value {
    let date = chrono::DateTime::from_timestamp(i64::from(u.day) * 86_400, 0)
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_default();
    json!({"date": date, "day": u.day, "runs": u.runs, "cpu_ms": u.cpu_ms, "wall_ms": u.wall_ms})
}

/// The quota, ceilings and live usage of workspace `ws`.
async fn view(s: &AppState, ws: quire_storage::Workspace) -> ApiResult<Value> {
    let now = quire_storage::now_ms();
    let (store, api_ws) = (s.store.clone(), ws.id);
    let meter_hub = s.hub.clone();
    let (set, ceilings, today, stored, history, lane) = blocking(move || {
        Ok((
            store.get_quota(&api_ws)?,
            store.quota_ceilings()?,
            store.usage_day(&api_ws, utc_day(now))?,
            meter_hub.stored_bytes(&api_ws)?,
            store.history_bytes(&api_ws)?,
            meter_hub.admission_stats(&api_ws, now)?,
        ))
    })
    .await?;
    let quota = set.unwrap_or_default().within(&ceilings);
    Ok(json!({
        "workspace": ws.name,
        "quota": quota,
        "set": set,
        "ceilings": ceilings,
        "usage": {
            "today": day_view(&today),
            "cpu_ms_left_today": (quota.cpu_ms_per_day as f64 - today.cpu_ms).max(0.0),
            "cpu_day_resets_at_ms": next_utc_midnight(now),
            "running": lane.running,
            "queued": lane.queued,
            "runs_last_minute": lane.last_minute,
            "storage_bytes": stored,
            "history_bytes": history,
        },
    }))
}

async fn show(
    State(s): State<AppState>,
    who: Principal,
    Path(ws): Path<String>,
) -> ApiResult<Json<Value>> {
    let w = in_workspace(&s, who, ws, Role::Admin, |_, w| Ok(w.clone())).await?;
    Ok(Json(view(&s, w).await?))
}

async fn set(
    State(s): State<AppState>,
    who: Principal,
    Path(ws): Path<String>,
    Body(change): Body<QuotaChange>,
) -> ApiResult<Json<Value>> {
    let w = in_workspace(&s, who, ws, Role::Admin, move |store, w| {
        let ceilings = store.quota_ceilings()?;
        let mut q = store
            .get_quota(&w.id)?
            .unwrap_or_default()
            .within(&ceilings);
        change.apply(&mut q);
        check_minimums(&q)?;
        if let Some((field, v, ceiling)) = q.over(&ceilings) {
            return Err(ApiError::field(
                field,
                format!(
                    "{v} is over the server's ceiling of {ceiling}; a server admin sets ceilings"
                ),
            ));
        }
        store.put_quota(&w.id, &q)?;
        tracing::info!(workspace = %w.id, quota = ?q, "workspace quota set");
        Ok(w.clone())
    })
    .await?;
    Ok(Json(view(&s, w).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UsageQuery {
    /// Days back from today, today included. Default 30, at most 366.
    days: Option<u32>,
}

async fn usage(
    State(s): State<AppState>,
    who: Principal,
    Path(ws): Path<String>,
    Query(q): Query<UsageQuery>,
) -> ApiResult<Json<Value>> {
    let days = q.days.unwrap_or(30);
    if !(1..=366).contains(&days) {
        return Err(ApiError::field(
            "days",
            format!("{days} is not between 1 and 366"),
        ));
    }
    let today = utc_day(quire_storage::now_ms());
    let list = in_workspace(&s, who, ws, Role::Admin, move |store, w| {
        Ok(store.usage_days(&w.id, today.saturating_sub(days - 1), today)?)
    })
    .await?;
    Ok(Json(
        json!({"days": list.iter().map(day_view).collect::<Vec<_>>()}),
    ))
}

fn server_admin(who: &Principal, what: &'static str) -> ApiResult<()> {
    if who.is_server_admin() {
        Ok(())
    } else {
        Err(ApiError::ServerAdminOnly(what))
    }
}

async fn ceilings(State(s): State<AppState>, who: Principal) -> ApiResult<Json<Value>> {
    server_admin(&who, "read quota ceilings")?;
    let store = s.store.clone();
    let c = blocking(move || Ok(store.quota_ceilings()?)).await?;
    Ok(Json(json!({"ceilings": c})))
}

async fn set_ceilings(
    State(s): State<AppState>,
    who: Principal,
    Body(change): Body<QuotaChange>,
) -> ApiResult<Json<Value>> {
    server_admin(&who, "set quota ceilings")?;
    let store = s.store.clone();
    let c = blocking(move || {
        let mut c = store.quota_ceilings()?;
        change.apply(&mut c);
        check_minimums(&c)?;
        store.put_quota_ceilings(&c)?;
        tracing::info!(ceilings = ?c, "quota ceilings set");
        Ok(c)
    })
    .await?;
    Ok(Json(json!({"ceilings": c})))
}
