//! The OG binary bodies of `/ingest`: `format=trie` and `format=tree`
//! (gzip sniffed).
#![no_main]

use kiln_fuzz::{check_profiles, ingest_raw};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    check_profiles(&ingest_raw("trie", "gospy", data));
    check_profiles(&ingest_raw("tree", "gospy", data));
});
