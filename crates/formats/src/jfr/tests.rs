//! Tests of the JFR conversion against Pyroscope's expected outputs (shared
//! test data, see `shared/testdata/SOURCES.md`), plus hostile input.

mod synthetic;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use kiln_proto::google::v1::Profile;
use prost::Message;

use super::*;

/// `from` used by the tests (any value works: it only lands in
/// `time_nanos`).
const FROM_NS: i64 = 1_700_000_000_000_000_000;
const UNTIL_NS: i64 = FROM_NS + 10_000_000_000;
const PERIOD: i64 = 10_000_000;

/// `jdk.ExecutionSample` events in `captured/java17-jfr.busy.jfr`, as
/// counted by the JDK's own tool:
/// `jfr print --events jdk.ExecutionSample java17-jfr.busy.jfr | grep -c 'jdk.ExecutionSample'`
/// (OpenJDK 17, `/usr/lib/jvm/java-17-openjdk-amd64/bin/jfr`). The test
/// re-runs the tool when it is installed.
const JAVA17_EXECUTION_SAMPLES: i64 = 136;

/// The shared test data: `$KILN_TESTDATA` (as every other test reads it),
/// else `shared/testdata` in a folder above the crate.
fn testdata() -> PathBuf {
    if let Some(dir) = std::env::var_os("KILN_TESTDATA") {
        return PathBuf::from(dir);
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .map(|dir| dir.join("shared").join("testdata"))
        .find(|dir| dir.is_dir())
        .expect("shared/testdata not found above the crate; set KILN_TESTDATA")
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|error| panic!("reading {}: {error}", path.display()))
}

fn gunzip_if_needed(bytes: Vec<u8>) -> Vec<u8> {
    if !bytes.starts_with(&[0x1f, 0x8b]) {
        return bytes;
    }
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes.as_slice())
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn options() -> JfrOptions {
    JfrOptions {
        sample_rate: 100,
        from_ns: FROM_NS,
        until_ns: UNTIL_NS,
        max_decompressed_bytes: 64 << 20,
    }
}

fn convert(recording: &Path, labels: Option<&Path>) -> Vec<JfrProfile> {
    let labels = labels.map(read);
    parse_jfr(&read(recording), labels.as_deref(), &options())
        .unwrap_or_else(|error| panic!("converting {}: {error:?}", recording.display()))
}

fn string(profile: &Profile, index: i64) -> &str {
    &profile.string_table[usize::try_from(index).unwrap()]
}

/// Renders a stack root first as `name:line;name:line`.
fn render_stack(profile: &Profile, sample: &kiln_proto::google::v1::Sample) -> String {
    let locations: BTreeMap<u64, &kiln_proto::google::v1::Location> =
        profile.location.iter().map(|l| (l.id, l)).collect();
    let functions: BTreeMap<u64, &kiln_proto::google::v1::Function> =
        profile.function.iter().map(|f| (f.id, f)).collect();
    let mut frames = Vec::new();
    for id in sample.location_id.iter().rev() {
        let location = locations[id];
        for line in location.line.iter().rev() {
            let name = string(profile, functions[&line.function_id].name);
            frames.push(format!("{name}:{}", line.line));
        }
    }
    frames.join(";")
}

fn labels_of(profile: &Profile, sample: &kiln_proto::google::v1::Sample) -> Vec<(String, String)> {
    let mut labels: Vec<(String, String)> = sample
        .label
        .iter()
        .map(|l| {
            (
                string(profile, l.key).to_owned(),
                string(profile, l.str).to_owned(),
            )
        })
        .collect();
    labels.sort();
    labels
}

/// stack → summed values, over all label sets.
fn collapse(profile: &Profile) -> BTreeMap<String, Vec<i64>> {
    let mut stacks: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for sample in &profile.sample {
        let entry = stacks
            .entry(render_stack(profile, sample))
            .or_insert_with(|| vec![0; sample.value.len()]);
        for (total, value) in entry.iter_mut().zip(&sample.value) {
            *total += value;
        }
    }
    stacks
}

/// `{metric}_{type}__{unit} {type}__{unit}` as in jfr-parser's file names.
fn collapsed_type_key(profile: &JfrProfile) -> String {
    let pprof = &profile.profile;
    let types: Vec<String> = pprof
        .sample_type
        .iter()
        .map(|t| format!("{}__{}", string(pprof, t.r#type), string(pprof, t.unit)))
        .collect();
    format!("{}_{}", profile.metric, types.join(" "))
}

/// `{metric}_{type}_{unit}_{period type}_{period unit}` per sample type, as
/// in Pyroscope's expected pprof file names.
fn pyroscope_type_keys(profile: &JfrProfile) -> Vec<String> {
    let pprof = &profile.profile;
    let (period_type, period_unit) = pprof.period_type.as_ref().map_or(("", ""), |t| {
        (string(pprof, t.r#type), string(pprof, t.unit))
    });
    pprof
        .sample_type
        .iter()
        .map(|t| {
            format!(
                "{}_{}_{}_{}_{}",
                profile.metric,
                string(pprof, t.r#type),
                string(pprof, t.unit),
                period_type,
                period_unit
            )
        })
        .collect()
}

fn parse_collapsed(text: &str) -> BTreeMap<String, Vec<i64>> {
    let mut stacks = BTreeMap::new();
    for line in text.lines().filter(|line| !line.is_empty()) {
        let (stack, values) = line.rsplit_once(" [").unwrap();
        let values: Vec<i64> = values
            .trim_end_matches(']')
            .split(' ')
            .map(|v| v.parse().unwrap())
            .collect();
        assert!(
            stacks.insert(stack.to_owned(), values).is_none(),
            "duplicate stack {stack}"
        );
    }
    stacks
}

fn describe_difference<V: std::fmt::Debug + PartialEq>(
    expected: &BTreeMap<String, V>,
    actual: &BTreeMap<String, V>,
) -> String {
    let mut lines = Vec::new();
    for (stack, value) in expected {
        match actual.get(stack) {
            None => lines.push(format!("missing: {stack} {value:?}")),
            Some(other) if other != value => {
                lines.push(format!("differs: {stack} expected {value:?} got {other:?}"))
            }
            _ => {}
        }
    }
    for (stack, value) in actual {
        if !expected.contains_key(stack) {
            lines.push(format!("unexpected: {stack} {value:?}"));
        }
    }
    let total = lines.len();
    lines.truncate(8);
    format!("{total} differences, first: \n{}", lines.join("\n"))
}

/// Every recording in the shared JFR folders, by name without `.jfr.gz`.
fn recordings() -> BTreeMap<String, PathBuf> {
    let mut recordings = BTreeMap::new();
    for folder in ["jfr/jfr-parser", "jfr/pyroscope"] {
        for entry in std::fs::read_dir(testdata().join(folder)).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if let Some(stem) = name.strip_suffix(".jfr.gz") {
                recordings.insert(stem.to_owned(), path);
            }
        }
    }
    recordings
}

fn labels_path(recording: &str) -> Option<PathBuf> {
    let path = testdata()
        .join("jfr/pyroscope")
        .join(format!("{recording}.labels.pb.gz"));
    path.is_file().then_some(path)
}

/// grafana/jfr-parser's `*_expected_collapsed.txt.gz`: for each, the
/// profile of the same type, rendered the same way, has exactly the same
/// stacks and values.
#[test]
fn jfr_matches_jfr_parser_collapsed_expectations() {
    let recordings = recordings();
    let mut checked = 0;
    let mut failures = Vec::new();
    let mut converted: BTreeMap<String, Vec<JfrProfile>> = BTreeMap::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(testdata().join("jfr/jfr-parser"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix("_expected_collapsed.txt.gz") else {
            continue;
        };
        // `{recording}_{index}_{profile type}`; the longest recording name
        // that fits wins.
        let (recording, type_key) = recordings
            .keys()
            .filter_map(|recording| {
                let rest = stem.strip_prefix(recording.as_str())?.strip_prefix('_')?;
                let (index, type_key) = rest.split_once('_')?;
                index.parse::<u32>().ok()?;
                Some((recording.clone(), type_key.to_owned()))
            })
            .max_by_key(|(recording, _)| recording.len())
            .unwrap_or_else(|| panic!("no recording for {name}"));
        let profiles = converted.entry(recording.clone()).or_insert_with(|| {
            convert(&recordings[&recording], labels_path(&recording).as_deref())
        });
        let expected = parse_collapsed(&String::from_utf8(gunzip_if_needed(read(&path))).unwrap());
        let Some(profile) = profiles.iter().find(|p| collapsed_type_key(p) == type_key) else {
            failures.push(format!("{name}: no profile of type {type_key}"));
            continue;
        };
        let actual = collapse(&profile.profile);
        if actual != expected {
            failures.push(format!(
                "{name}: {}",
                describe_difference(&expected, &actual)
            ));
        }
        checked += 1;
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert_eq!(checked, 30, "number of expected collapsed files checked");
}

/// stack → value for one sample type of a pprof, over all label sets.
fn stack_values(profile: &Profile, value_index: usize) -> BTreeMap<String, i64> {
    let mut stacks = BTreeMap::new();
    for sample in &profile.sample {
        let value = sample.value[value_index];
        if value != 0 {
            *stacks.entry(render_stack(profile, sample)).or_insert(0) += value;
        }
    }
    stacks
}

/// Pyroscope's expected pprofs (`{recording}.jfr.gz.{type}.{series hash}.pb.gz`):
/// one file per profile type and series. The file of the base series holds
/// the whole profile; each other file holds the samples of one set of
/// snapshot labels (`profile_id` stays a sample label and does not split).
/// The expected files must equal, stack by stack, our whole profile plus
/// our samples grouped by their non-empty label sets.
#[test]
fn jfr_matches_pyroscope_expected_pprofs() {
    let dir = testdata().join("jfr/pyroscope");
    let mut expected: BTreeMap<(String, String), Vec<BTreeMap<String, i64>>> = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let Some(rest) = name.strip_suffix(".pb.gz") else {
            continue;
        };
        if rest.ends_with(".labels") {
            continue;
        }
        let (recording, rest) = rest.split_once(".jfr.gz.").unwrap();
        let (type_key, _hash) = rest.rsplit_once('.').unwrap();
        let profile = Profile::decode(gunzip_if_needed(read(&path)).as_slice()).unwrap();
        assert_eq!(profile.sample_type.len(), 1, "{name}");
        expected
            .entry((recording.to_owned(), type_key.to_owned()))
            .or_default()
            .push(stack_values(&profile, 0));
    }
    assert_eq!(
        expected.len(),
        28,
        "number of (recording, profile type) pairs"
    );

    let mut failures = Vec::new();
    let mut files = 0;
    let recordings = recordings();
    let mut converted: BTreeMap<String, Vec<JfrProfile>> = BTreeMap::new();
    for ((recording, type_key), mut expected_series) in expected {
        let profiles = converted.entry(recording.clone()).or_insert_with(|| {
            convert(&recordings[&recording], labels_path(&recording).as_deref())
        });
        let Some((profile, value_index)) = profiles.iter().find_map(|p| {
            let index = pyroscope_type_keys(p).iter().position(|k| *k == type_key)?;
            Some((p, index))
        }) else {
            failures.push(format!("{recording}: no profile of type {type_key}"));
            continue;
        };
        // Our samples grouped like Pyroscope's series.
        let mut groups: BTreeMap<Vec<(String, String)>, Profile> = BTreeMap::new();
        for sample in &profile.profile.sample {
            let mut labels = labels_of(&profile.profile, sample);
            labels.retain(|(key, _)| key != "profile_id" && key != "span_id");
            let group = groups.entry(labels).or_insert_with(|| Profile {
                sample: Vec::new(),
                ..profile.profile.clone()
            });
            group.sample.push(sample.clone());
        }
        // The base series file (no snapshot labels) holds the whole,
        // unsplit profile; every other file one labelled series.
        let mut ours: Vec<BTreeMap<String, i64>> =
            vec![stack_values(&profile.profile, value_index)];
        ours.extend(
            groups
                .iter()
                .filter(|(labels, _)| !labels.is_empty())
                .map(|(_, group)| stack_values(group, value_index)),
        );
        let total = |series: &[BTreeMap<String, i64>]| -> i64 {
            series.iter().flat_map(|s| s.values()).sum()
        };
        // Sanity check of the model: the base file holds everything.
        let whole: i64 = stack_values(&profile.profile, value_index).values().sum();
        assert!(
            expected_series
                .iter()
                .any(|s| s.values().sum::<i64>() == whole)
        );
        if total(&ours) != total(&expected_series) {
            failures.push(format!(
                "{recording} {type_key}: total {} expected {}",
                total(&ours),
                total(&expected_series)
            ));
        }
        files += expected_series.len();
        ours.sort();
        expected_series.sort();
        if ours != expected_series {
            let merged = |series: &[BTreeMap<String, i64>]| {
                let mut all = BTreeMap::new();
                for s in series {
                    for (stack, value) in s {
                        *all.entry(stack.clone()).or_insert(0) += value;
                    }
                }
                all
            };
            failures.push(format!(
                "{recording} {type_key}: {} series expected, {} ours; merged: {}",
                expected_series.len(),
                ours.len(),
                describe_difference(&merged(&expected_series), &merged(&ours))
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert_eq!(files, 48, "number of expected pprof files checked");
}

/// Frames as the OG server rendered them: no line numbers, and its older
/// lambda merging (`$$Lambda$_` instead of `$$Lambda_`).
fn og_stack(stack: &str) -> String {
    stack
        .split(';')
        .map(|frame| frame.rsplit_once(':').map_or(frame, |(name, _)| name))
        .collect::<Vec<_>>()
        .join(";")
}

fn parse_folded(text: &str) -> BTreeMap<String, i64> {
    let mut stacks = BTreeMap::new();
    for line in text.lines().filter(|line| !line.is_empty()) {
        let (stack, value) = line.rsplit_once(' ').unwrap();
        *stacks
            .entry(stack.replace("$$Lambda$_", "$$Lambda_"))
            .or_insert(0) += value.parse::<i64>().unwrap();
    }
    stacks
}

/// OG series for our profiles: `(kind name, labels) → stack → plain value`
/// (CPU and wall divided by the period).
fn og_series(
    profiles: &[JfrProfile],
    cpu_kind: &str,
    profile_id_aggregates: bool,
) -> BTreeMap<(String, String), BTreeMap<String, i64>> {
    let mut series: BTreeMap<(String, String), BTreeMap<String, i64>> = BTreeMap::new();
    for profile in profiles {
        let pprof = &profile.profile;
        let names: Vec<&str> = match (
            profile.metric.as_str(),
            string(pprof, pprof.sample_type[0].r#type),
        ) {
            ("process_cpu", _) => vec![cpu_kind],
            ("wall", _) => vec!["wall"],
            ("mutex", _) => vec!["lock_count", "lock_duration"],
            ("block", _) => vec!["thread_park_count", "thread_park_duration"],
            ("memory", "live") => vec!["live"],
            ("memory", "alloc_in_new_tlab_objects") => {
                vec!["alloc_in_new_tlab_objects", "alloc_in_new_tlab_bytes"]
            }
            ("memory", "alloc_outside_tlab_objects") => {
                vec!["alloc_outside_tlab_objects", "alloc_outside_tlab_bytes"]
            }
            other => panic!("no OG name for {other:?}"),
        };
        let divisor = if profile.metric == "process_cpu" || profile.metric == "wall" {
            PERIOD
        } else {
            1
        };
        for sample in &pprof.sample {
            let labels = labels_of(pprof, sample);
            let render = |labels: &[(String, String)]| {
                labels
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(",")
            };
            // OG stored a sample with a `profile_id` both in its own series
            // and (as an exemplar's aggregate) in the series without it.
            let mut label_sets = vec![render(&labels)];
            if profile_id_aggregates && labels.iter().any(|(key, _)| key == "profile_id") {
                let without: Vec<_> = labels
                    .iter()
                    .filter(|(key, _)| key != "profile_id")
                    .cloned()
                    .collect();
                label_sets.push(render(&without));
            }
            let stack = og_stack(&render_stack(pprof, sample));
            for (index, name) in names.iter().enumerate() {
                let value = sample.value[index];
                assert_eq!(value % divisor, 0);
                if value == 0 {
                    continue;
                }
                for labels in &label_sets {
                    *series
                        .entry((name.to_string(), labels.clone()))
                        .or_default()
                        .entry(stack.clone())
                        .or_insert(0) += value / divisor;
                }
            }
        }
    }
    series
}

/// The OG-era `*.json.gz` expectations: plain event counts per OG kind and
/// label set (`app.kind{labels}` → folded text).
#[test]
fn jfr_matches_og_json_expectations() {
    let dir = testdata().join("jfr/pyroscope");
    let recordings = recordings();
    let mut failures = Vec::new();
    let mut checked = 0;
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let Some(recording) = name.strip_suffix(".json.gz") else {
            continue;
        };
        let profiles = convert(&recordings[recording], labels_path(recording).as_deref());
        let cpu_kind = match profiles.first().map(|p| p.jfr_event.as_str()) {
            Some("itimer") => "itimer",
            _ => "cpu",
        };
        let ours = og_series(&profiles, cpu_kind, true);
        let json: BTreeMap<String, String> =
            serde_json::from_slice(&gunzip_if_needed(read(&path))).unwrap();
        let mut expected = BTreeMap::new();
        for (key, folded) in &json {
            let (app_kind, labels) = key.split_once('{').unwrap();
            let kind = app_kind.rsplit_once('.').unwrap().1;
            let labels = labels.trim_end_matches('}');
            expected.insert((kind.to_owned(), labels.to_owned()), parse_folded(folded));
        }
        for key in expected.keys().chain(ours.keys()) {
            let empty = BTreeMap::new();
            let want = expected.get(key).unwrap_or(&empty);
            let got = ours.get(key).unwrap_or(&empty);
            if want != got {
                failures.push(format!(
                    "{recording} {key:?}: {}",
                    describe_difference(want, got)
                ));
            }
        }
        checked += expected.len();
    }
    failures.dedup();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert_eq!(checked, 160, "number of OG series checked");
}

/// The historical OG server fixtures: a tiny synthetic recording per case
/// and the folded output of every kind, merged over label sets.
#[test]
fn jfr_matches_og_server_fixtures() {
    for (folder, expected_folder, labels) in [
        ("jfr/og-no-labels", "jfr/og-no-labels", None),
        (
            "jfr/og-with-labels",
            "jfr/og-with-labels/0",
            Some("jfr/og-with-labels/labels.proto.bin"),
        ),
    ] {
        let recording = testdata().join(folder).join("jfr.bin.gz");
        let labels = labels.map(|path| testdata().join(path));
        let profiles = convert(&recording, labels.as_deref());
        assert!(profiles.iter().all(|p| p.jfr_event == "wall"));
        let mut merged: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
        for ((kind, _labels), stacks) in og_series(&profiles, "cpu", false) {
            let target = merged.entry(kind).or_default();
            for (stack, value) in stacks {
                *target.entry(stack).or_insert(0) += value;
            }
        }
        let mut kinds = 0;
        for entry in std::fs::read_dir(testdata().join(expected_folder)).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let Some(kind) = name
                .strip_prefix("jfr-")
                .and_then(|name| name.strip_suffix(".txt"))
            else {
                continue;
            };
            let expected = parse_folded(&String::from_utf8(read(&path)).unwrap());
            assert_eq!(
                merged.get(kind),
                Some(&expected),
                "{folder} {kind}: {}",
                describe_difference(&expected, merged.get(kind).unwrap_or(&BTreeMap::new()))
            );
            kinds += 1;
        }
        assert_eq!(kinds, 8, "{folder}");
        assert_eq!(merged.len(), 8, "{folder}: kinds {:?}", merged.keys());
    }
}

/// The LabelsSnapshot of the OG fixture: context 1 has `thread_name`,
/// context 2 also `profile_id`; the synthetic frames name their context.
#[test]
fn jfr_attaches_context_labels_to_samples() {
    let dir = testdata().join("jfr/og-with-labels");
    let profiles = convert(&dir.join("jfr.bin.gz"), Some(&dir.join("labels.proto.bin")));
    let thread = ("thread_name".to_owned(), "pool-2-thread-8".to_owned());
    let profile_id = ("profile_id".to_owned(), "239239239239".to_owned());
    let mut seen = 0;
    for profile in &profiles {
        for sample in &profile.profile.sample {
            let stack = render_stack(&profile.profile, sample);
            let expected = if stack.contains(".context0") {
                vec![]
            } else if stack.contains(".context1") {
                vec![thread.clone()]
            } else {
                assert!(stack.contains(".context2"), "{stack}");
                vec![profile_id.clone(), thread.clone()]
            };
            assert_eq!(labels_of(&profile.profile, sample), expected, "{stack}");
            seen += 1;
        }
    }
    assert!(seen > 0);
}

fn jdk_jfr_tool() -> Option<PathBuf> {
    let java = std::fs::canonicalize("/usr/bin/java").ok()?;
    let tool = java.parent()?.join("jfr");
    tool.is_file().then_some(tool)
}

/// A JDK 17 recording: as many CPU samples as the JDK's own tool counts
/// `jdk.ExecutionSample` events.
#[test]
fn jfr_converts_every_execution_sample_of_a_jdk17_recording() {
    let path = testdata().join("captured/java17-jfr.busy.jfr");
    if let Some(tool) = jdk_jfr_tool() {
        let output = std::process::Command::new(tool)
            .args(["print", "--events", "jdk.ExecutionSample"])
            .arg(&path)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout);
        let count = text
            .lines()
            .filter(|line| line.contains("jdk.ExecutionSample"))
            .count();
        assert_eq!(i64::try_from(count).unwrap(), JAVA17_EXECUTION_SAMPLES);
    }
    let profiles = convert(&path, None);
    assert!(profiles.iter().all(|p| p.jfr_event.is_empty()));
    let cpu = profiles.iter().find(|p| p.metric == "process_cpu").unwrap();
    let total: i64 = cpu.profile.sample.iter().map(|s| s.value[0]).sum();
    assert_eq!(total / PERIOD, JAVA17_EXECUTION_SAMPLES);
    // The recording also holds jdk.ObjectAllocationSample events.
    assert!(
        profiles.iter().any(|p| collapsed_type_key(p)
            == "memory_alloc_sample_objects__count alloc_sample_bytes__bytes")
    );
    // Stacks hold the program's frames, leaf first.
    let busy = cpu
        .profile
        .sample
        .iter()
        .map(|s| render_stack(&cpu.profile, s))
        .find(|stack| stack.contains("Busy."))
        .unwrap();
    assert!(busy.starts_with("Busy.main:"), "{busy}");
}

#[test]
fn jfr_profiles_are_well_formed_pprofs() {
    let path = testdata().join("jfr/pyroscope/dump2.jfr.gz");
    let profiles = convert(&path, labels_path("dump2").as_deref());
    let kinds: Vec<String> = profiles.iter().map(collapsed_type_key).collect();
    assert_eq!(
        kinds,
        [
            "process_cpu_cpu__nanoseconds",
            "wall_wall__nanoseconds",
            "memory_alloc_in_new_tlab_objects__count alloc_in_new_tlab_bytes__bytes",
            "memory_live__count",
        ]
    );
    for profile in &profiles {
        let pprof = &profile.profile;
        assert_eq!(profile.jfr_event, "wall");
        assert_eq!(pprof.time_nanos, FROM_NS);
        assert_eq!(pprof.duration_nanos, UNTIL_NS - FROM_NS);
        assert_eq!(pprof.string_table[0], "");
        let function_ids: Vec<u64> = pprof.function.iter().map(|f| f.id).collect();
        assert_eq!(
            function_ids,
            (1..=pprof.function.len() as u64).collect::<Vec<_>>()
        );
        let mut names: Vec<&str> = pprof
            .function
            .iter()
            .map(|f| string(pprof, f.name))
            .collect();
        names.sort();
        let before = names.len();
        names.dedup();
        assert_eq!(names.len(), before, "one function per frame name");
        for location in &pprof.location {
            assert_eq!(location.line.len(), 1);
            assert!(location.line[0].function_id as usize <= pprof.function.len());
        }
        let mut keys = std::collections::HashSet::new();
        for sample in &pprof.sample {
            assert_eq!(sample.value.len(), pprof.sample_type.len());
            assert!(
                sample
                    .location_id
                    .iter()
                    .all(|&id| id >= 1 && id as usize <= pprof.location.len())
            );
            assert!(
                keys.insert((sample.location_id.clone(), labels_of(pprof, sample))),
                "merged"
            );
        }
        // Round trip through the wire format.
        let decoded = Profile::decode(pprof.encode_to_vec().as_slice()).unwrap();
        assert_eq!(&decoded, pprof);
    }
    let cpu = &profiles[0].profile;
    assert_eq!(cpu.period, PERIOD);
    // Span ids from the snapshot stay as the snapshot names them.
    assert!(cpu.sample.iter().any(|s| {
        labels_of(cpu, s)
            .iter()
            .any(|(k, v)| k == "profile_id" && v.len() >= 15)
    }));
}

#[test]
fn jfr_sample_rate_sets_the_period() {
    let path = testdata().join("jfr/pyroscope/cortex-dev-01__kafka-0__cpu__0.jfr.gz");
    let bytes = read(&path);
    let total = |sample_rate: i64| -> (i64, i64) {
        let options = JfrOptions {
            sample_rate,
            ..options()
        };
        let profiles = parse_jfr(&bytes, None, &options).unwrap();
        let cpu = &profiles[0].profile;
        (cpu.sample.iter().map(|s| s.value[0]).sum(), cpu.period)
    };
    assert_eq!(total(100), (478 * 10_000_000, 10_000_000));
    assert_eq!(total(250), (478 * 4_000_000, 4_000_000));
    assert_eq!(total(0), (0, 0));
}

#[test]
fn jfr_labels_snapshot_decodes_gzip_and_plain() {
    let dir = testdata().join("jfr/pyroscope");
    let gz = read(&dir.join("dump1.labels.pb.gz"));
    let snapshot = decode_labels_snapshot(&gz, 1 << 20).unwrap();
    let plain = gunzip_if_needed(gz);
    assert_eq!(decode_labels_snapshot(&plain, 1 << 20).unwrap(), snapshot);
    assert!(!snapshot.contexts.is_empty());
    let (&context_id, _) = snapshot.contexts.iter().next().unwrap();
    let labels = snapshot.context_labels(context_id);
    assert_eq!(labels[0].0, "thread_name");
    assert!(matches!(
        decode_labels_snapshot(&[0xff, 0xff], 1 << 20),
        Err(JfrError::DecodeLabels { .. })
    ));
    assert!(matches!(
        decode_labels_snapshot(&plain, 4),
        Err(JfrError::TooLarge { .. })
    ));
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

#[test]
fn jfr_rejects_gzip_bombs_quickly() {
    // 1 GiB of zeros compresses to about 1 MiB; building it takes a moment,
    // so use 256 MiB against a 1 MiB limit.
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..256 {
        encoder.write_all(&zeros).unwrap();
    }
    let bomb = encoder.finish().unwrap();
    let small = JfrOptions {
        max_decompressed_bytes: 1 << 20,
        ..options()
    };
    let started = std::time::Instant::now();
    let error = parse_jfr(&bomb, None, &small).unwrap_err();
    assert!(
        matches!(error, JfrError::TooLarge { limit, .. } if limit == 1 << 20),
        "{error:?}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    let error = parse_jfr(&[0; 100], Some(&bomb), &small).unwrap_err();
    assert!(matches!(error, JfrError::TooLarge { .. }), "{error:?}");
    // Plain input larger than the limit, and corrupt gzip.
    let mut plain = zeros.clone();
    plain.push(0);
    let error = parse_jfr(&plain, None, &small).unwrap_err();
    assert!(matches!(error, JfrError::TooLarge { .. }), "{error:?}");
    let mut corrupt = gzip(b"FLR\0 not really");
    let len = corrupt.len();
    corrupt[len - 6] ^= 0xff;
    corrupt.truncate(len - 3);
    assert!(matches!(
        parse_jfr(&corrupt, None, &options()).unwrap_err(),
        JfrError::DecompressRecording { .. }
    ));
}

#[test]
fn jfr_rejects_garbage_and_empty_input() {
    assert!(matches!(
        parse_jfr(&[], None, &options()).unwrap_err(),
        JfrError::EmptyRecording
    ));
    let error = parse_jfr(b"not a JFR recording at all", None, &options()).unwrap_err();
    assert!(
        matches!(
            &error,
            JfrError::ReadChunk {
                source: JfrDecodeError::BadMagic { offset: 0 },
                ..
            }
        ),
        "{error:?}"
    );
    let mut header = b"FLR\0\x00\x09\x00\x00".to_vec();
    header.resize(68, 0);
    assert!(matches!(
        parse_jfr(&header, None, &options()).unwrap_err(),
        JfrError::ReadChunk {
            source: JfrDecodeError::UnsupportedVersion { major: 9, .. },
            ..
        }
    ));
}

/// Deterministic pseudo-random bytes (xorshift), to avoid a dependency.
fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// Every prefix-truncation, random corruption and random input fails with
/// an error or converts; none panics.
#[test]
fn jfr_survives_truncated_and_corrupted_recordings() {
    let recording = gunzip_if_needed(read(&testdata().join("jfr/og-with-labels/jfr.bin.gz")));
    let labels = read(&testdata().join("jfr/og-with-labels/labels.proto.bin"));
    let options = options();
    assert!(parse_jfr(&recording, Some(&labels), &options).is_ok());
    let mut errors = 0;
    for len in 0..recording.len() {
        if parse_jfr(&recording[..len], Some(&labels), &options).is_err() {
            errors += 1;
        }
    }
    assert_eq!(errors, recording.len(), "every truncation is an error");
    // Corrupt one to four bytes at random positions.
    let noise = pseudo_random(42, 8 * 4 * 5_000 + 8);
    for round in 0..5_000 {
        let mut corrupted = recording.clone();
        let changes = 1 + round % 4;
        for change in 0..changes {
            let at = 8 * (round * 4 + change);
            let position = u32::from_le_bytes(noise[at..at + 4].try_into().unwrap()) as usize
                % corrupted.len();
            corrupted[position] = noise[at + 4];
        }
        let _ = parse_jfr(&corrupted, Some(&labels), &options);
    }
    for seed in 0..200 {
        let mut random = pseudo_random(seed, 64 + seed as usize * 50);
        let _ = parse_jfr(&random, Some(&random), &options);
        // With a valid magic and header shape.
        random[..4].copy_from_slice(b"FLR\0");
        random[4..8].copy_from_slice(&[0, 2, 0, 0]);
        let len = random.len() as u64;
        random[8..16].copy_from_slice(&len.to_be_bytes());
        let _ = parse_jfr(&random, None, &options);
    }
}

/// Corruption of a real, larger recording (more pool and event shapes).
#[test]
fn jfr_survives_corrupted_async_profiler_recording() {
    let recording = gunzip_if_needed(read(
        &testdata().join("jfr/pyroscope/cortex-dev-01__kafka-0__cpu_lock0_alloc0__0.jfr.gz"),
    ));
    let options = options();
    let noise = pseudo_random(7, 8 * 300);
    for round in 0..300 {
        let mut corrupted = recording.clone();
        let at = 8 * round;
        let position =
            u32::from_le_bytes(noise[at..at + 4].try_into().unwrap()) as usize % corrupted.len();
        corrupted[position] ^= noise[at + 4] | 1;
        let _ = parse_jfr(&corrupted, None, &options);
    }
    for len in [68, 1000, recording.len() / 2, recording.len() - 1] {
        assert!(parse_jfr(&recording[..len], None, &options).is_err());
    }
}
