//! Bytes from a (compromised) runner: the decoder returns a message or an
//! error for every input, never panics; decoded messages re-encode to
//! frames that decode to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use quire_engine::runner::protocol::{read_frame, write_frame, FromRunner, ToRunner};

fuzz_target!(|data: &[u8]| {
    let mut r = data;
    // A stream of frames, as the server's reader sees it.
    for _ in 0..64 {
        match read_frame::<FromRunner>(&mut r, 1 << 20) {
            Ok(Some(msg)) => {
                let mut buf = Vec::new();
                write_frame(&mut buf, &msg).expect("re-encode");
                let back: FromRunner = read_frame(&mut buf.as_slice(), 1 << 21)
                    .expect("decode")
                    .expect("a frame");
                assert_eq!(format!("{back:?}"), format!("{msg:?}"));
            }
            Ok(None) | Err(_) => break,
        }
    }
    // The other direction's decoder too (a runner reads the server).
    let _ = read_frame::<ToRunner>(&mut &data[..], 1 << 20);
});
