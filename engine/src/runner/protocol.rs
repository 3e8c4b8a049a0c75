//! The runner protocol: what the server and a runner process say to each
//! other over the runner's stdin/stdout pipes.
//!
//! Framing: a 4-byte big-endian length `n`, then `n` bytes: one version
//! byte ([`VERSION`]) and a JSON message. Frames larger than the reader's
//! maximum, another version, malformed JSON, or a message of the wrong
//! direction are protocol errors: the server treats every byte from a
//! runner as untrusted and ends the runner on the first one.

use std::io::{Read, Write};

use serde::{Deserialize, Serialize};

use crate::event::EventBody;
use crate::host::HostResult;
use crate::request::RunRequest;

/// The protocol version this build speaks.
pub const VERSION: u8 = 1;

/// Largest frame a reader accepts by default, in bytes (payload plus the
/// version byte): 8 MiB.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 8 * 1024 * 1024;

/// Server → runner.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum ToRunner {
    /// Start a run. `host_module` is the source of the `"quire"` module
    /// when the run has a host.
    Start {
        /// The run id (the server's).
        run: String,
        /// What to run (its `host` is not serialized).
        request: Box<RunRequest>,
        /// The host module source, if the run has a host.
        host_module: Option<String>,
    },
    /// For the V8 runner, first of all (before it says `ready`): quire's
    /// prelude sources (`prelude.js`, the extras and streams modules), which it runs
    /// into its startup snapshot.
    Prelude {
        /// The core prelude.
        core: String,
        /// The lazily loaded extras module.
        extras: String,
        /// The lazily loaded streams module.
        streams: String,
    },
    /// Cancel a run.
    Cancel {
        /// The run id.
        run: String,
    },
    /// The answer to a host call.
    Reply {
        /// The run id.
        run: String,
        /// The call id the runner gave.
        call: u32,
        /// The result.
        result: HostResult,
    },
}

/// Runner → server.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum FromRunner {
    /// Sent once, after the sandbox is in place.
    Ready {
        /// The runner's process id.
        pid: u32,
        /// What the sandbox could put in place.
        sandbox: SandboxReport,
    },
    /// An event of a run (the server assigns `seq` and `t_ms`).
    Event {
        /// The run id.
        run: String,
        /// The event.
        body: EventBody,
    },
    /// The runner must get no more runs: V8 lost control of one of its
    /// isolates (an out-of-memory it could not turn into a termination;
    /// that isolate's thread is parked for good). The run that did it is
    /// ended next, with `memory_limit`; the runner's other runs go on to
    /// their own ends, and the server retires it once they have.
    Failing {
        /// What happened, for the log.
        why: String,
    },
    /// A host call of a run.
    Call {
        /// The run id.
        run: String,
        /// The runner's id for this call.
        call: u32,
        /// The operation.
        op: String,
        /// Its arguments.
        args: serde_json::Value,
    },
}

/// Which sandbox layers a runner put in place.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxReport {
    /// The seccomp-bpf allowlist is installed on every thread.
    pub seccomp: bool,
    /// Landlock forbids all filesystem access (false: the kernel has no
    /// Landlock; seccomp still refuses every path-taking syscall).
    pub landlock: bool,
    /// rlimits (address space, CPU, files, file size, core) are set.
    pub rlimits: bool,
    /// The runner dies with its parent (`PR_SET_PDEATHSIG`).
    pub parent_death_signal: bool,
    /// The runner runs below the server's CPU priority (its nice value is
    /// set).
    #[serde(default)]
    pub niced: bool,
}

/// A protocol violation or a broken pipe.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// Reading or writing the pipe failed.
    #[error("pipe error: {0}")]
    Io(#[from] std::io::Error),
    /// A frame longer than the reader accepts.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Its announced length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// An empty frame (no version byte).
    #[error("empty frame")]
    Empty,
    /// Another protocol version.
    #[error("protocol version {got} (this build speaks {VERSION})")]
    Version {
        /// The version byte received.
        got: u8,
    },
    /// The payload is not a valid message.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// The stream ended inside a frame.
    #[error("the stream ended inside a frame")]
    Truncated,
}

/// Write one frame.
///
/// # Errors
/// [`ProtocolError::Io`] when the pipe is closed.
pub fn write_frame<T: Serialize>(w: &mut impl Write, msg: &T) -> Result<(), ProtocolError> {
    let body = serde_json::to_vec(msg).map_err(|e| ProtocolError::Malformed(e.to_string()))?;
    let len = u32::try_from(body.len() + 1).map_err(|_| ProtocolError::TooLarge {
        len: body.len() + 1,
        max: u32::MAX as usize,
    })?;
    let mut frame = Vec::with_capacity(body.len() + 5);
    frame.extend_from_slice(&len.to_be_bytes());
    frame.push(VERSION);
    frame.extend_from_slice(&body);
    w.write_all(&frame)?;
    w.flush()?;
    Ok(())
}

/// Read one frame. `Ok(None)` at a clean end of stream (between frames).
///
/// # Errors
/// Any [`ProtocolError`]; after one, the stream cannot be trusted.
pub fn read_frame<T: for<'de> Deserialize<'de>>(
    r: &mut impl Read,
    max: usize,
) -> Result<Option<T>, ProtocolError> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match r.read(&mut len[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(ProtocolError::Truncated),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    let len = u32::from_be_bytes(len) as usize;
    if len == 0 {
        return Err(ProtocolError::Empty);
    }
    if len > max {
        return Err(ProtocolError::TooLarge { len, max });
    }
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => ProtocolError::Truncated,
        _ => ProtocolError::Io(e),
    })?;
    if buf[0] != VERSION {
        return Err(ProtocolError::Version { got: buf[0] });
    }
    serde_json::from_slice(&buf[1..])
        .map(Some)
        .map_err(|e| ProtocolError::Malformed(e.to_string()))
}

/// Decode one frame from bytes (the fuzz target's entry point): every
/// input either decodes or gives an error, never a panic.
pub fn decode_from_runner(bytes: &[u8]) -> Result<Option<FromRunner>, ProtocolError> {
    let mut r = bytes;
    read_frame(&mut r, DEFAULT_MAX_FRAME_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let mut buf = Vec::new();
        let msg = FromRunner::Call {
            run: "r".into(),
            call: 7,
            op: "kv.get".into(),
            args: serde_json::json!(["k"]),
        };
        write_frame(&mut buf, &msg).unwrap();
        let back: FromRunner = read_frame(&mut buf.as_slice(), 1024).unwrap().unwrap();
        assert!(matches!(back, FromRunner::Call { call: 7, .. }));
        assert!(read_frame::<FromRunner>(&mut &[][..], 1024)
            .unwrap()
            .is_none());
    }

    #[test]
    fn bad_frames_are_errors() {
        let too_big = [0xff, 0xff, 0xff, 0xff, 1];
        assert!(matches!(
            read_frame::<FromRunner>(&mut &too_big[..], 1024),
            Err(ProtocolError::TooLarge { .. })
        ));
        assert!(matches!(
            read_frame::<FromRunner>(&mut &[0, 0, 0, 0][..], 1024),
            Err(ProtocolError::Empty)
        ));
        assert!(matches!(
            read_frame::<FromRunner>(&mut &[0, 0, 0, 2, 9, b'{'][..], 1024),
            Err(ProtocolError::Version { got: 9 })
        ));
        assert!(matches!(
            read_frame::<FromRunner>(&mut &[0, 0, 0, 3, 1, b'{', b'}'][..], 1024),
            Err(ProtocolError::Malformed(_))
        ));
        assert!(matches!(
            read_frame::<FromRunner>(&mut &[0, 0, 0, 9, 1, b'{'][..], 1024),
            Err(ProtocolError::Truncated)
        ));
        assert!(matches!(
            read_frame::<FromRunner>(&mut &[0, 0][..], 1024),
            Err(ProtocolError::Truncated)
        ));
    }
}
