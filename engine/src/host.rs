//! The engine's side of host calls: the narrow, serde-shaped boundary a
//! block's `import ... from "quire"` and `fetch` cross.
//!
//! The engine knows nothing of documents, grants or storage. A run may carry
//! a [`Host`] (built per run by `quire-host-api`): the engine hands it each
//! call as plain JSON ([`HostCall`]) and the host answers later, from any
//! thread, through a [`HostReply`]. The worker keeps running other blocks
//! while a call waits; the reply wakes it.
//!
//! The engine enforces, before a call reaches the host: the number of calls
//! per run ([`crate::Limits::host_calls`]) and the JSON size of the
//! arguments ([`crate::Limits::host_value_bytes`]); and when the reply comes
//! back, its JSON size. Everything else (grants, rows per query) is the
//! host's to check.

use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use crate::control::RunControl;

/// One call from a block to its host: an operation name (`db.query`,
/// `fetch`, ...) and its arguments as JSON.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HostCall {
    /// The operation, e.g. `kv.get`.
    pub op: String,
    /// Its arguments (an array for the `quire` module, an object for
    /// `fetch`).
    pub args: serde_json::Value,
}

/// Who is calling: the run's identity and its remaining time.
#[derive(Debug, Clone)]
pub struct CallContext {
    /// The run id.
    pub run: String,
    /// When the run's wall-clock limit ends; work for the call after this
    /// instant is wasted (the run is over).
    pub deadline: Instant,
    /// The run's limits (the host reads the ones it enforces, such as
    /// [`crate::Limits::host_rows_per_query`]).
    pub limits: crate::Limits,
}

/// A failed host call, as the block sees it: the rejection is an `Error`
/// whose `name` and `message` are these.
///
/// Why the call failed is [`HostError::kind`], set only by the host (and
/// the engine's own call checks), never by a block: a denial
/// ([`HostError::denied`]) or a quota ([`HostError::quota`]) is recorded
/// in the run's record when the reply is delivered, and only an uncaught
/// error that is one of those recorded refusals ends the run with kind
/// `capability_denied` or `quota_exceeded`. A block that throws its own
/// error named `CapabilityDenied` ends with `exception`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HostError {
    /// The JavaScript error's `name` (e.g. `CapabilityDenied`, `TypeError`,
    /// `NotFound`).
    pub name: String,
    /// The message, naming what failed and why.
    pub message: String,
    /// Why it failed.
    #[serde(default)]
    pub kind: HostErrorKind,
    /// For a denial: the grant that would have allowed the call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<String>,
}

/// Why a host call failed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostErrorKind {
    /// Any other failure (bad arguments, not found, the network).
    #[default]
    Failed,
    /// The run lacks a grant (`CapabilityDenied`).
    Denied,
    /// A quota or per-run host limit refused it (`QuotaExceeded`).
    Quota,
}

impl HostError {
    /// A failure with this JavaScript error name and message (kind
    /// [`HostErrorKind::Failed`], whatever the name).
    pub fn new(name: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            message: message.into(),
            kind: HostErrorKind::Failed,
            grant: None,
        }
    }

    /// A denial: a `CapabilityDenied` error naming `grant`, the grant that
    /// would allow the call, when there is one.
    pub fn denied(message: impl Into<String>, grant: Option<String>) -> Self {
        Self {
            kind: HostErrorKind::Denied,
            grant,
            ..Self::new("CapabilityDenied", message)
        }
    }

    /// A quota refusal: a `QuotaExceeded` error.
    pub fn quota(message: impl Into<String>) -> Self {
        Self {
            kind: HostErrorKind::Quota,
            ..Self::new("QuotaExceeded", message)
        }
    }

    /// The message an uncaught error made from this one carries in its
    /// `error` event (`name: message`).
    pub(crate) fn event_message(&self) -> String {
        if self.message.is_empty() {
            self.name.clone()
        } else {
            format!("{}: {}", self.name, self.message)
        }
    }
}

impl std::fmt::Display for HostError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.name, self.message)
    }
}

impl std::error::Error for HostError {}

/// What a host call settles with.
pub type HostResult = Result<serde_json::Value, HostError>;

/// The host side of one run. Built per run by the embedder (with the
/// run's workspace and grants) and attached with
/// [`crate::RunRequest::with_host`].
pub trait Host: Send + Sync + 'static {
    /// ES module source of the module blocks import as `"quire"`. It can
    /// call `globalThis.__quire_host(op, args)` (captured at import time),
    /// which returns a promise of the reply. Compiled once per distinct
    /// source and cached as bytecode.
    fn module_source(&self) -> &'static str;

    /// Whether blocks may import the `"quire"` module from this host.
    /// `false` for a stand-in that only relays calls (a runner process's
    /// proxy for a run that has no host API), so the import fails as it
    /// would with no host at all. Default: `true`.
    fn provides_module(&self) -> bool {
        true
    }

    /// Handle `call`. Called on a worker thread: it must not block. Answer
    /// through `reply` whenever the result is ready, from any thread.
    fn call(&self, cx: &CallContext, call: HostCall, reply: HostReply);
}

/// An attached host (a newtype so requests stay `Debug`).
#[derive(Clone)]
pub struct HostHandle(pub Arc<dyn Host>);

impl std::fmt::Debug for HostHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HostHandle")
    }
}

/// Replies that arrived for a run, waiting for its worker.
#[derive(Default)]
pub(crate) struct Mailbox {
    replies: Mutex<Vec<(u32, HostResult)>>,
}

impl Mailbox {
    pub(crate) fn take(&self) -> Vec<(u32, HostResult)> {
        std::mem::take(&mut *self.replies.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub(crate) fn has_mail(&self) -> bool {
        !self
            .replies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }
}

/// The way back for one call's result. Send it once; dropping it unsent
/// settles the call with an `internal` host error, so a block never waits
/// on a call the host forgot.
pub struct HostReply {
    id: u32,
    run: Weak<RunControl>,
    sent: bool,
}

impl HostReply {
    pub(crate) fn new(id: u32, run: &Arc<RunControl>) -> Self {
        Self {
            id,
            run: Arc::downgrade(run),
            sent: false,
        }
    }

    /// Settle the call. A reply for a run that already ended is dropped.
    pub fn send(mut self, result: HostResult) {
        self.sent = true;
        self.deliver(result);
    }

    fn deliver(&self, result: HostResult) {
        // A value stored before the depth limit existed (or a host that
        // does not check) must not break the run's reader: refuse it here.
        let result = result.and_then(|v| {
            crate::check_depth("the value the host returned", &v, 0)
                .map(|()| v)
                .map_err(|m| HostError::new("RangeError", m))
        });
        if let Some(run) = self.run.upgrade() {
            if let Err(e) = &result {
                run.record_refusal(e);
            }
            run.mailbox
                .replies
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((self.id, result));
            run.wake();
        }
    }
}

impl Drop for HostReply {
    fn drop(&mut self) {
        if !self.sent {
            self.deliver(Err(HostError::new(
                "InternalError",
                "the host dropped this call without answering",
            )));
        }
    }
}
