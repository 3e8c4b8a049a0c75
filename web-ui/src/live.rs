//! The WebSocket live protocol, written against `Sink`/`Stream` so it can
//! be driven without a socket.
//!
//! Client → server (one JSON object per text message; `ref` is optional
//! and echoed back in the reply, so a client can match replies to
//! requests):
//!
//! | op | role | fields |
//! | --- | --- | --- |
//! | `run` | editor | `block`, `input`? |
//! | `run_source` | editor | `source`, `lang` (`js`/`ts`), `input`?, `block`? (run unsaved source with that block's grants, filed under it), `engine`? (`quickjs`/`v8`; default the block's) |
//! | `cancel` | editor | `run` |
//! | `subscribe` | viewer | `block`: announce and follow every run of the block, including ones already running |
//! | `unsubscribe` | viewer | `block` |
//! | `follow` | viewer | `run`, `from_seq`? (default 0): replay a run's events from there, then follow it live |
//!
//! Server → client: `{"op":"accepted","run":ID}` or `{"op":"rejected",
//! "reason":.., "error":CODE}` for `run`/`run_source` (a quota refusal
//! adds `quota`, `limit` and `resets_at_ms`, as the HTTP 429 body does); `{"op":"subscribed","block":B}`;
//! `{"op":"run","run":ID,"block":B,"trigger":T}` when a followed block's run
//! starts; `{"op":"following","run":ID}`; `{"op":"cancelling","run":ID}`;
//! and each followed run's events exactly as in the run-event contract (they
//! have `seq` and `type`, no `op`).
//!
//! **Backpressure.** Events are never dropped and never reordered. Each
//! followed run is read from its log by cursor into a small per-connection
//! queue ([`crate::ServerConfig::ws_queue_messages`]); when the queue is
//! full the server simply stops reading the log for that client, so a slow
//! client costs the server only that queue, and other clients and the runs
//! themselves never wait for it. A client that falls behind receives every
//! event, later. If its socket accepts nothing for
//! [`crate::ServerConfig::ws_send_timeout_ms`], the server closes the
//! connection with code 4008 (`too slow`); the client reconnects and sends
//! `follow` with `from_seq` set to the last `seq` it has plus one.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{Sink, SinkExt, Stream, StreamExt};
use quire_engine::Lang;
use quire_storage::Workspace;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::auth::{Principal, Role};
use crate::error::ApiError;
use crate::hub::{Followed, LiveRun, StartRun};
use crate::AppState;

/// A message to the client.
#[derive(Debug, Clone, PartialEq)]
pub enum Outgoing {
    /// A text message (JSON).
    Text(Arc<str>),
    /// Close the connection with this code and reason.
    Close(u16, String),
}

/// The close code for a client that does not read.
pub const CLOSE_TOO_SLOW: u16 = 4008;

#[derive(Debug, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
enum Op {
    Run {
        block: String,
        #[serde(default)]
        input: Value,
        /// The document the run is in (its `results.get` reads it).
        #[serde(default)]
        doc: Option<String>,
        /// `run` (the default) or `dry_run`.
        #[serde(default)]
        mode: crate::routes::runs::Mode,
        #[serde(default, rename = "ref")]
        reference: Value,
    },
    RunSource {
        source: String,
        lang: Lang,
        #[serde(default)]
        input: Value,
        #[serde(default)]
        block: Option<String>,
        #[serde(default)]
        engine: Option<quire_engine::EngineKind>,
        #[serde(default)]
        doc: Option<String>,
        /// `run` (the default) or `dry_run`.
        #[serde(default)]
        mode: crate::routes::runs::Mode,
        #[serde(default, rename = "ref")]
        reference: Value,
    },
    Cancel {
        run: String,
        #[serde(default, rename = "ref")]
        reference: Value,
    },
    Subscribe {
        block: String,
        #[serde(default, rename = "ref")]
        reference: Value,
    },
    Unsubscribe {
        block: String,
        #[serde(default, rename = "ref")]
        reference: Value,
    },
    Follow {
        run: String,
        #[serde(default)]
        from_seq: usize,
        #[serde(default, rename = "ref")]
        reference: Value,
    },
}

/// Decode one client message as the server does; the error is the
/// `reason` a `rejected` reply would carry. (For fuzzing and clients'
/// tests.)
///
/// # Errors
/// A message that is not one of the ops above, with its fields.
pub fn check_message(msg: &str) -> Result<(), String> {
    serde_json::from_str::<Op>(msg)
        .map(|_| ())
        .map_err(|e| format!("bad message: {e}"))
}

struct Conn {
    state: AppState,
    who: Principal,
    ws: Workspace,
    ctl: mpsc::Sender<Arc<str>>,
    events: mpsc::Sender<Arc<str>>,
    followed: Arc<Mutex<HashSet<String>>>,
    subscribed: Arc<Mutex<HashSet<String>>>,
    /// In a cluster with NATS: interest in subscribed blocks' runs started
    /// through other processes (dropped with the subscription).
    watches: Mutex<std::collections::HashMap<String, quire_service::cluster::BlockWatch>>,
}

fn text(v: Value) -> Arc<str> {
    v.to_string().into()
}

fn with_ref(mut v: Value, reference: &Value) -> Arc<str> {
    if !reference.is_null() {
        v["ref"] = reference.clone();
    }
    text(v)
}

/// Serve one live connection until the client leaves, the server shuts
/// down, or the client is too slow. `incoming` yields the client's text
/// messages (it ends when the client closes); `sink` takes what to send.
pub async fn serve<S, R>(state: AppState, who: Principal, ws: Workspace, sink: S, incoming: R)
where
    S: Sink<Outgoing> + Send + Unpin + 'static,
    R: Stream<Item = String> + Send + Unpin + 'static,
{
    let cfg = state.config.clone();
    let (ctl_tx, ctl_rx) = mpsc::channel::<Arc<str>>(64);
    let (ev_tx, ev_rx) = mpsc::channel::<Arc<str>>(cfg.ws_queue_messages.max(1));
    state.metrics.ws_clients.fetch_add(1, Ordering::Relaxed);
    let mut writer = tokio::spawn(write_loop(
        sink,
        ctl_rx,
        ev_rx,
        Duration::from_millis(cfg.ws_send_timeout_ms),
        state.clone(),
    ));
    let conn = Arc::new(Conn {
        state: state.clone(),
        who,
        ws,
        ctl: ctl_tx,
        events: ev_tx,
        followed: Arc::default(),
        subscribed: Arc::default(),
        watches: Mutex::default(),
    });
    let announcer = tokio::spawn(announce_loop(conn.clone()));
    let mut incoming = incoming;
    let mut server_stopping = false;
    loop {
        tokio::select! {
            msg = incoming.next() => match msg {
                Some(m) => handle(&conn, &m).await,
                None => break,
            },
            _ = &mut writer => break,
            _ = state.hub.stopped() => {
                server_stopping = true;
                break;
            }
        }
    }
    announcer.abort();
    if server_stopping {
        // Every run has ended: let the writer send what is queued (the
        // followers end with their runs and drop their senders), then it
        // closes with 1001.
        drop(conn);
        let wait = Duration::from_millis(cfg.ws_send_timeout_ms.saturating_add(1000));
        if tokio::time::timeout(wait, &mut writer).await.is_err() {
            writer.abort();
        }
    } else {
        writer.abort();
    }
    state.metrics.ws_clients.fetch_sub(1, Ordering::Relaxed);
}

async fn write_loop<S>(
    mut sink: S,
    mut ctl: mpsc::Receiver<Arc<str>>,
    mut events: mpsc::Receiver<Arc<str>>,
    timeout: Duration,
    state: AppState,
) where
    S: Sink<Outgoing> + Unpin,
{
    loop {
        // Replies first: an `accepted` is queued before its run's first
        // event can be, so it is always sent first.
        let next = tokio::select! {
            biased;
            Some(m) = ctl.recv() => Some(m),
            Some(m) = events.recv() => Some(m),
            else => None,
        };
        let Some(m) = next else {
            let bye = Outgoing::Close(1001, "the server is shutting down".into());
            let _ = tokio::time::timeout(timeout, sink.send(bye))
                .await
                .map(|r| r.is_ok());
            return;
        };
        // Write what is already queued (up to a batch) before one flush:
        // one socket write for many events when a client is busy.
        let mut batch = vec![m];
        while batch.len() < 64 {
            match ctl.try_recv().or_else(|_| events.try_recv()) {
                Ok(m) => batch.push(m),
                Err(_) => break,
            }
        }
        let write = async {
            for m in batch {
                sink.feed(Outgoing::Text(m)).await?;
            }
            sink.flush().await
        };
        let sent = match tokio::time::timeout(timeout, write).await {
            Ok(r) => Some(r.is_ok()),
            Err(_) => None,
        };
        match sent {
            Some(true) => {}
            Some(false) => return,
            None => {
                state.metrics.ws_slow_closes.fetch_add(1, Ordering::Relaxed);
                tracing::info!("closing a WebSocket client that stopped reading");
                let close = Outgoing::Close(
                    CLOSE_TOO_SLOW,
                    format!(
                        "too slow: nothing was read for {} ms; reconnect and follow with from_seq",
                        timeout.as_millis()
                    ),
                );
                let _ = tokio::time::timeout(Duration::from_millis(100), sink.send(close))
                    .await
                    .map(|r| r.is_ok());
                return;
            }
        }
    }
}

async fn reply(conn: &Conn, v: Arc<str>) {
    let _ = conn.ctl.send(v).await;
}

async fn reject(conn: &Conn, op: &str, reference: &Value, reason: impl std::fmt::Display) {
    let v = json!({"op": "rejected", "for": op, "reason": reason.to_string()});
    reply(conn, with_ref(v, reference)).await;
}

/// A `rejected` reply carrying the error's code and, for a quota, which
/// quota, its limit and `resets_at_ms`.
async fn reject_error(conn: &Conn, op: &str, reference: &Value, e: &ApiError) {
    let mut v = json!({"op": "rejected", "for": op, "reason": e.to_string()});
    if let Value::Object(body) = e.body() {
        for (k, x) in body {
            if k != "message" {
                v[k] = x;
            }
        }
    }
    reply(conn, with_ref(v, reference)).await;
}

async fn handle(conn: &Arc<Conn>, msg: &str) {
    let op: Op = match serde_json::from_str(msg) {
        Ok(op) => op,
        Err(e) => {
            let v = serde_json::from_str::<Value>(msg).ok();
            let name = v
                .as_ref()
                .and_then(|v| v.get("op"))
                .and_then(Value::as_str)
                .unwrap_or("unknown")
                .chars()
                .take(32)
                .collect::<String>();
            let reference = v.and_then(|mut v| v.get_mut("ref").map(Value::take));
            reject(
                conn,
                &name,
                &reference.unwrap_or(Value::Null),
                format!("bad message: {e}"),
            )
            .await;
            return;
        }
    };
    match op {
        Op::Run {
            block,
            input,
            doc,
            mode,
            reference,
        } => {
            let r = async {
                check(conn, Role::Editor)?;
                let rec = load_block(conn, &block).await?;
                let source = rec.source.clone();
                let lang = crate::hub::block_lang(&rec.lang);
                Ok::<_, ApiError>((Some(rec), source, lang))
            }
            .await;
            start(conn, "run", r, (input, doc, mode), reference, None).await;
        }
        Op::RunSource {
            source,
            lang,
            input,
            block,
            engine,
            doc,
            mode,
            reference,
        } => {
            let r = async {
                check(conn, Role::Editor)?;
                let rec = match &block {
                    Some(b) => Some(load_block(conn, b).await?),
                    None => None,
                };
                Ok::<_, ApiError>((rec, source, lang))
            }
            .await;
            start(conn, "run_source", r, (input, doc, mode), reference, engine).await;
        }
        Op::Cancel { run, reference } => {
            if let Err(e) = check(conn, Role::Editor) {
                return reject(conn, "cancel", &reference, e).await;
            }
            match conn.state.hub.attach(conn.ws.id, &run).await.ok().flatten() {
                Some(live) => {
                    live.cancel();
                    reply(
                        conn,
                        with_ref(json!({"op": "cancelling", "run": run}), &reference),
                    )
                    .await;
                }
                None => {
                    reject(
                        conn,
                        "cancel",
                        &reference,
                        format!("run '{run}' is not running"),
                    )
                    .await
                }
            }
        }
        Op::Subscribe { block, reference } => {
            if let Err(e) = check(conn, Role::Viewer) {
                return reject(conn, "subscribe", &reference, e).await;
            }
            if let Err(e) = load_block(conn, &block).await {
                return reject(conn, "subscribe", &reference, e).await;
            }
            let limit = conn.state.config.ws_max_subscriptions;
            let admitted = {
                let mut subs = conn.subscribed.lock().unwrap_or_else(|e| e.into_inner());
                subs.contains(&block) || (subs.len() < limit && subs.insert(block.clone()))
            };
            if !admitted {
                let why = format!("subscription limit of {limit} blocks per connection reached");
                return reject(conn, "subscribe", &reference, why).await;
            }
            if let Some(w) = conn.state.hub.watch_block(conn.ws.id, &block).await {
                conn.watches
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(block.clone(), w);
            }
            reply(
                conn,
                with_ref(json!({"op": "subscribed", "block": block}), &reference),
            )
            .await;
            for live in conn.state.hub.active_for_block(&conn.ws.id, &block) {
                announce(conn, live).await;
            }
        }
        Op::Unsubscribe { block, reference } => {
            conn.subscribed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&block);
            conn.watches
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&block);
            reply(
                conn,
                with_ref(json!({"op": "unsubscribed", "block": block}), &reference),
            )
            .await;
        }
        Op::Follow {
            run,
            from_seq,
            reference,
        } => {
            if let Err(e) = check(conn, Role::Viewer) {
                return reject(conn, "follow", &reference, e).await;
            }
            if let Some(live) = conn.state.hub.attach(conn.ws.id, &run).await.ok().flatten() {
                reply(
                    conn,
                    with_ref(json!({"op": "following", "run": run}), &reference),
                )
                .await;
                follow(conn, live, from_seq, &reference).await;
                return;
            }
            let store = conn.state.store.clone();
            let (ws, id) = (conn.ws.id, run.clone());
            let rec = tokio::task::spawn_blocking(move || store.get_run_head(&ws, &id)).await;
            match rec {
                Ok(Ok(Some(_))) => {
                    reply(
                        conn,
                        with_ref(json!({"op": "following", "run": run}), &reference),
                    )
                    .await;
                    replay_stored(conn, &run, from_seq).await;
                }
                _ => reject(conn, "follow", &reference, format!("run '{run}' not found")).await,
            }
        }
    }
}

/// Send a finished run's stored events from seq `from`, a page at a
/// time (the connection's queue bounds what is held).
async fn replay_stored(conn: &Conn, run: &str, mut from: usize) {
    loop {
        let store = conn.state.store.clone();
        let (ws, id) = (conn.ws.id, run.to_string());
        let page = tokio::task::spawn_blocking(move || {
            store.run_events(&ws, &id, from as u64, REPLAY_PAGE_BYTES)
        })
        .await;
        let Ok(Ok(page)) = page else {
            tracing::error!(run, "stored events could not be read");
            return;
        };
        from += page.lines.len();
        for line in page.lines {
            if conn.events.send(Arc::from(line)).await.is_err() {
                return;
            }
        }
        if page.next.is_none() {
            return;
        }
    }
}

/// Bytes of stored events read at a time for a replay.
const REPLAY_PAGE_BYTES: usize = 256 * 1024;

fn check(conn: &Conn, need: Role) -> Result<(), ApiError> {
    conn.who.check(&conn.ws, need, &conn.ws.name)
}

async fn load_block(conn: &Conn, block: &str) -> Result<quire_storage::BlockRecord, ApiError> {
    let store = conn.state.store.clone();
    let (ws, id) = (conn.ws.id, block.to_string());
    tokio::task::spawn_blocking(move || store.get_block(&ws, &id))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))??
        .ok_or_else(|| ApiError::not_found("block", block))
}

async fn start(
    conn: &Arc<Conn>,
    op: &str,
    prepared: Result<(Option<quire_storage::BlockRecord>, String, Lang), ApiError>,
    (input, doc, mode): (Value, Option<String>, crate::routes::runs::Mode),
    reference: Value,
    engine: Option<quire_engine::EngineKind>,
) {
    let r = async {
        let (block, source, lang) = prepared?;
        conn.state.auth.take(&conn.who.token_id)?;
        conn.state
            .hub
            .start(StartRun {
                workspace: conn.ws.clone(),
                block,
                source,
                lang,
                input,
                trigger: json!({"kind": "manual", "via": "websocket"}),
                run_id: None,
                engine,
                admin_caller: check(conn, Role::Admin).is_ok(),
                agent: false,
                doc,
                dry_run: mode.is_dry_run(),
                operator: None,
            })
            .await
            .map_err(ApiError::from)
    }
    .await;
    match r {
        Ok(started) => {
            reply(
                conn,
                with_ref(json!({"op": "accepted", "run": started.id}), &reference),
            )
            .await;
            follow(conn, started.live(), 0, &reference).await;
            // Dropping `started` announces the run to subscribers, this
            // connection included, which already follows it.
        }
        Err(e) => reject_error(conn, op, &reference, &e).await,
    }
}

/// Follow `live` from position `from` on this connection: a task copies
/// its events into the connection's queue by cursor.
async fn follow(conn: &Arc<Conn>, live: Arc<LiveRun>, from: usize, reference: &Value) {
    let limit = conn.state.config.ws_max_followed_runs;
    let admitted = {
        let mut f = conn.followed.lock().unwrap_or_else(|e| e.into_inner());
        if f.contains(&live.id) {
            return;
        }
        f.len() < limit && f.insert(live.id.clone())
    };
    if !admitted {
        let why = format!("this connection follows {limit} runs already (the limit); the run goes on and can be followed later");
        return reject(conn, "follow", reference, why).await;
    }
    let tx = conn.events.clone();
    let followed = conn.followed.clone();
    tokio::spawn(async move {
        copy_events(&live, from, &tx).await;
        followed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&live.id);
    });
}

/// Forward a run's events from seq `cursor`, and its live meters.
async fn copy_events(live: &LiveRun, mut cursor: usize, tx: &mpsc::Sender<Arc<str>>) {
    let mut changed = live.watch();
    let mut meters = live.meters();
    loop {
        let batch = match live
            .next_output(cursor, 64, &mut changed, &mut meters)
            .await
        {
            Ok(Some(Followed::Events(batch))) => batch,
            Ok(Some(Followed::Meter(line))) => {
                if tx.send(line).await.is_err() {
                    return;
                }
                continue;
            }
            Ok(None) => return,
            Err(_) => {
                tracing::error!(run = %live.id, "a follower's events could not be read");
                return;
            }
        };
        for line in batch {
            if tx.send(line).await.is_err() {
                return;
            }
            cursor += 1;
        }
    }
}

async fn announce(conn: &Arc<Conn>, live: Arc<LiveRun>) {
    if conn
        .followed
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .contains(&live.id)
    {
        return;
    }
    let v = json!({"op": "run", "run": live.id, "block": live.block, "trigger": live.trigger});
    reply(conn, text(v)).await;
    follow(conn, live, 0, &Value::Null).await;
}

async fn announce_loop(conn: Arc<Conn>) {
    let mut rx = conn.state.hub.announcements();
    loop {
        match rx.recv().await {
            Ok(live) => {
                let wanted = live.workspace == conn.ws.id
                    && live.block.as_ref().is_some_and(|b| {
                        conn.subscribed
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .contains(b)
                    });
                if wanted {
                    announce(&conn, live).await;
                }
            }
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                // Missed announcements: look at what is running instead.
                let subs: Vec<String> = conn
                    .subscribed
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .iter()
                    .cloned()
                    .collect();
                for b in subs {
                    for live in conn.state.hub.active_for_block(&conn.ws.id, &b) {
                        announce(&conn, live).await;
                    }
                }
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}
