//! Shared pieces of the fuzz targets: the limits they run under, the
//! `/ingest` entry point as the distributor calls it, and the invariants
//! every converted profile must hold (checked with `assert!`, so that a
//! broken invariant is a crash the fuzzer reports, like a panic).

use bytes::Bytes;
use kiln_formats::ingest::{IngestBody, IngestParams, MultipartPart, profiles_from_ingest};
use kiln_formats::pprof::{self, ValidationMode};
use kiln_formats::{FormatError, Limits, SeriesProfile};

/// "Now" for every target (2023-11-14T22:13:20Z), so runs are repeatable.
pub const NOW_NS: i64 = 1_700_000_000_000_000_000;

/// Pyroscope's default limits, except the request body limit (256 MiB by
/// default), lowered so that one input can never legitimately need more
/// memory than `run.sh` allows (`-malloc_limit_mb`, `-rss_limit_mb`).
/// Every code path is the same as with the defaults.
pub fn limits() -> Limits {
    Limits {
        max_body_bytes: 32 << 20,
        max_jfr_bytes: 32 << 20,
        ..Limits::default()
    }
}

/// Parses `/ingest` query parameters the way the HTTP layer hands them over.
pub fn params(format: &str, spy_name: &str) -> IngestParams {
    let query = [
        ("name", "fuzz.app.cpu{env=fuzz}"),
        ("format", format),
        ("from", "1699999990"),
        ("until", "1700000000"),
        ("spyName", spy_name),
        ("sampleRate", "100"),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()));
    IngestParams::from_query(&query, NOW_NS).expect("the fuzz query parameters are valid")
}

/// Runs one `/ingest` request with a raw body.
pub fn ingest_raw(
    format: &str,
    spy_name: &str,
    body: &[u8],
) -> Result<Vec<SeriesProfile>, FormatError> {
    profiles_from_ingest(
        &params(format, spy_name),
        Some("application/octet-stream"),
        IngestBody::Raw(Bytes::copy_from_slice(body)),
        &limits(),
        NOW_NS,
    )
}

/// Runs one `/ingest` request with a multipart body of file parts
/// (name, data).
pub fn ingest_multipart(
    format: &str,
    parts: &[(&str, &[u8])],
) -> Result<Vec<SeriesProfile>, FormatError> {
    let parts = parts
        .iter()
        .map(|(name, data)| MultipartPart {
            name: (*name).to_owned(),
            filename: Some((*name).to_owned()),
            content_type: Some("application/octet-stream".to_owned()),
            data: Bytes::copy_from_slice(data),
        })
        .collect();
    profiles_from_ingest(
        &params(format, "unknown"),
        Some("multipart/form-data; boundary=x"),
        IngestBody::Multipart(parts),
        &limits(),
        NOW_NS,
    )
}

/// Asserts the invariants `kiln_formats::SeriesProfile` documents on every
/// profile of a successful conversion.
pub fn check_profiles(result: &Result<Vec<SeriesProfile>, FormatError>) {
    let Ok(profiles) = result else { return };
    let limits = limits();
    for p in profiles {
        assert!(p.labels.get("__name__").is_some(), "no __name__: {p:?}");
        assert!(p.labels.get("service_name").is_some(), "no service_name");
        assert_ne!(p.profile.time_nanos, 0, "time_nanos not set");
        if let Err(e) = pprof::validate(&p.profile, ValidationMode::Ingest, &limits) {
            panic!("a normalised profile fails validation: {e}");
        }
        for s in &p.profile.sample {
            assert_eq!(s.value.len(), p.profile.sample_type.len());
            assert!(s.value.iter().any(|v| *v != 0), "an all-zero sample");
            assert!(
                s.location_id.len() <= limits.max_stack_depth,
                "a stack deeper than max_stack_depth"
            );
        }
    }
}

/// Marks an input that carries a second part (see [`split_second_part`]).
pub const SECOND_PART_MAGIC: &[u8; 4] = b"KLBL";

/// Splits an input into a first and an optional second part, for targets
/// that need two inputs (a JFR recording and its labels snapshot, a pprof
/// and its `sample_type_config`): the second part is carried at the end as
/// `part2 ++ len(part2) as u32 LE ++ "KLBL"`. Inputs without the trailer are
/// all first part.
pub fn split_second_part(data: &[u8]) -> (&[u8], Option<&[u8]>) {
    let Some(rest) = data.strip_suffix(SECOND_PART_MAGIC) else {
        return (data, None);
    };
    let Some((len_at, _)) = rest.len().checked_sub(4).map(|i| (i, ())) else {
        return (data, None);
    };
    let len = u32::from_le_bytes([
        rest[len_at],
        rest[len_at + 1],
        rest[len_at + 2],
        rest[len_at + 3],
    ]);
    let rest = &rest[..len_at];
    match rest.len().checked_sub(len as usize) {
        Some(split) => (&rest[..split], Some(&rest[split..])),
        None => (data, None),
    }
}

/// Joins two parts the way [`split_second_part`] takes them apart (for
/// building seeds).
pub fn join_parts(first: &[u8], second: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(first.len() + second.len() + 8);
    out.extend_from_slice(first);
    out.extend_from_slice(second);
    out.extend_from_slice(&(second.len() as u32).to_le_bytes());
    out.extend_from_slice(SECOND_PART_MAGIC);
    out
}
