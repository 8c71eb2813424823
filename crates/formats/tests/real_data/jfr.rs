//! JFR uploads through `/ingest` (raw, gzip, multipart with a labels
//! snapshot), against Pyroscope's expected pprofs and a JDK recording.

use super::*;

const DUMP1: &str = "jfr/pyroscope/dump1.jfr.gz";
const DUMP1_LABELS: &str = "jfr/pyroscope/dump1.labels.pb.gz";
const JAVA17: &str = "captured/java17-jfr.busy.jfr";

/// Totals of Pyroscope's expected pprofs for dump1: the base series file
/// holds the whole profile (the largest total), each other file the
/// samples of one `thread_name`.
fn dump1_expected_totals() -> (i128, Vec<i128>) {
    let mut totals = Vec::new();
    for entry in std::fs::read_dir(testdata().join("jfr/pyroscope")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name.starts_with("dump1.jfr.gz.process_cpu_cpu_nanoseconds_cpu_nanoseconds.") {
            let p = raw_profile(&format!("jfr/pyroscope/{name}"));
            totals.push(raw_sums(&p)["cpu"]);
        }
    }
    totals.sort();
    assert_eq!(totals.len(), 5);
    let base = totals.pop().unwrap();
    (base, totals)
}

fn total_cpu(out: &[SeriesProfile]) -> i128 {
    output_sums(out).get("cpu").copied().unwrap_or(0)
}

fn jfr_query<'a>(name: &'a str, rate: &'a str) -> [(&'a str, &'a str); 4] {
    [
        ("name", name),
        ("format", "jfr"),
        ("spyName", "javaspy"),
        ("sampleRate", rate),
    ]
}

#[test]
fn jfr_multipart_with_labels_splits_by_thread_name_like_pyroscope() {
    let (base, labelled) = dump1_expected_totals();
    let out = ingest_multipart(
        &jfr_query("javaapp{env=prod,__session_id__=0123456789abcdef}", "100"),
        vec![
            file_part("jfr", read(DUMP1)),
            file_part("labels", read(DUMP1_LABELS)),
        ],
    )
    .unwrap();
    assert_invariants(&out);
    assert_eq!(out.len(), 5, "one series per thread_name plus the rest");
    let mut threads = Vec::new();
    let mut labelled_totals = Vec::new();
    for sp in &out {
        let mut labels = sp.labels.clone();
        if let Some(thread) = labels.remove("thread_name") {
            threads.push(thread);
            labelled_totals.push(total_cpu(std::slice::from_ref(sp)));
        }
        assert_eq!(
            labels.to_string(),
            r#"{__name__="process_cpu", env="prod", jfr_event="itimer", pyroscope_spy="javaspy", service_name="javaapp"}"#
        );
        let p = &sp.profile;
        let names = kiln_formats::pprof::sample_type_names(p);
        assert_eq!(names, vec![("cpu", "nanoseconds")]);
        let period = p.period_type.as_ref().unwrap();
        assert_eq!(p.string_table[period.r#type as usize], "cpu");
        assert_eq!(p.period, 10_000_000);
        assert_eq!(p.time_nanos, FROM_S * 1_000_000_000);
        assert_eq!(p.duration_nanos, (UNTIL_S - FROM_S) * 1_000_000_000);
    }
    threads.sort();
    assert_eq!(
        threads,
        [
            "pool-2-thread-1",
            "pool-2-thread-3",
            "pool-2-thread-5",
            "pool-2-thread-7"
        ]
    );
    labelled_totals.sort();
    assert_eq!(labelled_totals, labelled);
    assert_eq!(total_cpu(&out), base);
}

#[test]
fn jfr_raw_bodies_plain_or_gzipped_and_forms_without_labels() {
    let (base, _) = dump1_expected_totals();
    let gz = read(DUMP1);
    let plain = inflate(&gz);
    assert!(plain.starts_with(b"FLR\0"));
    let raw_gz = ingest_raw(&jfr_query("javaapp", "100"), None, &gz).unwrap();
    let raw_plain = ingest_raw(&jfr_query("javaapp", "100"), None, &plain).unwrap();
    let form = ingest_multipart(
        &jfr_query("javaapp", "100"),
        vec![
            file_part("jfr", plain.clone()),
            file_part("labels", Vec::new()),
        ],
    )
    .unwrap();
    for out in [&raw_gz, &raw_plain, &form] {
        assert_invariants(out);
        assert_eq!(out.len(), 1, "no snapshot: no context labels");
        assert_eq!(total_cpu(out), base);
    }
    assert_eq!(raw_gz, raw_plain);
    // service_name in the braces moves the app name to app_name
    let out = ingest_raw(&jfr_query("javaapp{service_name=svc}", "100"), None, &gz).unwrap();
    assert_eq!(label_values(&out, "service_name"), ["svc"]);
    assert_eq!(label_values(&out, "app_name"), ["javaapp"]);
}

#[test]
fn jdk17_recording_counts_every_execution_sample() {
    let data = read(JAVA17);
    for (rate, period) in [("100", 10_000_000i128), ("50", 20_000_000)] {
        let out = ingest_raw(&jfr_query("busy", rate), None, &data).unwrap();
        assert_invariants(&out);
        let cpu: Vec<&SeriesProfile> = out
            .iter()
            .filter(|sp| sp.labels.get("__name__") == Some("process_cpu"))
            .collect();
        let total: i128 = cpu
            .iter()
            .map(|sp| total_cpu(std::slice::from_ref(*sp)))
            .sum();
        assert_eq!(total, 136 * period, "sampleRate={rate}");
        // the allocation samples become a memory series; no jfr_event
        // setting in a plain JDK recording, so no such label
        assert!(
            out.iter()
                .any(|sp| sp.labels.get("__name__") == Some("memory"))
        );
        assert!(out.iter().all(|sp| sp.labels.get("jfr_event").is_none()));
    }
}

#[test]
fn jfr_upload_errors() {
    let err = ingest_multipart(
        &jfr_query("javaapp", "100"),
        vec![file_part("labels", read(DUMP1_LABELS))],
    )
    .unwrap_err();
    assert!(matches!(err, FormatError::Multipart(_)), "{err}");
    assert!(err.to_string().contains("\"jfr\" file part"), "{err}");

    let err = ingest_raw(&jfr_query("javaapp", "100"), None, b"").unwrap_err();
    assert!(err.to_string().contains("empty"), "{err}");
    let err = ingest_raw(&jfr_query("javaapp", "100"), None, b"not a recording").unwrap_err();
    assert!(matches!(err, FormatError::Jfr(_)), "{err}");
    assert_eq!(
        kiln_model::HasErrorCode::code(&err),
        kiln_model::ErrorCode::InvalidArgument
    );

    // A gzip bomb stops at max_jfr_bytes and answers 413.
    let bomb = kiln_formats::compress::gzip(&vec![0u8; 8 << 20]).unwrap();
    let limits = Limits {
        max_jfr_bytes: 1 << 20,
        ..Limits::default()
    };
    let err = profiles_from_ingest(
        &params(&jfr_query("javaapp", "100")),
        None,
        IngestBody::Raw(Bytes::from(bomb)),
        &limits,
        NOW,
    )
    .unwrap_err();
    assert!(matches!(err, FormatError::Jfr(_)), "{err}");
    assert_eq!(
        kiln_model::HasErrorCode::code(&err),
        kiln_model::ErrorCode::PayloadTooLarge
    );
}
