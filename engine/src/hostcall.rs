//! The isolate side of host calls: the `hostCall` native that turns a call
//! into a pending promise, delivering replies back into the isolate, and
//! loading the host's `"quire"` module.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use rquickjs::{Ctx, Exception, Function, Module, Persistent, Promise, Value, WriteOptions};

use crate::control::StopReason;
use crate::host::{CallContext, HostCall, HostError, HostReply, HostResult};
use crate::natives::{lossy, IsolateShared};
use crate::serialize::{SerError, Serializer};

type Settle = (Persistent<Function<'static>>, Persistent<Function<'static>>);

/// Calls of one run still waiting for their reply.
#[derive(Default)]
pub(crate) struct PendingCalls {
    next_id: u32,
    made: u32,
    pending: HashMap<u32, Settle>,
}

impl PendingCalls {
    pub(crate) fn len(&self) -> usize {
        self.pending.len()
    }

    pub(crate) fn clear(&mut self) {
        self.pending.clear();
    }
}

/// A JavaScript `Error` with this `name` and `message`.
pub(crate) fn make_error<'js>(ctx: &Ctx<'js>, name: &str, message: &str) -> Value<'js> {
    match Exception::from_message(ctx.clone(), message) {
        Ok(e) => {
            let _ = e.set("name", name);
            e.into_value()
        }
        Err(_) => Value::new_undefined(ctx.clone()),
    }
}

/// `__quire_native.hostCall(op, args)`: a promise of the host's reply.
pub(crate) fn host_call<'js>(
    ctx: Ctx<'js>,
    sh: &IsolateShared,
    op: rquickjs::String<'js>,
    args: Value<'js>,
) -> rquickjs::Result<Promise<'js>> {
    let op = lossy(&op);
    let (promise, resolve, reject) = ctx.promise()?;
    let Some(control) = sh.control() else {
        return Ok(promise);
    };
    let limits = &control.limits;
    // The engine's own refusals, recorded like the host's.
    let fail = |e: HostError| -> rquickjs::Result<Promise<'js>> {
        control.record_refusal(&e);
        let _: Value = reject.call((make_error(&ctx, &e.name, &e.message),))?;
        Ok(promise.clone())
    };
    let Some(host) = sh.host.borrow().clone() else {
        return fail(HostError::denied(
            format!("`{op}` is denied: no host API is attached to this run, so it has no grants"),
            None,
        ));
    };
    {
        let mut calls = sh.calls.borrow_mut();
        if calls.made >= limits.host_calls {
            drop(calls);
            return fail(HostError::quota(format!(
                "host call limit of {} calls per run exceeded (at `{op}`)",
                limits.host_calls
            )));
        }
        calls.made += 1;
        control
            .host_calls
            .store(u64::from(calls.made), std::sync::atomic::Ordering::Relaxed);
    }
    let mut ser = Serializer::new(&control, limits.host_value_bytes, sh.plain_protos.get())
        .bounded()
        .wrapped(1);
    let args = match ser.top(&ctx, args) {
        Ok(json) => json,
        Err(SerError::Stopped(StopReason::Output)) => {
            return fail(HostError::new(
                "RangeError",
                format!(
                    "the arguments of `{op}` exceed the host value limit of {} bytes",
                    limits.host_value_bytes
                ),
            ))
        }
        Err(SerError::TooDeep) => {
            return fail(HostError::new(
                "RangeError",
                crate::too_deep(&format!("an argument of `{op}`")),
            ))
        }
        // The run is ending (a limit hit meanwhile): leave it pending.
        Err(SerError::Stopped(_)) => return Ok(promise),
        Err(SerError::Threw) => return Err(rquickjs::Error::Exception),
    };
    let id = {
        let mut calls = sh.calls.borrow_mut();
        calls.next_id = calls.next_id.wrapping_add(1);
        let id = calls.next_id;
        calls.pending.insert(
            id,
            (
                Persistent::save(&ctx, resolve),
                Persistent::save(&ctx, reject),
            ),
        );
        id
    };
    let cx = CallContext {
        run: control.id.clone(),
        deadline: control.wall_deadline(),
        limits: control.limits.clone(),
    };
    tracing::trace!(op = %op, id, "host call");
    host.0
        .call(&cx, HostCall { op, args }, HostReply::new(id, &control));
    Ok(promise)
}

/// Settle the calls whose replies arrived. `true` if any did.
pub(crate) fn deliver(ctx: &Ctx<'_>, sh: &IsolateShared) -> bool {
    // The drive loop asks on every turn; most runs never call the host.
    if sh.calls.borrow().len() == 0 {
        return false;
    }
    let Some(control) = sh.control() else {
        return false;
    };
    let mail = control.mailbox.take();
    if mail.is_empty() {
        return false;
    }
    for (id, result) in mail {
        let Some((res, rej)) = sh.calls.borrow_mut().pending.remove(&id) else {
            continue;
        };
        let (Ok(res), Ok(rej)) = (res.restore(ctx), rej.restore(ctx)) else {
            continue;
        };
        let settled: rquickjs::Result<Value> = match reply_value(ctx, &control.limits, result) {
            Ok(v) => res.call((v,)),
            Err(e) => rej.call((e,)),
        };
        if settled.is_err() {
            let _ = ctx.catch();
        }
    }
    true
}

fn reply_value<'js>(
    ctx: &Ctx<'js>,
    limits: &crate::Limits,
    result: HostResult,
) -> Result<Value<'js>, Value<'js>> {
    match result {
        Ok(json) => {
            let text = json.to_string();
            if text.len() as u64 > limits.host_value_bytes {
                return Err(make_error(
                    ctx,
                    "RangeError",
                    &format!(
                        "the host's reply ({} bytes) exceeds the host value limit of {} bytes",
                        text.len(),
                        limits.host_value_bytes
                    ),
                ));
            }
            ctx.json_parse(text).map_err(|_| ctx.catch())
        }
        Err(e) => Err(make_error(ctx, &e.name, &e.message)),
    }
}

/// Bytecode of each host module source seen, keyed by its BLAKE3 hash.
type ModuleCache = Mutex<HashMap<[u8; 32], Arc<Vec<u8>>>>;

fn module_cache() -> &'static ModuleCache {
    static CACHE: OnceLock<ModuleCache> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// Declare the host's `"quire"` module in this isolate, from cached
/// bytecode when this source was compiled before.
pub(crate) fn load_host_module<'js>(
    ctx: &Ctx<'js>,
    name: &str,
    source: &'static str,
) -> rquickjs::Result<Module<'js, rquickjs::module::Declared>> {
    let key = *blake3::hash(source.as_bytes()).as_bytes();
    let cached = module_cache()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&key)
        .cloned();
    if let Some(bytes) = cached {
        // SAFETY: produced by `Module::write` of this QuickJS build in this
        // process, below.
        return unsafe { Module::load(ctx.clone(), &bytes) };
    }
    let started = Instant::now();
    let m = Module::declare(ctx.clone(), name, source)?;
    if let Ok(bytes) = m.write(WriteOptions {
        strip_debug: true,
        strip_source: true,
        ..WriteOptions::default()
    }) {
        let mut cache = module_cache().lock().unwrap_or_else(|e| e.into_inner());
        // Host module sources are few (one per host-API version); bound it
        // anyway.
        if cache.len() >= 16 {
            cache.clear();
        }
        cache.insert(key, Arc::new(bytes));
    }
    tracing::debug!(
        us = started.elapsed().as_micros() as u64,
        "compiled the host module"
    );
    Ok(m)
}
