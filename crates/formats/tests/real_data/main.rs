//! End-to-end tests of the ingest paths on real profiles from
//! `shared/testdata` (see its SOURCES.md).
//!
//! Expectations are computed independently of the crate: files are
//! inflated with flate2 and decoded with prost directly, and sums are taken
//! by hand. The test data folder is `$KILN_TESTDATA`, or `shared/testdata`
//! next to the repository.
//!
//! One test binary: the format-specific scenarios live in the modules below.

#![expect(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] functions fail loudly on broken fixtures"
)]

mod every_parser;
mod go_fix;
mod jfr;
mod legacy_trees;
mod otlp;
mod speedscope;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use prost::Message;

use kiln_formats::ingest::{
    IngestBody, IngestParams, MultipartPart, parse_app_name, profiles_from_ingest,
};
use kiln_formats::pprof::ValidationMode;
use kiln_formats::push::profiles_from_push_series;
use kiln_formats::{FormatError, Limits, SeriesProfile};
use kiln_proto::google::v1::Profile;
use kiln_proto::push::v1::PushRequest;
use kiln_proto::types::v1::LabelPair;

const NOW: i64 = 1_800_000_000_000_000_000;
const FROM_S: i64 = 1_700_000_000;
const UNTIL_S: i64 = 1_700_000_010;

fn testdata() -> PathBuf {
    if let Some(dir) = std::env::var_os("KILN_TESTDATA") {
        return PathBuf::from(dir);
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata");
    assert!(
        dir.is_dir(),
        "test data not found at {}; set KILN_TESTDATA",
        dir.display()
    );
    dir
}

fn read(rel: &str) -> Vec<u8> {
    let path = testdata().join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Inflates gzip by hand (all members), independent of the crate.
fn inflate(data: &[u8]) -> Vec<u8> {
    if data.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(data)
            .read_to_end(&mut out)
            .unwrap();
        out
    } else {
        data.to_vec()
    }
}

fn raw_profile(rel: &str) -> Profile {
    Profile::decode(&*inflate(&read(rel))).unwrap()
}

/// Sum of values per sample type name (with `-` read as `_`), by hand.
fn raw_sums(p: &Profile) -> BTreeMap<String, i128> {
    let mut sums = BTreeMap::new();
    for (i, vt) in p.sample_type.iter().enumerate() {
        let name = p.string_table[vt.r#type as usize].replace('-', "_");
        let total: i128 = p.sample.iter().map(|s| i128::from(s.value[i])).sum();
        *sums.entry(name).or_insert(0) += total;
    }
    sums
}

fn output_sums(out: &[SeriesProfile]) -> BTreeMap<String, i128> {
    let mut sums = BTreeMap::new();
    for sp in out {
        let p = &sp.profile;
        for (i, vt) in p.sample_type.iter().enumerate() {
            let name = p.string_table[vt.r#type as usize].clone();
            let total: i128 = p.sample.iter().map(|s| i128::from(s.value[i])).sum();
            *sums.entry(name).or_insert(0) += total;
        }
    }
    sums
}

/// (function-name stack, root first, `;`-joined → summed value of column
/// `value_index`) of a profile, resolved by hand; inlined lines of a
/// location count as frames, callers first.
fn resolved_stacks(p: &Profile, value_index: usize) -> BTreeMap<String, i128> {
    let locations: std::collections::HashMap<u64, &kiln_proto::google::v1::Location> =
        p.location.iter().map(|l| (l.id, l)).collect();
    let functions: std::collections::HashMap<u64, &str> = p
        .function
        .iter()
        .map(|f| (f.id, p.string_table[f.name as usize].as_str()))
        .collect();
    let mut out = BTreeMap::new();
    for s in &p.sample {
        let mut frames: Vec<&str> = Vec::new();
        for id in s.location_id.iter().rev() {
            for line in locations[id].line.iter().rev() {
                frames.push(functions[&line.function_id]);
            }
        }
        *out.entry(frames.join(";")).or_insert(0) += i128::from(s.value[value_index]);
    }
    out.retain(|_, v| *v != 0);
    out
}

/// [`resolved_stacks`] summed over several profiles.
fn resolved_stacks_of<'a>(
    profiles: impl IntoIterator<Item = &'a Profile>,
    value_index: usize,
) -> BTreeMap<String, i128> {
    let mut out = BTreeMap::new();
    for p in profiles {
        for (stack, v) in resolved_stacks(p, value_index) {
            *out.entry(stack).or_insert(0) += v;
        }
    }
    out
}

fn pair(name: &str, value: &str) -> LabelPair {
    LabelPair {
        name: name.to_owned(),
        value: value.to_owned(),
    }
}

fn query(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn params(pairs: &[(&str, &str)]) -> IngestParams {
    let from = FROM_S.to_string();
    let until = UNTIL_S.to_string();
    let mut q = query(&[("from", &from), ("until", &until)]);
    q.splice(0..0, query(pairs));
    IngestParams::from_query(&q, NOW).unwrap()
}

fn ingest_raw(
    pairs: &[(&str, &str)],
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Vec<SeriesProfile>, FormatError> {
    profiles_from_ingest(
        &params(pairs),
        content_type,
        IngestBody::Raw(Bytes::copy_from_slice(body)),
        &Limits::default(),
        NOW,
    )
}

fn file_part(name: &str, data: Vec<u8>) -> MultipartPart {
    MultipartPart {
        name: name.to_owned(),
        filename: Some(name.to_owned()),
        content_type: Some("application/octet-stream".to_owned()),
        data: Bytes::from(data),
    }
}

fn ingest_multipart(
    pairs: &[(&str, &str)],
    parts: Vec<MultipartPart>,
) -> Result<Vec<SeriesProfile>, FormatError> {
    profiles_from_ingest(
        &params(pairs),
        Some("multipart/form-data; boundary=xyz"),
        IngestBody::Multipart(parts),
        &Limits::default(),
        NOW,
    )
}

/// Every label set of the output has exactly one value for `name`.
fn label_values(out: &[SeriesProfile], name: &str) -> Vec<String> {
    let mut v: Vec<String> = out
        .iter()
        .map(|sp| sp.labels.get(name).unwrap_or("<none>").to_owned())
        .collect();
    v.dedup();
    v
}

/// The invariants documented on `SeriesProfile`.
fn assert_invariants(out: &[SeriesProfile]) {
    for sp in out {
        assert!(sp.labels.get("__name__").is_some_and(|n| !n.is_empty()));
        assert!(sp.labels.get("service_name").is_some());
        assert!(
            sp.labels
                .iter()
                .all(|(n, _)| n == "__name__" || !n.starts_with("__")),
            "{}",
            sp.labels
        );
        let p = &sp.profile;
        assert_ne!(p.time_nanos, 0);
        kiln_formats::pprof::validate(p, ValidationMode::Ingest, &Limits::default()).unwrap();
        let mut seen = std::collections::HashSet::new();
        for s in &p.sample {
            assert_eq!(s.value.len(), p.sample_type.len());
            assert!(s.value.iter().any(|&v| v != 0));
            assert!(s.location_id.len() <= 1000);
            for l in &s.label {
                assert_eq!(p.string_table[l.key as usize], "span_id");
                let v = &p.string_table[l.str as usize];
                assert_eq!(v.len(), 16);
                assert!(
                    v.bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                );
            }
            let key = (
                s.location_id.clone(),
                s.label
                    .first()
                    .map(|l| p.string_table[l.str as usize].clone()),
            );
            assert!(seen.insert(key), "unmerged duplicate sample");
        }
    }
}

/// Every pprof test file: (path, expected outcome through Push).
fn pprof_files() -> Vec<String> {
    let mut files = Vec::new();
    for dir in ["pprof", "pprof/phlaredb"] {
        for entry in std::fs::read_dir(testdata().join(dir)).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.file_type().unwrap().is_file() && !name.ends_with(".json") {
                files.push(format!("{dir}/{name}"));
            }
        }
    }
    for entry in std::fs::read_dir(testdata().join("captured")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if (name.ends_with(".pb.gz") || name.ends_with(".pprof.gz"))
            && !name.contains("push-request")
        {
            files.push(format!("captured/{name}"));
        }
    }
    files.sort();
    assert!(files.len() >= 35, "{files:?}");
    files
}

const INVALID_UTF8: &str = "pprof/invalid_utf8.pb.gz";
/// Dash-named sample types and zero function ids: only `/ingest` with
/// `spyName=dotnetspy` accepts them.
const DOTNET_BROKEN: &[&str] = &["pprof/dotnet-pprof-3.pb.gz"];

#[test]
fn every_pprof_through_push_keeps_its_totals() {
    for file in pprof_files() {
        let data = read(&file);
        let result = profiles_from_push_series(
            &[pair("__name__", "process_cpu"), pair("service_name", "svc")],
            &data,
            &Limits::default(),
            NOW,
        );
        if file == INVALID_UTF8 {
            let err = result.unwrap_err();
            assert!(err.to_string().contains("UTF-8"), "{file}: {err}");
            continue;
        }
        if DOTNET_BROKEN.contains(&file.as_str()) {
            let err = result.unwrap_err();
            assert!(
                matches!(err, FormatError::InvalidProfile(_)),
                "{file}: {err}"
            );
            continue;
        }
        let out = result.unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(!out.is_empty(), "{file}");
        assert_invariants(&out);
        let raw = raw_profile(&file);
        assert_eq!(output_sums(&out), raw_sums(&raw), "{file}");
        for sp in &out {
            assert_eq!(sp.labels.get("service_name"), Some("svc"));
            assert_eq!(sp.labels.get("__name__"), Some("process_cpu"));
            if raw.time_nanos != 0 {
                assert_eq!(sp.profile.time_nanos, raw.time_nanos, "{file}");
            } else {
                assert_eq!(sp.profile.time_nanos, NOW, "{file}");
            }
        }
    }
}

#[test]
fn every_pprof_through_ingest_keeps_its_totals() {
    for file in pprof_files() {
        let data = read(&file);
        let spy = if file.contains("dotnet") {
            "dotnetspy"
        } else {
            "gospy"
        };
        let name = "myapp.cpu{env=prod}";
        let raw_result = ingest_raw(
            &[("name", name), ("format", "pprof"), ("spyName", spy)],
            Some("binary/octet-stream"),
            &data,
        );
        let form_result = ingest_multipart(
            &[("name", name), ("spyName", spy)],
            vec![file_part("profile", data.clone())],
        );
        if file == INVALID_UTF8 {
            for r in [raw_result, form_result] {
                let err = r.unwrap_err();
                assert!(err.to_string().contains("UTF-8"), "{file}: {err}");
            }
            continue;
        }
        let raw = raw_profile(&file);
        for out in [raw_result, form_result] {
            let out = out.unwrap_or_else(|e| panic!("{file}: {e}"));
            assert_invariants(&out);
            assert_eq!(output_sums(&out), raw_sums(&raw), "{file}");
            for sp in &out {
                assert_eq!(sp.labels.get("service_name"), Some("myapp.cpu"));
                assert_eq!(sp.labels.get("env"), Some("prod"));
                assert_eq!(sp.labels.get("pyroscope_spy"), Some(spy));
                let t = sp.profile.time_nanos;
                if raw.time_nanos < 365 * 86_400 * 1_000_000_000 {
                    assert_eq!(t, FROM_S * 1_000_000_000, "{file}");
                } else {
                    assert_eq!(t, raw.time_nanos, "{file}");
                }
                let types: Vec<&str> = sp
                    .profile
                    .sample_type
                    .iter()
                    .map(|vt| sp.profile.string_table[vt.r#type as usize].as_str())
                    .collect();
                assert!(types.iter().all(|t| !t.contains('-')), "{file}: {types:?}");
            }
        }
    }
}

#[test]
fn dotnet_dash_profile_is_repaired_by_ingest() {
    let data = read("pprof/dotnet-pprof-3.pb.gz");
    let config = read("pprof/dotnet-pprof-3.st.json");
    let out = ingest_multipart(
        &[("name", "dotnetapp"), ("spyName", "dotnetspy")],
        vec![
            file_part("profile", data.clone()),
            file_part("sample_type_config", config),
        ],
    )
    .unwrap();
    assert_eq!(label_values(&out, "__name__"), vec!["process_cpu"]);
    let sums = output_sums(&out);
    assert!(sums.contains_key("alloc_samples"), "{sums:?}");
    assert_eq!(sums, raw_sums(&raw_profile("pprof/dotnet-pprof-3.pb.gz")));
    // without the dotnet spy name the zero function ids stay broken
    let err = ingest_raw(&[("name", "dotnetapp"), ("format", "pprof")], None, &data).unwrap_err();
    assert!(err.to_string().contains("function id is 0"), "{err}");
}

fn ingest_name_of(file: &str, config: Option<&str>, spy: &str) -> String {
    let mut parts = vec![file_part("profile", read(file))];
    if let Some(c) = config {
        parts.push(file_part("sample_type_config", read(c)));
    }
    let out = ingest_multipart(&[("name", "app"), ("spyName", spy)], parts)
        .unwrap_or_else(|e| panic!("{file}: {e}"));
    let names = label_values(&out, "__name__");
    assert_eq!(names.len(), 1, "{file}: {names:?}");
    names[0].clone()
}

#[test]
fn ingest_derives_profile_names_like_pyroscope() {
    let cases: &[(&str, Option<&str>, &str)] = &[
        ("pprof/cpu.pb.gz", None, "process_cpu"),
        (
            "captured/go1.19-runtime-pprof.cpu.pb.gz",
            None,
            "process_cpu",
        ),
        ("pprof/heap", None, "memory"),
        ("captured/go1.19-runtime-pprof.heap.pb.gz", None, "memory"),
        (
            "pprof/req_2.pprof",
            Some("pprof/req_2.st.json"),
            "goroutines",
        ),
        ("pprof/req_3.pprof", Some("pprof/req_3.st.json"), "block"),
        ("pprof/req_4.pprof", Some("pprof/req_4.st.json"), "mutex"),
        ("pprof/req_5.pprof", Some("pprof/req_5.st.json"), "memory"),
        ("pprof/nodejs-wall.pb.gz", None, "wall"),
        (
            "captured/nodejs-pyroscope-0.6.4.ingest-wall.pprof.gz",
            None,
            "wall",
        ),
        (
            "captured/nodejs-pyroscope-0.6.4.ingest-heap.pprof.gz",
            None,
            "memory",
        ),
        ("pprof/heap-js.pprof", None, "memory"),
        ("pprof/profile_python", None, "process_cpu"),
    ];
    for (file, config, expected) in cases {
        assert_eq!(&ingest_name_of(file, *config, "gospy"), expected, "{file}");
    }
    // the built-in defaults make Go block profiles "mutex" without a config
    assert_eq!(ingest_name_of("pprof/req_3.pprof", None, "gospy"), "mutex");
    // a config replaces the defaults: goroutine without display name stays as is
    assert_eq!(
        ingest_name_of("pprof/req_2.pprof", Some("pprof/req_5.st.json"), "gospy"),
        "goroutine"
    );
}

#[test]
fn ingest_go_cpu_profile_types() {
    let out = ingest_raw(
        &[
            ("name", "goapp{service_name=api,region=eu}"),
            ("format", "pprof"),
        ],
        None,
        &read("pprof/cpu.pb.gz"),
    )
    .unwrap();
    assert_eq!(out.len(), 1);
    let sp = &out[0];
    assert_eq!(
        sp.labels.to_string(),
        r#"{__name__="process_cpu", app_name="goapp", pyroscope_spy="unknown", region="eu", service_name="api"}"#
    );
    let p = &sp.profile;
    let s = |i: i64| p.string_table[i as usize].as_str();
    let types: Vec<(&str, &str)> = p
        .sample_type
        .iter()
        .map(|vt| (s(vt.r#type), s(vt.unit)))
        .collect();
    assert_eq!(types, vec![("samples", "count"), ("cpu", "nanoseconds")]);
    let pt = p.period_type.unwrap();
    assert_eq!((s(pt.r#type), s(pt.unit)), ("cpu", "nanoseconds"));
}

#[test]
fn span_ids_stay_on_samples_and_other_labels_are_promoted() {
    for (file, span_label) in [
        ("pprof/single_group_with_optional_span_id.pb.gz", "span_id"),
        ("pprof/go.cpu.labels.pprof", "profile_id"),
    ] {
        let raw = raw_profile(file);
        let s = |i: i64| raw.string_table[i as usize].as_str();
        let mut raw_with_span = 0usize;
        let mut promoted_names = std::collections::BTreeSet::new();
        for sample in &raw.sample {
            for l in &sample.label {
                if s(l.key) == span_label {
                    raw_with_span += 1;
                } else if l.str != 0 && s(l.key) != "trace_id" {
                    promoted_names.insert(s(l.key).to_owned());
                }
            }
        }
        assert!(raw_with_span > 0, "{file}");
        let out = profiles_from_push_series(
            &[pair("__name__", "process_cpu"), pair("service_name", "svc")],
            &read(file),
            &Limits::default(),
            NOW,
        )
        .unwrap();
        assert_invariants(&out);
        assert_eq!(output_sums(&out), raw_sums(&raw));
        let kept: usize = out
            .iter()
            .flat_map(|sp| &sp.profile.sample)
            .filter(|s| !s.label.is_empty())
            .count();
        if file.contains("single_group") {
            // its span ids ("239") are not 16 hex digits: the documented
            // invariant drops them rather than storing unusable ids
            assert_eq!(kept, 0, "{file}");
        } else {
            assert!(kept > 0, "{file}: no span ids kept");
        }
        for name in &promoted_names {
            assert!(
                out.iter().any(|sp| sp.labels.get(name).is_some()),
                "{file}: {name} not promoted"
            );
        }
        assert!(
            out.iter()
                .all(|sp| sp.labels.get("span_id").is_none()
                    && sp.labels.get("profile_id").is_none())
        );
        if file.contains("go.cpu.labels") {
            assert!(promoted_names.contains("foo"), "{promoted_names:?}");
            assert!(out.len() > 1);
        }
    }
}

/// Folded totals computed with a plain rsplit, independent of the crate.
fn folded_total(text: &str) -> i64 {
    text.lines()
        .filter_map(|l| l.rsplit_once(' '))
        .map(|(_, n)| n.trim().parse::<i64>().unwrap())
        .sum()
}

#[test]
fn folded_files_parse_with_their_totals() {
    for file in [
        "captured/py-spy-0.4.3.raw.folded",
        "collapsed/pprof-string.txt",
    ] {
        let data = read(file);
        let expected = folded_total(std::str::from_utf8(&data).unwrap());
        assert!(expected > 0);
        let stacks = kiln_formats::folded::parse_folded(&data, 16_000).unwrap();
        assert_eq!(
            stacks.iter().map(|(_, v)| v).sum::<i64>(),
            expected,
            "{file}"
        );

        // default rate 100 Hz: one sample is 10 ms of CPU
        let out = ingest_raw(&[("name", "myapp.cpu{env=prod}")], None, &data).unwrap();
        assert_invariants(&out);
        assert_eq!(out.len(), 1);
        let sp = &out[0];
        assert_eq!(
            sp.labels.to_string(),
            r#"{__name__="process_cpu", env="prod", pyroscope_spy="unknown", service_name="myapp"}"#
        );
        let p = &sp.profile;
        let s = |i: i64| p.string_table[i as usize].as_str();
        assert_eq!(
            (s(p.sample_type[0].r#type), s(p.sample_type[0].unit)),
            ("cpu", "nanoseconds")
        );
        let pt = p.period_type.unwrap();
        assert_eq!((s(pt.r#type), s(pt.unit)), ("cpu", "nanoseconds"));
        assert_eq!(p.period, 10_000_000);
        assert_eq!(p.time_nanos, FROM_S * 1_000_000_000);
        assert_eq!(p.duration_nanos, (UNTIL_S - FROM_S) * 1_000_000_000);
        assert_eq!(p.mapping.len(), 1);
        assert_eq!(p.function.len(), p.location.len());
        assert_eq!(
            output_sums(&out),
            BTreeMap::from([("cpu".to_owned(), i128::from(expected) * 10_000_000)])
        );

        // sampleRate=0 keeps samples/count without a period type
        let out = ingest_raw(&[("name", "myapp"), ("sampleRate", "0")], None, &data).unwrap();
        let p = &out[0].profile;
        let s = |i: i64| p.string_table[i as usize].as_str();
        assert_eq!(
            (s(p.sample_type[0].r#type), s(p.sample_type[0].unit)),
            ("samples", "count")
        );
        assert!(p.period_type.is_none());
        assert_eq!(
            output_sums(&out),
            BTreeMap::from([("samples".to_owned(), i128::from(expected))])
        );
    }
}

#[test]
fn legacy_text_kinds_and_labels() {
    let body = b"main;alloc 100\nmain;grow 50\n";
    let type_of = |out: &[SeriesProfile]| {
        let p = &out[0].profile;
        let s = |i: i64| p.string_table[i as usize].clone();
        (
            out[0].labels.get("__name__").unwrap().to_owned(),
            s(p.sample_type[0].r#type),
            s(p.sample_type[0].unit),
            p.period_type.map(|pt| (s(pt.r#type), s(pt.unit))),
            output_sums(out).into_values().sum::<i128>(),
        )
    };
    let out = ingest_raw(&[("name", "myapp.alloc_space")], None, body).unwrap();
    assert_eq!(
        type_of(&out),
        (
            "memory".into(),
            "alloc_space".into(),
            "bytes".into(),
            None,
            150
        )
    );
    let out = ingest_raw(&[("name", "myapp.wall"), ("sampleRate", "50")], None, body).unwrap();
    assert_eq!(
        type_of(&out),
        (
            "wall".into(),
            "wall".into(),
            "nanoseconds".into(),
            Some(("cpu".into(), "nanoseconds".into())),
            150 * 20_000_000
        )
    );
    let out = ingest_raw(&[("name", "myapp.goroutines")], None, body).unwrap();
    assert_eq!(
        type_of(&out),
        (
            "goroutine".into(),
            "goroutines".into(),
            "count".into(),
            None,
            150
        )
    );
    let out = ingest_raw(&[("name", "myapp.lock_duration")], None, body).unwrap();
    assert_eq!(
        type_of(&out),
        (
            "block".into(),
            "delay".into(),
            "nanoseconds".into(),
            None,
            150
        )
    );
    // lines: every line counts one
    let out = ingest_raw(
        &[
            ("name", "myapp.cpu"),
            ("format", "lines"),
            ("sampleRate", "0"),
        ],
        None,
        b"a;b\na;b\na;c\n",
    )
    .unwrap();
    assert_eq!(type_of(&out).4, 3);

    // unknown kind suffix
    let err = ingest_raw(&[("name", "myapp.bogus")], None, body).unwrap_err();
    assert_eq!(err.to_string(), r#"unknown profile type "bogus""#);
    // service_name given explicitly: the app goes to app_name
    let out = ingest_raw(&[("name", "myapp.cpu{service_name=svc}")], None, body).unwrap();
    assert_eq!(out[0].labels.get("service_name"), Some("svc"));
    assert_eq!(out[0].labels.get("app_name"), Some("myapp"));
    // profile_id on a text upload: silently nothing
    let out = ingest_raw(&[("name", "myapp.cpu{profile_id=abc}")], None, body).unwrap();
    assert!(out.is_empty());
    // bad count names the line
    let err = ingest_raw(&[("name", "myapp.cpu")], None, b"a 1\nb x\n").unwrap_err();
    assert!(matches!(err, FormatError::Folded { line: 2, .. }), "{err}");
    // __session_id__ and __delta__ never reach the series
    let out = ingest_raw(
        &[("name", "myapp.cpu{__session_id__=0123456789abcdef,x=1}")],
        None,
        body,
    )
    .unwrap();
    assert_eq!(
        out[0].labels.to_string(),
        r#"{__name__="process_cpu", pyroscope_spy="unknown", service_name="myapp", x="1"}"#
    );
}

#[test]
fn malformed_bodies_of_every_format_and_limits() {
    for (format, ct, needle) in [
        ("jfr", None, "convert JFR"),
        ("speedscope", None, "parse speedscope JSON"),
        ("trie", None, "parse trie body"),
        ("tree", None, "parse tree body"),
        ("", Some("binary/octet-stream+trie"), "parse trie body"),
        ("", Some("binary/octet-stream+tree"), "parse tree body"),
    ] {
        let err = ingest_raw(&[("name", "app"), ("format", format)], ct, b"x").unwrap_err();
        assert!(err.to_string().contains(needle), "{format}: {err}");
        assert_eq!(
            kiln_model::HasErrorCode::code(&err),
            kiln_model::ErrorCode::InvalidArgument
        );
    }
    let limits = Limits {
        max_body_bytes: 4,
        ..Limits::default()
    };
    let err = profiles_from_ingest(
        &params(&[("name", "app")]),
        None,
        IngestBody::Raw(Bytes::from_static(b"main 12345")),
        &limits,
        NOW,
    )
    .unwrap_err();
    assert!(matches!(err, FormatError::TooLarge { limit: 4, .. }));
    // prev_profile is refused, a missing profile part too
    let err = ingest_multipart(
        &[("name", "app")],
        vec![
            file_part("profile", read("pprof/cpu.pb.gz")),
            file_part("prev_profile", read("pprof/cpu.pb.gz")),
        ],
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("unsupported client version"),
        "{err}"
    );
    // as in Pyroscope, a form without a profile part is an empty upload
    let out = ingest_multipart(
        &[("name", "app")],
        vec![file_part("sample_type_config", b"{}".to_vec())],
    )
    .unwrap();
    assert!(out.is_empty());
    // a broken sample_type_config is an error
    let err = ingest_multipart(
        &[("name", "app")],
        vec![
            file_part("profile", read("pprof/cpu.pb.gz")),
            file_part("sample_type_config", b"{not json".to_vec()),
        ],
    )
    .unwrap_err();
    assert!(matches!(err, FormatError::SampleTypeConfig(_)), "{err}");
    // parts without a file name are not looked at
    let mut plain = file_part("profile", read("pprof/cpu.pb.gz"));
    plain.filename = None;
    assert!(
        ingest_multipart(&[("name", "app")], vec![plain])
            .unwrap()
            .is_empty()
    );
}

#[test]
fn pyspy_function_names_get_file_prefixes() {
    let file = "pprof/pyspy-1.pb.gz";
    let raw = raw_profile(file);
    let out = ingest_raw(
        &[("name", "py"), ("spyName", "pyspy"), ("format", "pprof")],
        None,
        &read(file),
    )
    .unwrap();
    assert_eq!(output_sums(&out), raw_sums(&raw));
    let p = &out[0].profile;
    let mut renamed = 0;
    for (f, rf) in p.function.iter().zip(&raw.function) {
        let filename = &raw.string_table[rf.filename as usize];
        let name = &raw.string_table[rf.name as usize];
        let now = &p.string_table[f.name as usize];
        if filename.is_empty() || filename.starts_with('/') {
            assert_eq!(now, name);
        } else {
            assert_eq!(now, &format!("{filename} {name}"));
            renamed += 1;
        }
    }
    assert!(renamed > 0);
    // time_nanos in microseconds is repaired from `from`
    assert!(raw.time_nanos < 365 * 86_400 * 1_000_000_000);
    assert_eq!(p.time_nanos, FROM_S * 1_000_000_000);
}

#[test]
fn captured_push_requests() {
    for (file, service, sample_label) in [
        (
            "captured/python-pyroscope-io-1.4.0.push-request.pb.gz",
            "pyagent.demo",
            Some(("phase", "busy")),
        ),
        (
            "captured/rust-pyroscope-2.1.5.push-request.pb.gz",
            "rsagent.demo",
            None,
        ),
    ] {
        let req = PushRequest::decode(&*inflate(&read(file))).unwrap();
        assert!(!req.series.is_empty());
        for series in &req.series {
            for sample in &series.samples {
                let raw = Profile::decode(&*inflate(&sample.raw_profile)).unwrap();
                let out = profiles_from_push_series(
                    &series.labels,
                    &sample.raw_profile,
                    &Limits::default(),
                    NOW,
                )
                .unwrap();
                assert_invariants(&out);
                assert_eq!(output_sums(&out), raw_sums(&raw), "{file}");
                assert!(output_sums(&out)["cpu"] > 0);
                for sp in &out {
                    assert_eq!(sp.labels.get("service_name"), Some(service));
                    assert_eq!(sp.labels.get("__name__"), Some("process_cpu"));
                    assert_eq!(sp.labels.get("env"), Some("probe"));
                    assert_eq!(sp.profile.time_nanos, raw.time_nanos);
                }
                if let Some((k, v)) = sample_label {
                    assert!(
                        out.iter().any(|sp| sp.labels.get(k) == Some(v)),
                        "{file}: no series with {k}={v}"
                    );
                }
            }
        }
    }
}

#[test]
fn query_parameters() {
    let p = IngestParams::from_query(
        &query(&[
            ("name", "app.cpu{a=1}"),
            ("from", "1700000000123"),
            ("until", "1700000000123456789"),
            ("sampleRate", "-5"),
        ]),
        NOW,
    )
    .unwrap();
    assert_eq!(p.app_name, "app.cpu");
    assert_eq!(p.from_ns, 1_700_000_000_123_000_000);
    assert_eq!(p.until_ns, 1_700_000_000_123_456_789);
    assert_eq!(p.sample_rate, 100);
    assert_eq!(p.spy_name, "unknown");
    assert_eq!(p.units, "samples");
    assert_eq!(p.aggregation_type, "sum");
    assert_eq!(p.format, None);

    let p = IngestParams::from_query(
        &query(&[
            ("name", "app"),
            ("from", "now-1h"),
            ("sampleRate", "0"),
            ("spyName", "gospy"),
            ("format", "pprof"),
        ]),
        NOW,
    )
    .unwrap();
    assert_eq!(p.from_ns, NOW - 3_600_000_000_000);
    assert_eq!(p.until_ns, NOW);
    assert_eq!(p.sample_rate, 0);
    assert_eq!(p.spy_name, "gospy");
    assert_eq!(p.format.as_deref(), Some("pprof"));

    for q in [
        query(&[]),
        query(&[("name", "")]),
        query(&[("name", "{a=b}")]),
        query(&[("name", "bad name")]),
    ] {
        let err = IngestParams::from_query(&q, NOW).unwrap_err();
        assert!(matches!(err, FormatError::InvalidName { .. }), "{err}");
    }
    let err =
        IngestParams::from_query(&query(&[("name", "a"), ("from", "yesterday")]), NOW).unwrap_err();
    assert!(
        matches!(err, FormatError::InvalidParam { name: "from", .. }),
        "{err}"
    );
}

#[test]
fn app_name_syntax() {
    let (app, labels) =
        parse_app_name(" my-app/x.cpu { env = prod , otel.scope.name=a/b:c d ,k=v}trailing")
            .unwrap();
    assert_eq!(app, "my-app/x.cpu");
    assert_eq!(
        labels.to_string(),
        r#"{env="prod", k="v", otel.scope.name="a/b:c d"}"#
    );
    let (_, labels) = parse_app_name("a{}").unwrap();
    assert!(labels.is_empty());
    for bad in ["", "  {a=b}", "a b", "a{k}", "a{=v}", "a{k-1=v}", "a{k=v"] {
        assert!(parse_app_name(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn deep_stacks_keep_their_root_side_and_totals() {
    let file = "pprof/heap";
    let raw = raw_profile(file);
    let depth = 3;
    let limits = Limits {
        max_stack_depth: depth,
        ..Limits::default()
    };
    let out = profiles_from_push_series(&[pair("__name__", "memory")], &read(file), &limits, NOW)
        .unwrap();
    assert_eq!(output_sums(&out), raw_sums(&raw));
    // the root-side suffixes (location ids are leaf first) of the raw stacks
    let roots: std::collections::HashSet<Vec<u64>> = raw
        .sample
        .iter()
        .map(|s| s.location_id[s.location_id.len().saturating_sub(depth)..].to_vec())
        .collect();
    let mut truncated_any = false;
    for sp in &out {
        for s in &sp.profile.sample {
            assert!(s.location_id.len() <= depth);
            assert!(roots.contains(&s.location_id), "{:?}", s.location_id);
        }
        truncated_any |= sp.profile.sample.len() < raw.sample.len();
    }
    assert!(raw.sample.iter().any(|s| s.location_id.len() > depth));
    assert!(truncated_any, "truncated stacks were not merged");
}

#[test]
fn gzip_bomb_as_profile_is_too_large() {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(&vec![0u8; 8 << 20]).unwrap();
    let bomb = enc.finish().unwrap();
    let limits = Limits {
        max_profile_bytes: 1 << 20,
        ..Limits::default()
    };
    let start = std::time::Instant::now();
    let err = profiles_from_push_series(&[pair("__name__", "x")], &bomb, &limits, NOW).unwrap_err();
    assert!(matches!(err, FormatError::TooLarge { .. }), "{err}");
    assert_eq!(
        kiln_model::HasErrorCode::code(&err),
        kiln_model::ErrorCode::PayloadTooLarge
    );
    assert!(start.elapsed() < std::time::Duration::from_secs(2));
    let err = ingest_raw(&[("name", "app"), ("format", "pprof")], None, &bomb);
    // the default 4 MiB limit also stops it
    assert!(matches!(err, Err(FormatError::TooLarge { .. })));
}
