//! The command-line tools against a real server: `kiln upload` a directory
//! of real profiles, read them back with `kiln query` in every output
//! format, list and inspect the written blocks, and quick runs of
//! `kiln bench ingest|query`. Expected totals are computed in the test from
//! the input files, never from Kiln's answers.

use std::collections::BTreeMap;
use std::path::Path;

use kiln_proto::google::v1::Profile;
use kiln_tests::{Kiln, decode_levels, maybe_gunzip, pprof_totals, read_testdata, testdata};
use prost::Message;

const CPU: &str = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";
const SAMPLES: &str = "process_cpu:samples:count:cpu:nanoseconds";
const INUSE: &str = "memory:inuse_space:bytes:space:bytes";

/// Output of one `kiln` run.
struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

async fn kiln(args: &[&str]) -> Run {
    let out = tokio::process::Command::new(Kiln::binary())
        .args(args)
        .env_remove("KILN_URL")
        .env_remove("KILN_CONFIG")
        .output()
        .await
        .unwrap();
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `kiln` and fails the test, with its output, unless it succeeds.
async fn kiln_ok(args: &[&str]) -> String {
    let r = kiln(args).await;
    assert!(
        r.ok,
        "kiln {args:?} failed\nstdout:\n{}\nstderr:\n{}",
        r.stdout, r.stderr
    );
    r.stdout
}

/// The sum of the values of sample type `ty` in a pprof file.
fn total_of(file: &[u8], ty: &str) -> i64 {
    pprof_totals(file)
        .iter()
        .filter(|(t, _, _)| t == ty)
        .map(|t| t.2)
        .sum()
}

/// The value of the `name  value` line of `kiln upload`'s summary.
fn summary_field(out: &str, name: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix(name))
        .unwrap_or_else(|| panic!("no {name} in:\n{out}"))
        .trim()
        .to_owned()
}

fn copy(rel: &str, dir: &Path) {
    let src = testdata(rel);
    std::fs::copy(&src, dir.join(src.file_name().unwrap())).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_query_and_blocks_tools() {
    let dir = tempfile::tempdir().unwrap();
    // No compactor: the test inspects the segments as ingesters wrote them.
    let server = Kiln::start(
        &Kiln::binary(),
        &dir.path().join("data"),
        &["--target", "distributor,ingester,querier,metastore"],
    )
    .unwrap();
    let url = server.http.as_str();

    // A directory of real profiles, one nested, plus a file that is not a
    // profile (skipped when found by walking).
    let input = dir.path().join("in");
    std::fs::create_dir_all(input.join("nested")).unwrap();
    for rel in [
        "pprof/cpu.pb.gz",
        "pprof/profile_rust",
        "pprof/heap",
        "collapsed/pprof-string.txt",
    ] {
        copy(rel, &input);
    }
    copy(
        "captured/go1.19-runtime-pprof.cpu.pb.gz",
        &input.join("nested"),
    );
    std::fs::write(input.join("README.md"), "# not a profile\n").unwrap();

    let cpu_files = [
        read_testdata("pprof/cpu.pb.gz"),
        read_testdata("pprof/profile_rust"),
        read_testdata("captured/go1.19-runtime-pprof.cpu.pb.gz"),
    ];
    let folded_text = String::from_utf8(read_testdata("collapsed/pprof-string.txt")).unwrap();
    let mut folded_input: BTreeMap<String, i64> = BTreeMap::new();
    for line in folded_text.lines().filter(|l| !l.trim().is_empty()) {
        let (stack, n) = line.rsplit_once(' ').unwrap();
        *folded_input.entry(stack.to_owned()).or_default() += n.trim().parse::<i64>().unwrap();
    }
    // Folded counts at the default 100 Hz are 10 ms each.
    let folded_ns: i64 = folded_input.values().sum::<i64>() * 10_000_000;
    let cpu_total: i64 = cpu_files.iter().map(|f| total_of(f, "cpu")).sum::<i64>() + folded_ns;
    let samples_total: i64 = cpu_files.iter().map(|f| total_of(f, "samples")).sum();
    let inuse_total = total_of(&read_testdata("pprof/heap"), "inuse_space");
    assert!(cpu_total > 0 && samples_total > 0 && inuse_total > 0);

    let input_s = input.to_str().unwrap();
    let out = kiln_ok(&[
        "upload",
        "--url",
        url,
        "--service",
        "tools",
        "--label",
        "env=e2e",
        input_s,
    ])
    .await;
    assert_eq!(summary_field(&out, "files"), "6 (1 skipped)", "{out}");
    assert_eq!(summary_field(&out, "profiles"), "5", "{out}");
    assert_eq!(summary_field(&out, "errors"), "0", "{out}");

    let cpu_sel = format!("{CPU}{{service_name=\"tools\"}}");
    let query = |output: &'static str, sel: String| {
        let url = url.to_owned();
        async move {
            kiln_ok(&[
                "query",
                "--url",
                &url,
                "--output",
                output,
                "--max-nodes",
                "0",
                &sel,
            ])
            .await
        }
    };

    // folded: every stack of the folded input is there with at least its
    // value, and the lines add up to the total.
    let folded = query("folded", cpu_sel.clone()).await;
    let mut folded_out: BTreeMap<String, i64> = BTreeMap::new();
    for line in folded.lines() {
        let (stack, n) = line.rsplit_once(' ').unwrap();
        *folded_out.entry(stack.to_owned()).or_default() += n.parse::<i64>().unwrap();
    }
    assert_eq!(folded_out.values().sum::<i64>(), cpu_total);
    for (stack, n) in &folded_input {
        let got = folded_out.get(stack).copied().unwrap_or(0);
        assert!(got >= n * 10_000_000, "{stack}: {got} < {}", n * 10_000_000);
    }

    // json: flamebearer with the total, levels that decode to the same sum.
    let json: serde_json::Value =
        serde_json::from_str(&query("json", cpu_sel.clone()).await).unwrap();
    let fb = &json["flamebearer"];
    assert_eq!(fb["numTicks"].as_i64(), Some(cpu_total));
    let names: Vec<String> = serde_json::from_value(fb["names"].clone()).unwrap();
    let levels: Vec<Vec<i64>> = serde_json::from_value(fb["levels"].clone()).unwrap();
    assert_eq!(
        decode_levels(&names, &levels).values().sum::<i64>(),
        cpu_total
    );

    // pprof: a gzipped profile whose cpu values add up to the total.
    let pprof_path = dir.path().join("merged.pb.gz");
    let pprof_s = pprof_path.to_str().unwrap();
    kiln_ok(&[
        "query", "--url", url, "--output", "pprof", "--out", pprof_s, &cpu_sel,
    ])
    .await;
    let merged = std::fs::read(&pprof_path).unwrap();
    assert_eq!(&merged[..2], &[0x1f, 0x8b]);
    assert_eq!(total_of(&merged, "cpu"), cpu_total);
    Profile::decode(maybe_gunzip(&merged).as_slice()).unwrap();

    // Other profile types of the same upload.
    let samples = query("folded", format!("{SAMPLES}{{service_name=\"tools\"}}")).await;
    let sum: i64 = samples
        .lines()
        .map(|l| l.rsplit_once(' ').unwrap().1.parse::<i64>().unwrap())
        .sum();
    assert_eq!(sum, samples_total);
    let inuse: serde_json::Value = serde_json::from_str(
        &query(
            "json",
            format!("{INUSE}{{service_name=\"tools\",env=\"e2e\"}}"),
        )
        .await,
    )
    .unwrap();
    assert_eq!(inuse["flamebearer"]["numTicks"].as_i64(), Some(inuse_total));

    // top: the header carries the exact total; --limit bounds the rows.
    let top = kiln_ok(&["query", "--url", url, "--limit", "5", &cpu_sel]).await;
    let header = top.lines().next().unwrap();
    assert!(
        header.contains(&format!("({cpu_total} nanoseconds)")),
        "{top}"
    );
    assert_eq!(top.lines().count(), 2 + 5, "{top}");

    // svg: a standalone document with a tooltip per frame and the root at 100%.
    let svg = query("svg", cpu_sel.clone()).await;
    assert!(svg.starts_with("<?xml") && svg.trim_end().ends_with("</svg>"));
    assert!(
        svg.contains("<title>all ("),
        "{}",
        &svg[..500.min(svg.len())]
    );
    assert!(svg.contains("100.00%)</title>"));
    let rects = svg.matches("<rect x=").count();
    assert!(
        rects > 10 && rects == svg.matches("<g><title>").count() + 1,
        "{rects} frames"
    );

    // series: CSV values add up to the total; grouping by env names the label.
    let csv = kiln_ok(&[
        "query", "series", "--url", url, "--output", "csv", "--step", "60s", &cpu_sel,
    ])
    .await;
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("series,timestamp,value"));
    let sum: f64 = lines
        .map(|l| l.rsplit(',').next().unwrap().parse::<f64>().unwrap())
        .sum();
    assert_eq!(sum as i64, cpu_total);
    let table = kiln_ok(&[
        "query",
        "series",
        "--url",
        url,
        "--group-by",
        "env",
        &cpu_sel,
    ])
    .await;
    assert!(
        table.contains(r#"{env="e2e"}"#) && table.contains(&format!("sum {cpu_total}")),
        "{table}"
    );

    // diff of the same selection both sides: equal ticks, no change.
    let right = format!("{CPU}{{service_name=\"tools\",env=\"e2e\"}}");
    let diff = kiln_ok(&[
        "query", "diff", "--url", url, "--left", &cpu_sel, "--right", &right, "--output", "json",
    ])
    .await;
    let diff: serde_json::Value = serde_json::from_str(&diff).unwrap();
    assert_eq!(diff["leftTicks"].as_i64(), Some(cpu_total));
    assert_eq!(diff["rightTicks"].as_i64(), Some(cpu_total));
    let table = kiln_ok(&[
        "query", "diff", "--url", url, "--left", &cpu_sel, "--right", &right,
    ])
    .await;
    assert!(table.contains("0 functions changed"), "{table}");
    // ... and against an empty selection every function lost its value.
    let none = format!("{CPU}{{service_name=\"nothing\"}}");
    let table = kiln_ok(&[
        "query", "diff", "--url", url, "--left", &cpu_sel, "--right", &none, "--limit", "3",
    ])
    .await;
    assert!(
        table.contains("right total 0 ns") && table.lines().count() == 5,
        "{table}"
    );

    // --time keep: the profile keeps its own timestamp (years ago), so it
    // is outside the last hour and inside a range around its time.
    let go = read_testdata("pprof/cpu.pb.gz");
    let own_time = Profile::decode(maybe_gunzip(&go).as_slice())
        .unwrap()
        .time_nanos;
    assert!(own_time > 0);
    let file = testdata("pprof/cpu.pb.gz");
    kiln_ok(&[
        "upload",
        "--url",
        url,
        "--service",
        "kept",
        "--time",
        "keep",
        file.to_str().unwrap(),
    ])
    .await;
    let kept_sel = format!("{CPU}{{service_name=\"kept\"}}");
    let recent: serde_json::Value =
        serde_json::from_str(&query("json", kept_sel.clone()).await).unwrap();
    assert_eq!(recent["flamebearer"]["numTicks"].as_i64(), Some(0));
    let (from, until) = (
        (own_time - 60_000_000_000).to_string(),
        (own_time + 60_000_000_000).to_string(),
    );
    let old = kiln_ok(&[
        "query", "--url", url, "--output", "json", "--from", &from, "--until", &until, &kept_sel,
    ])
    .await;
    let old: serde_json::Value = serde_json::from_str(&old).unwrap();
    assert_eq!(
        old["flamebearer"]["numTicks"].as_i64(),
        Some(total_of(&go, "cpu"))
    );

    // JFR (sent inflated as the `jfr` part of a form) and speedscope. The
    // JFR's CPU total is the largest of Pyroscope's expected pprofs for
    // this recording (the others are per-thread subsets).
    let jfr = testdata("jfr/pyroscope/dump1.jfr.gz");
    let out = kiln_ok(&[
        "upload",
        "--url",
        url,
        "--service",
        "jvm",
        jfr.to_str().unwrap(),
    ])
    .await;
    assert_eq!(summary_field(&out, "profiles"), "1", "{out}");
    let mut expected_jfr = 0;
    for entry in std::fs::read_dir(testdata("jfr/pyroscope")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name.starts_with("dump1.jfr.gz.process_cpu_cpu_nanoseconds_cpu_nanoseconds.") {
            let t = total_of(&read_testdata(&format!("jfr/pyroscope/{name}")), "cpu");
            expected_jfr = expected_jfr.max(t);
        }
    }
    let jvm: serde_json::Value =
        serde_json::from_str(&query("json", format!("{CPU}{{service_name=\"jvm\"}}")).await)
            .unwrap();
    assert_eq!(jvm["flamebearer"]["numTicks"].as_i64(), Some(expected_jfr));
    let ss = testdata("speedscope/simple.speedscope.json");
    let out = kiln_ok(&[
        "upload",
        "--url",
        url,
        "--service",
        "ss",
        ss.to_str().unwrap(),
    ])
    .await;
    assert_eq!(summary_field(&out, "profiles"), "1", "{out}");

    // Failures: a file the server refuses and a named non-profile make the
    // exit code non-zero and are counted.
    let bad = dir.path().join("bad.folded");
    std::fs::write(&bad, "main;overflow 99999999999999999\n").unwrap();
    let readme = input.join("README.md");
    let r = kiln(&[
        "upload",
        "--url",
        url,
        "--service",
        "bad",
        bad.to_str().unwrap(),
        readme.to_str().unwrap(),
        file.to_str().unwrap(),
    ])
    .await;
    assert!(!r.ok, "{}", r.stdout);
    assert_eq!(
        summary_field(&r.stdout, "errors"),
        "2",
        "{}\n{}",
        r.stdout,
        r.stderr
    );
    assert_eq!(summary_field(&r.stdout, "profiles"), "1");
    assert!(
        r.stderr.contains("bad.folded") && r.stderr.contains("HTTP 400"),
        "{}",
        r.stderr
    );
    let r = kiln(&["query", "--url", url, "not-a-type{}"]).await;
    assert!(
        !r.ok && r.stderr.contains("invalid profile type"),
        "{}",
        r.stderr
    );

    // blocks: the metastore and the object store list the same blocks; a
    // block's footer shows its sections and the uploaded service.
    let from_metastore = kiln_ok(&["blocks", "ls", "--metastore", &server.grpc]).await;
    let data_dir = server.data_dir.to_str().unwrap().to_owned();
    let from_store = kiln_ok(&["blocks", "ls", "--data-dir", &data_dir]).await;
    let count = |out: &str| -> usize {
        let last = out.lines().last().unwrap();
        last.split(' ').next().unwrap().parse().unwrap()
    };
    assert!(count(&from_metastore) >= 2, "{from_metastore}");
    assert_eq!(
        count(&from_metastore),
        count(&from_store),
        "{from_metastore}\n{from_store}"
    );
    assert_eq!(from_metastore.lines().last(), from_store.lines().last());
    let row = from_store
        .lines()
        .find(|l| l.ends_with(" tools"))
        .unwrap_or_else(|| panic!("no block of service tools:\n{from_store}"));
    let id = row.split_whitespace().next().unwrap();
    let inspect = kiln_ok(&["blocks", "inspect", id, "--data-dir", &data_dir, "--series"]).await;
    for needle in [
        format!("block       {id}"),
        "sections".into(),
        "samples".into(),
        "stacks".into(),
        "  [0] tools".into(),
        CPU.into(),
        r#"service_name="tools""#.into(),
    ] {
        assert!(inspect.contains(&needle), "no {needle:?} in:\n{inspect}");
    }
    let key = inspect
        .lines()
        .find_map(|l| l.strip_prefix("key"))
        .unwrap()
        .trim()
        .to_owned();
    let by_key = kiln_ok(&["blocks", "inspect", &key, "--data-dir", &data_dir]).await;
    assert!(by_key.contains(&format!("block       {id}")), "{by_key}");

    server.stop().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_ingest_and_query_quick_runs() {
    let dir = tempfile::tempdir().unwrap();
    let server = Kiln::start(&Kiln::binary(), dir.path(), &[]).unwrap();
    let url = server.http.as_str();

    let mut pushed = 0;
    for api in ["push", "ingest"] {
        let out = kiln_ok(&[
            "bench",
            "ingest",
            "--url",
            url,
            "--api",
            api,
            "--duration",
            "2s",
            "--concurrency",
            "2",
            "--services",
            "2",
            "--series",
            "2",
            "--stacks",
            "200",
            "--json",
        ])
        .await;
        let report: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        let ok = report["profiles_ok"].as_u64().unwrap();
        assert!(ok > 0, "{report}");
        assert_eq!(report["errors"].as_u64(), Some(0), "{report}");
        assert_eq!(report["profiles_sent"].as_u64(), Some(ok));
        let lat = &report["latency_ms"];
        let (p50, p99, max) = (
            lat["p50"].as_f64().unwrap(),
            lat["p99"].as_f64().unwrap(),
            lat["max"].as_f64().unwrap(),
        );
        assert!(0.0 < p50 && p50 <= p99 && p99 <= max, "{report}");
        assert!(report["mb_per_s"].as_f64().unwrap() > 0.0);
        assert!(report["uncompressed_bytes"].as_u64().unwrap() > ok * 1000);
        pushed += ok;
    }
    assert!(pushed > 0);

    // Every acknowledged profile is queryable: the query bench sees data.
    let sel = format!("{CPU}{{service_name=\"api-0\"}}");
    let out = kiln_ok(&[
        "bench",
        "query",
        "--url",
        url,
        "--selector",
        &sel,
        "--ranges",
        "1h,24h",
        "--iterations",
        "3",
        "--json",
    ])
    .await;
    let report: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let ranges = report["ranges"].as_array().unwrap();
    assert_eq!(ranges.len(), 2);
    for r in ranges {
        assert_eq!(r["queries_ok"].as_u64(), Some(3), "{r}");
        assert_eq!(r["errors"].as_u64(), Some(0), "{r}");
        assert!(r["total"].as_i64().unwrap() > 0, "{r}");
        assert!(r["latency_ms"]["p50"].as_f64().unwrap() > 0.0, "{r}");
    }
    // The human report of a short run is readable too.
    let text = kiln_ok(&[
        "bench",
        "ingest",
        "--url",
        url,
        "--duration",
        "20s",
        "--count",
        "5",
        "--stacks",
        "50",
    ])
    .await;
    assert!(
        text.contains("profiles    5 sent, 5 ok, 0 errors"),
        "{text}"
    );
    assert!(text.contains("ack latency p50"), "{text}");

    // Load tools only target this machine unless told otherwise.
    let r = kiln(&[
        "bench",
        "ingest",
        "--url",
        "http://192.0.2.1:4040",
        "--duration",
        "1s",
    ])
    .await;
    assert!(
        !r.ok && r.stderr.contains("not a loopback address"),
        "{}",
        r.stderr
    );

    server.stop().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_send_the_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let server = Kiln::start_with_env(
        &Kiln::binary(),
        dir.path(),
        &[],
        &[("KILN_MULTITENANCY__ENABLED", "true")],
    )
    .unwrap();
    let url = server.http.as_str();
    let file = testdata("pprof/cpu.pb.gz");
    let file = file.to_str().unwrap();
    let expected = total_of(&read_testdata("pprof/cpu.pb.gz"), "cpu");

    // Without a tenant the server refuses the upload.
    let r = kiln(&["upload", "--url", url, "--service", "mt", file]).await;
    assert!(!r.ok && r.stderr.contains("HTTP 401"), "{}", r.stderr);
    kiln_ok(&[
        "upload",
        "--url",
        url,
        "--tenant",
        "team-a",
        "--service",
        "mt",
        file,
    ])
    .await;

    let sel = format!("{CPU}{{service_name=\"mt\"}}");
    let ticks = |out: String| -> i64 {
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v["flamebearer"]["numTicks"].as_i64().unwrap()
    };
    let a = kiln_ok(&[
        "query", "--url", url, "--tenant", "team-a", "--output", "json", &sel,
    ])
    .await;
    assert_eq!(ticks(a), expected);
    let b = kiln_ok(&[
        "query", "--url", url, "--tenant", "team-b", "--output", "json", &sel,
    ])
    .await;
    assert_eq!(ticks(b), 0);
    let ls = kiln_ok(&[
        "blocks",
        "ls",
        "--metastore",
        &server.grpc,
        "--tenant",
        "team-a",
    ])
    .await;
    assert!(
        ls.lines()
            .any(|l| l.contains(" team-a ") && l.ends_with(" mt")),
        "{ls}"
    );
    server.stop().unwrap();
}

/// `kiln bench year` at a small scale (8 days, a profile every 5 min): the
/// generated blocks are registered in a real Kiln, its compactor merges the
/// day tiers, and every window (the 8 days, 7 days and the last day from
/// tiers and raw data, the last hour raw) answers exactly the generated
/// total. Days older than `--raw-days` exist only as roll-ups, so a missing
/// or inexact tier would show.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_year_small_dataset_answers_exact_totals() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let env = [
        ("KILN_COMPACTOR__POLL_INTERVAL", "100ms"),
        // The last day stays raw (hour blocks) while the test runs.
        ("KILN_COMPACTOR__DAY_GRACE", "1000h"),
        ("KILN_COMPACTOR__TIER_MERGE_MIN_BLOCKS", "2"),
    ];
    let server = Kiln::start_with_env(&Kiln::binary(), &data, &[], &env).unwrap();
    let manifest = dir.path().join("year.json");
    let manifest = manifest.to_str().unwrap();
    kiln_ok(&[
        "bench",
        "year",
        "generate",
        "--metastore",
        &server.grpc,
        "--data-dir",
        data.to_str().unwrap(),
        "--days",
        "8",
        "--raw-days",
        "2",
        "--interval",
        "5m",
        "--pool",
        "300",
        "--hits",
        "60",
        "--depth",
        "12",
        "--node-cap",
        "256",
        "--settle",
        "3s",
        "--manifest",
        manifest,
    ])
    .await;
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(manifest).unwrap()).unwrap();
    assert_eq!(m["profiles"], 8 * 288);
    assert_eq!(m["written"]["hour_blocks"], 24);
    assert_eq!(m["written"]["day_blocks"], 2);
    assert_eq!(m["written"]["tier_blocks"], 7 * 3);
    let hours: i64 = m["hour_totals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .sum();
    let ls = kiln_ok(&["blocks", "ls", "--metastore", &server.grpc]).await;
    // Columns: id, tenant, shard, level, ...
    assert!(
        ls.lines().any(|l| l.split_whitespace().nth(3) == Some("4")),
        "the compactor merged no day tiers (level 4):\n{ls}"
    );
    let out = kiln_ok(&[
        "bench",
        "year",
        "query",
        "--url",
        &server.http,
        "--manifest",
        manifest,
        "--iterations",
        "2",
        "--pid",
        &server.pid().to_string(),
        "--json",
    ])
    .await;
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let windows = v["windows"].as_array().unwrap();
    let names: Vec<&str> = windows
        .iter()
        .map(|w| w["window"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["8d", "7d", "24h", "1h"]);
    for w in windows {
        assert_eq!(w["exact"], true, "{w}");
        assert_eq!(w["total"], w["expected_total"], "{w}");
        assert!(w["nodes"].as_u64().unwrap() > 10, "{w}");
        assert!(w["peak_rss_kib"].as_u64().unwrap() > 0, "{w}");
    }
    assert_eq!(windows[0]["total"], hours);
    server.stop().unwrap();
}
