//! Run events: the stream every run emits (the run-event contract).
//!
//! Serialized, an event is one JSON object such as
//! `{"run":"..","seq":1,"type":"log","level":"info","text":"..","t_ms":0.4}`.
//! `seq` counts up from 0 without gaps; `started` comes first and exactly one
//! `finished` comes last, whatever happened.

use serde::{Deserialize, Serialize};

/// One event of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunEvent {
    /// The run's id.
    pub run: String,
    /// Position in the run's stream, from 0, without gaps.
    pub seq: u64,
    /// What happened.
    #[serde(flatten)]
    pub body: EventBody,
    /// Milliseconds since the run started.
    pub t_ms: f64,
}

/// The payload of a [`RunEvent`], tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventBody {
    /// The run began executing.
    Started,
    /// A `console` call.
    Log {
        /// Which console method.
        level: LogLevel,
        /// The formatted text.
        text: String,
    },
    /// A `display(value, {mime, id})` call: a new output, which later
    /// `update_display` and `clear_display` events change in place.
    Display {
        /// The output's id within the run: the block's `id` option, or one
        /// the prelude makes (`d1`, `d2`, ...). See [`check_display_id`].
        /// Absent in history stored before display ids existed.
        #[serde(default)]
        display_id: String,
        /// The MIME type of `data`.
        mime: String,
        /// JSON for `application/json`, a string otherwise.
        data: serde_json::Value,
    },
    /// A display handle's `update(value)`: the output with this id now
    /// shows `data` (in the place it was first shown).
    UpdateDisplay {
        /// The id of a display shown earlier in the run.
        display_id: String,
        /// The MIME type of `data` (an update may change it).
        mime: String,
        /// As for [`EventBody::Display`].
        data: serde_json::Value,
    },
    /// A display handle's `clear()`: the output with this id is removed.
    ClearDisplay {
        /// The id of a display shown earlier in the run.
        display_id: String,
    },
    /// The run's resource use so far, beside its limits (see [`Meter`]).
    Meter(Meter),
    /// The block's result (its default export, or what it returned).
    Result {
        /// The result as JSON.
        value: serde_json::Value,
    },
    /// Why the run failed.
    Error(ErrorInfo),
    /// A dry-run's staged changes (see [`Diff`]): added by the run
    /// service just before `finished`, never by the engine, a runner or a
    /// block.
    Diff(Diff),
    /// The last event of every run.
    Finished(Finished),
}

/// What a dry-run would change, as the run service files it for an
/// editor to apply (`POST …/runs/{run}/apply` with `digest`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Diff {
    /// Each changed record: `{kind: "doc"|"row"|"kv", id|collection+id|key,
    /// op: "insert"|"update"|"delete", before, after}`, in the order the
    /// run first wrote it.
    pub changes: serde_json::Value,
    /// The hex SHA-256 naming exactly these changes.
    pub digest: String,
    /// The JSON size of every `before` and `after`, in bytes.
    pub bytes: u64,
    /// Until when it can be applied, milliseconds since the Unix epoch.
    pub expires_ms: u64,
    /// Whether it can be applied at all: `false` when the run failed (its
    /// changes are shown, never applied) or the diff could not be filed.
    #[serde(default)]
    pub applicable: bool,
}

/// The MIME types `display(value, {mime})` accepts, in the order its
/// error message lists them. The prelude (`prelude.js`, both engines)
/// holds the same list; a test keeps the two equal.
pub const DISPLAY_MIMES: &[&str] = &[
    "application/json",
    "text/plain",
    "text/html",
    "text/csv",
    "text/markdown",
    "image/svg+xml",
    "image/png",
    "image/jpeg",
    "application/vnd.vegalite.v5+json",
    "application/vnd.quire.progress+json",
];

/// The MIME type of `display.progress(fraction, label)`: data
/// `{"fraction": 0..1, "label"?: "..."}`.
pub const PROGRESS_MIME: &str = "application/vnd.quire.progress+json";

/// The display MIME types whose data is a JSON value (the others carry
/// text; `image/png` and `image/jpeg` carry canonical base64).
pub const JSON_DISPLAY_MIMES: &[&str] = &[
    "application/json",
    "application/vnd.vegalite.v5+json",
    PROGRESS_MIME,
];

/// The longest display id, in bytes.
pub const MAX_DISPLAY_ID_BYTES: usize = 64;

/// Whether `id` is a valid display id: 1 to [`MAX_DISPLAY_ID_BYTES`]
/// ASCII letters, digits, `_`, `-`, `.` or `:`. The prelude checks the
/// same rule; what a runner sends is checked with this.
pub fn check_display_id(id: &str) -> Result<(), String> {
    let ok_char = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':');
    if id.is_empty() || id.len() > MAX_DISPLAY_ID_BYTES || !id.bytes().all(ok_char) {
        return Err(format!("display id {:?} is not 1 to {MAX_DISPLAY_ID_BYTES} letters, digits, '_', '-', '.' or ':'", crate::describe::clip(id.to_string())));
    }
    Ok(())
}

/// Whether `data` fits a display of `mime` (one of [`DISPLAY_MIMES`]):
/// JSON for the JSON types, text for the others, and for PNG and JPEG
/// base64 text. What a runner sends is checked with it.
pub fn check_display(mime: &str, data: &serde_json::Value) -> Result<(), String> {
    if !DISPLAY_MIMES.contains(&mime) {
        return Err(format!("display with mime {mime:?}"));
    }
    if mime == PROGRESS_MIME {
        return check_progress(data);
    }
    if JSON_DISPLAY_MIMES.contains(&mime) {
        return Ok(());
    }
    let Some(text) = data.as_str() else {
        return Err(format!("display of {mime} with data that is not text"));
    };
    let base64 = |b: u8| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=';
    if (mime == "image/png" || mime == "image/jpeg") && !text.bytes().all(base64) {
        return Err(format!("display of {mime} with data that is not base64"));
    }
    Ok(())
}

/// Progress data: an object with `fraction` in 0..=1 and at most a
/// `label` string besides.
fn check_progress(data: &serde_json::Value) -> Result<(), String> {
    let bad = || Err("progress data that is not {fraction: 0..1, label?: text}".to_string());
    let Some(o) = data.as_object() else {
        return bad();
    };
    let fraction_ok = o
        .get("fraction")
        .and_then(|f| f.as_f64())
        .is_some_and(|f| (0.0..=1.0).contains(&f));
    let label_ok = o.get("label").is_none_or(|l| l.is_string());
    let known = o.keys().all(|k| k == "fraction" || k == "label");
    if fraction_ok && label_ok && known {
        Ok(())
    } else {
        bad()
    }
}

/// The payload of a `meter` event: a run's use so far beside its limits.
///
/// Live meters come at most every [`METER_INTERVAL_MS`] while a run goes,
/// only when its CPU, memory, output or host calls changed (or, for the
/// wall clock alone, every [`METER_IDLE_INTERVAL_MS`]). They are not part
/// of the numbered stream: a live meter carries the `seq` of the event it
/// follows, and the server does not store it. A run that sent a live meter
/// sends one more, `final`, numbered like any event, just before its
/// `error`/`finished`; that one is stored in history.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Meter {
    /// CPU time used so far, in milliseconds.
    pub cpu_ms: f64,
    /// Wall-clock time since the run started, in milliseconds.
    pub wall_ms: f64,
    /// Bytes the isolate holds now (as of its last measurement).
    pub memory_bytes: u64,
    /// Output bytes counted against the output limit so far.
    pub output_bytes: u64,
    /// Host calls made so far.
    pub host_calls: u64,
    /// The run's limits, in the same units.
    pub limits: MeterLimits,
    /// The workspace's CPU left for the day after this run's use so far,
    /// in milliseconds: set by the server when a daily quota applies
    /// (never by the engine).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_day_left_ms: Option<f64>,
    /// Whether this is the run's last meter, numbered and stored.
    #[serde(rename = "final")]
    pub last: bool,
}

/// The limits a [`Meter`] is read against.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct MeterLimits {
    /// [`crate::Limits::cpu_time_ms`].
    pub cpu_ms: u64,
    /// [`crate::Limits::wall_time_ms`].
    pub wall_ms: u64,
    /// [`crate::Limits::memory_bytes`].
    pub memory_bytes: u64,
    /// [`crate::Limits::output_bytes`].
    pub output_bytes: u64,
    /// [`crate::Limits::host_calls`].
    pub host_calls: u64,
}

/// The shortest gap between two live meters of a run, in milliseconds.
pub const METER_INTERVAL_MS: u64 = 100;

/// The gap after which a live meter is sent even if only the wall clock
/// moved, in milliseconds.
pub const METER_IDLE_INTERVAL_MS: u64 = 1000;

/// `console` levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogLevel {
    /// `console.log`
    Log,
    /// `console.info`
    Info,
    /// `console.warn`
    Warn,
    /// `console.error`
    Error,
    /// `console.debug`
    Debug,
}

impl LogLevel {
    /// The level's name as it appears in events.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Log => "log",
            Self::Info => "info",
            Self::Warn => "warn",
            Self::Error => "error",
            Self::Debug => "debug",
        }
    }
}

/// Why a run failed: a closed set (the error kinds of the contract).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The source did not parse.
    Syntax,
    /// The block threw (or a promise it left rejected) and nothing caught it.
    Exception,
    /// CPU time or job budget exhausted.
    CpuLimit,
    /// Wall-clock time exhausted, or the block waits on something that can
    /// never happen.
    WallLimit,
    /// The memory limit refused an allocation.
    MemoryLimit,
    /// Recursion too deep.
    StackOverflow,
    /// Output bytes exhausted.
    OutputLimit,
    /// A host call lacked its grant.
    CapabilityDenied,
    /// A workspace quota refused the run.
    QuotaExceeded,
    /// Someone cancelled the run.
    Cancelled,
    /// The engine failed (not the block's fault).
    Internal,
}

impl ErrorKind {
    /// The kind's name as it appears in events.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Syntax => "syntax",
            Self::Exception => "exception",
            Self::CpuLimit => "cpu_limit",
            Self::WallLimit => "wall_limit",
            Self::MemoryLimit => "memory_limit",
            Self::StackOverflow => "stack_overflow",
            Self::OutputLimit => "output_limit",
            Self::CapabilityDenied => "capability_denied",
            Self::QuotaExceeded => "quota_exceeded",
            Self::Cancelled => "cancelled",
            Self::Internal => "internal",
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The payload of an `error` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorInfo {
    /// Which kind of failure.
    pub kind: ErrorKind,
    /// A readable message (`TypeError: x is not a function`, or the limit
    /// that was hit with its value).
    pub message: String,
    /// 1-based line in the block's own source (the `.ts` text for
    /// TypeScript), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    /// 1-based column in the block's own source, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<u32>,
    /// The JavaScript stack, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stack: Option<String>,
    /// For `capability_denied`: the grant the host said would allow the
    /// call (from the host's own record of the denial, never from the
    /// block).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<String>,
}

impl ErrorInfo {
    /// An error without a source position or stack.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            line: None,
            column: None,
            stack: None,
            grant: None,
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// The block completed.
    Ok,
    /// The block failed; an `error` event says why.
    Error,
}

/// The payload of the `finished` event, and the measured usage of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finished {
    /// `ok` or `error`.
    pub status: RunStatus,
    /// CPU time the run used, in milliseconds.
    pub cpu_ms: f64,
    /// Wall-clock time from start to finish, in milliseconds.
    pub wall_ms: f64,
    /// The most bytes the isolate held at once during the run.
    pub peak_memory_bytes: u64,
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_prelude_accepts_exactly_the_display_mimes() {
        let list: Vec<String> = super::DISPLAY_MIMES
            .iter()
            .map(|m| format!("{m:?}"))
            .collect();
        let line = format!("const MIMES = [{}];", list.join(", "));
        assert!(
            include_str!("prelude.js").contains(&line),
            "prelude.js must say: {line}"
        );
        assert!(
            include_str!("../runners/node/runner.mjs").contains(&line),
            "runner.mjs must say: {line}"
        );
    }

    #[test]
    fn display_data_must_fit_its_mime() {
        use serde_json::json;
        assert!(super::check_display("application/json", &json!({"a": 1})).is_ok());
        assert!(
            super::check_display("application/vnd.vegalite.v5+json", &json!({"mark": "bar"}))
                .is_ok()
        );
        assert!(super::check_display("image/png", &json!("iVBORw0KGgo=")).is_ok());
        assert!(super::check_display("image/svg+xml", &json!("<svg/>")).is_ok());
        assert!(super::check_display("image/png", &json!("not base64!")).is_err());
        assert!(super::check_display("image/jpeg", &json!({"x": 1})).is_err());
        assert!(super::check_display("text/plain", &json!(1)).is_err());
        assert!(super::check_display("image/gif", &json!("R0lG")).is_err());
    }

    use super::*;

    #[test]
    fn display_ids_and_progress_data_are_checked() {
        use serde_json::json;
        for ok in ["d1", "status", "a.b:c-d_e", &"x".repeat(64)] {
            assert!(check_display_id(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a b", "é", "a/b", &"x".repeat(65), "a\0"] {
            assert!(check_display_id(bad).is_err(), "{bad:?}");
        }
        let p = PROGRESS_MIME;
        assert!(check_display(p, &json!({"fraction": 0.5})).is_ok());
        assert!(check_display(p, &json!({"fraction": 1, "label": "x"})).is_ok());
        for bad in [
            json!(0.5),
            json!({"fraction": 1.5}),
            json!({"fraction": -0.1}),
            json!({"fraction": "1"}),
            json!({"label": "x"}),
            json!({"fraction": 0, "label": 3}),
            json!({"fraction": 0, "other": 1}),
        ] {
            assert!(check_display(p, &bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_live_meter_round_trips_and_an_old_display_event_still_reads() {
        let m: EventBody = serde_json::from_value(serde_json::json!({
            "type": "meter", "cpu_ms": 1.5, "memory_bytes": 10
        }))
        .unwrap();
        assert!(
            matches!(m, EventBody::Meter(Meter { cpu_ms, memory_bytes: 10, last: false, .. }) if cpu_ms == 1.5)
        );
        let old: EventBody = serde_json::from_value(serde_json::json!({
            "type": "display", "mime": "text/plain", "data": "x"
        }))
        .unwrap();
        assert!(matches!(old, EventBody::Display { display_id, .. } if display_id.is_empty()));
    }

    #[test]
    fn events_serialize_to_the_contract_shape() {
        let ev = RunEvent {
            run: "r1".into(),
            seq: 1,
            body: EventBody::Log {
                level: LogLevel::Warn,
                text: "hi".into(),
            },
            t_ms: 0.5,
        };
        let v = serde_json::to_value(&ev).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"run":"r1","seq":1,"type":"log","level":"warn","text":"hi","t_ms":0.5})
        );
        let fin = RunEvent {
            run: "r1".into(),
            seq: 2,
            body: EventBody::Finished(Finished {
                status: RunStatus::Error,
                cpu_ms: 1.0,
                wall_ms: 2.0,
                peak_memory_bytes: 3,
            }),
            t_ms: 2.0,
        };
        let v = serde_json::to_value(&fin).unwrap();
        assert_eq!(v["type"], "finished");
        assert_eq!(v["status"], "error");
        assert_eq!(v["peak_memory_bytes"], 3);
        let back: RunEvent = serde_json::from_value(v).unwrap();
        assert_eq!(back, fin);
    }

    #[test]
    fn error_kinds_use_contract_names() {
        for k in [
            ErrorKind::Syntax,
            ErrorKind::CpuLimit,
            ErrorKind::StackOverflow,
            ErrorKind::CapabilityDenied,
        ] {
            let s = serde_json::to_value(k).unwrap();
            assert_eq!(s, k.as_str());
        }
    }
}
