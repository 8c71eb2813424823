//! Folded (`a;b;c 12`) and lines (`a;b;c`) text bodies of `/ingest`.
#![no_main]

use kiln_fuzz::{check_profiles, ingest_raw};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    check_profiles(&ingest_raw("folded", "rbspy", data));
    check_profiles(&ingest_raw("lines", "pyspy", data));
});
