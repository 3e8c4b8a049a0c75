//! One run inside one isolate, as a resumable state machine.
//!
//! A worker thread interleaves many runs: [`ActiveRun::step`] does all the
//! work that is ready (module evaluation, promise jobs, due timers) and
//! returns when the run is done or waits on a timer. Waiting runs do not
//! hold the thread.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rquickjs::promise::PromiseState;
use rquickjs::{Ctx, Module, Object, Persistent, Promise, Value, WriteOptions};

use crate::compile::{self, BytecodeCache, Compiled, SourceError};
use crate::control::{RunControl, StopReason};
use crate::cpu::ThreadClock;
use crate::describe::describe_thrown;
use crate::event::{ErrorInfo, ErrorKind, EventBody};
use crate::isolate::{unsafe_ptr, Isolate};
use crate::request::RunRequest;
use crate::serialize::{SerError, Serializer};

/// Timer callbacks one step may fire before yielding to other runs.
const TIMERS_PER_STEP: u32 = 64;

/// What a step left the run waiting for.
pub(crate) enum Step {
    /// The run is over (its `finished` event is out).
    Done,
    /// Step again at this instant (a timer), or sooner if woken.
    WaitUntil(Instant),
}

enum Phase {
    NotStarted(Box<RunRequest>),
    /// The module is evaluating (top-level await); then take its default.
    Module {
        ns: Persistent<Object<'static>>,
        done: Persistent<Promise<'static>>,
    },
    /// Awaiting the default export or what the default function returned.
    Awaiting(Persistent<Promise<'static>>),
    /// The result is known; pending timers still run (as in Node and Deno)
    /// before the result is reported.
    Draining(Option<serde_json::Value>),
    Finished,
}

type Outcome = Result<Option<serde_json::Value>, ErrorInfo>;

/// What the default export asks for.
enum DefaultExport<'js> {
    Await(Promise<'js>),
    Value(Value<'js>),
    Nothing,
}

pub(crate) struct ActiveRun {
    pub(crate) control: Arc<RunControl>,
    phase: Phase,
    filename: String,
    /// `ctx` for a default-export function, as JSON.
    ctx_json: String,
    compiled: Option<Arc<Compiled>>,
    jobs: u64,
    /// JSON bytes of the result, as the serializer counted them.
    result_bytes: u64,
    /// CPU used before the current step.
    cpu_base: Rc<Cell<Duration>>,
    /// Thread CPU clock reading when the current step began.
    step_start: Rc<Cell<Duration>>,
    pub(crate) iso: Isolate,
}

impl ActiveRun {
    pub(crate) fn new(
        control: Arc<RunControl>,
        request: RunRequest,
        iso: Isolate,
        clock: ThreadClock,
    ) -> Self {
        let filename = request.filename();
        let ctx_json = serde_json::json!({
            "input": request.input,
            "trigger": request.trigger.clone().unwrap_or_else(|| serde_json::json!({"kind": "manual"})),
            "block": request.block,
            "workspace": request.workspace.clone().unwrap_or_else(|| "default".into()),
        })
        .to_string();
        let cpu_base = Rc::new(Cell::new(Duration::ZERO));
        let step_start = Rc::new(Cell::new(Duration::ZERO));
        iso.alloc.arm(control.limits.memory_bytes);
        *iso.shared.run.borrow_mut() = Some(control.clone());
        *iso.shared.host.borrow_mut() = request.host.clone();
        let (c, a, base, start) = (
            control.clone(),
            iso.alloc.clone(),
            cpu_base.clone(),
            step_start.clone(),
        );
        let cpu_limit = control.limits.cpu_time();
        let wall_deadline = control.wall_deadline();
        iso.rt.set_interrupt_handler(Some(Box::new(move || {
            if c.stop_reason().is_some() {
                return true;
            }
            if a.limit_hit() {
                c.stop(StopReason::Memory);
                return true;
            }
            c.memory_now.store(a.current(), Ordering::Relaxed);
            if Instant::now() >= wall_deadline {
                c.stop(StopReason::Wall);
                return true;
            }
            let used = base.get() + clock.now().saturating_sub(start.get());
            if used >= cpu_limit {
                c.stop(StopReason::Cpu);
                return true;
            }
            false
        })));
        Self {
            control,
            phase: Phase::NotStarted(Box::new(request)),
            filename,
            ctx_json,
            compiled: None,
            jobs: 0,
            result_bytes: 0,
            cpu_base,
            step_start,
            iso,
        }
    }

    /// Do the work that is ready. Finishes the run when it is over.
    pub(crate) fn step(&mut self, clock: ThreadClock, cache: &BytecodeCache) -> Step {
        let t0 = clock.now();
        self.step_start.set(t0);
        // SAFETY: the runtime pointer is valid for the isolate's lifetime;
        // the stack top must be the current thread's position because the
        // isolate may have been created deeper or shallower in the stack.
        self.iso.ctx.with(|ctx| unsafe {
            rquickjs::qjs::JS_UpdateStackTop(rquickjs::qjs::JS_GetRuntime(ctx.as_raw().as_ptr()));
        });
        self.control
            .memory_now
            .store(self.iso.alloc.current(), Ordering::Relaxed);
        let result = self.step_inner(cache);
        let used = self.cpu_base.get() + clock.now().saturating_sub(t0);
        self.cpu_base.set(used);
        self.control
            .cpu_used_ns
            .store(used.as_nanos() as u64, Ordering::Relaxed);
        self.control
            .peak_memory
            .store(self.iso.alloc.peak(), Ordering::Relaxed);
        self.control
            .memory_now
            .store(self.iso.alloc.current(), Ordering::Relaxed);
        match result {
            Some(outcome) => {
                self.conclude(outcome);
                Step::Done
            }
            None => {
                let mut next = self.control.wall_deadline();
                if let Some(t) = self.iso.shared.timers.borrow_mut().next_due() {
                    next = next.min(t);
                }
                Step::WaitUntil(next)
            }
        }
    }

    fn conclude(&mut self, outcome: Outcome) {
        self.phase = Phase::Finished;
        if self.iso.alloc.limit_hit() {
            self.control.stop(StopReason::Memory);
        }
        let error = match (self.control.stop_error(), outcome) {
            (Some(mut rec), Err(js)) => {
                // The record decides the kind; the block's exception only
                // says which functions were running when the limit hit.
                // (QuickJS reports an interrupted frame at its function's
                // start, not the exact line, so no line/column is claimed.)
                rec.stack = js.stack;
                Some(rec)
            }
            (Some(rec), Ok(_)) => Some(rec),
            (None, Err(js)) => Some(js),
            (None, Ok(value)) => {
                if let Some(v) = value {
                    let bytes = self.result_bytes;
                    if let Err(r) = self.control.emit_result(v, bytes) {
                        self.control.stop(r);
                    }
                }
                self.control.stop_error()
            }
        };
        self.control
            .finish(error, self.cpu_base.get(), self.iso.alloc.peak());
    }

    fn source_error(&self, e: SourceError) -> ErrorInfo {
        ErrorInfo {
            kind: ErrorKind::Syntax,
            message: e.message,
            line: e.line,
            column: e.column,
            stack: None,
            grant: None,
        }
    }

    /// `None`: not finished yet. `Some(outcome)`: finished.
    fn step_inner(&mut self, cache: &BytecodeCache) -> Option<Outcome> {
        if self.control.stop_reason().is_some() {
            return Some(Ok(None));
        }
        if Instant::now() >= self.control.wall_deadline() {
            self.control.stop(StopReason::Wall);
            return Some(Ok(None));
        }
        // Deref first: cloning the `ManuallyDrop` itself would leak the clone.
        let ctx_handle: rquickjs::Context = (*self.iso.ctx).clone();
        ctx_handle.with(|ctx| {
            if let Phase::NotStarted(_) = self.phase {
                let Phase::NotStarted(req) = std::mem::replace(&mut self.phase, Phase::Finished)
                else {
                    return Some(Ok(None));
                };
                if let Err(e) = self.start(&ctx, *req, cache) {
                    return Some(Err(e));
                }
            }
            self.drive(&ctx)
        })
    }

    fn thrown(&self, ctx: &Ctx<'_>) -> ErrorInfo {
        let ex = ctx.catch();
        let map = self.compiled.as_ref().and_then(|c| c.map.as_ref());
        describe_thrown(
            ctx,
            &self.control,
            ex,
            &self.filename,
            map,
            self.iso.shared.plain_protos.get(),
        )
    }

    fn start(
        &mut self,
        ctx: &Ctx<'_>,
        req: RunRequest,
        cache: &BytecodeCache,
    ) -> Result<(), ErrorInfo> {
        self.control.emit(EventBody::Started);
        let key = compile::cache_key(req.lang, &self.filename, &req.source);
        let module = match cache.get(&key) {
            Some(c) => {
                self.compiled = Some(c.clone());
                // SAFETY: cached bytecode is only ever produced by
                // `Module::write` in this process from this QuickJS build.
                unsafe { Module::load(ctx.clone(), &c.bytecode) }.map_err(|_| self.thrown(ctx))?
            }
            None => {
                let prepared = compile::prepare(req.lang, &self.filename, &req.source)
                    .map_err(|e| self.source_error(e))?;
                self.compiled = Some(Arc::new(Compiled {
                    bytecode: Vec::new(),
                    map: prepared.map,
                }));
                let m = Module::declare(ctx.clone(), self.filename.as_str(), prepared.js)
                    .map_err(|_| self.thrown(ctx))?;
                if let Ok(bytecode) = m.write(WriteOptions::default()) {
                    let map = self
                        .compiled
                        .take()
                        .and_then(|c| Arc::try_unwrap(c).ok())
                        .and_then(|c| c.map);
                    let compiled = Arc::new(Compiled { bytecode, map });
                    cache.insert(key, compiled.clone());
                    self.compiled = Some(compiled);
                }
                m
            }
        };
        let (module, done) = module.eval().map_err(|_| self.thrown(ctx))?;
        let ns = module.namespace().map_err(|_| self.thrown(ctx))?;
        self.phase = Phase::Module {
            ns: Persistent::save(ctx, ns),
            done: Persistent::save(ctx, done),
        };
        Ok(())
    }

    /// The outcome of a run the engine stopped: where the block's code was
    /// when the limit hit, when its promise carries the interrupt error.
    /// (The engine's record still decides the kind.)
    fn stopped(&self, ctx: &Ctx<'_>) -> Outcome {
        let p = match &self.phase {
            Phase::Module { done, .. } => done.clone().restore(ctx).ok(),
            Phase::Awaiting(p) => p.clone().restore(ctx).ok(),
            _ => None,
        };
        match p {
            Some(p) if p.state() == PromiseState::Rejected => Err(self.rejection(ctx, &p)),
            _ => Ok(None),
        }
    }

    /// Run jobs and timers until the run finishes or must wait.
    fn drive(&mut self, ctx: &Ctx<'_>) -> Option<Outcome> {
        let mut fired = 0u32;
        loop {
            crate::hostcall::deliver(ctx, &self.iso.shared);
            while ctx.execute_pending_job() {
                self.jobs += 1;
                if self.jobs > self.control.limits.max_jobs {
                    self.control.stop(StopReason::Jobs);
                }
                if self.control.stop_reason().is_some() {
                    return Some(self.stopped(ctx));
                }
            }
            if self.iso.alloc.limit_hit() {
                self.control.stop(StopReason::Memory);
            }
            if self.control.stop_reason().is_some() {
                return Some(self.stopped(ctx));
            }
            if let Some(done) = self.advance(ctx) {
                match done {
                    Ok(value) if self.waiting_on_something() => {
                        self.phase = Phase::Draining(value);
                    }
                    other => return Some(other),
                }
            }
            if let Some(err) = self.unhandled_rejection(ctx) {
                return Some(Err(err));
            }
            if jobs_pending(ctx) {
                continue;
            }
            if fired >= TIMERS_PER_STEP {
                return None;
            }
            let due = self.iso.shared.timers.borrow_mut().pop_due(Instant::now());
            match due {
                Some(id) => {
                    fired += 1;
                    self.jobs += 1;
                    let fire = self.iso.shared.fire_timer.borrow().clone();
                    let Some(fire) = fire.and_then(|f| f.restore(ctx).ok()) else {
                        return Some(Err(internal("the timer hook is missing")));
                    };
                    let r: rquickjs::Result<Value> = fire.call((id,));
                    if r.is_err() {
                        // Timer callbacks catch their own errors; anything
                        // here is the interrupt or out-of-memory.
                        let info = self.thrown(ctx);
                        if self.control.stop_reason().is_some() || self.iso.alloc.limit_hit() {
                            return Some(Err(info));
                        }
                    }
                }
                None => {
                    if self.control.mailbox.has_mail() {
                        continue;
                    }
                    if self.waiting_on_something() {
                        return None;
                    }
                    if let Phase::Draining(value) =
                        std::mem::replace(&mut self.phase, Phase::Finished)
                    {
                        return Some(Ok(value));
                    }
                    // Nothing can ever settle the block's promise.
                    self.control.stop(StopReason::Deadlock);
                    return Some(self.stopped(ctx));
                }
            }
        }
    }

    /// Whether a timer or a host call can still wake the run.
    fn waiting_on_something(&self) -> bool {
        self.iso.shared.timers.borrow().pending() > 0 || self.iso.shared.calls.borrow().len() > 0
    }

    /// Move past a settled promise. `Some` when the run is over.
    fn advance(&mut self, ctx: &Ctx<'_>) -> Option<Outcome> {
        loop {
            match &self.phase {
                Phase::Module { ns, done } => {
                    let done = done.clone().restore(ctx).ok()?;
                    match done.state() {
                        PromiseState::Pending => return None,
                        PromiseState::Rejected => return Some(Err(self.rejection(ctx, &done))),
                        PromiseState::Resolved => {}
                    }
                    let ns = ns.clone().restore(ctx).ok()?;
                    match self.take_default(ctx, ns) {
                        Ok(DefaultExport::Await(p)) => {
                            self.phase = Phase::Awaiting(Persistent::save(ctx, p))
                        }
                        Ok(DefaultExport::Value(v)) => return Some(self.serialize(ctx, v)),
                        Ok(DefaultExport::Nothing) => return Some(Ok(None)),
                        Err(e) => return Some(Err(e)),
                    }
                    // Look at the new promise (it may have settled already).
                    continue;
                }
                Phase::Awaiting(p) => {
                    let p = p.clone().restore(ctx).ok()?;
                    return match p.state() {
                        PromiseState::Pending => None,
                        PromiseState::Rejected => Some(Err(self.rejection(ctx, &p))),
                        PromiseState::Resolved => {
                            let v: Value = match p.result::<Value>() {
                                Some(Ok(v)) => v,
                                _ => return Some(Err(self.thrown(ctx))),
                            };
                            Some(self.serialize(ctx, v))
                        }
                    };
                }
                Phase::Draining(_) => return None,
                Phase::NotStarted(_) | Phase::Finished => return Some(Ok(None)),
            }
        }
    }

    fn rejection(&self, ctx: &Ctx<'_>, p: &Promise<'_>) -> ErrorInfo {
        let _ = p.result::<Value>();
        self.thrown(ctx)
    }

    /// Take the default export: call it if it is a function, and say what
    /// to await or serialize.
    fn take_default<'js>(
        &mut self,
        ctx: &Ctx<'js>,
        ns: Object<'js>,
    ) -> Result<DefaultExport<'js>, ErrorInfo> {
        let has = ns.contains_key("default").map_err(|_| self.thrown(ctx))?;
        if !has {
            return Ok(DefaultExport::Nothing);
        }
        let mut value: Value<'js> = ns.get("default").map_err(|_| self.thrown(ctx))?;
        if let Some(f) = value.as_function() {
            let arg = self.ctx_object(ctx)?;
            value = f.call((arg,)).map_err(|_| self.thrown(ctx))?;
        }
        if let Some(p) = value.as_promise() {
            return Ok(DefaultExport::Await(p.clone()));
        }
        if value.is_object() && !value.is_function() {
            // Adopt thenables the way `await` would (reading `then` is guest
            // code, so let the promise machinery do it under the limits).
            let (p, resolve, _reject) = ctx.promise().map_err(|_| self.thrown(ctx))?;
            let _: Value = resolve.call((value,)).map_err(|_| self.thrown(ctx))?;
            return Ok(DefaultExport::Await(p));
        }
        Ok(DefaultExport::Value(value))
    }

    fn ctx_object<'js>(&self, ctx: &Ctx<'js>) -> Result<Value<'js>, ErrorInfo> {
        ctx.json_parse(self.ctx_json.clone())
            .map_err(|_| self.thrown(ctx))
    }

    fn serialize<'js>(&mut self, ctx: &Ctx<'js>, v: Value<'js>) -> Outcome {
        let mut ser = Serializer::new(
            &self.control,
            self.control.output_left(),
            self.iso.shared.plain_protos.get(),
        );
        match ser.top(ctx, v) {
            Ok(json) => {
                self.result_bytes = ser.bytes();
                Ok(Some(json))
            }
            Err(SerError::Stopped(_)) => Ok(None),
            Err(SerError::TooDeep) => Err(ErrorInfo::new(
                ErrorKind::Exception,
                crate::too_deep("the result"),
            )),
            Err(SerError::Threw) => {
                let mut e = self.thrown(ctx);
                e.message = format!("while converting the result to JSON: {}", e.message);
                Err(e)
            }
        }
    }

    fn unhandled_rejection(&mut self, ctx: &Ctx<'_>) -> Option<ErrorInfo> {
        let main = match &self.phase {
            Phase::Module { done, .. } => done
                .clone()
                .restore(ctx)
                .ok()
                .map(|p| unsafe_ptr(&p.into_value())),
            Phase::Awaiting(p) => p
                .clone()
                .restore(ctx)
                .ok()
                .map(|p| unsafe_ptr(&p.into_value())),
            _ => None,
        };
        let first = {
            let mut list = self.iso.shared.rejections.borrow_mut();
            list.retain(|r| Some(r.promise) != main);
            if list.is_empty() {
                return None;
            }
            list.remove(0)
        };
        let reason = first.reason.restore(ctx).ok()?;
        let _ = ctx.throw(reason);
        let mut e = self.thrown(ctx);
        e.message = format!(
            "Uncaught (in promise) {}",
            e.message.trim_start_matches("Uncaught ")
        );
        Some(e)
    }
}

fn jobs_pending(ctx: &Ctx<'_>) -> bool {
    // SAFETY: the context pointer is live inside `Context::with`, and
    // JS_IsJobPending only reads the runtime's job list.
    unsafe { rquickjs::qjs::JS_IsJobPending(rquickjs::qjs::JS_GetRuntime(ctx.as_raw().as_ptr())) }
}

fn internal(msg: &str) -> ErrorInfo {
    ErrorInfo::new(ErrorKind::Internal, msg.to_string())
}
