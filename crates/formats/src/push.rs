//! The Push API (`push.v1.PusherService/Push`): one series of a
//! `PushRequest` (labels + raw pprof) into normalised profiles.
//!
//! The transport layer decodes the `PushRequest` itself (Connect proto or
//! JSON, gRPC) and calls [`profiles_from_push_series`] once per
//! `RawSample`.

use rustc_hash::FxHashSet;

use kiln_model::Labels;
use kiln_proto::types::v1::LabelPair;

use crate::error::shorten;
use crate::normalize::{NormalizeOptions, normalize};
use crate::pprof::{self, ValidationMode};
use crate::{FormatError, Limits, SeriesProfile};

/// Decodes `raw_profile` (pprof, gzip sniffed, at most
/// `limits.max_profile_bytes` decompressed), validates it with the Push
/// rules and normalises it with the series `labels`.
///
/// `now_ns` replaces a zero `time_nanos`. Duplicate label names are
/// rejected.
pub fn profiles_from_push_series(
    labels: &[LabelPair],
    raw_profile: &[u8],
    limits: &Limits,
    now_ns: i64,
) -> Result<Vec<SeriesProfile>, FormatError> {
    profiles_and_decoded_size_from_push_series(labels, raw_profile, limits, now_ns)
        .map(|(profiles, _)| profiles)
}

/// [`profiles_from_push_series`], also returning the size of the pprof
/// after decompression: Pyroscope caps the sum of these over one push at
/// the body limit, so that a push of many small gzip bombs costs at most
/// that much inflation.
pub fn profiles_and_decoded_size_from_push_series(
    labels: &[LabelPair],
    raw_profile: &[u8],
    limits: &Limits,
    now_ns: i64,
) -> Result<(Vec<SeriesProfile>, usize), FormatError> {
    let labels = labels_from_pairs(labels)?;
    let raw =
        crate::compress::decompress_bounded(raw_profile, limits.max_profile_bytes, "profile")?;
    let decoded_size = raw.len();
    let profile = pprof::decode_uncompressed(&raw)?;
    drop(raw);
    let profiles = normalize(
        labels,
        profile,
        limits,
        NormalizeOptions {
            mode: ValidationMode::Push,
            now_ns,
        },
    )?;
    Ok((profiles, decoded_size))
}

/// Builds a label set from wire label pairs, rejecting duplicate names.
pub fn labels_from_pairs(pairs: &[LabelPair]) -> Result<Labels, FormatError> {
    let mut seen = FxHashSet::default();
    for p in pairs {
        if !seen.insert(p.name.as_str()) {
            return Err(FormatError::InvalidLabel {
                name: shorten(&p.name),
                reason: "duplicate label name".to_owned(),
            });
        }
    }
    Ok(Labels::from_pairs(
        pairs.iter().map(|p| (p.name.clone(), p.value.clone())),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pprof::ProfileBuilder;

    fn pair(name: &str, value: &str) -> LabelPair {
        LabelPair {
            name: name.to_owned(),
            value: value.to_owned(),
        }
    }

    #[test]
    fn decodes_validates_and_normalises() {
        let mut b = ProfileBuilder::new();
        b.add_sample_type("cpu", "nanoseconds")
            .add_sample(&["main", "work"], vec![10]);
        let raw = pprof::encode_gzip(&b.finish()).unwrap();
        let out = profiles_from_push_series(
            &[pair("__name__", "process_cpu"), pair("__delta__", "false")],
            &raw,
            &Limits::default(),
            42,
        )
        .unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(
            out[0].labels.to_string(),
            r#"{__name__="process_cpu", service_name="unknown_service"}"#
        );
        assert_eq!(out[0].profile.time_nanos, 42);
    }

    #[test]
    fn reports_the_decompressed_size() {
        let mut b = ProfileBuilder::new();
        b.add_sample_type("cpu", "nanoseconds")
            .add_sample(&["main", "work"], vec![10]);
        let profile = b.finish();
        let plain = pprof::encode(&profile);
        let gz = pprof::encode_gzip(&profile).unwrap();
        let labels = [pair("__name__", "process_cpu")];
        for raw in [&plain, &gz] {
            let (out, size) =
                profiles_and_decoded_size_from_push_series(&labels, raw, &Limits::default(), 1)
                    .unwrap();
            assert_eq!(out.len(), 1);
            assert_eq!(size, plain.len());
        }
    }

    #[test]
    fn rejects_duplicate_names_and_dashes() {
        let err = labels_from_pairs(&[pair("a", "1"), pair("a", "2")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"invalid label "a": duplicate label name"#
        );
        let mut b = ProfileBuilder::new();
        b.add_sample_type("alloc-samples", "count")
            .add_sample(&["x"], vec![1]);
        let raw = pprof::encode(&b.finish());
        let err =
            profiles_from_push_series(&[pair("__name__", "memory")], &raw, &Limits::default(), 1)
                .unwrap_err();
        assert!(err.to_string().contains("contains '-'"), "{err}");
    }
}
