//! OTLP profiles: the OpenTelemetry eBPF profiler capture against
//! Pyroscope's expected results (`otel-ebpf-profile-{cpu,offcpu}.out.json`:
//! the merged profile Pyroscope returns for `service_name=unknown_service`
//! and the profile type, one entry per stack with its locations leaf
//! first, each line written `name[system name]@file:line`).

use serde_json::Value;

use kiln_formats::otlp::{profiles_from_otlp, profiles_from_otlp_request};
use kiln_proto::opentelemetry::proto::collector::profiles::v1development::ExportProfilesServiceRequest;

use super::*;

const REQUEST: &str = "otlp/otel-ebpf-profile.pb.bin";

/// (function-name stack root first → value) of an expected JSON file.
fn expected_stacks(file: &str) -> (String, BTreeMap<String, i128>) {
    let json: Value = serde_json::from_slice(&read(file)).unwrap();
    let sample_type = &json["sample_types"][0];
    let sample_type = format!(
        "{}/{}",
        sample_type["type"].as_str().unwrap(),
        sample_type["unit"].as_str().unwrap()
    );
    let mut stacks = BTreeMap::new();
    for sample in json["samples"].as_array().unwrap() {
        let mut frames: Vec<String> = Vec::new();
        for location in sample["locations"].as_array().unwrap().iter().rev() {
            for line in location["lines"].as_array().unwrap().iter().rev() {
                // name[system name]@file:line
                let line = line.as_str().unwrap();
                let (name_part, _) = line.rsplit_once('@').unwrap();
                let (name, _) = name_part
                    .strip_suffix(']')
                    .unwrap()
                    .rsplit_once('[')
                    .unwrap();
                frames.push(name.to_owned());
            }
        }
        let value: i128 = sample["values"].as_str().unwrap().parse().unwrap();
        *stacks.entry(frames.join(";")).or_insert(0) += value;
    }
    (sample_type, stacks)
}

fn series<'a>(out: &'a [SeriesProfile], service: &str, name: &str) -> Vec<&'a SeriesProfile> {
    out.iter()
        .filter(|sp| {
            sp.labels.get("service_name") == Some(service)
                && sp.labels.get("__name__") == Some(name)
        })
        .collect()
}

#[test]
fn ebpf_profiler_capture_matches_pyroscope_results() {
    let out = profiles_from_otlp(&read(REQUEST), &Limits::default(), NOW).unwrap();
    assert_invariants(&out);
    for (name, file) in [
        ("process_cpu", "otlp/otel-ebpf-profile-cpu.out.json"),
        ("off_cpu", "otlp/otel-ebpf-profile-offcpu.out.json"),
    ] {
        let (sample_type, want) = expected_stacks(file);
        let ours = series(&out, "unknown_service", name);
        assert!(!ours.is_empty(), "{name}");
        for sp in &ours {
            let types = kiln_formats::pprof::sample_type_names(&sp.profile);
            assert_eq!(format!("{}/{}", types[0].0, types[0].1), sample_type);
        }
        let got = resolved_stacks_of(ours.iter().map(|sp| &sp.profile), 0);
        assert_eq!(got.len(), want.len(), "{name}: number of stacks");
        assert!(got == want, "{name}: stacks differ from {file}");
    }
    // Processes with an executable name but no service name get their own
    // service, as in Pyroscope.
    let mut services = label_values(&out, "service_name");
    services.sort();
    services.dedup();
    assert!(
        services.contains(&"unknown_service:containerd".to_owned()),
        "{services:?}"
    );
    // Sample attributes become series labels; numeric ones are dropped.
    assert!(out.iter().any(|sp| sp.labels.get("thread.name").is_some()));
    assert!(out.iter().all(|sp| sp.labels.get("thread.id").is_none()));
}

#[test]
fn gzip_json_and_size_limits() {
    let raw = read(REQUEST);
    let plain = profiles_from_otlp(&raw, &Limits::default(), NOW).unwrap();
    let gz = kiln_formats::compress::gzip(&raw).unwrap();
    assert_eq!(
        profiles_from_otlp(&gz, &Limits::default(), NOW).unwrap(),
        plain
    );

    // The same request as protobuf JSON (the OTLP/HTTP JSON encoding).
    let request = ExportProfilesServiceRequest::decode(raw.as_slice()).unwrap();
    let json = kiln_proto::json::to_json(&request).unwrap();
    let back: ExportProfilesServiceRequest = kiln_proto::json::from_json(&json).unwrap();
    assert_eq!(
        profiles_from_otlp_request(&back, &Limits::default(), NOW).unwrap(),
        plain
    );

    let limits = Limits {
        max_body_bytes: 1 << 16,
        ..Limits::default()
    };
    for body in [&raw, &gz] {
        let err = profiles_from_otlp(body, &limits, NOW).unwrap_err();
        assert!(
            matches!(err, FormatError::TooLarge { limit: 65_536, .. }),
            "{err}"
        );
    }
}

/// Deterministic pseudo-random numbers (xorshift).
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn truncated_and_corrupted_requests_fail_cleanly() {
    let raw = read(REQUEST);
    let limits = Limits::default();
    // Every truncation (sampled) either decodes to fewer profiles or fails
    // with a typed error; none panics.
    for cut in (0..raw.len()).step_by(97) {
        if let Err(e) = profiles_from_otlp(&raw[..cut], &limits, NOW) {
            assert!(
                matches!(e, FormatError::DecodeOtlp(_) | FormatError::InvalidOtlp(_)),
                "{cut}: {e}"
            );
        }
    }
    let mut state = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..300 {
        let mut bytes = raw.clone();
        for _ in 0..4 {
            let at = (next(&mut state) % bytes.len() as u64) as usize;
            bytes[at] = next(&mut state) as u8;
        }
        let _ = profiles_from_otlp(&bytes, &limits, NOW);
    }
    for len in [1usize, 10, 1000] {
        let bytes: Vec<u8> = (0..len).map(|_| next(&mut state) as u8).collect();
        let _ = profiles_from_otlp(&bytes, &limits, NOW);
    }

    // An out-of-range stack index is named, like Pyroscope's check.
    let mut request = ExportProfilesServiceRequest::decode(raw.as_slice()).unwrap();
    request.resource_profiles[0].scope_profiles[0].profiles[0].samples[0].stack_index =
        1_000_000_000;
    let err = profiles_from_otlp_request(&request, &limits, NOW).unwrap_err();
    assert!(
        err.to_string()
            .contains("stack index 1000000000 out of bounds"),
        "{err}"
    );
    assert_eq!(
        kiln_model::HasErrorCode::code(&err),
        kiln_model::ErrorCode::InvalidArgument
    );
    // No dictionary at all.
    request.dictionary = None;
    let err = profiles_from_otlp_request(&request, &limits, NOW).unwrap_err();
    assert!(err.to_string().contains("no dictionary"), "{err}");
}
