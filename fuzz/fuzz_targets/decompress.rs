//! The bounded decoders every untrusted body goes through: gzip (sniffed
//! and by `Content-Encoding`) and zstd. The output must never exceed the
//! limit, and hitting it must be `TooLarge`.
#![no_main]

use kiln_formats::FormatError;
use kiln_formats::compress::{decode_content_encoding, decompress_if_gzip};
use libfuzzer_sys::fuzz_target;

/// Small, so that the fuzzer reaches it often.
const LIMIT: usize = 64 << 10;

fn check(result: Result<std::borrow::Cow<'_, [u8]>, FormatError>) {
    match result {
        Ok(out) => assert!(out.len() <= LIMIT, "{} bytes out", out.len()),
        Err(FormatError::TooLarge { limit, .. }) => assert_eq!(limit, LIMIT),
        Err(FormatError::Gzip { .. } | FormatError::Zstd { .. }) => {}
        Err(e) => panic!("unexpected error: {e}"),
    }
}

fuzz_target!(|data: &[u8]| {
    check(decompress_if_gzip(data, LIMIT));
    check(decode_content_encoding(Some("gzip"), data, LIMIT, "body"));
    check(decode_content_encoding(Some("zstd"), data, LIMIT, "body"));
});
