//! Isolates: one QuickJS runtime + context with the prelude loaded, ready
//! for exactly one run.
//!
//! The prelude is compiled to bytecode once per process
//! ([`prelude_bytecode`]); each new isolate loads that bytecode instead of
//! parsing source. Nothing of QuickJS's `std`/`os` modules is linked in, and
//! the module loader refuses every import but the host module.

use std::rc::Rc;
use std::sync::{Arc, OnceLock};

use rquickjs::loader::{Loader, Resolver};
use rquickjs::module::Declared;
use rquickjs::promise::PromiseState;
use rquickjs::{Context, Ctx, Module, Promise, Runtime, WriteOptions};

use crate::alloc::{AllocStats, CountingAllocator};
use crate::error::EngineError;
use crate::natives::{self, IsolateShared, Rejection};

const PRELUDE_SRC: &str = include_str!("prelude.js");
const PRELUDE_NAME: &str = "quire:prelude";

/// The module name blocks import the host API from.
pub const HOST_MODULE: &str = "quire";

/// The module resolver and loader: only the host module, and only when
/// the run has a host.
struct DenyImports(Rc<IsolateShared>);

impl Resolver for DenyImports {
    fn resolve<'js>(
        &mut self,
        _ctx: &Ctx<'js>,
        base: &str,
        name: &str,
        _attributes: Option<rquickjs::loader::ImportAttributes<'js>>,
    ) -> rquickjs::Result<String> {
        let provides = self
            .0
            .host
            .borrow()
            .as_ref()
            .is_some_and(|h| h.0.provides_module());
        if name == HOST_MODULE && provides {
            return Ok(HOST_MODULE.to_string());
        }
        let msg = if name == HOST_MODULE {
            "the host module \"quire\" is not available to this run (no host API is attached)"
                .to_string()
        } else {
            format!("import of \"{name}\" is not allowed: a block can only import the host module \"{HOST_MODULE}\" (no files, packages or URLs)")
        };
        Err(rquickjs::Error::new_resolving_message(base, name, msg))
    }
}

impl Loader for DenyImports {
    fn load<'js>(
        &mut self,
        ctx: &Ctx<'js>,
        name: &str,
        _attributes: Option<rquickjs::loader::ImportAttributes<'js>>,
    ) -> rquickjs::Result<Module<'js, Declared>> {
        let host = self.0.host.borrow().clone();
        if let (HOST_MODULE, Some(host)) = (name, host.filter(|h| h.0.provides_module())) {
            return crate::hostcall::load_host_module(ctx, HOST_MODULE, host.0.module_source());
        }
        Err(rquickjs::Error::new_loading_message(
            name,
            "module loading is disabled",
        ))
    }
}

fn compile_builtin(name: &str, src: &str) -> Result<Vec<u8>, String> {
    let rt = Runtime::new().map_err(|e| e.to_string())?;
    let ctx = Context::full(&rt).map_err(|e| e.to_string())?;
    ctx.with(|ctx| {
        let m = Module::declare(ctx.clone(), name, src).map_err(|e| {
            let ex = ctx.catch();
            format!("{e}: {ex:?}")
        })?;
        // Without debug info: smaller and faster to load; built-in frames
        // then show no line numbers, which blocks never need.
        m.write(WriteOptions {
            strip_debug: true,
            strip_source: true,
            ..WriteOptions::default()
        })
        .map_err(|e| e.to_string())
    })
}

/// The core prelude, compiled once per process.
pub(crate) fn prelude_bytecode() -> Result<&'static [u8], EngineError> {
    static PRELUDE: OnceLock<Result<Vec<u8>, String>> = OnceLock::new();
    PRELUDE
        .get_or_init(|| compile_builtin(PRELUDE_NAME, PRELUDE_SRC))
        .as_deref()
        .map_err(|e| EngineError::Prelude(e.clone()))
}

/// A module loaded into an isolate on first use, compiled once per
/// process, the first time a run in it needs the module.
#[derive(Clone, Copy)]
pub(crate) enum LazyModule {
    /// The lazily loaded globals (`PRELUDE_EXTRAS`).
    Extras,
    /// The WHATWG streams (`PRELUDE_STREAMS`).
    Streams,
}

/// A lazy module's bytecode.
pub(crate) fn lazy_bytecode(which: LazyModule) -> Result<&'static [u8], EngineError> {
    static EXTRAS: OnceLock<Result<Vec<u8>, String>> = OnceLock::new();
    static STREAMS: OnceLock<Result<Vec<u8>, String>> = OnceLock::new();
    let (cell, name, src) = match which {
        LazyModule::Extras => (&EXTRAS, "quire:extras", crate::PRELUDE_EXTRAS),
        LazyModule::Streams => (&STREAMS, "quire:streams", crate::PRELUDE_STREAMS),
    };
    cell.get_or_init(|| compile_builtin(name, src))
        .as_deref()
        .map_err(|e| EngineError::Prelude(e.clone()))
}

/// Bytes still held by isolates' runtimes after the isolates were dropped
/// (should stay 0; see [`crate::EngineStats::isolate_bytes_leaked`]).
pub(crate) static LEAKED_BYTES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A ready isolate. Serves one run, then is dropped.
pub(crate) struct Isolate {
    pub(crate) shared: Rc<IsolateShared>,
    pub(crate) alloc: Arc<AllocStats>,
    /// Dropped by hand, inside the allocator's quarantine (see `Drop`).
    pub(crate) ctx: std::mem::ManuallyDrop<Context>,
    pub(crate) rt: std::mem::ManuallyDrop<Runtime>,
}

impl Isolate {
    /// Create a runtime and context and load the prelude.
    pub(crate) fn new(stack_bytes: u64, test_native_spin: bool) -> Result<Self, EngineError> {
        let prelude = prelude_bytecode()?;
        let alloc = Arc::new(AllocStats::default());
        let rt = Runtime::new_with_alloc(CountingAllocator {
            stats: alloc.clone(),
        })
        .map_err(|e| EngineError::Isolate(e.to_string()))?;
        rt.set_max_stack_size(stack_bytes as usize);
        let shared = Rc::new(IsolateShared::default());
        rt.set_loader(DenyImports(shared.clone()), DenyImports(shared.clone()));
        let tracker_shared = shared.clone();
        rt.set_host_promise_rejection_tracker(Some(Box::new(
            move |_ctx: Ctx<'_>, promise, reason, handled| {
                let p = promise.as_object().map_or(0, |_| unsafe_ptr(&promise));
                let mut list = tracker_shared.rejections.borrow_mut();
                if handled {
                    list.retain(|r| r.promise != p);
                } else {
                    let reason = rquickjs::Persistent::save(&_ctx, reason);
                    list.push(Rejection { promise: p, reason });
                }
            },
        )));
        let ctx = Context::full(&rt).map_err(|e| EngineError::Isolate(e.to_string()))?;
        ctx.with(|ctx| -> Result<(), EngineError> {
            let fail = |e: rquickjs::Error| {
                let ex = ctx.catch();
                EngineError::Prelude(format!("{e}: {ex:?}"))
            };
            natives::install(&ctx, &shared).map_err(fail)?;
            // SAFETY: the bytes were produced by `Module::write` of this same
            // QuickJS build in this process (`prelude_bytecode`).
            let m = unsafe { Module::load(ctx.clone(), prelude) }.map_err(fail)?;
            let (_, done): (_, Promise) = m.eval().map_err(fail)?;
            while ctx.execute_pending_job() {}
            if done.state() != PromiseState::Resolved {
                return Err(EngineError::Prelude(
                    "the prelude did not finish loading".into(),
                ));
            }
            if test_native_spin {
                natives::install_test_spin(&ctx).map_err(fail)?;
            }
            Ok(())
        })?;
        if shared.fire_timer.borrow().is_none() {
            return Err(EngineError::Prelude(
                "the prelude did not register its hooks".into(),
            ));
        }
        Ok(Self {
            shared,
            alloc,
            ctx: std::mem::ManuallyDrop::new(ctx),
            rt: std::mem::ManuallyDrop::new(rt),
        })
    }

    /// Bytes the isolate holds now.
    pub(crate) fn bytes(&self) -> u64 {
        self.alloc.current()
    }
}

/// The address of a JS object, used only as an identity.
pub(crate) fn unsafe_ptr(v: &rquickjs::Value<'_>) -> usize {
    // SAFETY: reads the pointer field of the JSValue without dereferencing.
    unsafe { rquickjs::qjs::JS_VALUE_GET_PTR(v.as_raw()) as usize }
}

impl Drop for Isolate {
    fn drop(&mut self) {
        self.alloc.disarm();
        self.rt.set_interrupt_handler(None);
        self.shared.clear();
        // Tear the runtime down with every freed block held back until it
        // is gone: QuickJS-ng can write into a module record it already
        // freed when a top-level await was still pending (see
        // `AllocStats::begin_quarantine`).
        self.alloc.begin_quarantine();
        // SAFETY: each field is dropped exactly once, here, and never used
        // again (the struct is being dropped).
        unsafe {
            std::mem::ManuallyDrop::drop(&mut self.ctx);
            std::mem::ManuallyDrop::drop(&mut self.rt);
        }
        self.alloc.release_quarantine();
        let left = self.alloc.current();
        if left != 0 {
            LEAKED_BYTES.fetch_add(left, std::sync::atomic::Ordering::Relaxed);
            tracing::error!(bytes = left, "an isolate's runtime outlived it (a leak)");
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn dropping_an_isolate_frees_everything_it_allocated() {
        let iso = super::Isolate::new(1024 * 1024, false).unwrap();
        let stats = iso.alloc.clone();
        assert!(stats.current() > 100_000);
        drop(iso);
        assert_eq!(stats.current(), 0, "the runtime outlived its isolate");
    }
}
