//! Cron schedules of blocks.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use quire_storage::ScheduleRecord;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{in_workspace, Body};
use crate::auth::{Principal, Role};
use crate::error::{ApiError, ApiResult};
use crate::scheduler::CronSpec;
use crate::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/workspaces/{ws}/blocks/{block}/schedules", post(create))
        .route("/workspaces/{ws}/schedules", get(list))
        .route(
            "/workspaces/{ws}/schedules/{id}",
            patch(edit).delete(remove),
        )
}

fn view(s: &ScheduleRecord) -> Value {
    let description = CronSpec::parse(&s.cron, &s.timezone)
        .map(|c| c.describe())
        .unwrap_or_default();
    json!({
        "id": s.id, "block": s.block, "cron": s.cron, "timezone": s.timezone,
        "paused": s.paused, "catch_up": s.catch_up, "description": description,
        "next_fire_ms": s.next_fire_ms, "last_fired_ms": s.last_fired_ms,
    })
}

fn default_tz() -> String {
    "UTC".into()
}

fn default_true() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewSchedule {
    cron: String,
    #[serde(default = "default_tz")]
    timezone: String,
    /// Run once at start for occurrences missed while the server was down.
    #[serde(default = "default_true")]
    catch_up: bool,
    #[serde(default)]
    paused: bool,
}

async fn create(
    State(s): State<AppState>,
    who: Principal,
    Path((ws, block)): Path<(String, String)>,
    Body(req): Body<NewSchedule>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let spec = CronSpec::parse(&req.cron, &req.timezone)?;
    let now = s.clock.now_ms();
    let rec = in_workspace(&s, who, ws, Role::Editor, move |store, w| {
        if store.get_block(&w.id, &block)?.is_none() {
            return Err(ApiError::not_found("block", block));
        }
        Ok(store.put_schedule(
            &w.id,
            ScheduleRecord {
                id: String::new(),
                block,
                cron: req.cron,
                timezone: req.timezone,
                paused: req.paused,
                catch_up: req.catch_up,
                next_fire_ms: spec.next_after(now),
                last_fired_ms: None,
                created_ms: now,
            },
        )?)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(view(&rec))))
}

async fn list(
    State(s): State<AppState>,
    who: Principal,
    Path(ws): Path<String>,
) -> ApiResult<Json<Value>> {
    let list = in_workspace(&s, who, ws, Role::Viewer, move |store, w| {
        Ok(store.list_schedules(&w.id)?)
    })
    .await?;
    Ok(Json(
        json!({"schedules": list.iter().map(view).collect::<Vec<_>>()}),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScheduleEdit {
    #[serde(default)]
    cron: Option<String>,
    #[serde(default)]
    timezone: Option<String>,
    #[serde(default)]
    catch_up: Option<bool>,
    #[serde(default)]
    paused: Option<bool>,
}

async fn edit(
    State(s): State<AppState>,
    who: Principal,
    Path((ws, id)): Path<(String, String)>,
    Body(req): Body<ScheduleEdit>,
) -> ApiResult<Json<Value>> {
    let now = s.clock.now_ms();
    let rec = in_workspace(&s, who, ws, Role::Editor, move |store, w| {
        let mut rec = store
            .get_schedule(&w.id, &id)?
            .ok_or_else(|| ApiError::not_found("schedule", &id))?;
        let retime = req.cron.is_some() || req.timezone.is_some() || req.paused == Some(false);
        if let Some(c) = req.cron {
            rec.cron = c;
        }
        if let Some(t) = req.timezone {
            rec.timezone = t;
        }
        if let Some(c) = req.catch_up {
            rec.catch_up = c;
        }
        if let Some(p) = req.paused {
            rec.paused = p;
        }
        let spec = CronSpec::parse(&rec.cron, &rec.timezone)?;
        if retime {
            // A new expression, or a resume: from now on, nothing missed.
            rec.next_fire_ms = spec.next_after(now);
        }
        Ok(store.put_schedule(&w.id, rec)?)
    })
    .await?;
    Ok(Json(view(&rec)))
}

async fn remove(
    State(s): State<AppState>,
    who: Principal,
    Path((ws, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    in_workspace(&s, who, ws, Role::Editor, move |store, w| {
        if store.delete_schedule(&w.id, &id)? {
            Ok(StatusCode::NO_CONTENT)
        } else {
            Err(ApiError::not_found("schedule", id))
        }
    })
    .await
}
