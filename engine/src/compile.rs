//! Source preparation: TypeScript stripping (oxc) with a position map back
//! to the `.ts` text, and the shared bytecode cache.
//!
//! JavaScript goes to QuickJS as written. TypeScript is parsed, transformed
//! and printed by oxc with a source map; errors QuickJS reports against the
//! printed JavaScript are mapped back through [`LineMap`].

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::request::Lang;

/// A parse or transform failure, located in the user's source.
#[derive(Debug, Clone)]
pub(crate) struct SourceError {
    pub(crate) message: String,
    pub(crate) line: Option<u32>,
    pub(crate) column: Option<u32>,
}

/// JavaScript ready for QuickJS, plus how to map its positions back.
pub(crate) struct Prepared {
    pub(crate) js: String,
    pub(crate) map: Option<LineMap>,
}

/// Maps (line, column) of generated JavaScript to the original source.
/// Lines and columns are 1-based on both sides.
#[derive(Debug, Default)]
pub(crate) struct LineMap {
    /// Per generated line (0-based): (generated col, source line, source col),
    /// sorted by generated column; all 0-based.
    lines: Vec<Vec<(u32, u32, u32)>>,
}

impl LineMap {
    fn from_sourcemap(map: &oxc_sourcemap::SourceMap<'_>) -> Self {
        let mut lines: Vec<Vec<(u32, u32, u32)>> = Vec::new();
        for t in map.get_tokens() {
            let dl = t.get_dst_line() as usize;
            if lines.len() <= dl {
                lines.resize_with(dl + 1, Vec::new);
            }
            lines[dl].push((t.get_dst_col(), t.get_src_line(), t.get_src_col()));
        }
        for l in &mut lines {
            l.sort_unstable();
        }
        Self { lines }
    }

    /// The original position of a 1-based generated position.
    pub(crate) fn original(&self, line: u32, column: u32) -> Option<(u32, u32)> {
        let row = self.lines.get(line.checked_sub(1)? as usize)?;
        let col0 = column.saturating_sub(1);
        let idx = row.partition_point(|(c, _, _)| *c <= col0);
        let (gc, sl, sc) = if idx == 0 {
            *row.first()?
        } else {
            row[idx - 1]
        };
        // Keep the offset within the token when it maps a run of the same text.
        let delta = col0.saturating_sub(gc);
        Some((sl + 1, sc + delta + 1))
    }
}

pub(crate) fn line_col(source: &str, offset: usize) -> (u32, u32) {
    let offset = offset.min(source.len());
    let before = source.get(..offset).unwrap_or(source);
    let line = before.matches('\n').count() as u32 + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) as u32 + 1;
    (line, col)
}

/// Turn a block's source into JavaScript for QuickJS.
pub(crate) fn prepare(lang: Lang, filename: &str, source: &str) -> Result<Prepared, SourceError> {
    match lang {
        Lang::Js => Ok(Prepared {
            js: source.to_owned(),
            map: None,
        }),
        // oxc is well tested, but hostile input must not take a worker
        // thread down with it (a panic) nor the process (a deep nesting).
        Lang::Ts => {
            crate::analysis::deep(source, || strip_types(filename, source)).unwrap_or_else(|why| {
                Err(SourceError {
                    message: format!("SyntaxError: {}", why.message()),
                    line: None,
                    column: None,
                })
            })
        }
    }
}

fn first_error<'a>(
    source: &str,
    mut diags: impl Iterator<Item = &'a oxc_diagnostics::OxcDiagnostic>,
) -> SourceError {
    let Some(d) = diags.next() else {
        return SourceError {
            message: "SyntaxError: the TypeScript parser gave up on this source".into(),
            line: None,
            column: None,
        };
    };
    let offset = d.labels.first().map(|l| l.offset());
    let (line, column) = match offset {
        Some(off) => {
            let (l, c) = line_col(source, off as usize);
            (Some(l), Some(c))
        }
        None => (None, None),
    };
    SourceError {
        message: format!("SyntaxError: {}", d.message),
        line,
        column,
    }
}

fn strip_types(filename: &str, source: &str) -> Result<Prepared, SourceError> {
    use oxc_allocator::Allocator;
    use oxc_codegen::{Codegen, CodegenOptions};
    use oxc_parser::Parser;
    use oxc_semantic::SemanticBuilder;
    use oxc_span::SourceType;
    use oxc_transformer::{TransformOptions, Transformer};

    let allocator = Allocator::default();
    let source_type = SourceType::ts().with_module(true);
    let parsed = Parser::new(&allocator, source, source_type).parse();
    if parsed.diagnostics.has_errors() || parsed.panicked {
        return Err(first_error(source, parsed.diagnostics.errors()));
    }
    let mut program = parsed.program;
    let scoping = SemanticBuilder::new()
        .with_enum_eval(true)
        .build(&program)
        .semantic
        .into_scoping();
    let options = TransformOptions::default();
    let path = PathBuf::from(filename);
    let transformed = Transformer::new(&allocator, Path::new(filename), &options)
        .build_with_scoping(scoping, &mut program);
    if transformed.diagnostics.has_errors() {
        return Err(first_error(source, transformed.diagnostics.errors()));
    }
    let out = Codegen::new()
        .with_options(CodegenOptions {
            source_map_path: Some(path),
            ..CodegenOptions::default()
        })
        .build(&program);
    Ok(Prepared {
        js: out.code,
        map: out.map.as_ref().map(LineMap::from_sourcemap),
    })
}

/// A compiled block: QuickJS module bytecode plus its position map.
pub(crate) struct Compiled {
    pub(crate) bytecode: Vec<u8>,
    pub(crate) map: Option<LineMap>,
}

/// Cache key: BLAKE3 of language, file name and source.
pub(crate) type CacheKey = [u8; 32];

/// The key under which a block's bytecode is cached.
pub(crate) fn cache_key(lang: Lang, filename: &str, source: &str) -> CacheKey {
    let mut h = blake3::Hasher::new();
    h.update(lang.as_str().as_bytes());
    h.update(&[0]);
    h.update(&(filename.len() as u64).to_le_bytes());
    h.update(filename.as_bytes());
    h.update(source.as_bytes());
    *h.finalize().as_bytes()
}

/// A size-bounded, shared cache of compiled blocks (FIFO eviction).
pub(crate) struct BytecodeCache {
    inner: Mutex<CacheInner>,
    max_bytes: usize,
}

#[derive(Default)]
struct CacheInner {
    map: HashMap<CacheKey, Arc<Compiled>>,
    order: VecDeque<CacheKey>,
    bytes: usize,
}

impl BytecodeCache {
    pub(crate) fn new(max_bytes: usize) -> Self {
        Self {
            inner: Mutex::new(CacheInner::default()),
            max_bytes,
        }
    }

    pub(crate) fn get(&self, key: &CacheKey) -> Option<Arc<Compiled>> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.map.get(key).cloned()
    }

    pub(crate) fn insert(&self, key: CacheKey, value: Arc<Compiled>) {
        let size = value.bytecode.len();
        if size > self.max_bytes {
            return;
        }
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.map.contains_key(&key) {
            return;
        }
        while inner.bytes + size > self.max_bytes {
            let Some(old) = inner.order.pop_front() else {
                break;
            };
            if let Some(v) = inner.map.remove(&old) {
                inner.bytes -= v.bytecode.len();
            }
        }
        inner.bytes += size;
        inner.order.push_back(key);
        inner.map.insert(key, value);
    }

    /// Entries held (for tests and metrics).
    pub(crate) fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_types_and_maps_positions_back() {
        let src = "interface P { x: number }\nenum Color { Red, Green }\nfunction f<T>(a: T): T { return a; }\nconst p: P = { x: 1 };\nthrow new Error('at line 5');\n";
        let p = prepare(Lang::Ts, "block.ts", src).unwrap();
        assert!(!p.js.contains("interface"));
        assert!(p.js.contains("Color"));
        let gen_line = p.js.lines().position(|l| l.contains("throw")).unwrap() as u32 + 1;
        let col =
            p.js.lines()
                .nth(gen_line as usize - 1)
                .unwrap()
                .find("throw")
                .unwrap() as u32
                + 1;
        let (l, c) = p.map.unwrap().original(gen_line, col).unwrap();
        assert_eq!((l, c), (5, 1));
    }

    #[test]
    fn ts_syntax_errors_carry_positions() {
        let e = prepare(Lang::Ts, "b.ts", "let a: number = 1;\nlet b = (;\n")
            .err()
            .unwrap();
        assert_eq!(e.line, Some(2));
        assert!(e.message.starts_with("SyntaxError"));
    }

    #[test]
    fn cache_evicts_to_its_budget() {
        let c = BytecodeCache::new(100);
        for i in 0..10u8 {
            c.insert(
                [i; 32],
                Arc::new(Compiled {
                    bytecode: vec![0; 30],
                    map: None,
                }),
            );
        }
        assert_eq!(c.len(), 3);
        assert!(c.get(&[9; 32]).is_some());
        assert!(c.get(&[0; 32]).is_none());
    }

    #[test]
    fn keys_differ_by_language_and_name() {
        assert_ne!(cache_key(Lang::Js, "a", "x"), cache_key(Lang::Ts, "a", "x"));
        assert_ne!(
            cache_key(Lang::Js, "a", "bx"),
            cache_key(Lang::Js, "ab", "x")
        );
    }
}
