//! Running oxc over untrusted source safely. oxc's parser, its visitors
//! and its code generator recurse as deep as a source nests, and a stack
//! overflow aborts the whole process (no `catch_unwind` catches it): a
//! block of 200,000 nested braces, or a 100,000-link member chain, would
//! take the server down wherever it is parsed (an input schema read by a
//! route, a V8 run prepared on an async thread, the dependency scan).
//!
//! So every oxc pass over a block's source goes through [`deep`]: it is
//! refused at once when its brackets nest deeper than
//! [`MAX_BRACKET_NESTING`], and otherwise runs on a thread of its own whose
//! stack grows with the source ([`stack_bytes`]; only the pages a pass
//! touches are ever committed), with panics caught.

/// Brackets (`(`, `[`, `{`, counted anywhere in the text) a source may
/// nest before its analysis is refused.
pub const MAX_BRACKET_NESTING: usize = 1000;

/// Stack for an analysis thread of a `len`-byte source: 64 MiB, plus 2 KiB
/// per source byte (a nesting level costs a few frames; each source byte
/// is at most one level).
pub fn stack_bytes(len: usize) -> usize {
    (64 << 20) + len.saturating_mul(2048)
}

/// How deep `source`'s brackets nest (a cheap, conservative count: it
/// does not skip strings or comments).
pub fn bracket_nesting(source: &str) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    for b in source.bytes() {
        match b {
            b'(' | b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// Why an analysis did not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The brackets nest deeper than [`MAX_BRACKET_NESTING`].
    TooDeep,
    /// The analysis panicked, or its thread could not start.
    Failed,
}

impl Refused {
    /// The refusal as a sentence about the source.
    pub fn message(&self) -> String {
        match self {
            Self::TooDeep => format!(
                "the source nests brackets more than {MAX_BRACKET_NESTING} levels deep; it is not processed"
            ),
            Self::Failed => "the parser could not process this source".into(),
        }
    }
}

/// Sources up to this many bytes are analysed on the caller's thread: a
/// nesting level takes at least one byte, so they nest at most this deep,
/// well within any thread's stack (most blocks are this small, and a V8
/// run is prepared on every start).
pub const INLINE_SOURCE_BYTES: usize = 1024;

/// Run `f` over `source` (see the module docs): on the caller's thread
/// for a small source, on an analysis thread otherwise.
pub fn deep<T: Send>(source: &str, f: impl FnOnce() -> T + Send) -> Result<T, Refused> {
    if bracket_nesting(source) > MAX_BRACKET_NESTING {
        return Err(Refused::TooDeep);
    }
    if source.len() <= INLINE_SOURCE_BYTES {
        return std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
            .map_err(|_| Refused::Failed);
    }
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .name("quire-parse".into())
            .stack_size(stack_bytes(source.len()))
            .spawn_scoped(s, f)
            .map_err(|_| Refused::Failed)?
            .join()
            .map_err(|_| Refused::Failed)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Lang;

    /// Sources that would overflow a thread's stack in oxc end without
    /// aborting: refused, or analysed on a deep stack.
    #[test]
    fn deeply_nested_sources_never_abort() {
        let braces = format!("{}{}", "{".repeat(200_000), "}".repeat(200_000));
        assert_eq!(deep(&braces, || 1), Err(Refused::TooDeep));
        assert_eq!(crate::input_schema(Lang::Js, &braces), None);
        let scan = crate::result_reads(Lang::Js, &braces);
        assert!(
            scan.blocks.is_empty() && scan.unknown.len() == 1,
            "{scan:?}"
        );
        let member = format!(
            "import {{ results }} from 'quire'; results.get('a'); x{}; export const input = {{ a: 1 }};",
            ".b".repeat(8_000)
        );
        assert_eq!(
            crate::result_reads(Lang::Js, &member).blocks,
            vec!["a".to_string()]
        );
        assert!(crate::input_schema(Lang::Js, &member).is_some());
        let binary = format!("x = 1{};", "+x".repeat(8_000));
        assert!(crate::compile::prepare(Lang::Ts, "b.ts", &binary).is_ok());
        // Small sources run on the caller's thread (2 MiB, as an async
        // thread has), deep as they may nest.
        let small = format!("x = 1{};", "+x".repeat(INLINE_SOURCE_BYTES / 2 - 4));
        assert!(small.len() <= INLINE_SOURCE_BYTES);
        let on_small_stack = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || {
                crate::compile::prepare(Lang::Ts, "b.ts", &small).is_ok()
                    && crate::result_reads(Lang::Js, &small).unknown.is_empty()
            })
            .map(|h| h.join().unwrap_or(false))
            .unwrap_or(false);
        assert!(on_small_stack);
        let parens = format!("x = {}1{};", "(".repeat(5000), ")".repeat(5000));
        let err = crate::compile::prepare(Lang::Ts, "b.ts", &parens).err();
        assert!(err.is_some_and(|e| e.message.contains("1000 levels")));
    }
}
