//! pprof, as the Push API and `/ingest` receive it (gzip sniffed): decode,
//! validate, the Go, .NET and py-spy fix-ups, normalise. With a second part
//! (see `kiln_fuzz::split_second_part`) the pprof goes in a multipart form
//! with that part as its `sample_type_config`.
#![no_main]

use kiln_formats::push::profiles_from_push_series;
use kiln_fuzz::{NOW_NS, check_profiles, ingest_multipart, ingest_raw, limits, split_second_part};
use kiln_proto::types::v1::LabelPair;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (pprof, config) = split_second_part(data);
    if let Some(config) = config {
        check_profiles(&ingest_multipart(
            "pprof",
            &[("profile", pprof), ("sample_type_config", config)],
        ));
        return;
    }
    let labels = [
        ("__name__", "process_cpu"),
        ("service_name", "fuzz"),
        ("pyroscope_spy", "gospy"),
    ]
    .map(|(name, value)| LabelPair {
        name: name.to_owned(),
        value: value.to_owned(),
    });
    check_profiles(&profiles_from_push_series(
        &labels,
        pprof,
        &limits(),
        NOW_NS,
    ));
    check_profiles(&ingest_raw("pprof", "dotnetspy", pprof));
    check_profiles(&ingest_raw("pprof", "pyspy", pprof));
});
