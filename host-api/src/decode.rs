//! Content-Encoding decoding for `fetch`, as the web's fetch does it:
//! `gzip` (and `x-gzip`), `deflate` (zlib-wrapped, or raw deflate) and
//! `br`, in the reverse of the order they were applied. A response with
//! any other coding is handed back as it came.

use std::io::{self, Read};

/// What `fetch` asks for: the codings it decodes.
pub(crate) const ACCEPT_ENCODING: &str = "gzip, deflate, br";

/// One content coding `fetch` decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Coding {
    Gzip,
    Deflate,
    Brotli,
}

impl Coding {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Coding::Gzip => "gzip",
            Coding::Deflate => "deflate",
            Coding::Brotli => "br",
        }
    }
}

/// The codings named by the `Content-Encoding` header values, in the order
/// they were applied (`identity` and empty entries skipped); `None` when one
/// of them is a coding `fetch` does not decode.
pub(crate) fn codings<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<Vec<Coding>> {
    let mut out = Vec::new();
    for v in values {
        for c in v.split(',').map(str::trim).filter(|c| !c.is_empty()) {
            out.push(match c.to_ascii_lowercase().as_str() {
                "identity" => continue,
                "gzip" | "x-gzip" => Coding::Gzip,
                "deflate" => Coding::Deflate,
                "br" => Coding::Brotli,
                _ => return None,
            });
        }
    }
    Some(out)
}

/// Read up to `n` bytes from `r` (fewer only at its end) and return them
/// with a reader that yields them again, then the rest of `r`.
fn peek<'a>(mut r: Box<dyn Read + 'a>, n: usize) -> io::Result<(Vec<u8>, Box<dyn Read + 'a>)> {
    let mut head = vec![0; n];
    let mut got = 0;
    while got < n {
        match r.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    head.truncate(got);
    let again = io::Cursor::new(head.clone()).chain(r);
    Ok((head, Box::new(again)))
}

/// `body` decoded from `codings` (as [`codings`] returns them). An empty
/// body stays empty whatever it claims to be encoded with.
///
/// # Errors
/// Reading the first bytes failed.
pub(crate) fn decoder<'a>(
    body: Box<dyn Read + 'a>,
    codings: &[Coding],
) -> io::Result<Box<dyn Read + 'a>> {
    let (head, mut r) = peek(body, 1)?;
    if head.is_empty() {
        return Ok(r);
    }
    for c in codings.iter().rev() {
        r = match c {
            Coding::Gzip => Box::new(flate2::read::MultiGzDecoder::new(r)),
            Coding::Brotli => Box::new(brotli_decompressor::Decompressor::new(r, 4096)),
            Coding::Deflate => {
                // The web's "deflate" is zlib (RFC 1950); some servers send
                // raw deflate (RFC 1951). A zlib header is CM=8 and a
                // multiple of 31.
                let (head, r) = peek(r, 2)?;
                let zlib = matches!(head[..], [a, b] if a & 0x0f == 8 && (u16::from(a) << 8 | u16::from(b)) % 31 == 0);
                if zlib {
                    Box::new(flate2::read::ZlibDecoder::new(r))
                } else {
                    Box::new(flate2::read::DeflateDecoder::new(r))
                }
            }
        };
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn decode(body: &[u8], codings: &[Coding]) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        decoder(Box::new(body), codings)?.read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn codings_are_parsed_in_order() {
        assert_eq!(codings(["gzip"]), Some(vec![Coding::Gzip]));
        assert_eq!(
            codings(["deflate, X-Gzip", "br"]),
            Some(vec![Coding::Deflate, Coding::Gzip, Coding::Brotli])
        );
        assert_eq!(codings(["identity", ""]), Some(vec![]));
        assert_eq!(codings(["gzip, zstd"]), None);
    }

    #[test]
    fn zlib_and_raw_deflate_both_decode() {
        let text = b"hello hello hello";
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(text).unwrap();
        let z = z.finish().unwrap();
        let mut d = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        d.write_all(text).unwrap();
        let d = d.finish().unwrap();
        assert_eq!(decode(&z, &[Coding::Deflate]).unwrap(), text);
        assert_eq!(decode(&d, &[Coding::Deflate]).unwrap(), text);
    }

    #[test]
    fn empty_and_corrupt_bodies() {
        assert_eq!(decode(b"", &[Coding::Gzip]).unwrap(), b"");
        assert!(decode(b"not gzip", &[Coding::Gzip]).is_err());
        assert!(decode(b"not brotli at all", &[Coding::Brotli]).is_err());
    }
}
