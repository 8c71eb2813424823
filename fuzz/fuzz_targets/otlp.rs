//! OTLP profiles export requests (protobuf, gzip sniffed), as
//! `/v1development/profiles` and `ProfilesService/Export` receive them.
#![no_main]

use kiln_formats::otlp::profiles_from_otlp;
use kiln_fuzz::{NOW_NS, check_profiles, limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    check_profiles(&profiles_from_otlp(data, &limits(), NOW_NS));
});
