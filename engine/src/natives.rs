//! Native (Rust) functions behind the prelude's web globals, and the
//! per-isolate state they share: the current run, its timers, pending
//! rejections. The prelude receives them on `globalThis.__quire_native` and
//! removes that object before any block code runs.

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use rquickjs::function::Opt;
use rquickjs::{Ctx, Exception, Function, Object, Persistent, TypedArray, Value};

use crate::control::{RunControl, StopReason};
use crate::event::{EventBody, LogLevel};
use crate::serialize::{SerError, Serializer};

/// Pending timers of one run, in due order (FIFO among equal times).
#[derive(Default)]
pub(crate) struct Timers {
    next_id: u32,
    seq: u64,
    heap: BinaryHeap<Reverse<(Instant, u64, u32)>>,
    live: HashSet<u32>,
}

impl Timers {
    fn arm(&mut self, delay: Duration, reuse: u32, max: u32) -> Option<u32> {
        let id = if reuse != 0 && !self.live.contains(&reuse) {
            reuse
        } else {
            if self.live.len() >= max as usize {
                return None;
            }
            self.next_id = self.next_id.wrapping_add(1).max(1);
            self.next_id
        };
        self.seq += 1;
        self.heap
            .push(Reverse((Instant::now() + delay, self.seq, id)));
        self.live.insert(id);
        Some(id)
    }

    fn clear(&mut self, id: u32) {
        self.live.remove(&id);
    }

    fn drop_dead(&mut self) {
        while let Some(Reverse((_, _, id))) = self.heap.peek() {
            if self.live.contains(id) {
                break;
            }
            self.heap.pop();
        }
    }

    /// When the next live timer is due.
    pub(crate) fn next_due(&mut self) -> Option<Instant> {
        self.drop_dead();
        self.heap.peek().map(|Reverse((t, _, _))| *t)
    }

    /// The next timer due at or before `now`, removed from the queue.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<u32> {
        self.drop_dead();
        match self.heap.peek() {
            Some(Reverse((t, _, _))) if *t <= now => {
                let Reverse((_, _, id)) = self.heap.pop()?;
                self.live.remove(&id);
                Some(id)
            }
            _ => None,
        }
    }

    pub(crate) fn pending(&self) -> usize {
        self.live.len()
    }
}

/// A promise rejected with no handler (yet).
pub(crate) struct Rejection {
    pub(crate) promise: usize,
    pub(crate) reason: Persistent<Value<'static>>,
}

/// State shared by an isolate's natives and the worker running it.
#[derive(Default)]
pub(crate) struct IsolateShared {
    pub(crate) run: RefCell<Option<Arc<RunControl>>>,
    pub(crate) timers: RefCell<Timers>,
    pub(crate) fire_timer: RefCell<Option<Persistent<Function<'static>>>>,
    pub(crate) rejections: RefCell<Vec<Rejection>>,
    /// Addresses of the intrinsic Object.prototype and Array.prototype,
    /// captured by the prelude before any block code runs.
    pub(crate) plain_protos: std::cell::Cell<[usize; 2]>,
    protos: RefCell<Vec<Persistent<Object<'static>>>>,
    /// The run's host, if one is attached.
    pub(crate) host: RefCell<Option<crate::host::HostHandle>>,
    /// Host calls waiting for replies.
    pub(crate) calls: RefCell<crate::hostcall::PendingCalls>,
}

impl IsolateShared {
    /// Drop every JS value held from Rust (before the runtime goes).
    pub(crate) fn clear(&self) {
        self.fire_timer.borrow_mut().take();
        self.rejections.borrow_mut().clear();
        self.protos.borrow_mut().clear();
        self.run.borrow_mut().take();
        self.calls.borrow_mut().clear();
        self.host.borrow_mut().take();
    }

    pub(crate) fn control(&self) -> Option<Arc<RunControl>> {
        self.run.borrow().clone()
    }
}

/// A JavaScript string as Rust text; lone surrogates (valid in JS, not in
/// UTF-8) become U+FFFD instead of failing, as in `TextEncoder`.
pub(crate) fn lossy(s: &rquickjs::String<'_>) -> String {
    let ctx = s.ctx();
    let mut len: usize = 0;
    // SAFETY: the context and string are live; QuickJS returns a buffer of
    // `len` bytes that stays valid until JS_FreeCString below.
    unsafe {
        let ptr = rquickjs::qjs::JS_ToCStringLen(ctx.as_raw().as_ptr(), &mut len, s.as_raw());
        if ptr.is_null() {
            return String::new();
        }
        let bytes = std::slice::from_raw_parts(ptr.cast::<u8>(), len);
        let out = String::from_utf8_lossy(bytes).into_owned();
        rquickjs::qjs::JS_FreeCString(ctx.as_raw().as_ptr(), ptr);
        out
    }
}

fn level_of(s: &str) -> LogLevel {
    match s {
        "info" => LogLevel::Info,
        "warn" => LogLevel::Warn,
        "error" => LogLevel::Error,
        "debug" => LogLevel::Debug,
        _ => LogLevel::Log,
    }
}

fn output_error(ctx: &Ctx<'_>, reason: StopReason) -> rquickjs::Error {
    let msg = match reason {
        StopReason::Output => {
            "output limit exceeded: this output was dropped and the run is ending"
        }
        _ => "the run is ending",
    };
    Exception::throw_internal(ctx, msg)
}

fn js_string<'js>(ctx: &Ctx<'js>, s: &str) -> rquickjs::Result<Value<'js>> {
    rquickjs::String::from_str(ctx.clone(), s).map(|s| s.into_value())
}

/// A URL's fields as the URL Standard's getters give them (`href`,
/// `protocol`, `username`, `password`, `host`, `hostname`, `port`,
/// `pathname`, `search`, `hash`, `origin`), from ada: the parser Node
/// uses, at the version Node 24 ships, so the V8 engine's `URL` (Node's)
/// and QuickJS's agree.
fn url_fields<'js>(ctx: &Ctx<'js>, u: &ada_url::Url) -> rquickjs::Result<Value<'js>> {
    let origin = u.origin();
    let fields = [
        u.href(),
        u.protocol(),
        u.username(),
        u.password(),
        u.host(),
        u.hostname(),
        u.port(),
        u.pathname(),
        u.search(),
        u.hash(),
        origin.as_str(),
    ];
    let arr = rquickjs::Array::new(ctx.clone())?;
    for (i, f) in fields.iter().enumerate() {
        arr.set(i, js_string(ctx, f)?)?;
    }
    Ok(arr.into_value())
}

/// One of URL's setters, as the URL Standard defines it: a value the
/// setter cannot use leaves the URL as it was, except for `href`, which
/// fails (`Err`, a `TypeError` in the prelude).
fn set_url_field(u: &mut ada_url::Url, field: &str, value: &str) -> Result<(), ()> {
    let v = Some(value);
    // A refused value is no error (the URL stays as it was), but `href`.
    let _refused = match field {
        "href" => return u.set_href(value),
        "protocol" => u.set_protocol(value),
        "username" => u.set_username(v),
        "password" => u.set_password(v),
        "host" => u.set_host(v),
        "hostname" => u.set_hostname(v),
        "port" => u.set_port(v),
        "pathname" => u.set_pathname(v),
        "search" => {
            u.set_search(v);
            Ok(())
        }
        "hash" => {
            u.set_hash(v);
            Ok(())
        }
        _ => return Err(()),
    };
    Ok(())
}

/// A native function: `f` called inside a guard that turns a Rust panic
/// into an `InternalError` the block can catch (see [`guarded`]).
fn native<'js, P, F>(ctx: &Ctx<'js>, name: &'static str, f: F) -> rquickjs::Result<Function<'js>>
where
    F: rquickjs::function::IntoJsFunc<'js, P> + 'js,
    P: 'js,
{
    Function::new(
        ctx.clone(),
        Guarded {
            name,
            f,
            _p: std::marker::PhantomData,
        },
    )
}

struct Guarded<F, P> {
    name: &'static str,
    f: F,
    _p: std::marker::PhantomData<fn(P)>,
}

impl<'js, P, F: rquickjs::function::IntoJsFunc<'js, P>> rquickjs::function::IntoJsFunc<'js, P>
    for Guarded<F, P>
{
    fn param_requirements() -> rquickjs::function::ParamRequirement {
        F::param_requirements()
    }

    fn call<'a>(
        &self,
        params: rquickjs::function::Params<'a, 'js>,
    ) -> rquickjs::Result<Value<'js>> {
        let ctx = params.ctx().clone();
        guarded(&ctx, self.name, || self.f.call(params))
    }
}

/// A native's body, with a Rust panic in it (a bug of quire's or of a
/// crate it calls, such as the `url` crate's "begin > end" slice panic
/// on `new URL("sc://test:12/").host = ""` that quire once hit) turned
/// into an ordinary `Error` the block can catch. Without this the panic
/// would unwind through QuickJS: rquickjs turns it into an exception no
/// `catch` sees and resumes it in the worker.
fn guarded<'js, R>(
    ctx: &Ctx<'js>,
    what: &str,
    f: impl FnOnce() -> rquickjs::Result<R>,
) -> rquickjs::Result<R> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let why = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".into());
            tracing::warn!(native = what, panic = %why, "a native failed; the block gets an Error");
            Err(Exception::throw_internal(
                ctx,
                &format!("{what} failed inside quire and did nothing (an internal error: {why})"),
            ))
        }
    }
}

fn latin1(ctx: &Ctx<'_>, s: &str) -> rquickjs::Result<Vec<u8>> {
    s.chars()
        .map(|c| {
            u8::try_from(u32::from(c)).map_err(|_| {
                Exception::throw_dom(
                    ctx,
                    "InvalidCharacterError",
                    "btoa: the string contains characters outside Latin-1",
                )
            })
        })
        .collect()
}

/// Install the natives object on `globalThis.__quire_native`.
pub(crate) fn install<'js>(
    ctx: &Ctx<'js>,
    shared: &std::rc::Rc<IsolateShared>,
) -> rquickjs::Result<()> {
    let n = Object::new(ctx.clone())?;

    let sh = shared.clone();
    n.set(
        "log",
        native(
            ctx,
            "log",
            move |ctx: Ctx<'js>, level: String, text: rquickjs::String<'js>| {
                let Some(c) = sh.control() else { return Ok(()) };
                let text = lossy(&text);
                let bytes = text.len() as u64;
                c.emit_output(
                    EventBody::Log {
                        level: level_of(&level),
                        text,
                    },
                    bytes,
                )
                .map_err(|r| output_error(&ctx, r))
            },
        )?,
    )?;

    let sh = shared.clone();
    n.set(
        "displayText",
        native(
            ctx,
            "displayText",
            move |ctx: Ctx<'js>,
                  update: bool,
                  id: String,
                  mime: String,
                  text: rquickjs::String<'js>| {
                let Some(c) = sh.control() else { return Ok(()) };
                checked_id(&ctx, &id)?;
                let text = lossy(&text);
                let bytes = (text.len() + mime.len() + id.len()) as u64;
                let data = serde_json::Value::String(text);
                c.emit_output(display_body(update, id, mime, data), bytes)
                    .map_err(|r| output_error(&ctx, r))
            },
        )?,
    )?;

    let sh = shared.clone();
    n.set(
        "displayJson",
        native(
            ctx,
            "displayJson",
            move |ctx: Ctx<'js>, update: bool, id: String, value: Value<'js>, mime: Opt<String>| {
                let Some(c) = sh.control() else { return Ok(()) };
                checked_id(&ctx, &id)?;
                let mime = match mime.0 {
                    Some(m) if crate::event::JSON_DISPLAY_MIMES.contains(&m.as_str()) => m,
                    _ => "application/json".to_string(),
                };
                let mut ser = Serializer::new(&c, c.output_left(), sh.plain_protos.get());
                let data = match ser.top(&ctx, value) {
                    Ok(d) => d,
                    Err(SerError::Threw) => return Err(rquickjs::Error::Exception),
                    Err(SerError::Stopped(r)) => return Err(output_error(&ctx, r)),
                    Err(SerError::TooDeep) => {
                        return Err(rquickjs::Exception::throw_range(
                            &ctx,
                            &crate::too_deep("the display() value"),
                        ))
                    }
                };
                if let Err(m) = crate::event::check_display(&mime, &data) {
                    return Err(rquickjs::Exception::throw_type(
                        &ctx,
                        &format!("display: {m}"),
                    ));
                }
                let bytes = ser.bytes() + id.len() as u64;
                c.emit_output(display_body(update, id, mime, data), bytes)
                    .map_err(|r| output_error(&ctx, r))
            },
        )?,
    )?;

    let sh = shared.clone();
    n.set(
        "clearDisplay",
        native(ctx, "clearDisplay", move |ctx: Ctx<'js>, id: String| {
            let Some(c) = sh.control() else { return Ok(()) };
            checked_id(&ctx, &id)?;
            let bytes = id.len() as u64;
            c.emit_output(EventBody::ClearDisplay { display_id: id }, bytes)
                .map_err(|r| output_error(&ctx, r))
        })?,
    )?;

    let sh = shared.clone();
    n.set(
        "timerArm",
        native(
            ctx,
            "timerArm",
            move |ctx: Ctx<'js>, delay_ms: f64, reuse: u32| {
                let max = sh.control().map_or(1000, |c| c.limits.max_pending_timers);
                let ms = if delay_ms.is_finite() {
                    delay_ms.clamp(0.0, 2_147_483_647.0)
                } else {
                    0.0
                };
                sh.timers
                    .borrow_mut()
                    .arm(Duration::from_secs_f64(ms / 1000.0), reuse, max)
                    .ok_or_else(|| {
                        Exception::throw_range(
                            &ctx,
                            &format!("too many pending timers (limit {max} per run)"),
                        )
                    })
            },
        )?,
    )?;

    let sh = shared.clone();
    n.set(
        "timerClear",
        native(ctx, "timerClear", move |id: u32| {
            sh.timers.borrow_mut().clear(id)
        })?,
    )?;

    let sh = shared.clone();
    n.set(
        "registerHooks",
        native(
            ctx,
            "registerHooks",
            move |ctx: Ctx<'js>,
                  fire: Function<'js>,
                  object_proto: Object<'js>,
                  array_proto: Object<'js>| {
                *sh.fire_timer.borrow_mut() = Some(Persistent::save(&ctx, fire));
                sh.plain_protos.set([
                    crate::isolate::unsafe_ptr(object_proto.as_value()),
                    crate::isolate::unsafe_ptr(array_proto.as_value()),
                ]);
                // Keep them alive so the addresses stay theirs.
                let mut keep = sh.protos.borrow_mut();
                keep.push(Persistent::save(&ctx, object_proto));
                keep.push(Persistent::save(&ctx, array_proto));
            },
        )?,
    )?;

    let sh = shared.clone();
    n.set(
        "now",
        native(ctx, "now", move || {
            sh.control()
                .map_or(0.0, |c| c.elapsed().as_secs_f64() * 1000.0)
        })?,
    )?;

    n.set(
        "urlParse",
        native(
            ctx,
            "urlParse",
            |ctx: Ctx<'js>, input: String, base: Opt<String>| match ada_url::Url::parse(
                input.as_str(),
                base.0.as_deref(),
            ) {
                Ok(u) => url_fields(&ctx, &u),
                Err(_) => Ok(Value::new_null(ctx.clone())),
            },
        )?,
    )?;

    n.set(
        "urlSet",
        native(
            ctx,
            "urlSet",
            |ctx: Ctx<'js>, href: String, field: String, value: String| {
                let Ok(mut u) = ada_url::Url::parse(href.as_str(), None) else {
                    return Ok(Value::new_null(ctx.clone()));
                };
                match set_url_field(&mut u, &field, &value) {
                    Ok(()) => url_fields(&ctx, &u),
                    Err(()) => Ok(Value::new_null(ctx.clone())),
                }
            },
        )?,
    )?;

    n.set(
        "utf8Encode",
        native(ctx, "utf8Encode", |ctx: Ctx<'js>, s: String| {
            TypedArray::<u8>::new(ctx, s.into_bytes())
        })?,
    )?;

    n.set(
        "utf8Decode",
        native(
            ctx,
            "utf8Decode",
            |ctx: Ctx<'js>, bytes: TypedArray<'js, u8>, fatal: bool| {
                let data: Vec<u8> = match bytes.as_raw() {
                    // SAFETY: the pointer is valid until JavaScript runs again;
                    // the bytes are copied out before anything else happens.
                    Some(ptr) => unsafe { ptr.as_ref() }.to_vec(),
                    None => Vec::new(),
                };
                let data = data.as_slice();
                if fatal {
                    std::str::from_utf8(data).map(str::to_owned).map_err(|e| {
                        Exception::throw_type(
                            &ctx,
                            &format!("TextDecoder: invalid UTF-8 at byte {}", e.valid_up_to()),
                        )
                    })
                } else {
                    Ok(String::from_utf8_lossy(data).into_owned())
                }
            },
        )?,
    )?;

    n.set(
        "btoa",
        native(ctx, "btoa", |ctx: Ctx<'js>, s: String| {
            Ok::<_, rquickjs::Error>(
                base64::engine::general_purpose::STANDARD.encode(latin1(&ctx, &s)?),
            )
        })?,
    )?;

    n.set(
        "atob",
        native(ctx, "atob", |ctx: Ctx<'js>, s: String| {
            let cleaned: String = s
                .chars()
                .filter(|c| !matches!(c, ' ' | '\t' | '\n' | '\x0c' | '\r'))
                .collect();
            let engine = base64::engine::GeneralPurpose::new(
                &base64::alphabet::STANDARD,
                base64::engine::GeneralPurposeConfig::new()
                    .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent)
                    .with_decode_allow_trailing_bits(true),
            );
            engine
                .decode(cleaned.as_bytes())
                .map(|b| b.into_iter().map(char::from).collect::<String>())
                .map_err(|_| {
                    Exception::throw_dom(
                        &ctx,
                        "InvalidCharacterError",
                        "atob: the string is not valid base64",
                    )
                })
        })?,
    )?;

    n.set(
        "bytesToBase64",
        native(ctx, "bytesToBase64", |bytes: TypedArray<'js, u8>| {
            let data: &[u8] = match bytes.as_raw() {
                // SAFETY: the pointer is valid until JavaScript runs again;
                // the bytes are encoded before anything else happens.
                Some(ptr) => unsafe { ptr.as_ref() },
                None => &[],
            };
            base64::engine::general_purpose::STANDARD.encode(data)
        })?,
    )?;

    n.set(
        "base64ToBytes",
        native(ctx, "base64ToBytes", |ctx: Ctx<'js>, s: String| {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(s.as_bytes())
                .map_err(|_| Exception::throw_type(&ctx, "invalid base64 from the host"))?;
            TypedArray::<u8>::new(ctx, bytes)
        })?,
    )?;

    n.set(
        "randomBytes",
        native(ctx, "randomBytes", |ctx: Ctx<'js>, len: usize| {
            let mut buf = vec![0u8; len.min(65536)];
            getrandom::fill(&mut buf)
                .map_err(|_| Exception::throw_internal(&ctx, "no system randomness available"))?;
            TypedArray::<u8>::new(ctx, buf)
        })?,
    )?;

    n.set(
        "randomUUID",
        native(ctx, "randomUUID", || uuid::Uuid::new_v4().to_string())?,
    )?;

    let sh = shared.clone();
    n.set(
        "hostCall",
        native(
            ctx,
            "hostCall",
            move |ctx: Ctx<'js>, op: rquickjs::String<'js>, args: Opt<Value<'js>>| {
                let args = args.0.unwrap_or_else(|| Value::new_undefined(ctx.clone()));
                crate::hostcall::host_call(ctx, &sh, op, args)
            },
        )?,
    )?;

    use crate::isolate::LazyModule;
    n.set(
        "loadExtras",
        native(ctx, "loadExtras", |ctx: Ctx<'js>| {
            load_lazy(ctx, LazyModule::Extras)
        })?,
    )?;
    n.set(
        "loadStreams",
        native(ctx, "loadStreams", |ctx: Ctx<'js>| {
            load_lazy(ctx, LazyModule::Streams)
        })?,
    )?;

    ctx.globals().set("__quire_native", n)?;
    Ok(())
}

/// A lazy module's `init`, its bytecode loaded into this isolate.
fn load_lazy<'js>(
    ctx: Ctx<'js>,
    which: crate::isolate::LazyModule,
) -> rquickjs::Result<Function<'js>> {
    let bytes = crate::isolate::lazy_bytecode(which)
        .map_err(|e| Exception::throw_internal(&ctx, &e.to_string()))?;
    // SAFETY: produced by `Module::write` of this QuickJS build in this
    // process (`lazy_bytecode`).
    let m = unsafe { rquickjs::Module::load(ctx.clone(), bytes) }?;
    let (m, _done) = m.eval()?;
    m.get::<_, Function>("init")
}

/// Test-only: a native that burns CPU without polling the interrupt
/// handler (see `EngineConfig::test_native_spin`).
pub(crate) fn install_test_spin<'js>(ctx: &Ctx<'js>) -> rquickjs::Result<()> {
    ctx.globals().set(
        "__quire_test_native_spin",
        Function::new(ctx.clone(), |ms: f64| {
            let until = Instant::now() + Duration::from_secs_f64(ms.clamp(0.0, 60_000.0) / 1000.0);
            let mut x = 0u64;
            while Instant::now() < until {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        })?,
    )?;
    // CLOCK_MONOTONIC in microseconds: one clock for every process on the
    // machine, so a benchmark can time a log line from the block that
    // wrote it to the client that received it.
    ctx.globals().set(
        "__quire_test_clock_us",
        Function::new(ctx.clone(), || {
            let mut ts = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // SAFETY: clock_gettime writes one timespec we own.
            unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
            ts.tv_sec as f64 * 1e6 + ts.tv_nsec as f64 / 1e3
        })?,
    )?;
    // A native that panics, inside the guard every native uses: the block
    // must get an Error it can catch, and the worker must live on.
    ctx.globals().set(
        "__quire_test_native_panic",
        native(ctx, "__quire_test_native_panic", |why: String| {
            if !why.is_empty() {
                panic!("{why}");
            }
        })?,
    )?;
    // Which process runs this block (tests check runner binding).
    ctx.globals().set(
        "__quire_test_pid",
        Function::new(ctx.clone(), std::process::id)?,
    )?;
    // Stands in for an exploit's first move: open a socket. In a runner
    // process the seccomp allowlist kills the process for it.
    ctx.globals().set(
        "__quire_test_forbidden_syscall",
        Function::new(ctx.clone(), || {
            // SAFETY: socket() takes integers; the descriptor is closed.
            unsafe {
                let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
                if fd >= 0 {
                    libc::close(fd);
                }
                fd
            }
        })?,
    )
}

/// A `display` (a new output) or an `update_display` (one shown before).
fn display_body(
    update: bool,
    display_id: String,
    mime: String,
    data: serde_json::Value,
) -> EventBody {
    if update {
        EventBody::UpdateDisplay {
            display_id,
            mime,
            data,
        }
    } else {
        EventBody::Display {
            display_id,
            mime,
            data,
        }
    }
}

/// The prelude checks display ids; a native refuses a bad one all the same.
fn checked_id<'js>(ctx: &Ctx<'js>, id: &str) -> rquickjs::Result<()> {
    crate::event::check_display_id(id)
        .map_err(|m| rquickjs::Exception::throw_type(ctx, &format!("display: {m}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_fire_in_due_order_and_respect_the_cap() {
        let mut t = Timers::default();
        let a = t.arm(Duration::from_millis(20), 0, 3).unwrap();
        let b = t.arm(Duration::ZERO, 0, 3).unwrap();
        let c = t.arm(Duration::ZERO, 0, 3).unwrap();
        assert!(t.arm(Duration::ZERO, 0, 3).is_none(), "cap of 3");
        t.clear(c);
        let now = Instant::now();
        assert_eq!(t.pop_due(now), Some(b));
        assert_eq!(t.pop_due(now), None, "a is not due and c was cleared");
        assert_eq!(t.pending(), 1);
        assert_eq!(t.pop_due(now + Duration::from_millis(50)), Some(a));
        assert!(t.next_due().is_none());
    }
}
