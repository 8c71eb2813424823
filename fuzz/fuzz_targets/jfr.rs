//! JFR recordings (gzip sniffed) as `/ingest?format=jfr` receives them,
//! with an optional labels snapshot as second part (see
//! `kiln_fuzz::split_second_part`), through the multipart form
//! pyroscope-java sends.
#![no_main]

use kiln_fuzz::{check_profiles, ingest_multipart, ingest_raw, split_second_part};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match split_second_part(data) {
        (recording, None) => check_profiles(&ingest_raw("jfr", "javaspy", recording)),
        (recording, Some(labels)) => check_profiles(&ingest_multipart(
            "jfr",
            &[("jfr", recording), ("labels", labels)],
        )),
    }
});
