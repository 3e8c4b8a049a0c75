//! The engine's own JSON serializer for results and `display()` data.
//!
//! It walks JavaScript values from Rust using only QuickJS's C API, so a
//! block that overwrites `JSON.stringify`, `Object.prototype` or
//! `Array.prototype.map` cannot change what the host receives. It follows
//! JSON semantics (`toJSON`, enumerable own string keys, `undefined` dropped
//! from objects and `null` in arrays) and replaces what JSON cannot hold with
//! a readable description instead of failing: functions, symbols, cycles,
//! BigInts, NaN/Infinity, and (as a console shows them) Maps, Sets,
//! Errors and RegExps. A value nested deeper than
//! [`crate::MAX_VALUE_DEPTH`] is refused ([`SerError::TooDeep`]), except
//! when it is only being described in a message.
//!
//! Getters, proxies and `toJSON` are guest code: they run inside the
//! isolate under the run's limits. The walk itself is bounded by the output
//! budget (every value costs at least one byte) and checks the run's stop
//! record as it goes.

use rquickjs::{Ctx, Object, Type, Value};
use serde_json::Value as Json;

use crate::control::{RunControl, StopReason};

use crate::depth::MAX_VALUE_DEPTH;

/// Why serialization did not complete.
#[derive(Debug)]
pub(crate) enum SerError {
    /// A limit ended the run meanwhile (including the output budget).
    Stopped(StopReason),
    /// Guest code threw; the exception is pending on the context.
    Threw,
    /// The value is nested deeper than [`MAX_VALUE_DEPTH`].
    TooDeep,
}

impl From<rquickjs::Error> for SerError {
    fn from(_: rquickjs::Error) -> Self {
        Self::Threw
    }
}

pub(crate) struct Serializer<'c> {
    control: &'c RunControl,
    budget: u64,
    used: u64,
    path: Vec<usize>,
    visited: u64,
    /// Whether crossing the budget ends the run with `output_limit` (true
    /// for block output) or only ends this serialization (descriptions).
    enforce: bool,
    /// Describing a value for a message: too deep a value is described,
    /// not refused.
    describing: bool,
    /// Levels allowed: [`MAX_VALUE_DEPTH`] plus any the caller wraps
    /// around the value (see [`Serializer::wrapped`]).
    max_depth: usize,
    /// Addresses of the intrinsic `Object.prototype` and `Array.prototype`:
    /// `toJSON` inherited from them is ignored, so polluting them cannot
    /// change results.
    plain_protos: [usize; 2],
}

fn ptr_of(v: &Value<'_>) -> usize {
    // SAFETY: `as_raw` gives the JSValue of an object; reading its pointer
    // field does not dereference it.
    unsafe { rquickjs::qjs::JS_VALUE_GET_PTR(v.as_raw()) as usize }
}

impl<'c> Serializer<'c> {
    /// A serializer that may produce at most `budget` bytes of JSON.
    pub(crate) fn new(control: &'c RunControl, budget: u64, plain_protos: [usize; 2]) -> Self {
        Self {
            control,
            budget,
            used: 0,
            path: Vec::new(),
            visited: 0,
            enforce: true,
            describing: false,
            max_depth: MAX_VALUE_DEPTH,
            plain_protos,
        }
    }

    /// Crossing the budget ends only this serialization, not the run (for
    /// host-call arguments, which have their own limit).
    pub(crate) fn bounded(mut self) -> Self {
        self.enforce = false;
        self
    }

    /// The top-level value is a wrapper of `levels` levels around the
    /// values that count (a host call's argument list): they are allowed
    /// on top of [`MAX_VALUE_DEPTH`].
    pub(crate) fn wrapped(mut self, levels: usize) -> Self {
        self.max_depth = MAX_VALUE_DEPTH + levels;
        self
    }

    /// Approximate JSON bytes produced so far.
    pub(crate) fn bytes(&self) -> u64 {
        self.used
    }

    fn charge(&mut self, n: usize) -> Result<(), SerError> {
        self.used = self.used.saturating_add(n as u64);
        if self.used > self.budget {
            if self.enforce {
                self.control.stop(StopReason::Output);
            }
            return Err(SerError::Stopped(StopReason::Output));
        }
        self.visited += 1;
        if self.visited % 1024 == 0 {
            if let Some(r) = self.control.stop_reason() {
                return Err(SerError::Stopped(r));
            }
        }
        Ok(())
    }

    fn text(&mut self, s: String) -> Result<Json, SerError> {
        self.charge(s.len() + 2)?;
        Ok(Json::String(s))
    }

    /// Whether `toJSON` should be looked up: not for plain objects and
    /// arrays unless they define it themselves.
    fn may_have_to_json(&self, obj: &Object<'_>) -> bool {
        let proto = match obj.get_prototype() {
            None => return false,
            Some(p) => ptr_of(p.as_value()),
        };
        if !self.plain_protos.contains(&proto) {
            return true;
        }
        if obj.is_array() {
            return false;
        }
        obj.keys::<String>()
            .any(|k| matches!(k.as_deref(), Ok("toJSON")))
    }

    /// Serialize `v` as a top-level value (`undefined` becomes `null`).
    pub(crate) fn top<'js>(&mut self, ctx: &Ctx<'js>, v: Value<'js>) -> Result<Json, SerError> {
        Ok(self
            .value(ctx, v, &Json::String(String::new()), 0)?
            .unwrap_or(Json::Null))
    }

    /// `None` means "omit" (undefined in an object).
    fn value<'js>(
        &mut self,
        ctx: &Ctx<'js>,
        mut v: Value<'js>,
        key: &Json,
        depth: usize,
    ) -> Result<Option<Json>, SerError> {
        if let Some(obj) = v.as_object() {
            if !v.is_function() && self.may_have_to_json(obj) {
                let to_json: Value<'js> = obj.get("toJSON")?;
                if let Some(f) = to_json.as_function() {
                    let k = match key {
                        Json::Number(n) => n.to_string(),
                        Json::String(s) => s.clone(),
                        _ => String::new(),
                    };
                    v = f.call((rquickjs::function::This(v.clone()), k))?;
                }
            }
        }
        let out = match v.type_of() {
            Type::Uninitialized | Type::Undefined => return Ok(None),
            Type::Null => {
                self.charge(4)?;
                Json::Null
            }
            Type::Bool => {
                self.charge(5)?;
                Json::Bool(v.as_bool().unwrap_or(false))
            }
            Type::Int => {
                self.charge(11)?;
                Json::from(v.as_int().unwrap_or(0))
            }
            Type::Float => {
                let f = v.as_float().unwrap_or(f64::NAN);
                if f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 {
                    self.charge(17)?;
                    return Ok(Some(Json::from(f as i64)));
                }
                match serde_json::Number::from_f64(f) {
                    Some(n) => {
                        self.charge(24)?;
                        Json::Number(n)
                    }
                    None => self.text(if f.is_nan() {
                        "NaN".into()
                    } else if f > 0.0 {
                        "Infinity".into()
                    } else {
                        "-Infinity".into()
                    })?,
                }
            }
            Type::String => {
                let s = v.as_string().map(crate::natives::lossy);
                self.text(s.unwrap_or_default())?
            }
            Type::BigInt => {
                let s: rquickjs::convert::Coerced<String> = v.get()?;
                self.text(format!("{}n", s.0))?
            }
            Type::Symbol => {
                let desc = v
                    .as_symbol()
                    .and_then(|s| s.description().ok())
                    .and_then(|d| d.as_string().and_then(|s| s.to_string().ok()))
                    .unwrap_or_default();
                self.text(format!("[Symbol({desc})]"))?
            }
            Type::Function | Type::Constructor => {
                let name = v
                    .as_object()
                    .map(|o| o.get::<_, Value>("name"))
                    .transpose()?
                    .and_then(|n| n.as_string().and_then(|s| s.to_string().ok()))
                    .unwrap_or_default();
                if name.is_empty() {
                    self.text("[Function (anonymous)]".into())?
                } else {
                    self.text(format!("[Function: {name}]"))?
                }
            }
            Type::Promise => self.text("[Promise]".into())?,
            Type::Module | Type::Unknown => self.text("[unsupported value]".into())?,
            Type::Array | Type::Object | Type::Exception | Type::Proxy => {
                return self.compound(ctx, v, depth).map(Some);
            }
        };
        Ok(Some(out))
    }

    fn compound<'js>(
        &mut self,
        ctx: &Ctx<'js>,
        v: Value<'js>,
        depth: usize,
    ) -> Result<Json, SerError> {
        let p = ptr_of(&v);
        if self.path.contains(&p) {
            return self.text("[Circular]".into());
        }
        if depth >= self.max_depth {
            if !self.describing {
                return Err(SerError::TooDeep);
            }
            return self.text(format!("[Too deep: nesting over {MAX_VALUE_DEPTH} levels]"));
        }
        let Some(obj) = v.as_object() else {
            return self.text("[unsupported value]".into());
        };
        self.path.push(p);
        let raw = v.as_raw();
        // SAFETY: `raw` is the live JSValue of `v`; these class checks read
        // its class id and do not keep or free it.
        let (is_map, is_set, is_error, is_regexp) = unsafe {
            use rquickjs::qjs;
            (
                qjs::JS_IsMap(raw),
                qjs::JS_IsSet(raw),
                qjs::JS_IsError(raw),
                qjs::JS_IsRegExp(raw),
            )
        };
        let r = if v.is_array() {
            self.array(ctx, obj, depth)
        } else if is_map || is_set {
            self.collection(ctx, obj, depth, is_map)
        } else if is_error {
            self.error(ctx, obj)
        } else if is_regexp {
            let src = obj.get::<_, Value>("source")?;
            let flags = obj.get::<_, Value>("flags")?;
            let text = |v: Value<'js>| v.as_string().map(crate::natives::lossy);
            self.text(format!(
                "/{}/{}",
                text(src).unwrap_or_default(),
                text(flags).unwrap_or_default()
            ))
        } else {
            self.object(ctx, obj, depth)
        };
        self.path.pop();
        r
    }

    fn array<'js>(
        &mut self,
        ctx: &Ctx<'js>,
        obj: &Object<'js>,
        depth: usize,
    ) -> Result<Json, SerError> {
        self.charge(2)?;
        let len_v: Value<'js> = obj.get("length")?;
        let len = len_v.as_number().unwrap_or(0.0);
        let len = if len.is_finite() && len > 0.0 {
            len as u64
        } else {
            0
        };
        let mut out = Vec::new();
        for i in 0..len {
            self.charge(1)?;
            let el: Value<'js> = obj.get(i as u32)?;
            let item = self.value(ctx, el, &Json::from(i), depth + 1)?;
            out.push(item.unwrap_or(Json::Null));
        }
        Ok(Json::Array(out))
    }

    /// A Map or Set as the text a console shows (`Map(2) {"a" => 1, …}`):
    /// JSON has no form for them. Keys and values are serialized like any
    /// other value (and charged to the budget), up to
    /// [`MAX_DESCRIBED_ITEMS`].
    fn collection<'js>(
        &mut self,
        ctx: &Ctx<'js>,
        obj: &Object<'js>,
        depth: usize,
        is_map: bool,
    ) -> Result<Json, SerError> {
        use rquickjs::function::This;
        let size: Value<'js> = obj.get("size")?;
        let size = size.as_number().unwrap_or(0.0);
        let method: Value<'js> = obj.get(if is_map { "entries" } else { "values" })?;
        let mut parts = Vec::new();
        if let Some(f) = method.as_function() {
            let it: Value<'js> = f.call((This(obj.clone()),))?;
            let Some(it) = it.into_object() else {
                return Err(
                    rquickjs::Exception::throw_type(ctx, "the iterator is not an object").into(),
                );
            };
            let next: rquickjs::Function<'js> = it.get("next")?;
            loop {
                let step: Object<'js> = next.call((This(it.clone()),))?;
                // A `done` that is not a boolean (a guest's iterator) ends it.
                let done: Value<'js> = step.get("done")?;
                if done.as_bool().unwrap_or(true) {
                    break;
                }
                if parts.len() >= MAX_DESCRIBED_ITEMS {
                    parts.push("…".to_string());
                    break;
                }
                let item: Value<'js> = step.get("value")?;
                let part = if is_map {
                    // An entry that is not a pair (a guest's iterator) has
                    // an undefined key and value, as `entry[0]` would.
                    let (k, v) = match item.into_object() {
                        Some(pair) => (pair.get(0)?, pair.get(1)?),
                        None => (
                            Value::new_undefined(ctx.clone()),
                            Value::new_undefined(ctx.clone()),
                        ),
                    };
                    let k = self.value(ctx, k, &Json::Null, depth + 1)?;
                    let v = self.value(ctx, v, &Json::Null, depth + 1)?;
                    format!("{} => {}", inline(k.as_ref()), inline(v.as_ref()))
                } else {
                    inline(self.value(ctx, item, &Json::Null, depth + 1)?.as_ref())
                };
                parts.push(part);
            }
        }
        let name = if is_map { "Map" } else { "Set" };
        self.text(format!("{name}({size}) {{{}}}", parts.join(", ")))
    }

    /// An Error as a console shows it: `Name: message`, then its stack's
    /// frames. A getter that throws gives a placeholder, as for a thrown
    /// error ([`crate::describe`]).
    fn error<'js>(&mut self, ctx: &Ctx<'js>, obj: &Object<'js>) -> Result<Json, SerError> {
        let prop = |k: &str| crate::describe::string_prop(ctx, obj, k);
        let name = prop("name").unwrap_or_else(|| "Error".into());
        let message = prop("message").unwrap_or_default();
        let stack = prop("stack").unwrap_or_default();
        self.text(error_text(&name, &message, &stack))
    }

    fn object<'js>(
        &mut self,
        ctx: &Ctx<'js>,
        obj: &Object<'js>,
        depth: usize,
    ) -> Result<Json, SerError> {
        self.charge(2)?;
        let mut out = serde_json::Map::new();
        let keys: Vec<rquickjs::Atom<'js>> = obj
            .keys::<rquickjs::Atom>()
            .collect::<rquickjs::Result<_>>()?;
        for atom in keys {
            let name = atom.to_js_string().map(|s| crate::natives::lossy(&s))?;
            self.charge(name.len() + 4)?;
            let el: Value<'js> = obj.get(atom)?;
            let kj = Json::String(name);
            if let Some(item) = self.value(ctx, el, &kj, depth + 1)? {
                if let Json::String(k) = kj {
                    out.insert(k, item);
                }
            }
        }
        Ok(Json::Object(out))
    }
}

/// Most entries of a Map or Set written into its description.
pub(crate) const MAX_DESCRIBED_ITEMS: usize = 100;

/// A serialized key or value inside a Map's or Set's description.
fn inline(v: Option<&Json>) -> String {
    v.map_or_else(|| "undefined".into(), Json::to_string)
}

/// An error's description: its head (as `Error.prototype.toString` makes
/// it) and the `    at …` frames of its stack (V8's stack repeats the
/// head, QuickJS's does not: only the frames are kept from either).
pub(crate) fn error_text(name: &str, message: &str, stack: &str) -> String {
    let mut out = match (name.is_empty(), message.is_empty()) {
        (true, _) => message.to_string(),
        (false, true) => name.to_string(),
        (false, false) => format!("{name}: {message}"),
    };
    for frame in stack.lines().filter(|l| l.trim_start().starts_with("at ")) {
        out.push_str("\n    ");
        out.push_str(frame.trim());
    }
    out
}

/// Serialize with a fresh budget, for describing values in messages.
pub(crate) fn describe_value<'js>(
    ctx: &Ctx<'js>,
    control: &RunControl,
    v: Value<'js>,
    plain_protos: [usize; 2],
) -> String {
    let mut s = Serializer::new(control, 4096, plain_protos);
    s.enforce = false;
    s.describing = true;
    match s.top(ctx, v) {
        Ok(Json::String(t)) => format!("{t:?}"),
        Ok(j) => j.to_string(),
        Err(SerError::Threw) => {
            let _ = ctx.catch();
            "[a value that threw while being described]".into()
        }
        Err(SerError::Stopped(_) | SerError::TooDeep) => "[a value too large to describe]".into(),
    }
}
