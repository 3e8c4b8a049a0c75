//! A block's source made ready for the V8 runner, on the server side.
//!
//! TypeScript is stripped by oxc exactly as for QuickJS ([`compile`]). Then
//! the JavaScript is parsed once more (oxc), which gives three things V8
//! cannot be trusted to enforce the way quire wants:
//!
//! - **Syntax errors** with the block's own line and column, before any
//!   process sees the source.
//! - **Static imports**: every `import … from`, `export … from` and
//!   `import "…"` must name `"quire"` (and the run must have a host);
//!   anything else ends the run here with the same message QuickJS gives
//!   (the runner links `"quire"` to its host module).
//! - **Dynamic imports**: each `import(` keyword is replaced by `__qi__`,
//!   a function the runner defines that only loads `"quire"`. Same length,
//!   so every line and column stays where it was. (Code made at run time
//!   by `eval` or `new Function` is not rewritten; its `import()` reaches
//!   deno's loader, where deno's own permissions and the sandbox stop
//!   files, packages and URLs; see SECURITY.md.)

use oxc_ast::ast::{ImportExpression, Statement};
use oxc_ast_visit::{walk, Visit};

use crate::compile::{self, LineMap, SourceError};
use crate::isolate::HOST_MODULE;
use crate::request::Lang;

/// JavaScript for the V8 runner.
pub(crate) struct V8Source {
    /// The module text, with dynamic imports rewritten.
    pub(crate) js: String,
    /// Where positions in `js` were in the block (TypeScript only).
    pub(crate) map: Option<LineMap>,
}

/// Why the source cannot run; `syntax` decides the error kind.
pub(crate) struct Rejected {
    pub(crate) error: SourceError,
    /// True for a parse error, false for a refused import.
    pub(crate) syntax: bool,
}

#[derive(Default)]
struct DynamicImports(Vec<u32>);

impl<'a> Visit<'a> for DynamicImports {
    fn visit_import_expression(&mut self, it: &ImportExpression<'a>) {
        self.0.push(it.span.start);
        walk::walk_import_expression(self, it);
    }
}

/// Prepare `source` for the V8 runner. `has_host` says whether the run has
/// the host module.
pub(crate) fn prepare(
    lang: Lang,
    filename: &str,
    source: &str,
    has_host: bool,
) -> Result<V8Source, Rejected> {
    let prepared = compile::prepare(lang, filename, source).map_err(|error| Rejected {
        error,
        syntax: true,
    })?;
    let js = prepared.js;
    let map = prepared.map;
    crate::analysis::deep(&js, || scan(&js, map.as_ref(), has_host))
        .unwrap_or_else(|why| {
            Err(Rejected {
                error: SourceError {
                    message: format!("SyntaxError: {}", why.message()),
                    line: None,
                    column: None,
                },
                syntax: true,
            })
        })
        .map(|js| V8Source { js, map })
}

fn scan(js: &str, map: Option<&LineMap>, has_host: bool) -> Result<String, Rejected> {
    use oxc_allocator::Allocator;
    use oxc_parser::Parser;
    use oxc_span::SourceType;

    let allocator = Allocator::default();
    let parsed = Parser::new(&allocator, js, SourceType::mjs()).parse();
    let at = |offset: u32| -> (Option<u32>, Option<u32>) {
        let (l, c) = compile::line_col(js, offset as usize);
        let (l, c) = map.and_then(|m| m.original(l, c)).unwrap_or((l, c));
        (Some(l), Some(c))
    };
    if parsed.panicked || parsed.diagnostics.has_errors() {
        let d = parsed.diagnostics.errors().next();
        let (line, column) = d
            .and_then(|d| d.labels.first().map(|l| l.offset()))
            .map_or((None, None), at);
        return Err(Rejected {
            error: SourceError {
                message: format!(
                    "SyntaxError: {}",
                    d.map_or_else(
                        || "the parser gave up".to_string(),
                        |d| d.message.to_string()
                    )
                ),
                line,
                column,
            },
            syntax: true,
        });
    }
    for stmt in &parsed.program.body {
        let source = match stmt {
            Statement::ImportDeclaration(d) => Some(&d.source),
            Statement::ExportAllDeclaration(d) => Some(&d.source),
            Statement::ExportFromDeclaration(d) => Some(&d.source),
            _ => None,
        };
        let Some(lit) = source else { continue };
        let name = lit.value.as_str();
        let message = if name != HOST_MODULE {
            format!("import of \"{name}\" is not allowed: a block can only import the host module \"{HOST_MODULE}\" (no files, packages or URLs)")
        } else if !has_host {
            "the host module \"quire\" is not available to this run (no host API is attached)"
                .to_string()
        } else {
            continue;
        };
        let (line, column) = at(lit.span.start);
        return Err(Rejected {
            error: SourceError {
                message: format!("TypeError: {message}"),
                line,
                column,
            },
            syntax: false,
        });
    }
    let mut dynamic = DynamicImports::default();
    dynamic.visit_program(&parsed.program);
    let mut out = js.to_string();
    for start in dynamic.0 {
        let s = start as usize;
        if out.get(s..s + 6) == Some("import") {
            out.replace_range(s..s + 6, "__qi__");
        }
    }
    // Same length as `js`: the parsed spans still point where they did.
    Ok(super::wrap::wrap_module(&out, &parsed.program))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(src: &str, host: bool) -> V8Source {
        match prepare(Lang::Js, "block.js", src, host) {
            Ok(v) => v,
            Err(r) => panic!("{}", r.error.message),
        }
    }

    #[test]
    fn dynamic_imports_are_rewritten_in_place() {
        let v = ok("const a = 1;\nconst m = await import(\"os\"); const n = await import ( 'x' );\nexport default [import.meta.url, m, n];", false);
        assert!(v.js.contains("const a = 1;\nconst m = await __qi__(\"os\"); const n = await __qi__ ( 'x' );\n__QD.default=  [import.meta.url, m, n];"), "{}", v.js);
        // Strings and comments that say import( are left alone.
        let v = ok("// import(\"x\")\nexport default 'import(1)';", false);
        assert!(
            v.js.contains("// import(\"x\")\n__QD.default=  'import(1)';"),
            "{}",
            v.js
        );
    }

    #[test]
    fn only_quire_may_be_imported_statically() {
        for src in [
            "import fs from 'fs';",
            "import 'node:fs';",
            "export * from 'https://example.com/x.js';",
            "export { a } from 'npm:lodash';",
            "import x from 'file:///etc/passwd';",
        ] {
            let Err(r) = prepare(Lang::Js, "block.js", src, true) else {
                panic!("{src} was allowed");
            };
            assert!(!r.syntax);
            assert!(
                r.error.message.contains("is not allowed"),
                "{}",
                r.error.message
            );
            assert_eq!(r.error.line, Some(1));
        }
        let Err(r) = prepare(Lang::Js, "block.js", "import { kv } from 'quire';", false) else {
            panic!("quire without a host was allowed");
        };
        assert!(r.error.message.contains("not available"));
    }

    #[test]
    fn syntax_errors_carry_the_blocks_position() {
        let Err(r) = prepare(Lang::Js, "block.js", "let a = 1;\nlet b = ;", true) else {
            panic!("parsed");
        };
        assert!(r.syntax);
        assert_eq!(r.error.line, Some(2));
        let Err(r) = prepare(
            Lang::Ts,
            "block.ts",
            "type A = number;\nconst x: A = 1;\nimport y from 'os';\nexport default [x, y];",
            true,
        ) else {
            panic!("parsed");
        };
        assert!(!r.syntax);
        assert_eq!(r.error.line, Some(3), "{}", r.error.message);
    }
}
