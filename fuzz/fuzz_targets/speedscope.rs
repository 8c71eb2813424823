//! speedscope JSON bodies of `/ingest?format=speedscope` (gzip sniffed).
#![no_main]

use kiln_fuzz::{check_profiles, ingest_raw};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    check_profiles(&ingest_raw("speedscope", "unknown", data));
});
