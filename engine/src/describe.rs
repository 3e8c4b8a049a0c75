//! Turning a thrown JavaScript value into an [`ErrorInfo`]: message, kind,
//! and the line and column in the user's own source.
//!
//! Reading `name`, `message` and `stack` may run guest code (getters,
//! proxies); it runs under the run's limits, and a getter that throws gives
//! a placeholder rather than losing the error.

use rquickjs::{Ctx, Object, Value};

use crate::compile::LineMap;
use crate::control::RunControl;
use crate::event::{ErrorInfo, ErrorKind};
use crate::serialize::describe_value;

/// Most bytes of a stack or message kept in an event.
const MAX_TEXT: usize = 16 * 1024;

pub(crate) fn clip(mut s: String) -> String {
    if s.len() > MAX_TEXT {
        let mut cut = MAX_TEXT;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

/// `obj[key]` if it is a string; a getter that throws gives a placeholder.
pub(crate) fn string_prop<'js>(ctx: &Ctx<'js>, obj: &Object<'js>, key: &str) -> Option<String> {
    match obj.get::<_, Value<'js>>(key) {
        Ok(v) => v.as_string().and_then(|s| s.to_string().ok()),
        Err(_) => {
            let _ = ctx.catch();
            Some(format!("[{key} getter threw]"))
        }
    }
}

/// Where the block's code is in a stack: `file:line:col` of the first frame
/// in `filename`, mapped back through `map` (TypeScript).
pub(crate) fn locate(stack: &str, filename: &str, map: Option<&LineMap>) -> Option<(u32, u32)> {
    stack
        .lines()
        .find_map(|l| frame_position(l, filename))
        .map(|(l, c)| remap(l, c, map))
}

fn remap(line: u32, col: u32, map: Option<&LineMap>) -> (u32, u32) {
    match map {
        Some(m) => m.original(line, col).unwrap_or((line, col)),
        None => (line, col),
    }
}

fn frame_position(frame: &str, filename: &str) -> Option<(u32, u32)> {
    let at = frame.find(filename)?;
    let rest = frame.get(at + filename.len()..)?;
    let rest = rest.strip_prefix(':')?;
    let mut it = rest.split(|c: char| !c.is_ascii_digit());
    let line: u32 = it.next()?.parse().ok()?;
    let col: u32 = it.next().and_then(|c| c.parse().ok()).unwrap_or(1);
    Some((line, col))
}

/// Rewrite `filename:L:C` positions in a stack to the original source.
pub(crate) fn remap_stack(stack: &str, filename: &str, map: Option<&LineMap>) -> String {
    let Some(map) = map else {
        return stack.to_string();
    };
    stack
        .lines()
        .map(|l| match (frame_position(l, filename), l.find(filename)) {
            (Some((line, col)), Some(at)) => {
                let (ol, oc) = remap(line, col, Some(map));
                let head = &l[..at + filename.len()];
                let tail_start =
                    at + filename.len() + 1 + line.to_string().len() + 1 + col.to_string().len();
                let tail = l.get(tail_start..).unwrap_or("");
                format!("{head}:{ol}:{oc}{tail}")
            }
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Describe a thrown value. `kind` is `exception` unless the value is the
/// engine's stack-overflow error or a syntax error.
pub(crate) fn describe_thrown<'js>(
    ctx: &Ctx<'js>,
    control: &RunControl,
    value: Value<'js>,
    filename: &str,
    map: Option<&LineMap>,
    plain_protos: [usize; 2],
) -> ErrorInfo {
    let Some(obj) = value
        .as_object()
        .filter(|_| value.is_error() || value.is_object())
    else {
        return ErrorInfo {
            kind: ErrorKind::Exception,
            message: clip(format!(
                "Uncaught {}",
                describe_value(ctx, control, value, plain_protos)
            )),
            line: None,
            column: None,
            stack: None,
            grant: None,
        };
    };
    if !value.is_error() {
        let text = describe_value(ctx, control, value.clone(), plain_protos);
        return ErrorInfo::new(ErrorKind::Exception, clip(format!("Uncaught {text}")));
    }
    let name = string_prop(ctx, obj, "name").unwrap_or_else(|| "Error".into());
    let message = string_prop(ctx, obj, "message").unwrap_or_default();
    let stack = string_prop(ctx, obj, "stack");
    let kind = if (name == "RangeError" && message == "Maximum call stack size exceeded")
        || (name == "InternalError" && message.starts_with("stack overflow"))
    {
        ErrorKind::StackOverflow
    } else if name == "SyntaxError" {
        ErrorKind::Syntax
    } else if name == "CapabilityDenied" {
        ErrorKind::CapabilityDenied
    } else if name == "QuotaExceeded" {
        ErrorKind::QuotaExceeded
    } else {
        ErrorKind::Exception
    };
    let (line, column) = match stack.as_deref().and_then(|s| locate(s, filename, map)) {
        Some((l, c)) => (Some(l), Some(c)),
        None => (None, None),
    };
    let full = if message.is_empty() {
        name
    } else {
        format!("{name}: {message}")
    };
    ErrorInfo {
        kind,
        message: clip(full),
        line,
        column,
        stack: stack.map(|s| clip(remap_stack(s.trim_end(), filename, map))),
        grant: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_first_frame_in_the_block() {
        let stack = "    at f (prelude:3:1)\n    at g (block.js:12:7)\n    at block.js:20:1";
        assert_eq!(locate(stack, "block.js", None), Some((12, 7)));
        assert_eq!(locate("    at <eval>:1:1", "block.js", None), None);
    }

    #[test]
    fn stack_rewrite_keeps_the_rest_of_the_line() {
        let s = remap_stack(
            "    at g (block.ts:1:1)",
            "block.ts",
            Some(&LineMap::default()),
        );
        assert_eq!(s, "    at g (block.ts:1:1)");
    }
}
