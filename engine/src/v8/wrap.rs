//! A block's module rewritten for the isolate runner, so the runner can
//! tell when the module's body has run, and how it failed, exactly.
//!
//! isolated-vm evaluates a module but does not hand back the promise of a
//! body with top-level `await`: a body that throws after its first
//! `await` would fail unseen. So the body runs inside `try`, and its last
//! statement reports to the runner's glue; `catch` reports the thrown
//! value itself (not a copy), which keeps errors exactly as QuickJS
//! reports them. What a `try` block cannot hold moves, keeping every line
//! where it was (the runner compiles the module one line up, so the first
//! line of the block is still line 1):
//!
//! - `import` declarations are blanked in place and repeated after the
//!   `try` (imports are hoisted: where they stand changes nothing);
//! - `export` is blanked before declarations (`export const a = …` runs
//!   as `const a = …`), and `export { … }` / `export … from` statements
//!   are blanked: only the default export is a block's result;
//! - `export default` (14 characters) becomes `__QD.default=` plus a space
//!   (also 14), so columns stay; a default function or class with a name
//!   stays a declaration and is assigned at the end of the body, as is
//!   `export { x as default }`.

use oxc_ast::ast::{ExportDefaultDeclarationKind, Program, Statement};

/// Blank `text[start..end]`, keeping line breaks.
fn blank(out: &mut [u8], start: usize, end: usize) {
    for b in out.iter_mut().take(end).skip(start) {
        if *b != b'\n' && *b != b'\r' {
            *b = b' ';
        }
    }
}

/// The module `js` (parsed as `program`) as the isolate runner runs it.
pub(crate) fn wrap_module(js: &str, program: &Program<'_>) -> String {
    let mut out = js.as_bytes().to_vec();
    let mut imports = String::new();
    let mut at_end = String::new();
    // Text inserted after a byte offset (kept sorted at the end).
    let mut inserts: Vec<(usize, &str)> = Vec::new();
    for stmt in &program.body {
        match stmt {
            Statement::ImportDeclaration(d) => {
                let (s, e) = (d.span.start as usize, d.span.end as usize);
                imports.push_str(&js[s..e]);
                imports.push('\n');
                blank(&mut out, s, e);
            }
            Statement::ExportDeclaration(d) => {
                let s = d.span.start as usize;
                blank(&mut out, s, s + "export".len());
            }
            Statement::ExportNamedDeclaration(d) => {
                for spec in &d.specifiers {
                    if spec.exported.name().as_str() == "default" {
                        at_end.push_str(&format!("__QD.default = {};\n", spec.local.name()));
                    }
                }
                blank(&mut out, d.span.start as usize, d.span.end as usize);
            }
            Statement::ExportFromDeclaration(d) => {
                blank(&mut out, d.span.start as usize, d.span.end as usize);
            }
            Statement::ExportAllDeclaration(d) => {
                blank(&mut out, d.span.start as usize, d.span.end as usize);
            }
            Statement::ExportDefaultDeclaration(d) => {
                let s = d.span.start as usize;
                let named = match &d.declaration {
                    ExportDefaultDeclarationKind::FunctionDeclaration(f) => {
                        f.id.as_ref().map(|id| (id.name.to_string(), f.span.end))
                    }
                    ExportDefaultDeclarationKind::ClassDeclaration(c) => {
                        c.id.as_ref().map(|id| (id.name.to_string(), c.span.end))
                    }
                    _ => None,
                };
                if let Some((name, _)) = named {
                    blank(&mut out, s, s + "export default".len());
                    at_end.push_str(&format!("__QD.default = {name};\n"));
                } else {
                    out[s..s + 14].copy_from_slice(b"__QD.default= ");
                    // An anonymous function or class is now an expression:
                    // end its statement so the next line cannot call it.
                    if let ExportDefaultDeclarationKind::FunctionDeclaration(f) = &d.declaration {
                        inserts.push((f.span.end as usize, ";"));
                    } else if let ExportDefaultDeclarationKind::ClassDeclaration(c) = &d.declaration
                    {
                        inserts.push((c.span.end as usize, ";"));
                    }
                }
            }
            _ => {}
        }
    }
    // Only ASCII was written over ASCII, so this stays UTF-8.
    let mut body = String::from_utf8(out).unwrap_or_else(|_| js.to_string());
    inserts.sort_by_key(|&(at, _)| std::cmp::Reverse(at));
    for (at, text) in inserts {
        if body.is_char_boundary(at) {
            body.insert_str(at, text);
        }
    }
    format!(
        "try {{ const __QD = {{}};\n{body}\n;{at_end}__quire_module.done(__QD);\n}} catch (__quire_e) {{ __quire_module.fail(__quire_e); }}\n{imports}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wrap(js: &str) -> String {
        let allocator = oxc_allocator::Allocator::default();
        let parsed = oxc_parser::Parser::new(&allocator, js, oxc_span::SourceType::mjs()).parse();
        assert!(!parsed.diagnostics.has_errors(), "{js}");
        let w = wrap_module(js, &parsed.program);
        // What comes out is a module that parses.
        let again = oxc_parser::Parser::new(&allocator, &w, oxc_span::SourceType::mjs()).parse();
        assert!(!again.diagnostics.has_errors(), "{w}");
        w
    }

    #[test]
    fn lines_and_columns_stay() {
        let js = "import { kv } from \"quire\";\nexport const a = 1;\nexport default a + (await kv.get(\"k\"));\nthrow new Error(\"x\");";
        let w = wrap(js);
        let lines: Vec<&str> = w.lines().collect();
        // The first line is the wrapper's; then the block, line for line.
        assert!(lines[0].starts_with("try {"));
        assert_eq!(lines[1].trim(), "");
        assert_eq!(lines[2], "       const a = 1;");
        assert_eq!(lines[3], "__QD.default=  a + (await kv.get(\"k\"));");
        assert_eq!(lines[4], "throw new Error(\"x\");");
        assert!(w.ends_with("import { kv } from \"quire\";\n"), "{w}");
    }

    #[test]
    fn every_default_form_is_assigned() {
        for (js, want) in [
            (
                "export default function f() { return 1; }\nf();",
                "__QD.default = f;",
            ),
            ("export default class K {}", "__QD.default = K;"),
            (
                "const x = 2;\nexport { x as default };",
                "__QD.default = x;",
            ),
            ("export default function () {}\n(1)", "function () {};"),
            ("export default class {}\n[1]", "class {};"),
        ] {
            let w = wrap(js);
            assert!(w.contains(want), "{js} => {w}");
        }
        // Re-exports and named lists leave nothing behind.
        let w = wrap(
            "export * from 'quire';\nexport { kv } from 'quire';\nconst b = 1;\nexport { b };",
        );
        assert!(!w.contains("export"), "{w}");
    }
}
