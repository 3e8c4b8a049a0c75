//! What a caller asks the engine to run.

use serde::{Deserialize, Serialize};

use crate::config::Limits;
use crate::host::{Host, HostHandle};

/// The language of a block's source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    /// JavaScript (an ES module).
    #[default]
    Js,
    /// TypeScript; types are stripped by oxc before QuickJS sees it.
    Ts,
}

impl Lang {
    /// `js` or `ts`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Js => "js",
            Self::Ts => "ts",
        }
    }

    /// Guess from a file name: `.ts`, `.mts`, `.cts` are TypeScript, the
    /// rest JavaScript.
    pub fn from_path(path: &str) -> Self {
        let lower = path.to_ascii_lowercase();
        if lower.ends_with(".ts") || lower.ends_with(".mts") || lower.ends_with(".cts") {
            Self::Ts
        } else {
            Self::Js
        }
    }
}

/// Which JavaScript engine runs a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// QuickJS-ng: fastest to start, smallest isolates. The default.
    #[default]
    Quickjs,
    /// V8 (a fresh isolate per run in pooled Node processes): a JIT, ~4x
    /// faster on CPU-heavy code.
    V8,
}

impl EngineKind {
    /// `quickjs` or `v8`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Quickjs => "quickjs",
            Self::V8 => "v8",
        }
    }

    /// Parse `quickjs` or `v8`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "quickjs" => Some(Self::Quickjs),
            "v8" => Some(Self::V8),
            _ => None,
        }
    }
}

/// One run: a block's source and everything it receives in `ctx`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRequest {
    /// The block's source (an ES module).
    pub source: String,
    /// Its language.
    #[serde(default)]
    pub lang: Lang,
    /// The name stack traces use for the block, e.g. `block.ts`.
    /// Default: `block.js` / `block.ts`.
    #[serde(default)]
    pub filename: Option<String>,
    /// `ctx.input`. Default: `null`.
    #[serde(default)]
    pub input: serde_json::Value,
    /// `ctx.trigger`. Default: `{"kind":"manual"}`.
    #[serde(default)]
    pub trigger: Option<serde_json::Value>,
    /// `ctx.block` (id, name, ... as the caller knows it). Default: `null`.
    #[serde(default)]
    pub block: serde_json::Value,
    /// `ctx.workspace`. Default: `default`.
    #[serde(default)]
    pub workspace: Option<String>,
    /// Limits for this run; `None` takes the engine's defaults.
    #[serde(default)]
    pub limits: Option<Limits>,
    /// The run id to use; `None` generates a random one.
    #[serde(default)]
    pub run_id: Option<String>,
    /// The engine that runs it. Default: QuickJS.
    #[serde(default)]
    pub engine: EngineKind,
    /// The host API this run may call (the `quire` module and `fetch`).
    /// `None`: every host call is denied. Not serialized: a host is live
    /// state, rebuilt per run by the embedder.
    #[serde(skip)]
    pub host: Option<HostHandle>,
    /// Called with every event synchronously, on the thread that emits it,
    /// before it reaches the handle's channel. Must be quick and must not
    /// block for long (it runs on an engine worker).
    #[serde(skip)]
    pub tap: Option<EventTap>,
}

/// A synchronous event observer (see [`RunRequest::tap`]).
#[derive(Clone)]
pub struct EventTap(pub std::sync::Arc<dyn Fn(&crate::RunEvent) + Send + Sync>);

impl std::fmt::Debug for EventTap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EventTap")
    }
}

impl std::ops::Deref for EventTap {
    type Target = dyn Fn(&crate::RunEvent) + Send + Sync;
    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}

impl RunRequest {
    /// A request for `source` in `lang` with every other field defaulted.
    pub fn new(source: impl Into<String>, lang: Lang) -> Self {
        Self {
            source: source.into(),
            lang,
            filename: None,
            input: serde_json::Value::Null,
            trigger: None,
            block: serde_json::Value::Null,
            workspace: None,
            limits: None,
            run_id: None,
            engine: EngineKind::Quickjs,
            host: None,
            tap: None,
        }
    }

    /// Set the limits.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = Some(limits);
        self
    }

    /// Choose the engine.
    pub fn with_engine(mut self, engine: EngineKind) -> Self {
        self.engine = engine;
        self
    }

    /// Set `ctx.input`.
    pub fn with_input(mut self, input: serde_json::Value) -> Self {
        self.input = input;
        self
    }

    /// Attach the host this run's calls go to.
    pub fn with_host(mut self, host: std::sync::Arc<dyn Host>) -> Self {
        self.host = Some(HostHandle(host));
        self
    }

    /// Observe every event synchronously as it is emitted.
    pub fn with_event_tap(
        mut self,
        tap: impl Fn(&crate::RunEvent) + Send + Sync + 'static,
    ) -> Self {
        self.tap = Some(EventTap(std::sync::Arc::new(tap)));
        self
    }

    pub(crate) fn filename(&self) -> String {
        match &self.filename {
            Some(f) if !f.is_empty() => f.clone(),
            _ => format!("block.{}", self.lang.as_str()),
        }
    }
}
