//! Live run events across processes over NATS JetStream (issue 19).
//!
//! A worker publishes each event of a run, in order, on the subject
//! `quire.run.<run id>` of the stream [`STREAM`] (file storage, bounded
//! by [`NatsConfig::max_age`] and [`NatsConfig::max_bytes`], oldest
//! dropped first). An api process that follows a run of another process
//! reads that subject from its first message with an ordered consumer,
//! so a follower that comes late, or comes back, catches up and then
//! follows live. History stays in PostgreSQL: a gap in the seqs (a
//! message the stream no longer holds) is filled from there, and a run
//! closed without its worker (a lost lease) is seen there.
//!
//! Without `--nats` a cluster follows runs from PostgreSQL alone (see
//! [`crate::cluster`]); one machine never uses this.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use futures_util::StreamExt;

use crate::error::{ServiceError, ServiceResult};

/// The stream holding every run's events.
pub const STREAM: &str = "QUIRE_RUN_EVENTS";

/// How long [`Bus::published_from`] waits for one more event.
pub const DRAIN_IDLE: Duration = Duration::from_millis(300);

/// Where NATS is and how much the stream keeps.
#[derive(Debug, Clone)]
pub struct NatsConfig {
    /// `nats://host:port`.
    pub url: String,
    /// How long the stream keeps a run's events. Default: 15 minutes
    /// (history in PostgreSQL keeps them after that).
    pub max_age: Duration,
    /// Bytes the stream keeps, oldest dropped first. Default: 1 GiB.
    pub max_bytes: i64,
}

impl NatsConfig {
    /// Defaults for `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            max_age: Duration::from_secs(15 * 60),
            max_bytes: 1 << 30,
        }
    }
}

fn nats(e: impl std::fmt::Display) -> ServiceError {
    ServiceError::Internal(format!("NATS: {e}"))
}

/// A connection to NATS and the stream (cheap to clone).
#[derive(Clone)]
pub struct Bus {
    client: async_nats::Client,
    js: jetstream::Context,
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Bus")
    }
}

fn subject(run: &str) -> String {
    format!("quire.run.{run}")
}

/// The subject announcing runs of block `block` of workspace `ws` (the
/// block id in hex: ids may hold dots, which NATS reads as separators).
fn started_subject(ws: &str, block: &str) -> String {
    let hex: String = block.bytes().map(|b| format!("{b:02x}")).collect();
    format!("quire.started.{ws}.{hex}")
}

impl Bus {
    /// Connect and make sure the stream exists.
    ///
    /// # Errors
    /// No server, or one without JetStream.
    pub async fn connect(cfg: &NatsConfig) -> ServiceResult<Self> {
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(5))
            .name("quire")
            .connect(&cfg.url)
            .await
            .map_err(|e| nats(format!("cannot connect to {} ({e})", cfg.url)))?;
        let js = jetstream::new(client.clone());
        js.get_or_create_stream(jetstream::stream::Config {
            name: STREAM.into(),
            subjects: vec!["quire.run.*".into()],
            max_age: cfg.max_age,
            max_bytes: cfg.max_bytes,
            discard: jetstream::stream::DiscardPolicy::Old,
            storage: jetstream::stream::StorageType::File,
            ..Default::default()
        })
        .await
        .map_err(|e| {
            nats(format!(
                "the stream {STREAM} ({e}); is JetStream on (nats-server -js)?"
            ))
        })?;
        Ok(Self { client, js })
    }

    /// Publish one serialized event of `run`. Events of one run are
    /// published in order on one connection, so they arrive in order; the
    /// server's acknowledgement is not waited for (a lost one is a gap the
    /// follower fills from PostgreSQL).
    pub async fn publish(&self, run: &str, line: &Arc<str>) {
        let payload = bytes::Bytes::copy_from_slice(line.as_bytes());
        if let Err(e) = self.js.publish(subject(run), payload).await {
            tracing::warn!(error = %e, run, "event not published to NATS");
        }
    }

    /// Say that run `run` of block `block` of workspace `ws` was enqueued
    /// (plain NATS, not kept: only processes watching the block care).
    pub async fn announce(&self, ws: &str, block: &str, run: &str) {
        let payload = bytes::Bytes::copy_from_slice(run.as_bytes());
        if let Err(e) = self
            .client
            .publish(started_subject(ws, block), payload)
            .await
        {
            tracing::warn!(error = %e, run, "run start not announced over NATS");
        }
    }

    /// Run ids of block `block` of workspace `ws` as they are announced.
    ///
    /// # Errors
    /// When the subscription cannot be made.
    pub async fn starts(
        &self,
        ws: &str,
        block: &str,
    ) -> ServiceResult<impl futures_util::Stream<Item = String> + Send + Unpin + 'static> {
        let sub = self
            .client
            .subscribe(started_subject(ws, block))
            .await
            .map_err(nats)?;
        Ok(sub
            .filter_map(|m| async move { String::from_utf8(m.payload.to_vec()).ok() })
            .boxed())
    }

    /// The events of `run` the stream holds from seq `from` on, in order,
    /// as far as they go without a gap (read until [`DRAIN_IDLE`] passes
    /// with nothing new): what a worker that died had published but not
    /// stored.
    ///
    /// # Errors
    /// When the consumer cannot be made.
    pub async fn published_from(&self, run: &str, from: u64) -> ServiceResult<Vec<Arc<str>>> {
        let mut events = self.follow(run).await?;
        let mut out = Vec::new();
        let mut next = from;
        while let Ok(Some(line)) = tokio::time::timeout(DRAIN_IDLE, events.next()).await {
            let Some(seq) = serde_json::from_str::<serde_json::Value>(&line)
                .ok()
                .and_then(|v| v["seq"].as_u64())
            else {
                continue;
            };
            if seq < next {
                continue;
            }
            if seq > next {
                break; // a gap: what follows cannot be stored in order
            }
            out.push(line);
            next += 1;
        }
        Ok(out)
    }

    /// Every event of `run` the stream holds, from its first, then live.
    ///
    /// # Errors
    /// When the consumer cannot be made.
    pub async fn follow(
        &self,
        run: &str,
    ) -> ServiceResult<impl futures_util::Stream<Item = Arc<str>> + Send + Unpin + 'static> {
        let stream = self.js.get_stream(STREAM).await.map_err(nats)?;
        let consumer = stream
            .create_consumer(jetstream::consumer::pull::OrderedConfig {
                filter_subject: subject(run),
                deliver_policy: jetstream::consumer::DeliverPolicy::All,
                ..Default::default()
            })
            .await
            .map_err(nats)?;
        let messages = consumer.messages().await.map_err(nats)?;
        Ok(messages
            .filter_map(|m| async move {
                match m {
                    Ok(m) => std::str::from_utf8(&m.payload).ok().map(Arc::from),
                    Err(e) => {
                        tracing::warn!(error = %e, "NATS consumer");
                        None
                    }
                }
            })
            .boxed())
    }
}
