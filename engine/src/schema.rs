//! A block's declared input: `export const input = { …JSON Schema… }`,
//! read from the source without running it, so the app can build a form
//! for `ctx.input` before a run.
//!
//! Only a literal counts: objects with plain keys, arrays, strings,
//! numbers, booleans and `null` (TypeScript's `as const` and `satisfies`
//! are looked through). Anything computed (a call, a spread, a variable)
//! means no declared schema, never an evaluation. Nesting is bounded by
//! [`crate::MAX_VALUE_DEPTH`].

use oxc_ast::ast::{
    ArrayExpressionElement, Declaration, Expression, ObjectPropertyKind, PropertyKey, Statement,
    UnaryOperator,
};
use serde_json::Value as Json;

use crate::Lang;

/// The JSON value of `export const input = …` in `source`, when it is a
/// literal object; `None` when there is none, it is not a literal, or the
/// source does not parse.
pub fn input_schema(lang: Lang, source: &str) -> Option<Json> {
    // oxc is well tested, but hostile input must not take the caller's
    // thread down with it (a panic) nor the process (a deep nesting).
    crate::analysis::deep(source, || find(lang, source))
        .ok()
        .flatten()
}

fn find(lang: Lang, source: &str) -> Option<Json> {
    let allocator = oxc_allocator::Allocator::default();
    let ty = match lang {
        Lang::Js => oxc_span::SourceType::mjs(),
        Lang::Ts => oxc_span::SourceType::ts(),
    };
    let parsed = oxc_parser::Parser::new(&allocator, source, ty).parse();
    if parsed.panicked {
        return None;
    }
    for stmt in &parsed.program.body {
        let Statement::ExportDeclaration(d) = stmt else {
            continue;
        };
        let Declaration::VariableDeclaration(v) = &d.declaration else {
            continue;
        };
        for decl in &v.declarations {
            if decl.id.get_identifier_name().is_some_and(|n| n == "input") {
                return match decl.init.as_ref().and_then(|e| literal(e, 0)) {
                    Some(j @ Json::Object(_)) => Some(j),
                    _ => None,
                };
            }
        }
    }
    None
}

fn literal(e: &Expression<'_>, depth: usize) -> Option<Json> {
    if depth >= crate::MAX_VALUE_DEPTH {
        return None;
    }
    Some(match e {
        Expression::ObjectExpression(o) => {
            let mut out = serde_json::Map::new();
            for p in &o.properties {
                let ObjectPropertyKind::ObjectProperty(p) = p else {
                    return None;
                };
                if p.computed || p.method {
                    return None;
                }
                let key = match &p.key {
                    PropertyKey::StaticIdentifier(id) => id.name.to_string(),
                    PropertyKey::StringLiteral(s) => s.value.to_string(),
                    PropertyKey::NumericLiteral(n) => n.value.to_string(),
                    _ => return None,
                };
                out.insert(key, literal(&p.value, depth + 1)?);
            }
            Json::Object(out)
        }
        Expression::ArrayExpression(a) => {
            let mut out = Vec::new();
            for el in &a.elements {
                if matches!(
                    el,
                    ArrayExpressionElement::SpreadElement(_) | ArrayExpressionElement::Elision(_)
                ) {
                    return None;
                }
                out.push(literal(el.as_expression()?, depth + 1)?);
            }
            Json::Array(out)
        }
        Expression::StringLiteral(s) => Json::String(s.value.to_string()),
        Expression::TemplateLiteral(t) if t.expressions.is_empty() => Json::String(
            t.quasis
                .iter()
                .map(|q| q.value.cooked.map(|c| c.to_string()).unwrap_or_default())
                .collect(),
        ),
        Expression::NumericLiteral(n) => number(n.value)?,
        Expression::UnaryExpression(u) if u.operator == UnaryOperator::UnaryNegation => {
            match &u.argument {
                Expression::NumericLiteral(n) => number(-n.value)?,
                _ => return None,
            }
        }
        Expression::BooleanLiteral(b) => Json::Bool(b.value),
        Expression::NullLiteral(_) => Json::Null,
        Expression::ParenthesizedExpression(p) => return literal(&p.expression, depth),
        Expression::TSAsExpression(t) => return literal(&t.expression, depth),
        Expression::TSSatisfiesExpression(t) => return literal(&t.expression, depth),
        _ => return None,
    })
}

/// A number as JSON writes it: whole numbers as integers.
fn number(f: f64) -> Option<Json> {
    if f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 {
        return Some(Json::from(f as i64));
    }
    serde_json::Number::from_f64(f).map(Json::Number)
}

#[cfg(test)]
mod tests {
    use super::input_schema;
    use crate::Lang;
    use serde_json::json;

    #[test]
    fn a_literal_schema_is_read_without_running_anything() {
        let src = "export const input = { type: 'object', required: ['project'], properties: { project: { type: \"string\", enum: ['atlas', 'beacon'] }, limit: { type: 'integer', minimum: -1, default: 10 }, dry: { type: 'boolean', description: `no writes` } } };\nexport default (ctx) => ctx.input;";
        assert_eq!(
            input_schema(Lang::Js, src),
            Some(
                json!({"type": "object", "required": ["project"], "properties": {
                "project": {"type": "string", "enum": ["atlas", "beacon"]},
                "limit": {"type": "integer", "minimum": -1, "default": 10},
                "dry": {"type": "boolean", "description": "no writes"}}})
            )
        );
        let ts = "export const input = { type: 'object', properties: { n: { type: 'number' } } } as const;\nexport default 1;";
        assert_eq!(
            input_schema(Lang::Ts, ts),
            Some(json!({"type": "object", "properties": {"n": {"type": "number"}}}))
        );
    }

    #[test]
    fn anything_computed_or_broken_is_no_schema() {
        for src in [
            "export default 1;",
            "const input = { type: 'object' }; export default 1;",
            "export const input = make();",
            "export const input = { ...base };",
            "export const input = { [k]: 1 };",
            "export const input = { a: x };",
            "export const input = { a: [1, , 2] };",
            "export const input = { f() {} };",
            "export const input = `${x}`;",
            "export const input = [1, 2];",
            "export const input = { a: ",
            "export let input = { a: 1n };",
        ] {
            assert_eq!(input_schema(Lang::Js, src), None, "{src}");
        }
        let deep = format!(
            "export const input = {}1{};",
            "{a:".repeat(200),
            "}".repeat(200)
        );
        assert_eq!(input_schema(Lang::Js, &deep), None);
    }
}
