//! Which other blocks' results a block reads: its `results.get("…")`
//! calls, found in the source without running it (the document's
//! dependency graph is built from these).
//!
//! What counts as a read: `results.get(<name>)` where `results` is the
//! `"quire"` module's export (also imported under another name, through a
//! namespace or default import as `q.results.get(…)`, through
//! `const r = results`, `const { get } = results` or
//! `const { results } = q`), and `<name>` is a string literal or a
//! template without expressions. Anything the scan cannot follow (a
//! computed name, `results` passed elsewhere or reassigned, a name bound
//! again in an inner scope) is listed as unknown with its line: never
//! guessed.

use std::collections::{BTreeSet, HashMap, HashSet};

use oxc_ast::ast::{
    Argument, BindingPattern, CallExpression, Expression, ImportDeclaration,
    ImportDeclarationSpecifier, PropertyKey, VariableDeclarator,
};
use oxc_ast_visit::{walk, Visit};
use serde::Serialize;

use crate::Lang;

/// What a block reads of other blocks' results.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ResultReads {
    /// The block ids or names it reads, sorted, each once.
    pub blocks: Vec<String>,
    /// Reads the scan could not name.
    pub unknown: Vec<UnknownRead>,
}

/// A use of `results` whose block the scan cannot tell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnknownRead {
    /// 1-based line in the block's source.
    pub line: u32,
    /// Why, for a person.
    pub why: String,
}

/// The reads of `source` (see the module docs). A source that does not
/// parse reads nothing known and says so.
pub fn result_reads(lang: Lang, source: &str) -> ResultReads {
    crate::analysis::deep(source, || scan(lang, source)).unwrap_or_else(|why| ResultReads {
        blocks: vec![],
        unknown: vec![UnknownRead {
            line: 1,
            why: why.message(),
        }],
    })
}

/// What a local name stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bound {
    /// The `results` object.
    Results,
    /// The module itself (`import * as q`, `import q`): `q.results`.
    Module,
    /// `results.get`.
    Get,
}

fn scan(lang: Lang, source: &str) -> ResultReads {
    let allocator = oxc_allocator::Allocator::default();
    let ty = match lang {
        Lang::Js => oxc_span::SourceType::mjs(),
        Lang::Ts => oxc_span::SourceType::ts(),
    };
    let parsed = oxc_parser::Parser::new(&allocator, source, ty).parse();
    if parsed.panicked || !parsed.diagnostics.is_empty() {
        return ResultReads {
            blocks: vec![],
            unknown: vec![UnknownRead {
                line: 1,
                why: "the source does not parse".into(),
            }],
        };
    }
    // Pass 1: the names bound to the module, `results` or `get`, and how
    // often each name is bound anywhere.
    let mut names = Names::default();
    // Aliases may come before or after what they alias in the text: a few
    // passes follow chains written in any order; a longer chain written
    // backwards is reported, not followed further.
    let mut settled = false;
    for _ in 0..MAX_ALIAS_PASSES {
        let before = names.bound.len();
        names.visit_program(&parsed.program);
        names.counted = true;
        if names.bound.len() == before {
            settled = true;
            break;
        }
    }
    let mut reads = Reads {
        lines: source
            .bytes()
            .enumerate()
            .filter(|(_, b)| *b == b'\n')
            .map(|(i, _)| i as u32)
            .collect(),
        more: 0,
        bound: names.bound,
        shadowed: names
            .bindings
            .into_iter()
            .filter(|(_, n)| *n > 1)
            .map(|(k, _)| k)
            .collect(),
        aliases: names.alias_decls,
        blocks: BTreeSet::new(),
        unknown: Vec::new(),
    };
    for &at in &names.unfollowed {
        reads.unknown(at, "a destructuring of results the scan cannot follow");
        // Reported once: not again as results passed on.
        reads.aliases.insert(at);
    }
    if !settled {
        reads.unknown(0, "aliases of results chained too far to follow");
    }
    reads.visit_program(&parsed.program);
    if reads.more > 0 {
        let more = reads.more;
        reads.unknown.push(UnknownRead {
            line: 0,
            why: format!("and {more} more unknown reads"),
        });
    }
    ResultReads {
        blocks: reads.blocks.into_iter().collect(),
        unknown: reads.unknown,
    }
}

/// Passes that follow aliases of `results` (see [`scan`]).
const MAX_ALIAS_PASSES: usize = 4;

/// Unknown reads listed per block; the rest are counted.
pub const MAX_UNKNOWN_READS: usize = 50;

#[derive(Default)]
struct Names {
    bound: HashMap<String, Bound>,
    /// How many times each name is bound (declarations, parameters).
    bindings: HashMap<String, u32>,
    /// Spans (start) of the declarators that made aliases.
    alias_decls: HashSet<u32>,
    /// Spans (start) of destructurings of the module or `results` with a
    /// part the scan does not follow.
    unfollowed: BTreeSet<u32>,
    /// Bindings were counted by an earlier pass.
    counted: bool,
}

impl Names {
    fn bind(&mut self, name: &str, what: Bound) {
        self.bound.entry(name.to_string()).or_insert(what);
    }
}

/// `name` when `e` is a plain identifier.
fn ident<'b>(e: &'b Expression<'_>) -> Option<&'b str> {
    match e {
        Expression::Identifier(i) => Some(i.name.as_str()),
        Expression::ParenthesizedExpression(p) => ident(&p.expression),
        _ => None,
    }
}

/// `(object, property)` when `e` is `o.p` or `o["p"]`; the property is
/// `None` when it is computed from something other than a literal.
fn member<'b, 'a>(e: &'b Expression<'a>) -> Option<(&'b Expression<'a>, Option<String>)> {
    match e {
        Expression::StaticMemberExpression(m) => {
            Some((&m.object, Some(m.property.name.to_string())))
        }
        Expression::ComputedMemberExpression(m) => Some((&m.object, literal(&m.expression))),
        Expression::ParenthesizedExpression(p) => member(&p.expression),
        _ => None,
    }
}

/// The text of a string literal or a template without expressions.
fn literal(e: &Expression<'_>) -> Option<String> {
    match e {
        Expression::StringLiteral(s) => Some(s.value.to_string()),
        Expression::TemplateLiteral(t) if t.expressions.is_empty() => Some(
            t.quasis
                .iter()
                .map(|q| q.value.cooked.map(|c| c.to_string()).unwrap_or_default())
                .collect(),
        ),
        Expression::ParenthesizedExpression(p) => literal(&p.expression),
        _ => None,
    }
}

/// What `e` stands for, given the names bound so far.
fn meaning(bound: &HashMap<String, Bound>, e: &Expression<'_>) -> Option<Bound> {
    if let Some(n) = ident(e) {
        return bound.get(n).copied();
    }
    let (object, prop) = member(e)?;
    match (meaning(bound, object)?, prop.as_deref()) {
        (Bound::Module, Some("results")) => Some(Bound::Results),
        (Bound::Results, Some("get")) => Some(Bound::Get),
        _ => None,
    }
}

fn key_name(k: &PropertyKey<'_>) -> Option<String> {
    match k {
        PropertyKey::StaticIdentifier(i) => Some(i.name.to_string()),
        PropertyKey::StringLiteral(s) => Some(s.value.to_string()),
        _ => None,
    }
}

impl<'a> Visit<'a> for Names {
    fn visit_import_declaration(&mut self, it: &ImportDeclaration<'a>) {
        if it.source.value != "quire" {
            return walk::walk_import_declaration(self, it);
        }
        for s in it.specifiers.iter().flatten() {
            match s {
                ImportDeclarationSpecifier::ImportSpecifier(s) => {
                    match s.imported.name().as_str() {
                        "results" => self.bind(&s.local.name, Bound::Results),
                        "default" => self.bind(&s.local.name, Bound::Module),
                        _ => {}
                    }
                }
                ImportDeclarationSpecifier::ImportDefaultSpecifier(s) => {
                    self.bind(&s.local.name, Bound::Module)
                }
                ImportDeclarationSpecifier::ImportNamespaceSpecifier(s) => {
                    self.bind(&s.local.name, Bound::Module)
                }
            }
        }
        walk::walk_import_declaration(self, it);
    }

    fn visit_variable_declarator(&mut self, it: &VariableDeclarator<'a>) {
        let init = it.init.as_ref().and_then(|e| meaning(&self.bound, e));
        match (&it.id, init) {
            (BindingPattern::BindingIdentifier(b), Some(m)) => {
                self.bind(&b.name, m);
                self.alias_decls.insert(it.span.start);
            }
            (BindingPattern::ObjectPattern(o), Some(m)) => {
                let mut followed = o.rest.is_none() && m != Bound::Get;
                for p in &o.properties {
                    let key = if p.computed { None } else { key_name(&p.key) };
                    let (Some(key), BindingPattern::BindingIdentifier(b)) = (key, &p.value) else {
                        // A computed key, a default or a nested pattern:
                        // what it binds is not followed.
                        followed = false;
                        continue;
                    };
                    match (m, key.as_str()) {
                        (Bound::Module, "results") => self.bind(&b.name, Bound::Results),
                        (Bound::Results, "get") => self.bind(&b.name, Bound::Get),
                        _ => {}
                    }
                }
                if followed {
                    self.alias_decls.insert(it.span.start);
                } else {
                    self.unfollowed.insert(it.span.start);
                }
            }
            (_, Some(_)) => {
                // An array pattern or a default over results.
                self.unfollowed.insert(it.span.start);
            }
            _ => {}
        }
        walk::walk_variable_declarator(self, it);
    }

    fn visit_binding_identifier(&mut self, it: &oxc_ast::ast::BindingIdentifier<'a>) {
        if !self.counted {
            *self.bindings.entry(it.name.to_string()).or_default() += 1;
        }
    }
}

struct Reads {
    /// Offsets of the source's newlines.
    lines: Vec<u32>,
    /// Unknown reads past [`MAX_UNKNOWN_READS`].
    more: usize,
    bound: HashMap<String, Bound>,
    shadowed: HashSet<String>,
    aliases: HashSet<u32>,
    blocks: BTreeSet<String>,
    unknown: Vec<UnknownRead>,
}

impl Reads {
    fn line(&self, offset: u32) -> u32 {
        1 + self.lines.partition_point(|&nl| nl < offset) as u32
    }

    fn unknown(&mut self, offset: u32, why: impl Into<String>) {
        if self.unknown.len() >= MAX_UNKNOWN_READS {
            self.more += 1;
            return;
        }
        let line = self.line(offset);
        self.unknown.push(UnknownRead {
            line,
            why: why.into(),
        });
    }

    /// The local name an expression goes through, when it is bound again
    /// somewhere (so what it means here is not certain).
    fn through_shadowed(&self, e: &Expression<'_>) -> Option<String> {
        if let Some(n) = ident(e) {
            return self.shadowed.contains(n).then(|| n.to_string());
        }
        let (object, _) = member(e)?;
        self.through_shadowed(object)
    }
}

impl<'a> Visit<'a> for Reads {
    fn visit_import_expression(&mut self, it: &oxc_ast::ast::ImportExpression<'a>) {
        if literal(&it.source).is_none_or(|s| s == "quire") {
            self.unknown(
                it.span.start,
                "a dynamic import of quire, whose reads the scan cannot follow",
            );
        }
        walk::walk_import_expression(self, it);
    }

    fn visit_call_expression(&mut self, it: &CallExpression<'a>) {
        if meaning(&self.bound, &it.callee) != Some(Bound::Get) {
            return walk::walk_call_expression(self, it);
        }
        if let Some(n) = self.through_shadowed(&it.callee) {
            self.unknown(
                it.span.start,
                format!("a results.get call through `{n}`, a name bound more than once"),
            );
        } else {
            match it
                .arguments
                .first()
                .and_then(Argument::as_expression)
                .and_then(literal)
            {
                Some(name) => {
                    self.blocks.insert(name);
                }
                None => self.unknown(
                    it.span.start,
                    "results.get with a block name computed when it runs",
                ),
            }
        }
        // The callee is understood; its arguments may read more.
        self.visit_arguments(&it.arguments);
    }

    fn visit_variable_declarator(&mut self, it: &VariableDeclarator<'a>) {
        if self.aliases.contains(&it.span.start) {
            return; // an alias pass 1 followed
        }
        walk::walk_variable_declarator(self, it);
    }

    fn visit_expression(&mut self, it: &Expression<'a>) {
        // `q.db`, `q.kv`…: other parts of the module, not results.
        if let Some((object, prop)) = member(it) {
            if meaning(&self.bound, object) == Some(Bound::Module)
                && prop.as_deref().is_some_and(|p| p != "results")
            {
                return;
            }
        }
        match meaning(&self.bound, it) {
            Some(Bound::Module) if ident(it).is_some() => {
                self.unknown(
                    span_start(it),
                    "the quire module passed on where the scan cannot follow it",
                );
            }
            Some(Bound::Results) => {
                self.unknown(
                    span_start(it),
                    "results passed on where the scan cannot follow it",
                );
            }
            Some(Bound::Get) => {
                self.unknown(
                    span_start(it),
                    "results.get passed on where the scan cannot follow it",
                );
            }
            _ => walk::walk_expression(self, it),
        }
    }

    fn visit_simple_assignment_target(&mut self, it: &oxc_ast::ast::SimpleAssignmentTarget<'a>) {
        if let oxc_ast::ast::SimpleAssignmentTarget::AssignmentTargetIdentifier(i) = it {
            if self.bound.contains_key(i.name.as_str()) {
                let start = i.span.start;
                self.unknown(
                    start,
                    format!(
                        "`{}` is assigned again; reads through it are not followed",
                        i.name
                    ),
                );
            }
        }
        walk::walk_simple_assignment_target(self, it);
    }
}

fn span_start(e: &Expression<'_>) -> u32 {
    use oxc_span::GetSpan;
    e.span().start
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reads(src: &str) -> (Vec<String>, Vec<u32>) {
        let r = result_reads(Lang::Js, src);
        (r.blocks, r.unknown.iter().map(|u| u.line).collect())
    }

    #[test]
    fn literal_reads_are_found_through_any_import_form() {
        let src = "import { results, db } from 'quire';\n\
                   import * as q from 'quire';\n\
                   import Q from 'quire';\n\
                   import { results as r2 } from 'quire';\n\
                   const a = await results.get('load-tasks');\n\
                   const b = await q.results.get(\"by-name\");\n\
                   const c = await Q['results']['get'](`tpl`);\n\
                   const d = await r2.get('aliased');\n\
                   const r3 = results; const { get } = r3; const { results: r4 } = q;\n\
                   await r3.get('via-const'); await get('via-get'); await r4.get('via-destructure');\n\
                   await q.db.query('x'); await db.query('y');\n\
                   export default [a, b, c, d];";
        assert_eq!(
            reads(src),
            (
                [
                    "aliased",
                    "by-name",
                    "load-tasks",
                    "tpl",
                    "via-const",
                    "via-destructure",
                    "via-get"
                ]
                .map(String::from)
                .to_vec(),
                vec![]
            )
        );
    }

    #[test]
    fn what_cannot_be_named_is_unknown_never_guessed() {
        let src = "import { results } from 'quire';\n\
                   const name = 'x';\n\
                   await results.get(name);\n\
                   await results.get(`a${name}`);\n\
                   helper(results);\n\
                   const g = results.get; g.call(null, 'y');\n\
                   export default 1;";
        let (blocks, lines) = reads(src);
        assert!(blocks.is_empty(), "{blocks:?}");
        assert_eq!(lines, vec![3, 4, 5, 6], "{:?}", result_reads(Lang::Js, src));
    }

    #[test]
    fn a_local_results_is_not_the_module_and_a_shadowed_one_is_unknown() {
        // No import: a local object named results is not a read.
        assert_eq!(
            reads("const results = { get() {} }; results.get('x');"),
            (vec![], vec![])
        );
        let src = "import { results } from 'quire';\n\
                   function f(results) { return results.get('local'); }\n\
                   export default f;";
        let (blocks, lines) = reads(src);
        assert!(blocks.is_empty(), "{blocks:?}");
        assert_eq!(lines, vec![2]);
        // Reassigned: not followed.
        let (_, lines) =
            reads("import { results } from 'quire';\nlet r = results;\nr = other;\nr.get('z');");
        assert!(lines.contains(&3), "{lines:?}");
    }

    #[test]
    fn destructurings_and_imports_it_cannot_follow_are_unknown() {
        let src = "import { results } from 'quire';\n\
                   import * as q from 'quire';\n\
                   const { get: g = f } = results;\n\
                   const { [k]: h } = results;\n\
                   const { ...rest } = results;\n\
                   const { results: { get } } = q;\n\
                   const [x] = results;\n\
                   const m = await import('quire');\n\
                   const other = await import('./other.js');\n\
                   g('a'); h('b'); rest.get('c'); get('d');";
        let (blocks, lines) = reads(src);
        assert!(blocks.is_empty(), "{blocks:?}");
        assert_eq!(
            lines,
            vec![3, 4, 5, 6, 7, 8],
            "{:?}",
            result_reads(Lang::Js, src)
        );
    }

    #[test]
    fn long_backward_alias_chains_and_many_unknowns_stay_cheap() {
        // a9 = a8, ..., a1 = a0 = results: written backwards, one link
        // per pass; past the passes it is reported.
        let mut src = String::from("import { results } from 'quire';\n");
        for i in (1..10).rev() {
            src.push_str(&format!("const a{i} = a{};\n", i - 1));
        }
        src.push_str("const a0 = results;\na9.get('far');\n");
        let r = result_reads(Lang::Js, &src);
        assert!(r.unknown.iter().any(|u| u.why.contains("too far")), "{r:?}");
        let many = format!(
            "import {{ results }} from 'quire';\n{}",
            "f(results);\n".repeat(5000)
        );
        let r = result_reads(Lang::Js, &many);
        assert_eq!(r.unknown.len(), MAX_UNKNOWN_READS + 1);
        assert!(
            r.unknown[MAX_UNKNOWN_READS].why.contains("4950 more"),
            "{:?}",
            r.unknown.last()
        );
    }

    #[test]
    fn typescript_and_broken_sources() {
        let ts = "import { results } from 'quire';\nconst rows = (await results.get('load')) as unknown as Array<{ id: string }>;\nexport default rows.length;";
        assert_eq!(result_reads(Lang::Ts, ts).blocks, vec!["load".to_string()]);
        let broken = result_reads(Lang::Js, "results.get('x'");
        assert!(broken.blocks.is_empty());
        assert_eq!(broken.unknown.len(), 1);
    }
}
