//! The one nesting-depth limit of values that cross a boundary: results,
//! `display()` data, host-call arguments and replies, run inputs, stored
//! documents, rows and kv values.
//!
//! Deeply nested JSON is cheap to send and expensive to take apart:
//! recursive parsers and serializers (serde_json's stops at 128 levels)
//! fail or overflow their stack on it. So a value deeper than
//! [`MAX_VALUE_DEPTH`] is refused where it enters, with an error naming the
//! limit, and what is accepted always fits every reader with room to spare
//! for the envelopes (events, frames, records) it travels in.

use serde_json::Value;

/// Most levels of arrays and objects a value may have: `1` and `"a"` have
/// none, `[]` and `{}` one, `[[1]]` two. Default and only value: 64.
pub const MAX_VALUE_DEPTH: usize = 64;

/// Levels of arrays and objects in `v` (see [`MAX_VALUE_DEPTH`]), counted
/// without recursion, so any value can be measured.
pub fn value_depth(v: &Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(v, 0usize)];
    while let Some((v, above)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match v {
            Value::Array(a) => Box::new(a.iter()),
            Value::Object(o) => Box::new(o.values()),
            _ => continue,
        };
        let level = above + 1;
        deepest = deepest.max(level);
        stack.extend(children.map(|c| (c, level)));
    }
    deepest
}

/// `Ok` if `v` is within [`MAX_VALUE_DEPTH`] levels (plus `wrapping`
/// levels the caller added around it, such as a host call's argument
/// list); otherwise the message to refuse it with, naming `what` and the
/// limit.
pub fn check_depth(what: &str, v: &Value, wrapping: usize) -> Result<(), String> {
    let depth = value_depth(v).saturating_sub(wrapping);
    if depth > MAX_VALUE_DEPTH {
        return Err(too_deep(what));
    }
    Ok(())
}

/// The message for `what` nested deeper than the limit.
pub fn too_deep(what: &str) -> String {
    format!(
        "{what} is nested deeper than the limit of {MAX_VALUE_DEPTH} levels of arrays and objects"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn nested(levels: usize) -> Value {
        let mut v = json!(1);
        for _ in 0..levels {
            v = json!([v]);
        }
        v
    }

    #[test]
    fn depth_counts_levels_of_arrays_and_objects() {
        assert_eq!(value_depth(&json!(1)), 0);
        assert_eq!(value_depth(&json!([])), 1);
        assert_eq!(value_depth(&json!({"a": [1, {"b": 2}], "c": 3})), 3);
        assert_eq!(value_depth(&nested(1000)), 1000);
    }

    #[test]
    fn the_limit_is_inclusive_and_wrapping_is_discounted() {
        assert!(check_depth("x", &nested(MAX_VALUE_DEPTH), 0).is_ok());
        let err = check_depth("the result", &nested(MAX_VALUE_DEPTH + 1), 0);
        assert_eq!(
            err,
            Err(
                "the result is nested deeper than the limit of 64 levels of arrays and objects"
                    .into()
            )
        );
        assert!(check_depth("x", &json!([nested(MAX_VALUE_DEPTH)]), 1).is_ok());
    }

    #[test]
    fn the_documented_limit_is_this_one() {
        let security = include_str!("../../SECURITY.md");
        let row = format!("value nesting depth (`MAX_VALUE_DEPTH`) | {MAX_VALUE_DEPTH} levels");
        assert!(security.contains(&row), "SECURITY.md's limits table: {row}");
        let readme = include_str!("../../README.md");
        assert!(readme.contains(&format!("at most {MAX_VALUE_DEPTH} levels deep")));
    }
}
