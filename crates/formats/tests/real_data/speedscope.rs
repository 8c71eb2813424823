//! speedscope uploads: totals computed here from the JSON with serde_json,
//! times the documented precision factor and period; names and labels as
//! documented in `kiln_formats::speedscope`.

use serde_json::Value;

use super::*;

/// (precision factor, period in ns) for a unit with the default rate.
fn documented_scaling(unit: &str) -> (f64, i128) {
    match unit {
        "seconds" => (100.0, 10_000_000),  // rate 100
        "milliseconds" => (100.0, 10_000), // rate 1e5
        "microseconds" => (100.0, 10),     // rate 1e8
        "nanoseconds" => (1.0, 1),         // rate 1e9
        "none" => (100.0, 100_000),        // rate 1e4
        "bytes" => (1.0, 1),               // not scaled
        other => panic!("unit {other}"),
    }
}

/// The summed weight (sampled) or covered time (evented) of a profile.
fn raw_amount(profile: &Value) -> f64 {
    match profile["type"].as_str().unwrap() {
        "sampled" => profile["weights"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w.as_f64().unwrap())
            .sum(),
        "evented" => {
            let mut open = 0i64;
            let mut last = profile["startValue"].as_f64().unwrap_or(0.0);
            let mut covered = 0.0;
            for e in profile["events"].as_array().unwrap() {
                let at = e["at"].as_f64().unwrap();
                if open > 0 {
                    covered += at - last;
                }
                open += if e["type"] == "O" { 1 } else { -1 };
                last = at;
            }
            covered
        }
        other => panic!("type {other}"),
    }
}

fn ingest_speedscope(file: &str, name: &str) -> Vec<SeriesProfile> {
    let out = ingest_raw(
        &[("name", name), ("format", "speedscope")],
        Some("application/json"),
        &read(&format!("speedscope/{file}")),
    )
    .unwrap_or_else(|e| panic!("{file}: {e}"));
    assert_invariants(&out);
    out
}

#[test]
fn speedscope_files_keep_their_totals_times_the_documented_factor() {
    for file in [
        "simple.speedscope.json",
        "two-sampled.speedscope.json",
        "two-sampled-bytes.speedscope.json",
        "duplicates.speedscope.json",
    ] {
        let json: Value = serde_json::from_slice(&read(&format!("speedscope/{file}"))).unwrap();
        let mut expected: BTreeMap<String, i128> = BTreeMap::new();
        for p in json["profiles"].as_array().unwrap() {
            let (factor, period) = documented_scaling(p["unit"].as_str().unwrap());
            let value = (raw_amount(p) * factor) as i128 * period;
            *expected
                .entry(p["name"].as_str().unwrap().to_owned())
                .or_default() += value;
        }
        let out = ingest_speedscope(file, "app{env=prod}");
        let mut got: BTreeMap<String, i128> = BTreeMap::new();
        for sp in &out {
            let total: i128 = sp
                .profile
                .sample
                .iter()
                .map(|s| i128::from(s.value[0]))
                .sum();
            *got.entry(sp.labels.get("profile_name").unwrap().to_owned())
                .or_default() += total;
            assert_eq!(sp.labels.get("env"), Some("prod"), "{file}");
            assert_eq!(sp.labels.get("service_name"), Some("app"), "{file}");
        }
        assert_eq!(got, expected, "{file}");
    }
}

fn type_of(sp: &SeriesProfile) -> String {
    let p = &sp.profile;
    let names = kiln_formats::pprof::sample_type_names(p);
    let period = p
        .period_type
        .as_ref()
        .map(|vt| {
            format!(
                "{}:{}",
                p.string_table[vt.r#type as usize], p.string_table[vt.unit as usize]
            )
        })
        .unwrap_or_else(|| ":".to_owned());
    format!(
        "{}:{}:{}:{period}",
        sp.labels.get("__name__").unwrap(),
        names[0].0,
        names[0].1
    )
}

#[test]
fn speedscope_names_labels_and_stacks() {
    // One evented profile, unit none: app name kept (kind cpu), rate 1e4.
    let out = ingest_speedscope("simple.speedscope.json", "app");
    assert_eq!(out.len(), 1);
    assert_eq!(
        type_of(&out[0]),
        "process_cpu:cpu:nanoseconds:cpu:nanoseconds"
    );
    assert_eq!(out[0].labels.get("profile_name"), Some("simple.txt"));
    // Pyroscope's expected tree for this file, times the period 1e5.
    let stacks = resolved_stacks(&out[0].profile, 0);
    let want: BTreeMap<String, i128> = [("a;b", 500), ("a;b;c", 500), ("a;b;d", 400)]
        .into_iter()
        .map(|(s, v)| (s.to_owned(), v * 100_000))
        .collect();
    assert_eq!(stacks, want);

    // Two profiles in seconds: app names get ".seconds" → wall.
    let out = ingest_speedscope("two-sampled.speedscope.json", "app");
    assert_eq!(out.len(), 2);
    assert_eq!(label_values(&out, "profile_name"), ["one", "two"]);
    for sp in &out {
        assert_eq!(type_of(sp), "wall:wall:nanoseconds:cpu:nanoseconds");
        let want: BTreeMap<String, i128> = [("a;b", 500), ("a;b;c", 500), ("a;b;d", 400)]
            .into_iter()
            .map(|(s, v)| (s.to_owned(), v * 10_000_000))
            .collect();
        assert_eq!(resolved_stacks(&sp.profile, 0), want);
    }

    // Two profiles in bytes: ".bytes" → memory, not scaled.
    let out = ingest_speedscope("two-sampled-bytes.speedscope.json", "app");
    assert_eq!(out.len(), 2);
    for sp in &out {
        assert_eq!(type_of(sp), "memory:samples:bytes::");
    }

    // Three identical profiles merge into one (kind cpu, unsuffixed).
    let out = ingest_speedscope("duplicates.speedscope.json", "app");
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].labels.get("profile_name"), Some("one"));
    let want: BTreeMap<String, i128> = [("a;b", 1500), ("a;b;c", 1500), ("a;b;d", 1200)]
        .into_iter()
        .map(|(s, v)| (s.to_owned(), v * 10_000_000))
        .collect();
    assert_eq!(resolved_stacks(&out[0].profile, 0), want);

    // An explicit sampleRate is kept: 14 units × 100 at 1e9/1000 ns.
    let out = ingest_raw(
        &[
            ("name", "app"),
            ("format", "speedscope"),
            ("sampleRate", "1000"),
        ],
        None,
        &read("speedscope/simple.speedscope.json"),
    )
    .unwrap();
    assert_eq!(output_sums(&out)["cpu"], 14 * 100 * 1_000_000);
}
