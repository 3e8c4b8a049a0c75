//! `where` filters for row queries: `{field: value}` for equality, or
//! `{field: {"$op": value}}` with `$eq $ne $gt $gte $lt $lte $in $nin
//! $contains $exists`. Fields may be dotted paths (`owner.name`). All
//! conditions must hold.

use serde_json::Value;

use crate::error::{invalid, Result};

const OPS: &str = "$eq, $ne, $gt, $gte, $lt, $lte, $in, $nin, $contains, $exists";

#[derive(Debug, Clone, PartialEq)]
enum Op {
    Eq(Value),
    Ne(Value),
    Gt(Value),
    Gte(Value),
    Lt(Value),
    Lte(Value),
    In(Vec<Value>),
    Nin(Vec<Value>),
    Contains(Value),
    Exists(bool),
}

/// A parsed `where` filter.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Filter {
    conds: Vec<(Vec<String>, Op)>,
}

impl Filter {
    /// Parse a `where` object (`null` or absent: match everything).
    ///
    /// # Errors
    /// [`crate::StorageError::Invalid`] naming the bad field or operator.
    pub fn parse(w: Option<&Value>) -> Result<Self> {
        let obj = match w {
            None | Some(Value::Null) => return Ok(Self::default()),
            Some(Value::Object(o)) => o,
            Some(_) => return Err(invalid("where", "it must be an object of field conditions")),
        };
        let mut conds = Vec::new();
        for (field, cond) in obj {
            let path: Vec<String> = field.split('.').map(str::to_owned).collect();
            match cond {
                Value::Object(ops) if ops.keys().any(|k| k.starts_with('$')) => {
                    for (op, v) in ops {
                        conds.push((path.clone(), parse_op(field, op, v)?));
                    }
                }
                v => conds.push((path, Op::Eq(v.clone()))),
            }
        }
        Ok(Self { conds })
    }

    /// Whether `row` satisfies every condition.
    pub fn matches(&self, row: &Value) -> bool {
        self.conds.iter().all(|(path, op)| {
            let v = lookup(row, path);
            test(op, v)
        })
    }
}

fn parse_op(field: &str, op: &str, v: &Value) -> Result<Op> {
    let list = |v: &Value| match v {
        Value::Array(a) => Ok(a.clone()),
        _ => Err(invalid("where", format!("{field}: {op} takes an array"))),
    };
    Ok(match op {
        "$eq" => Op::Eq(v.clone()),
        "$ne" => Op::Ne(v.clone()),
        "$gt" => Op::Gt(v.clone()),
        "$gte" => Op::Gte(v.clone()),
        "$lt" => Op::Lt(v.clone()),
        "$lte" => Op::Lte(v.clone()),
        "$in" => Op::In(list(v)?),
        "$nin" => Op::Nin(list(v)?),
        "$contains" => Op::Contains(v.clone()),
        "$exists" => match v {
            Value::Bool(b) => Op::Exists(*b),
            _ => {
                return Err(invalid(
                    "where",
                    format!("{field}: $exists takes true or false"),
                ))
            }
        },
        other => {
            return Err(invalid(
                "where",
                format!("{field}: unknown operator {other} (use one of {OPS})"),
            ))
        }
    })
}

fn lookup<'a>(row: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut v = row;
    for p in path {
        v = v.as_object()?.get(p)?;
    }
    Some(v)
}

fn order(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn test(op: &Op, v: Option<&Value>) -> bool {
    use std::cmp::Ordering::*;
    let null = Value::Null;
    let val = v.unwrap_or(&null);
    match op {
        Op::Eq(x) => same(val, x),
        Op::Ne(x) => !same(val, x),
        Op::Gt(x) => order(val, x) == Some(Greater),
        Op::Gte(x) => matches!(order(val, x), Some(Greater | Equal)),
        Op::Lt(x) => order(val, x) == Some(Less),
        Op::Lte(x) => matches!(order(val, x), Some(Less | Equal)),
        Op::In(xs) => xs.iter().any(|x| same(val, x)),
        Op::Nin(xs) => !xs.iter().any(|x| same(val, x)),
        Op::Contains(x) => match (val, x) {
            (Value::Array(a), x) => a.iter().any(|e| same(e, x)),
            (Value::String(s), Value::String(sub)) => s.contains(sub.as_str()),
            _ => false,
        },
        Op::Exists(want) => v.is_some() == *want,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn f(w: Value) -> Filter {
        Filter::parse(Some(&w)).unwrap()
    }

    #[test]
    fn operators() {
        let row =
            json!({"status": "open", "points": 5, "tags": ["a", "b"], "owner": {"name": "ann"}});
        assert!(f(json!({"status": "open"})).matches(&row));
        assert!(!f(json!({"status": "done"})).matches(&row));
        assert!(f(json!({"points": {"$gt": 4, "$lte": 5}})).matches(&row));
        assert!(!f(json!({"points": {"$lt": 5}})).matches(&row));
        assert!(f(json!({"points": 5.0})).matches(&row));
        assert!(f(json!({"status": {"$in": ["open", "blocked"]}})).matches(&row));
        assert!(f(json!({"tags": {"$contains": "b"}})).matches(&row));
        assert!(f(json!({"owner.name": "ann"})).matches(&row));
        assert!(f(json!({"missing": {"$exists": false}})).matches(&row));
        assert!(!f(json!({"points": {"$gt": "4"}})).matches(&row));
        assert!(f(Value::Null).matches(&row));
    }

    #[test]
    fn bad_filters_name_the_problem() {
        let e = Filter::parse(Some(&json!({"a": {"$regex": "x"}}))).unwrap_err();
        assert!(e.to_string().contains("unknown operator $regex"), "{e}");
        assert!(Filter::parse(Some(&json!([1]))).is_err());
        assert!(Filter::parse(Some(&json!({"a": {"$in": 3}}))).is_err());
    }
}
